import { useState } from 'react';
import { api } from '../api/client';
import type { RuntimeListItem } from '../api/types';
import { useI18n } from '../i18n/i18n';
import { formatBytes, formatDateTime } from '../lib/format';
import { useResource } from '../ui/useResource';
import { AsyncForm, Card, Field, Notice, ProgressBar } from '../ui/ui';
import type { RolloutAnswer } from './adminTypes';
import { Badge, usePolling } from './common';

type ItemStatus = NonNullable<RolloutAnswer['rollout']>['items'][number]['status'];
const ITEM_TONE: Record<ItemStatus, 'ok' | 'warn' | 'bad' | 'neutral' | 'info'> = {
  pending: 'neutral',
  restarting: 'info',
  updated: 'ok',
  'rolling-back': 'warn',
  'rolled-back': 'warn',
  failed: 'bad',
  skipped: 'neutral',
};

/**
 * Moving running runtimes onto a new image (POST /admin/runtimes/rollout): the image and an
 * optional canary, then each runtime's outcome as it goes; who was put back, why, and what
 * OpenClaw last logged there.
 */
export function RolloutCard({ runtimes, configuredImage, onChange }: { runtimes: RuntimeListItem[]; configuredImage: string; onChange: () => void }) {
  const { t, locale } = useI18n();
  const rollout = useResource((signal) => api.get<RolloutAnswer>('/admin/runtimes/rollout', { signal }), 'rollout');
  const current = rollout.data?.rollout ?? null;
  const running = current?.status === 'running';
  const [wasRunning, setWasRunning] = useState(false);
  usePolling(() => {
    void rollout.reload();
    // The list above shows the images once it is over.
    if (wasRunning && !running) onChange();
    setWasRunning(running);
  }, running ? 1_000 : 15_000);
  const candidates = runtimes.filter((r) => r.state === 'running');
  const done = current ? current.items.filter((i) => i.status !== 'pending' && i.status !== 'restarting' && i.status !== 'rolling-back').length : 0;

  return (
    <Card title={t('admin.rollout.title')}>
      <Notice>{t('admin.rollout.intro')}</Notice>
      <AsyncForm
        submitLabel={t('admin.rollout.start')}
        onSubmit={async (values) => {
          const canary = values.canary ?? '';
          await api.post<RolloutAnswer>('/admin/runtimes/rollout', { image: (values.image ?? '').trim(), ...(canary ? { canaryUserId: canary } : {}) });
          await rollout.reload();
        }}
      >
        <div className="admin-form-grid">
          <Field label={t('admin.rollout.image')} name="image" defaultValue={configuredImage} required maxLength={255} spellCheck={false} autoComplete="off" data-testid="rollout-image" />
          <div className="field">
            <label htmlFor="rollout-canary">{t('admin.rollout.canary')}</label>
            <select id="rollout-canary" name="canary" defaultValue="" data-testid="rollout-canary">
              <option value="">{t('admin.rollout.noCanary')}</option>
              {candidates.map((r) => (
                <option key={r.userId} value={r.userId}>
                  {r.username}
                </option>
              ))}
            </select>
          </div>
        </div>
      </AsyncForm>
      {current && (
        <div className="stack" data-testid="rollout" data-status={current.status}>
          <p>
            <strong>{current.image}</strong> · {t('admin.rollout.by', { actor: current.actor, time: formatDateTime(current.startedAt, locale) })}{' '}
            <Badge tone={current.status === 'succeeded' ? 'ok' : current.status === 'running' ? 'info' : current.status === 'failed' ? 'bad' : 'warn'}>{t(`admin.rollout.status.${current.status}`)}</Badge>
          </p>
          {running && current.pull && <ProgressBar value={current.pull.bytesTotal > 0 ? current.pull.bytesDone / current.pull.bytesTotal : 0} label={t('admin.rollout.pulling', { bytes: formatBytes(current.pull.bytesDone, locale) })} />}
          {running && current.items.length > 0 && <ProgressBar value={done / current.items.length} label={t('admin.rollout.progress', { done, total: current.items.length })} />}
          {current.error && <Notice tone="warning">{current.error.message}</Notice>}
          {current.backupId && <p className="muted small">{t('admin.rollout.backup', { id: current.backupId })}</p>}
          {current.notes.map((note) => (
            <p key={note} className="muted small">
              {note}
            </p>
          ))}
          <ul className="plain-list">
            {current.items.map((item) => (
              <li key={item.userId} data-testid="rollout-item" data-status={item.status}>
                <strong>{item.username}</strong> {item.canary && <Badge tone="info">{t('admin.rollout.canaryBadge')}</Badge>}{' '}
                <Badge tone={ITEM_TONE[item.status]}>{t(`admin.rollout.item.${item.status}`)}</Badge>
                {item.status === 'rolled-back' && <span className="muted small"> {t('admin.rollout.heldOn', { image: item.previousImage })}</span>}
                {item.error && <p className="small">{item.error.message}</p>}
                {item.logTail && (
                  <details>
                    <summary className="small">{t('admin.rollout.logTail')}</summary>
                    <pre className="admin-log-tail">{item.logTail}</pre>
                  </details>
                )}
              </li>
            ))}
          </ul>
        </div>
      )}
    </Card>
  );
}
