import { useState } from 'react';
import { api } from '../api/client';
import type { RuntimeListItem } from '../api/types';
import { Link } from '../app/router';
import { useI18n } from '../i18n/i18n';
import { formatBytes, formatSeconds } from '../lib/format';
import { stopReasonText } from '../lib/stopReason';
import { stateLabel } from '../pages/HomePage';
import { useResource } from '../ui/useResource';
import { Button, Card, EmptyState, ErrorNote, Pagination } from '../ui/ui';
import type { BulkAnswer, RuntimeList } from './adminTypes';
import { Badge, BulkOutcomeView, useConfirm, usePolling } from './common';
import { RolloutCard } from './RolloutCard';
import { bulkOutcome, failureReason, figuresFreshness, runtimeSummary, userPath, type BulkOutcome } from './logic';

const PAGE = 50;

const TONE: Record<RuntimeListItem['state'], 'ok' | 'warn' | 'bad' | 'neutral'> = {
  absent: 'neutral',
  creating: 'warn',
  starting: 'warn',
  running: 'ok',
  unhealthy: 'bad',
  stopping: 'warn',
  stopped: 'neutral',
  failed: 'bad',
};

/**
 * Every runtime with the CPU and memory figures the server keeps (and how old they are when they
 * lag or the engine does not answer), refreshed every 10 s; rows are picked with checkboxes for a
 * bulk stop or restart, and each user's outcome of those is shown on its own.
 */
