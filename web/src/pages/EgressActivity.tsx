import { api } from '../api/client';
import type { EgressActivityView, EgressConnectionView, EgressProfileName, EgressRulesView, EgressTotalsView } from '../api/types';
import { useI18n, type Translate } from '../i18n/i18n';
import type { MessageKey } from '../i18n/en';
import { formatBytes, formatDateTime, formatNumber } from '../lib/format';
import { useResource } from '../ui/useResource';
import { Card, EmptyState, ErrorNote } from '../ui/ui';

/**
 * What a runtime may reach through the egress proxy, and the connections it made: the member's
 * own card (GET /egress) and the pieces the admin's user page shows the same way.
 */

const PROFILE_KEYS: Record<EgressProfileName, MessageKey> = {
  public: 'egress.profile.public',
  none: 'egress.profile.none',
};
const VERDICT_KEYS: Record<EgressConnectionView['verdict'], MessageKey> = {
  allowed: 'egress.verdict.allowed',
  denied: 'egress.verdict.denied',
  failed: 'egress.verdict.failed',
};

/** A profile in words: "The internet, except private networks", "No internet: models only". */
export function profileText(t: Translate, profile: EgressProfileName): string {
  return t(PROFILE_KEYS[profile]);
}

function EntryList({ entries }: { entries: readonly string[] }) {
  const { t } = useI18n();
  if (entries.length === 0) return <span className="muted">{t('egress.emptyList')}</span>;
  return (
    <ul className="egress-entries">
      {entries.map((entry) => (
        <li key={entry}>
          <code>{entry}</code>
        </li>
      ))}
    </ul>
  );
}

/** Rules in words: the profile, and (when the internet is on at all) what is reachable besides and never. */
export function EgressRulesSummary({ rules }: { rules: EgressRulesView }) {
  const { t } = useI18n();
  return (
    <div className="egress-rules" data-testid="egress-rules" data-profile={rules.profile}>
      <p className="egress-profile">{profileText(t, rules.profile)}</p>
      {rules.profile === 'none' ? (
        <p className="muted">{t('egress.noneHelp')}</p>
      ) : (
        <dl className="facts">
          <dt>{t('egress.allowList')}</dt>
          <dd>
            <EntryList entries={rules.allow} />
          </dd>
          <dt>{t('egress.denyList')}</dt>
          <dd>
            <EntryList entries={rules.deny} />
          </dd>
        </dl>
      )}
    </div>
  );
}

/** The totals of the last 7 days. */
export function EgressTotalsFacts({ totals }: { totals: EgressTotalsView }) {
  const { t, locale } = useI18n();
  const n = (value: number) => formatNumber(value, locale);
  return (
    <dl className="facts" data-testid="egress-totals">
      <dt>{t('egress.connections')}</dt>
      <dd>{n(totals.connections)}</dd>
      <dt>{t('egress.denied')}</dt>
      <dd>{n(totals.denied)}</dd>
      <dt>{t('egress.failed')}</dt>
      <dd>{n(totals.failed)}</dd>
      <dt>{t('egress.bytesIn')}</dt>
      <dd>{formatBytes(totals.bytesIn, locale)}</dd>
      <dt>{t('egress.bytesOut')}</dt>
      <dd>{formatBytes(totals.bytesOut, locale)}</dd>
      <dt>{t('egress.lastAt')}</dt>
      <dd>{totals.lastAt ? formatDateTime(totals.lastAt, locale) : t('egress.never')}</dd>
    </dl>
  );
}

/** The recent connections, newest first: time, host:port, the verdict (with its reason when refused or failed), bytes. */
export function ConnectionsTable({ connections }: { connections: readonly EgressConnectionView[] }) {
  const { t, locale } = useI18n();
  if (connections.length === 0) return <EmptyState title={t('egress.empty')}>{t('egress.emptyBody')}</EmptyState>;
  return (
    <div className="table-wrap">
      <table className="egress-table">
        <thead>
          <tr>
            <th scope="col">{t('egress.time')}</th>
            <th scope="col">{t('egress.host')}</th>
            <th scope="col">{t('egress.verdict')}</th>
            <th scope="col" className="num hide-narrow">
              {t('egress.bytesIn')}
            </th>
            <th scope="col" className="num hide-narrow">
              {t('egress.bytesOut')}
            </th>
          </tr>
        </thead>
        <tbody>
          {connections.map((c, index) => (
            <tr key={`${c.at}-${index}`} data-testid="egress-row" data-host={c.host} data-verdict={c.verdict}>
              <td className="egress-time">{formatDateTime(c.at, locale)}</td>
              <td className="egress-host">
                <code>
                  {c.host}:{c.port}
                </code>
              </td>
              <td>
                <span className={`badge egress-${c.verdict}`}>{t(VERDICT_KEYS[c.verdict])}</span>
                {c.verdict !== 'allowed' && c.reason && <div className="egress-reason">{c.reason}</div>}
              </td>
              <td className="num hide-narrow">{formatBytes(c.bytesIn, locale)}</td>
              <td className="num hide-narrow">{formatBytes(c.bytesOut, locale)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** "Connections are kept for 30 days; the latest 100 are listed." */
export function RetentionNote({ days }: { days: number }) {
  const { t, locale } = useI18n();
  return (
    <p className="muted egress-retention" data-testid="egress-retention">
      {t('egress.retention', { count: formatNumber(days, locale) })}
    </p>
  );
}

/** The member's own card: their rules in words, the last 7 days, their recent connections. Nobody else's. */
export function OwnEgressCard() {
  const { t } = useI18n();
  const egress = useResource((signal) => api.get<EgressActivityView>('/egress', { signal }), 'egress');
  const data = egress.data;
  return (
    <Card title={t('egress.title')} className="egress-card">
      <p className="muted">{t('egress.intro')}</p>
      <ErrorNote error={egress.error} />
      {!data && egress.loading && <p role="status">{t('common.loading')}</p>}
      {data && (
        <>
          <EgressRulesSummary rules={data.rules} />
          <h3 className="card-subtitle">{t('egress.last7Days')}</h3>
          <EgressTotalsFacts totals={data.totals} />
          <h3 className="card-subtitle">{t('egress.recent')}</h3>
          <ConnectionsTable connections={data.recent} />
          <RetentionNote days={data.retentionDays} />
        </>
      )}
    </Card>
  );
}
