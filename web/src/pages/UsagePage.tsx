import { api } from '../api/client';
import type { AvailableModels, OwnUsage } from '../api/types';
import { useI18n } from '../i18n/i18n';
import { formatNumber, formatUsd, share } from '../lib/format';
import { DailyChart } from '../ui/charts';
import { OwnEgressCard } from './EgressActivity';
import { useResource } from '../ui/useResource';
import { Card, EmptyState, ErrorNote, ProgressBar } from '../ui/ui';

export function UsagePage() {
  const { t, locale } = useI18n();
  const usage = useResource((signal) => api.get<OwnUsage>('/usage', { signal }), 'usage');
  const models = useResource((signal) => api.get<AvailableModels>('/models', { signal }), 'models');
  const tokens = (n: number) => formatNumber(n, locale);
  const usd = (micro: number) => formatUsd(micro, locale);
  const u = usage.data;
  return (
    <div className="stack">
      <h1>{t('usage.title')}</h1>
      <ErrorNote error={usage.error} />
      {!u && usage.loading && <p role="status">{t('common.loading')}</p>}
      {u && (
        <>
          <div className="grid-2">
            <Card title={t('usage.spend')}>
              <p className="big-number">{usd(u.spentMicrodollars)}</p>
              {u.limits.monthlyCostMicrodollars > 0 ? (
                <>
                  <ProgressBar value={share(u.spentMicrodollars, u.limits.monthlyCostMicrodollars)} label={t('usage.budgetUsed')} />
                  <p className="muted">{t('usage.budgetLeft', { left: usd(u.budgetRemainingMicrodollars ?? 0), budget: usd(u.limits.monthlyCostMicrodollars) })}</p>
                </>
              ) : (
                <p className="muted">{t('usage.noBudget')}</p>
              )}
            </Card>
            <Card title={t('usage.tokensThisMonth')}>
              <p className="big-number">{tokens(u.month.promptTokens + u.month.completionTokens)}</p>
              {u.limits.monthlyTokens > 0 ? (
                <>
                  <ProgressBar value={share(u.month.promptTokens + u.month.completionTokens, u.limits.monthlyTokens)} label={t('usage.tokensUsed')} />
                  <p className="muted">{t('usage.tokensLeft', { left: tokens(u.tokensRemaining ?? 0), budget: tokens(u.limits.monthlyTokens) })}</p>
                </>
              ) : (
                <p className="muted">{t('usage.noTokenBudget')}</p>
              )}
              <p className="muted">{t('usage.requests', { count: tokens(u.month.requests) })}</p>
            </Card>
          </div>
          <Card title={t('usage.perDay')}>
            {u.perDay.length === 0 ? (
              <EmptyState title={t('usage.emptyTitle')}>{t('usage.emptyBody')}</EmptyState>
            ) : (
              <DailyChart points={u.perDay.map((d) => ({ day: d.day, tokens: d.promptTokens + d.completionTokens, costMicrodollars: d.costMicrodollars }))} formatCost={usd} formatTokens={tokens} />
            )}
          </Card>
          <Card title={t('usage.perModel')}>
            {u.perModel.length === 0 ? (
              <EmptyState title={t('usage.emptyTitle')} />
            ) : (
              <div className="table-wrap">
                <table>
                  <thead>
                    <tr>
                      <th scope="col">{t('usage.model')}</th>
                      <th scope="col" className="num">{t('usage.requestsColumn')}</th>
                      <th scope="col" className="num">{t('usage.promptTokens')}</th>
                      <th scope="col" className="num">{t('usage.completionTokens')}</th>
                      <th scope="col" className="num">{t('usage.cost')}</th>
                    </tr>
                  </thead>
                  <tbody>
                    {u.perModel.map((m) => (
                      <tr key={m.model}>
                        <td>{m.model}</td>
                        <td className="num">{tokens(m.requests)}</td>
                        <td className="num">{tokens(m.promptTokens)}</td>
                        <td className="num">{tokens(m.completionTokens)}</td>
                        <td className="num">{usd(m.costMicrodollars)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
          </Card>
        </>
      )}
      <Card title={t('usage.models')}>
        <ErrorNote error={models.error} />
        {models.data && models.data.models.length === 0 && <EmptyState title={t('usage.noModels')} />}
        {models.data && models.data.models.length > 0 && (
          <ul className="plain-list">
            {models.data.models.map((m) => (
              <li key={m.id}>
                <strong>{m.name}</strong> <code>{m.id}</code> {m.default && <span className="badge">{t('usage.default')}</span>}
              </li>
            ))}
          </ul>
        )}
      </Card>
      <OwnEgressCard />
    </div>
  );
}
