import { useState } from 'react';
import { api } from '../api/client';
import { Link } from '../app/router';
import { useI18n } from '../i18n/i18n';
import { entriesOf, entriesText } from '../lib/egress';
import { formatBytes, formatDateTime, formatNumber } from '../lib/format';
import { profileText } from '../pages/EgressActivity';
import { useResource } from '../ui/useResource';
import { AsyncForm, Button, Card, EmptyState, ErrorNote, Notice, Pagination } from '../ui/ui';
import type { AdminEgressView, EgressProfileName, EgressRulesBody } from './adminTypes';
import { SelectField, TextAreaField } from './common';
import { userPath } from './logic';

const TABLE_ROWS = 50;

/**
 * Internet access: the installation's egress rules (profile, allow, deny), saved with PUT
 * /admin/egress; each user's outside connections of the last 7 days; the hosts most reached.
 */
export function EgressPage() {
  const { t, locale } = useI18n();
  const egress = useResource((signal) => api.get<AdminEgressView>('/admin/egress', { signal }), 'admin-egress');
  const [saved, setSaved] = useState(false);
  const [offset, setOffset] = useState(0);
  const data = egress.data;
  const n = (value: number) => formatNumber(value, locale);
  const bytes = (value: number) => formatBytes(value, locale);
  const users = data?.users ?? [];
  const start = offset < users.length ? offset : 0;

  return (
    <div className="stack">
      <h1>{t('admin.egress.title')}</h1>
      <Notice>{t('admin.egress.intro')}</Notice>
      <ErrorNote error={egress.error} />
      {!data && egress.loading && <p role="status">{t('common.loading')}</p>}
      {data && (
        <>
          <Card title={t('admin.egress.rules')}>
            {saved && <Notice tone="success">{t('admin.egress.saved')}</Notice>}
            <AsyncForm
              key={JSON.stringify(data.installation)}
              submitLabel={t('common.save')}
              onSubmit={async (values) => {
                setSaved(false);
                const body: EgressRulesBody = {
                  profile: values.profile === 'none' ? 'none' : 'public',
                  allow: entriesOf(values.allow),
                  deny: entriesOf(values.deny),
                };
                // A refused entry comes back as the server's sentence naming it, shown under the form.
                await api.put<AdminEgressView>('/admin/egress', body);
                await egress.reload();
                setSaved(true);
              }}
            >
              <SelectField
                label={t('admin.egress.profile')}
                name="profile"
                defaultValue={data.installation.profile}
                options={(['public', 'none'] as EgressProfileName[]).map((profile) => ({ value: profile, label: profileText(t, profile) }))}
              />
              <div className="admin-form-grid">
                <TextAreaField label={t('admin.egress.allow')} name="allow" defaultValue={entriesText(data.installation.allow)} hint={t('admin.egress.allowHint')} />
                <TextAreaField label={t('admin.egress.deny')} name="deny" defaultValue={entriesText(data.installation.deny)} hint={t('admin.egress.denyHint')} />
              </div>
              <p className="muted small">{t('admin.egress.entriesHint')}</p>
            </AsyncForm>
          </Card>

          <Card
            title={t('admin.egress.perUser')}
            actions={
              <Button variant="ghost" onClick={() => void egress.reload()}>
                {t('admin.common.refresh')}
              </Button>
            }
          >
            {users.length === 0 ? (
              <EmptyState title={t('admin.egress.noConnections')} />
            ) : (
              <>
                <div className="table-wrap">
                  <table className="admin-table">
                    <thead>
                      <tr>
                        <th scope="col">{t('admin.runtimes.user')}</th>
                        <th scope="col" className="num">
                          {t('egress.connections')}
                        </th>
                        <th scope="col" className="num">
                          {t('egress.denied')}
                        </th>
                        <th scope="col" className="num hide-narrow">
                          {t('egress.failed')}
                        </th>
                        <th scope="col" className="num hide-narrow">
                          {t('egress.bytesIn')}
                        </th>
                        <th scope="col" className="num hide-narrow">
                          {t('egress.bytesOut')}
                        </th>
                        <th scope="col" className="hide-narrow">
                          {t('egress.lastAt')}
                        </th>
                      </tr>
                    </thead>
                    <tbody>
                      {users.slice(start, start + TABLE_ROWS).map((u) => (
                        <tr key={u.userId} data-testid="egress-user-row" data-username={u.username}>
                          <td>
                            <Link to={userPath(u.userId)}>{u.username}</Link>
                          </td>
                          <td className="num">{n(u.connections)}</td>
                          <td className="num">{n(u.denied)}</td>
                          <td className="num hide-narrow">{n(u.failed)}</td>
                          <td className="num hide-narrow">{bytes(u.bytesIn)}</td>
                          <td className="num hide-narrow">{bytes(u.bytesOut)}</td>
                          <td className="hide-narrow nowrap">{formatDateTime(u.lastAt, locale)}</td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                </div>
                <Pagination total={users.length} limit={TABLE_ROWS} offset={start} onChange={setOffset} />
              </>
            )}
          </Card>

          <Card title={t('admin.egress.topHosts')}>
            {data.topHosts.length === 0 ? (
              <EmptyState title={t('admin.egress.noConnections')} />
            ) : (
              <div className="table-wrap">
                <table className="admin-table">
                  <thead>
                    <tr>
                      <th scope="col">{t('egress.host')}</th>
                      <th scope="col" className="num">
                        {t('egress.connections')}
                      </th>
                      <th scope="col" className="num">
                        {t('egress.denied')}
                      </th>
                      <th scope="col" className="num">
                        {t('admin.egress.bytes')}
                      </th>
                    </tr>
                  </thead>
                  <tbody>
                    {data.topHosts.map((h) => (
                      <tr key={h.host} data-testid="egress-host-row" data-host={h.host}>
                        <td className="egress-host">
                          <code>{h.host}</code>
                        </td>
                        <td className="num">{n(h.connections)}</td>
                        <td className="num">{n(h.denied)}</td>
                        <td className="num">{bytes(h.bytes)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
          </Card>
          <p className="muted small">{t('admin.egress.retention', { count: n(data.retentionDays) })}</p>
        </>
      )}
    </div>
  );
}
