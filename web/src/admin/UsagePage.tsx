import { useState, type FormEvent, type ReactNode } from 'react';
import { api, API, query } from '../api/client';
import type { UsageTotals } from '../api/types';
import { Link } from '../app/router';
import { useI18n } from '../i18n/i18n';
import { DailyChart } from '../ui/charts';
import { formatNumber, formatUsd } from '../lib/format';
import { useResource } from '../ui/useResource';
import { Button, Card, EmptyState, ErrorNote, Pagination } from '../ui/ui';
import type { UsageReport } from './adminTypes';
import { BarList, rangeProblemKey } from './common';
import { byCost, monthRange, rangeQuery, sumTotals, userPath, type DayRange } from './logic';

const CHART_ROWS = 15;
const TABLE_ROWS = 50;

/** Everyone's model usage over a range of days (this month unless chosen), per user and per model. */
export function AdminUsagePage() {
  const { t, locale } = useI18n();
  const [range, setRange] = useState<DayRange>(() => monthRange(Date.now()));
  const [draft, setDraft] = useState<DayRange>(range);
  const [problem, setProblem] = useState<string | null>(null);
  const checked = rangeQuery(range);
  const q = checked.ok ? query({ from: checked.from, to: checked.to }) : '';
  const report = useResource((signal) => api.get<UsageReport>(`/admin/usage${q}`, { signal }), q);
  const tokens = (n: number) => formatNumber(n, locale);
  const usd = (micro: number) => formatUsd(micro, locale);

  const apply = (event: FormEvent) => {
    event.preventDefault();
    const next = rangeQuery(draft);
    if (!next.ok) {
      setProblem(t(rangeProblemKey(next.problem)));
      return;
    }
    setProblem(null);
    setRange(draft);
  };

  const data = report.data;
  const total = data ? sumTotals(data.perUser) : null;
  const users = data ? byCost(data.perUser, (r) => r.username) : [];
  const models = data ? byCost(data.perModel, (r) => r.model) : [];
  // Bars by spend; with no prices set, spend is all zero and tokens tell more.
  const byMoney = users.some((r) => r.costMicrodollars > 0);
  const chartRows = users.slice(0, CHART_ROWS).map((r) => ({
    key: r.userId,
    label: r.username,
    value: byMoney ? r.costMicrodollars : r.promptTokens + r.completionTokens,
    text: byMoney ? usd(r.costMicrodollars) : tokens(r.promptTokens + r.completionTokens),
  }));
  const csv = checked.ok ? `${API}/admin/usage${query({ from: checked.from, to: checked.to, format: 'csv' })}` : null;

  return (
    <div className="stack">
      <h1>{t('admin.usage.title')}</h1>
      <Card>
        <form className="admin-filters" onSubmit={apply} aria-describedby="admin-usage-utc">
          <div className="field">
            <label htmlFor="admin-usage-from">{t('admin.range.from')}</label>
            <input id="admin-usage-from" type="date" required value={draft.from} onChange={(e) => setDraft({ ...draft, from: e.target.value })} />
          </div>
          <div className="field">
            <label htmlFor="admin-usage-to">{t('admin.range.to')}</label>
            <input id="admin-usage-to" type="date" required value={draft.to} onChange={(e) => setDraft({ ...draft, to: e.target.value })} />
          </div>
          <div className="admin-filter-buttons">
            <Button type="submit" variant="primary">
              {t('admin.range.apply')}
            </Button>
            <Button
              onClick={() => {
                const month = monthRange(Date.now());
                setDraft(month);
                setRange(month);
                setProblem(null);
              }}
            >
              {t('admin.range.thisMonth')}
            </Button>
            {csv && (
              <a className="button button-ghost" href={csv} download>
                {t('admin.usage.csv')}
              </a>
            )}
          </div>
        </form>
        <p id="admin-usage-utc" className="muted small">
          {t('admin.range.utc')}
        </p>
        {problem && (
          <p className="error-note" role="alert">
            {problem}
          </p>
        )}
      </Card>

      <ErrorNote error={report.error} />
      {!data && report.loading && <p role="status">{t('common.loading')}</p>}
      {data && total && (
        <>
          <div className="admin-stats">
            <Card title={t('usage.cost')}>
              <p className="big-number">{usd(total.costMicrodollars)}</p>
            </Card>
            <Card title={t('usage.tokens')}>
              <p className="big-number">{tokens(total.promptTokens + total.completionTokens)}</p>
            </Card>
            <Card title={t('usage.requestsColumn')}>
              <p className="big-number">{tokens(total.requests)}</p>
            </Card>
          </div>
          {users.length === 0 ? (
            <Card>
              <EmptyState title={t('admin.usage.empty')}>{t('admin.usage.emptyBody')}</EmptyState>
            </Card>
          ) : (
            <>
              <Card title={t(byMoney ? 'admin.usage.chartCost' : 'admin.usage.chartTokens')}>
                <BarList rows={chartRows} label={t(byMoney ? 'admin.usage.chartCost' : 'admin.usage.chartTokens')} />
                {users.length > CHART_ROWS && <p className="muted small">{t('admin.usage.chartTop', { count: CHART_ROWS })}</p>}
              </Card>
              <Card title={t('usage.perDay')}>
                <DailyChart
                  points={data.perDay.map((d) => ({ day: d.day, tokens: d.promptTokens + d.completionTokens, costMicrodollars: d.costMicrodollars }))}
                  formatCost={usd}
                  formatTokens={tokens}
                />
              </Card>
              <Card title={t('admin.usage.perUser')}>
                <TotalsTable
                  firstColumn={t('admin.runtimes.user')}
                  rows={users.map((r) => ({ key: r.userId, name: <Link to={userPath(r.userId)}>{r.username}</Link>, totals: r }))}
                />
              </Card>
              <Card title={t('usage.perModel')}>
                <TotalsTable firstColumn={t('usage.model')} rows={models.map((r) => ({ key: r.model, name: <code>{r.model}</code>, totals: r }))} />
              </Card>
            </>
          )}
        </>
      )}
    </div>
  );
}

function TotalsTable({ firstColumn, rows }: { firstColumn: string; rows: { key: string; name: ReactNode; totals: UsageTotals }[] }) {
  const { t, locale } = useI18n();
  const [offset, setOffset] = useState(0);
  const n = (value: number) => formatNumber(value, locale);
  const start = offset < rows.length ? offset : 0;
  return (
    <>
      <div className="table-wrap">
        <table className="admin-table">
          <thead>
            <tr>
              <th scope="col">{firstColumn}</th>
              <th scope="col" className="num">
                {t('usage.requestsColumn')}
              </th>
              <th scope="col" className="num hide-narrow">
                {t('usage.promptTokens')}
              </th>
              <th scope="col" className="num hide-narrow">
                {t('usage.completionTokens')}
              </th>
              <th scope="col" className="num">
                {t('usage.cost')}
              </th>
            </tr>
          </thead>
          <tbody>
            {rows.slice(start, start + TABLE_ROWS).map((row) => (
              <tr key={row.key}>
                <td>{row.name}</td>
                <td className="num">{n(row.totals.requests)}</td>
                <td className="num hide-narrow">{n(row.totals.promptTokens)}</td>
                <td className="num hide-narrow">{n(row.totals.completionTokens)}</td>
                <td className="num">{formatUsd(row.totals.costMicrodollars, locale)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <Pagination total={rows.length} limit={TABLE_ROWS} offset={start} onChange={setOffset} />
    </>
  );
}