export function RuntimesPage() {
  const { t, locale } = useI18n();
  const confirm = useConfirm();
  const runtimes = useResource((signal) => api.get<RuntimeList>('/admin/runtimes', { signal }), 'runtimes');
  usePolling(() => void runtimes.reload(), 10_000);
  const [selected, setSelected] = useState<ReadonlySet<string>>(new Set());
  const [outcome, setOutcome] = useState<{ action: 'stop' | 'restart'; result: BulkOutcome } | null>(null);

  const items = runtimes.data?.items ?? [];
  const summary = runtimeSummary(items);
  // Rows that went away (a deleted user) drop out of the selection.
  const picked = items.filter((r) => selected.has(r.userId));
  const names = new Map(items.map((r) => [r.userId, r.username]));
  // A long list is shown a page at a time; the selection may span pages.
  const [offset, setOffset] = useState(0);
  const start = offset < items.length ? offset : Math.max(0, Math.floor((items.length - 1) / PAGE) * PAGE);
  const shown = items.slice(start, start + PAGE);
  const shownPicked = shown.filter((r) => selected.has(r.userId)).length;
  const allPicked = shown.length > 0 && shownPicked === shown.length;

  const toggle = (userId: string, on: boolean) => {
    const next = new Set(selected);
    if (on) next.add(userId);
    else next.delete(userId);
    setSelected(next);
  };

  const run = async (action: 'stop' | 'restart', body: { userIds: string[] } | { stale: true }) => {
    const answer = await api.post<BulkAnswer>(`/admin/runtimes/${action}`, body);
    setOutcome({ action, result: bulkOutcome(answer.results, names) });
    setSelected(new Set());
    await runtimes.reload();
  };

  const bulk = (action: 'stop' | 'restart') => {
    const userIds = picked.map((r) => r.userId);
    const list = picked.map((r) => r.username).join(', ');
    confirm({
      title: t(action === 'stop' ? 'admin.runtimes.stopTitle' : 'admin.runtimes.restartTitle', { count: userIds.length }),
      body: (
        <>
          <p>{t(action === 'stop' ? 'admin.runtimes.stopBody' : 'admin.runtimes.restartBody')}</p>
          <p className="muted">{list}</p>
        </>
      ),
      confirmLabel: t(action === 'stop' ? 'admin.runtimes.stopSelected' : 'admin.runtimes.restartSelected', { count: userIds.length }),
      action: () => run(action, { userIds }),
    });
  };

  const restartStale = () =>
    confirm({
      title: t('admin.runtimes.restartStaleTitle', { count: summary.stale.length }),
      body: (
        <>
          <p>{t('admin.runtimes.restartBody')}</p>
          <p className="muted">{summary.stale.map((r) => r.username).join(', ')}</p>
        </>
      ),
      confirmLabel: t('admin.runtimes.restartStale'),
      action: () => run('restart', { stale: true }),
    });

  return (
    <div className="stack">
      <div className="admin-title">
        <h1>{t('admin.runtimes.title')}</h1>
        <Button variant="ghost" onClick={() => void runtimes.reload()}>
          {t('admin.common.refresh')}
        </Button>
      </div>
      <p className="muted">{t('admin.runtimes.intro')}</p>
      {outcome && <BulkOutcomeView outcome={outcome.result} action={outcome.action} onDismiss={() => setOutcome(null)} />}
      <Card>
        <div className="admin-toolbar" role="toolbar" aria-label={t('admin.runtimes.bulk')}>
          <span className="muted" aria-live="polite">
            {t('admin.runtimes.selected', { count: picked.length })}
          </span>
          <Button disabled={picked.length === 0} onClick={() => bulk('stop')}>
            {t('admin.runtimes.stopSelected', { count: picked.length })}
          </Button>
          <Button disabled={picked.length === 0} onClick={() => bulk('restart')}>
            {t('admin.runtimes.restartSelected', { count: picked.length })}
          </Button>
          <Button variant="primary" disabled={summary.stale.length === 0} onClick={restartStale}>
            {t('admin.runtimes.restartStaleCount', { count: summary.stale.length })}
          </Button>
        </div>
        <ErrorNote error={runtimes.error} />
        {!runtimes.data && runtimes.loading && <p role="status">{t('common.loading')}</p>}
        {runtimes.data && items.length === 0 && <EmptyState title={t('admin.runtimes.empty')}>{t('admin.runtimes.emptyBody')}</EmptyState>}
        {items.length > 0 && (
          <div className="table-wrap">
            <table className="admin-table">
              <thead>
                <tr>
                  <th scope="col" className="admin-check">
                    <input
                      type="checkbox"
                      checked={allPicked}
                      ref={(el) => {
                        if (el) el.indeterminate = shownPicked > 0 && !allPicked;
                      }}
                      onChange={(e) => {
                        const next = new Set(selected);
                        for (const r of shown) {
                          if (e.target.checked) next.add(r.userId);
                          else next.delete(r.userId);
                        }
                        setSelected(next);
                      }}
                      aria-label={t('admin.runtimes.selectAll')}
                    />
                  </th>
                  <th scope="col">{t('admin.runtimes.user')}</th>
                  <th scope="col">{t('admin.runtimes.state')}</th>
                  <th scope="col" className="hide-narrow">
                    {t('runtime.image')}
                  </th>
                  <th scope="col" className="num">
                    {t('admin.runtimes.uptime')}
                  </th>
                  <th scope="col" className="num">
                    {t('admin.runtimes.memory')}
                  </th>
                  <th scope="col" className="num">
                    {t('admin.runtimes.cpu')}
                  </th>
                </tr>
              </thead>
              <tbody>
                {shown.map((r) => {
                  const reason = r.state === 'failed' || r.state === 'unhealthy' ? failureReason(r) : null;
                  const freshness = figuresFreshness(r);
                  const measured = r.stats && r.statsAgeSeconds !== null ? t('admin.runtimes.figuresAge', { age: formatSeconds(r.statsAgeSeconds) }) : undefined;
                  const busy = r.operation && (r.operation.status === 'queued' || r.operation.status === 'running') ? r.operation : null;
                  return (
                    <tr key={r.userId} className={selected.has(r.userId) ? 'is-selected' : undefined}>
                      <td className="admin-check">
                        <input type="checkbox" checked={selected.has(r.userId)} onChange={(e) => toggle(r.userId, e.target.checked)} aria-label={t('admin.runtimes.select', { name: r.username })} />
                      </td>
                      <td>
                        <Link to={userPath(r.userId)}>
                          <strong>{r.username}</strong>
                        </Link>
                      </td>
                      <td>
                        <Badge tone={TONE[r.state]}>{stateLabel(t, r.state)}</Badge>
                        {busy && <div className="muted small">{t('admin.runtimes.operation', { step: busy.message || busy.kind, percent: Math.round(busy.percent) })}</div>}
                        {reason && <div className="admin-reason small">{reason}</div>}
                        {r.stoppedBy && r.state === 'stopped' && <div className="muted small">{stopReasonText(t, r.stoppedBy, locale, false, r.stoppedByAdmin)}</div>}
                        {(r.outdatedImage || r.configStale || r.pinnedImage) && (
                          <div className="admin-markers">
                            {r.pinnedImage && <Badge tone="warn">{t('admin.runtimes.pinnedImage')}</Badge>}
                            {r.outdatedImage && <Badge tone="warn">{t('admin.runtimes.outdatedImage')}</Badge>}
                            {r.configStale && <Badge tone="warn">{t('admin.runtimes.configStale')}</Badge>}
                          </div>
                        )}
                      </td>
                      <td className="hide-narrow">
                        <code className="admin-image">{r.image ?? r.configuredImage}</code>
                      </td>
                      <td className="num">{r.uptimeSeconds === null ? '—' : formatSeconds(r.uptimeSeconds)}</td>
                      <td className="num" title={measured}>
                        {r.stats ? `${formatBytes(r.stats.memoryBytes, locale)} / ${formatBytes(r.stats.memoryLimitBytes, locale)}` : '—'}
                        {freshness && (
                          <div className="muted small">
                            {t(freshness.kind === 'stale' ? 'admin.runtimes.figuresStale' : 'admin.runtimes.figuresOld', { age: formatSeconds(freshness.ageSeconds) })}
                          </div>
                        )}
                      </td>
                      <td className="num" title={measured}>
                        {r.stats ? `${r.stats.cpuPercent.toFixed(1)}%` : '—'}
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        )}
        <Pagination total={items.length} limit={PAGE} offset={start} onChange={setOffset} />
      </Card>
      <RolloutCard runtimes={items} configuredImage={items[0]?.configuredImage ?? ''} onChange={() => void runtimes.reload()} />
    </div>
  );
}
