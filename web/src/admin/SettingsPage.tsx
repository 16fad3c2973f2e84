import { useState } from 'react';
import { api } from '../api/client';
import { Link } from '../app/router';
import { useI18n } from '../i18n/i18n';
import { useResource } from '../ui/useResource';
import { AsyncForm, Card, ErrorNote, Field, Notice } from '../ui/ui';
import type { PlatformSettings } from './adminTypes';
import { optionalNumber } from './logic';

// As the server checks them (src/domain/platformSettings.ts).
const LIMITS = {
  idleStopMinutes: { integer: true, min: 0, max: 7 * 24 * 60 },
  memoryMiB: { integer: true, min: 512, max: 262_144 },
  cpus: { integer: false, min: 0.25, max: 128 },
  pidsLimit: { integer: true, min: 64, max: 65_536 },
} as const;

type NumericSetting = keyof typeof LIMITS;

export function SettingsPage() {
  const { t } = useI18n();
  const settings = useResource((signal) => api.get<PlatformSettings>('/admin/settings', { signal }), 'settings');
  const [saved, setSaved] = useState(false);
  const data = settings.data;

  const label: Record<NumericSetting, string> = {
    idleStopMinutes: t('admin.settings.idleStop'),
    memoryMiB: t('admin.settings.memory'),
    cpus: t('admin.settings.cpus'),
    pidsLimit: t('admin.settings.pids'),
  };

  return (
    <div className="stack">
      <h1>{t('admin.settings.title')}</h1>
      <Notice>
        {t('admin.settings.applyNote')} <Link to="/admin/runtimes">{t('admin.settings.runtimesLink')}</Link>
      </Notice>
      <ErrorNote error={settings.error} />
      {!data && settings.loading && <p role="status">{t('common.loading')}</p>}
      {data && (
        <Card title={t('admin.settings.runtimes')}>
          {saved && <Notice tone="success">{t('admin.settings.saved')}</Notice>}
          <AsyncForm
            key={JSON.stringify(data)}
            submitLabel={t('common.save')}
            onSubmit={async (values) => {
              setSaved(false);
              const change: Partial<PlatformSettings> = {};
              for (const name of Object.keys(LIMITS) as NumericSetting[]) {
                const check = optionalNumber(values[name], LIMITS[name]);
                if (!check.ok || check.value === null) throw new Error(t('admin.settings.invalid', { field: label[name], min: LIMITS[name].min, max: LIMITS[name].max }));
                if (check.value !== data[name]) change[name] = check.value;
              }
              const image = (values.image ?? '').trim();
              if (image !== data.image) change.image = image;
              if (Object.keys(change).length > 0) await api.patch<PlatformSettings>('/admin/settings', change);
              await settings.reload();
              setSaved(true);
            }}
          >
            <Field
              label={t('admin.settings.image')}
              name="image"
              defaultValue={data.image}
              required
              maxLength={255}
              spellCheck={false}
              autoComplete="off"
              hint={t('admin.settings.imageHint')}
            />
            <div className="admin-form-grid">
              <Field
                label={label.memoryMiB}
                name="memoryMiB"
                type="number"
                inputMode="numeric"
                step={1}
                min={LIMITS.memoryMiB.min}
                max={LIMITS.memoryMiB.max}
                defaultValue={data.memoryMiB}
                required
                hint={t('admin.settings.range', { min: LIMITS.memoryMiB.min, max: LIMITS.memoryMiB.max })}
              />
              <Field
                label={label.cpus}
                name="cpus"
                type="number"
                inputMode="decimal"
                step="any"
                min={LIMITS.cpus.min}
                max={LIMITS.cpus.max}
                defaultValue={data.cpus}
                required
                hint={t('admin.settings.range', { min: LIMITS.cpus.min, max: LIMITS.cpus.max })}
              />
              <Field
                label={label.pidsLimit}
                name="pidsLimit"
                type="number"
                inputMode="numeric"
                step={1}
                min={LIMITS.pidsLimit.min}
                max={LIMITS.pidsLimit.max}
                defaultValue={data.pidsLimit}
                required
                hint={t('admin.settings.pidsHint', { min: LIMITS.pidsLimit.min, max: LIMITS.pidsLimit.max })}
              />
              <Field
                label={label.idleStopMinutes}
                name="idleStopMinutes"
                type="number"
                inputMode="numeric"
                step={1}
                min={LIMITS.idleStopMinutes.min}
                max={LIMITS.idleStopMinutes.max}
                defaultValue={data.idleStopMinutes}
                required
                hint={t('admin.settings.idleStopHint', { max: LIMITS.idleStopMinutes.max })}
              />
            </div>
          </AsyncForm>
        </Card>
      )}
    </div>
  );
}
