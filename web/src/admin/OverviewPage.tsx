import { api } from '../api/client';
import type { Page, User } from '../api/types';
import { Link } from '../app/router';
import { useI18n } from '../i18n/i18n';
import { formatBytes, formatNumber, formatUsd } from '../lib/format';
import { stateLabel } from '../pages/HomePage';
import { useResource } from '../ui/useResource';
import { Button, Card, EmptyState, ErrorNote, Notice } from '../ui/ui';
import type { RuntimeList, UsageReport } from './adminTypes';
import { Badge, usePolling } from './common';
import { failureReason, runtimeSummary, sumTotals, userPath } from './logic';

export function OverviewPage() {
  const { t, locale } = useI18n();
  const users = useResource((signal) => api.get<Page<User>>('/admin/users?limit=1', { signal }), 'overview-users');
  const runtimes = useResource((signal) => api.get<RuntimeList>('/admin/runtimes', { signal }), 'overview-runtimes');
  // No range: the server's default is this calendar month.
  const usage = useResource((signal) => api.get<UsageReport>('/admin/usage', { signal }), 'overview-usage');
  usePolling(() => void runtimes.reload(), 30_000);

  const summary = runtimes.data ? runtimeSummary(runtimes.data.items) : null;
  const spend = usage.data ? sumTotals(usage.data.perUser) : null;
  const loading = <p role="status">{t('common.loading')}</p>;

  return (
    <div className="stack">
      <h1>{t('admin.overview.title')}</h1>
      <div className="admin-stats">
        <Card title={t('admin.overview.users')}>
          <ErrorNote error={users.error} />
          {users.data ? <p className="big-number">{formatNumber(users.data.total, locale)}</p> : !users.error && loading}
          <Link to="/admin/users">{t('admin.overview.manageUsers')}</Link>
        </Card>
        <Card title={t('admin.overview.running')}>
          <ErrorNote error={runtimes.error} />
          {summary ? (
            <>
              <p className="big-number">{formatNumber(summary.running, locale)}</p>
              <p className="muted">{t('admin.overview.runningOf', { total: formatNumber(summary.total, locale) })}</p>
            </>
          ) : (
            !runtimes.error && loading
          )}
          <Link to="/admin/runtimes">{t('admin.overview.manageRuntimes')}</Link>
        </Card>
        <Card title={t('admin.overview.memory')}>
          {summary ? (
            <>
              <p className="big-number">{formatBytes(summary.memoryBytes, locale)}</p>
              <p className="muted">{t('admin.overview.memoryOf', { limit: formatBytes(summary.memoryLimitBytes, locale) })}</p>
            </>
          ) : (
            !runtimes.error && loading
          )}
        </Card>
        <Card title={t('admin.overview.spend')}>
          <ErrorNote error={usage.error} />
          {spend ? (
            <>
              <p className="big-number">{formatUsd(spend.costMicrodollars, locale)}</p>
              <p className="muted">
                {t('admin.overview.spendDetail', {
                  requests: formatNumber(spend.requests, locale),
                  tokens: formatNumber(spend.promptTokens + spend.completionTokens, locale),
                })}
              </p>
            </>
          ) : (
            !usage.error && loading
          )}
          <Link to="/admin/usage">{t('admin.overview.seeUsage')}</Link>
        </Card>
      </div>

      {summary && summary.stale.length > 0 && (
        <Notice tone="warning">
          {t('admin.overview.stale', { count: summary.stale.length })} <Link to="/admin/runtimes">{t('admin.overview.staleLink')}</Link>
        </Notice>
      )}

      <Card
        title={t('admin.overview.failing')}
        actions={
          <Button variant="ghost" onClick={() => void runtimes.reload()}>
            {t('admin.common.refresh')}
          </Button>
        }
      >
        {summary && summary.failing.length === 0 && <EmptyState title={t('admin.overview.noneFailing')}>{t('admin.overview.noneFailingBody')}</EmptyState>}
        {summary && summary.failing.length > 0 && (
          <ul className="plain-list admin-failing">
            {summary.failing.map((r) => (
              <li key={r.userId}>
                <Link to={userPath(r.userId)}>
                  <strong>{r.username}</strong>
                </Link>{' '}
                <Badge tone="bad">{stateLabel(t, r.state)}</Badge>
                <p className="muted">{failureReason(r) ?? t('admin.overview.noReason')}</p>
              </li>
            ))}
          </ul>
        )}
      </Card>
    </div>
  );
}
