import { useState } from 'react';
import { api } from '../api/client';
import { useI18n } from '../i18n/i18n';
import { formatBytes, formatDateTime } from '../lib/format';
import { useResource } from '../ui/useResource';
import { AsyncForm, Button, Card, ErrorNote, Field, Notice, ProgressBar } from '../ui/ui';
import type { Page, User } from '../api/types';
import type { BackupList, BackupSchedule, BackupVerification, StartedOperation, WorkspaceRestoreList } from './adminTypes';
import { Badge, useConfirm, usePolling } from './common';

const RESTORE_PHASE_KEYS = {
  unpacking: 'admin.backups.phaseUnpacking',
  swapping: 'admin.backups.phaseSwapping',
  done: 'admin.backups.phaseDone',
  failed: 'admin.backups.phaseFailed',
} as const;
const TRIGGER_KEYS = { manual: 'admin.backups.manual', scheduled: 'admin.backups.scheduled', offboarding: 'admin.backups.offboarding', upgrade: 'admin.backups.upgrade' } as const;

/** Backups: take one now with its progress, the list with verify and delete, and the daily schedule. */
export function BackupsPage() {
  const { t, locale } = useI18n();
  const confirm = useConfirm();
  const backups = useResource((signal) => api.get<BackupList>('/admin/backups', { signal }), 'backups');
  const schedule = useResource((signal) => api.get<BackupSchedule>('/admin/backups/schedule', { signal }), 'backup-schedule');
  const [starting, setStarting] = useState(false);
  const [startError, setStartError] = useState<unknown>(null);
  const [verified, setVerified] = useState<Record<string, { ok: true; parts: number } | { ok: false; error: unknown } | 'running'>>({});
  const [scheduleSaved, setScheduleSaved] = useState(false);
  const restores = useResource((signal) => api.get<WorkspaceRestoreList>('/admin/backups/restores', { signal }), 'workspace-restores');
  /** The workspace picked in each backup's row for a restore. */
  const [restoreChoice, setRestoreChoice] = useState<Record<string, string>>({});
  const [restoreError, setRestoreError] = useState<unknown>(null);
  const running = backups.data?.running ?? null;
  const restoring = (restores.data?.items ?? []).some((r) => r.phase === 'unpacking' || r.phase === 'swapping');
  // Fast while one runs (the progress bar), slow otherwise (a scheduled one may start).
  usePolling(() => void backups.reload(), running ? 1_000 : 15_000);
  usePolling(() => void restores.reload(), restoring ? 1_000 : 15_000);

  const restoreWorkspace = (backupId: string, createdAt: string, username: string) =>
    confirm({
      title: t('admin.backups.restoreTitle', { username }),
      body: t('admin.backups.restoreBody', { username, time: formatDateTime(createdAt, locale) }),
      confirmLabel: t('admin.backups.restore'),
      action: async () => {
        setRestoreError(null);
        try {
          const found = await api.get<Page<User>>(`/admin/users?search=${encodeURIComponent(username)}&limit=20`);
          const user = found.items.find((u) => u.username === username);
          if (!user) throw new Error(t('admin.backups.restoreNoAccount', { username }));
          await api.post<StartedOperation>(`/admin/backups/${encodeURIComponent(backupId)}/restore`, { userId: user.id });
        } catch (err) {
          setRestoreError(err);
        }
        await restores.reload();
      },
    });

  const start = async () => {
    setStarting(true);
    setStartError(null);
    try {
      await api.post('/admin/backups', {});
      await backups.reload();
    } catch (err) {
      setStartError(err);
    } finally {
      setStarting(false);
    }
  };

  const verify = async (id: string) => {
    setVerified((v) => ({ ...v, [id]: 'running' }));
    try {
      const report = await api.post<BackupVerification>(`/admin/backups/${encodeURIComponent(id)}/verify`, {});
      setVerified((v) => ({ ...v, [id]: { ok: true, parts: report.parts.length } }));
    } catch (err) {
      setVerified((v) => ({ ...v, [id]: { ok: false, error: err } }));
    }
  };

  const last = backups.data?.last ?? null;
  const stepLabel = running
    ? running.step === 'volumes' && running.username
      ? t('admin.backups.stepVolume', { username: running.username })
      : t(running.step === 'database' ? 'admin.backups.stepDatabase' : 'admin.backups.stepFinishing')
    : '';

  return (
    <div className="stack">
      <h1>{t('admin.backups.title')}</h1>
      <Notice>{t('admin.backups.intro')}</Notice>
      <ErrorNote error={backups.error} />
      <Card
        title={t('admin.backups.now')}
        actions={
          <Button variant="primary" busy={starting} disabled={running !== null || backups.data === null} onClick={() => void start()} data-testid="backup-start">
            {t('admin.backups.start')}
          </Button>
        }
      >
        <ErrorNote error={startError} />
        {running && (
          <div className="stack" data-testid="backup-progress">
            <ProgressBar value={running.partsTotal > 0 ? running.partsDone / running.partsTotal : 0} label={t('admin.backups.progressLabel')} />
            <p className="muted small" role="status">
              {stepLabel} · {t('admin.backups.parts', { done: running.partsDone, total: running.partsTotal })} · {formatBytes(running.bytesDone, locale)}
            </p>
          </div>
        )}
        {!running && last && (
          <Notice tone={last.ok ? 'success' : 'warning'}>
            <span data-testid="backup-last">
              {last.ok ? t('admin.backups.lastOk', { id: last.id ?? '', time: formatDateTime(last.at, locale) }) : t('admin.backups.lastFailed', { time: formatDateTime(last.at, locale), message: last.error?.message ?? '' })}
            </span>
          </Notice>
        )}
      </Card>

      <Card title={t('admin.backups.list')}>
        {backups.data && backups.data.items.length === 0 && <p className="muted">{t('admin.backups.none')}</p>}
        {backups.data && backups.data.items.length > 0 && (
          <div className="table-wrap">
            <table className="admin-table">
              <thead>
                <tr>
                  <th scope="col">{t('admin.backups.created')}</th>
                  <th scope="col">{t('admin.backups.contents')}</th>
                  <th scope="col">{t('admin.backups.size')}</th>
                  <th scope="col">{t('admin.backups.actions')}</th>
                </tr>
              </thead>
              <tbody>
                {backups.data.items.map((b) => {
                  const check = verified[b.id];
                  return (
                    <tr key={b.id} data-testid="backup-row" data-id={b.id}>
                      <td>
                        {b.readable ? formatDateTime(b.createdAt, locale) : b.id}{' '}
                        <Badge tone={b.trigger === 'manual' || b.trigger === 'upgrade' ? 'neutral' : b.trigger === 'scheduled' ? 'info' : 'warn'}>{t(TRIGGER_KEYS[b.trigger])}</Badge>
                      </td>
                      <td>{b.readable ? t('admin.backups.usersParts', { users: b.users.length, parts: b.parts }) : <Badge tone="bad">{t('admin.backups.unreadable')}</Badge>}</td>
                      <td>{formatBytes(b.bytes, locale)}</td>
                      <td>
                        <div className="actions">
                          <Button busy={check === 'running'} onClick={() => void verify(b.id)}>
                            {t('admin.backups.verify')}
                          </Button>
                          {b.readable && b.users.length > 0 && (
                            <span className="actions">
                              <select
                                aria-label={t('admin.backups.restoreWhich')}
                                data-testid="restore-user"
                                value={restoreChoice[b.id] ?? b.users[0]}
                                onChange={(e) => setRestoreChoice((c) => ({ ...c, [b.id]: e.target.value }))}
                              >
                                {b.users.map((u) => (
                                  <option key={u} value={u}>
                                    {u}
                                  </option>
                                ))}
                              </select>
                              <Button data-testid="restore-start" disabled={restoring} onClick={() => restoreWorkspace(b.id, b.createdAt, restoreChoice[b.id] ?? b.users[0] ?? '')}>
                                {t('admin.backups.restore')}
                              </Button>
                            </span>
                          )}
                          <Button
                            variant="danger"
                            onClick={() =>
                              confirm({
                                title: t('admin.backups.deleteTitle'),
                                body: t('admin.backups.deleteBody', { id: b.id }),
                                confirmLabel: t('admin.backups.delete'),
                                action: async () => {
                                  await api.delete(`/admin/backups/${encodeURIComponent(b.id)}`);
                                  await backups.reload();
                                },
                              })
                            }
                          >
                            {t('admin.backups.delete')}
                          </Button>
                        </div>
                        {check && check !== 'running' && (
                          <div className="small" data-testid="backup-verified">
                            {check.ok ? <Badge tone="ok">{t('admin.backups.verifiedOk', { parts: check.parts })}</Badge> : <ErrorNote error={check.error} />}
                          </div>
                        )}
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        )}
      </Card>

      <Card title={t('admin.backups.restores')}>
        <ErrorNote error={restoreError ?? restores.error} />
        {restores.data && restores.data.items.length === 0 && <p className="muted">{t('admin.backups.noRestores')}</p>}
        {restores.data && restores.data.items.length > 0 && (
          <ul className="plain-list" data-testid="restore-list">
            {restores.data.items.map((r) => (
              <li key={r.id} data-testid="restore-item" data-phase={r.phase}>
                <strong>{r.username}</strong> ← {r.backupId} · {formatDateTime(r.startedAt, locale)}{' '}
                <Badge tone={r.phase === 'done' ? 'ok' : r.phase === 'failed' ? 'bad' : 'info'}>{t(RESTORE_PHASE_KEYS[r.phase])}</Badge>
                {r.progress && <ProgressBar value={r.progress.bytesTotal > 0 ? r.progress.bytesDone / r.progress.bytesTotal : 0} label={t('admin.backups.restoreProgress', { username: r.username })} />}
                {r.error && <p className="small">{r.error}</p>}
              </li>
            ))}
          </ul>
        )}
      </Card>

      <Card title={t('admin.backups.schedule')}>
        <ErrorNote error={schedule.error} />
        {scheduleSaved && <Notice tone="success">{t('admin.backups.scheduleSaved')}</Notice>}
        {schedule.data && (
          <AsyncForm
            key={JSON.stringify(schedule.data)}
            submitLabel={t('common.save')}
            onSubmit={async (values) => {
              setScheduleSaved(false);
              // An unchecked box sends nothing.
              const enabled = values.enabled === 'on';
              const numbers = { hourUtc: Number(values.hourUtc), keepDaily: Number(values.keepDaily), keepWeekly: Number(values.keepWeekly) };
              await api.put<BackupSchedule>('/admin/backups/schedule', { enabled, ...numbers });
              await schedule.reload();
              setScheduleSaved(true);
            }}
          >
            <label className="checkbox">
              <input type="checkbox" name="enabled" defaultChecked={schedule.data.enabled} /> {t('admin.backups.scheduleEnabled')}
            </label>
            <div className="admin-form-grid">
              <Field label={t('admin.backups.hourUtc')} name="hourUtc" type="number" inputMode="numeric" min={0} max={23} step={1} defaultValue={schedule.data.hourUtc} required />
              <Field label={t('admin.backups.keepDaily')} name="keepDaily" type="number" inputMode="numeric" min={1} max={366} step={1} defaultValue={schedule.data.keepDaily} required />
              <Field label={t('admin.backups.keepWeekly')} name="keepWeekly" type="number" inputMode="numeric" min={0} max={520} step={1} defaultValue={schedule.data.keepWeekly} required />
            </div>
            <p className="muted small">{t('admin.backups.retentionNote')}</p>
          </AsyncForm>
        )}
      </Card>
    </div>
  );
}
