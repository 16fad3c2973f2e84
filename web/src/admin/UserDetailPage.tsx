import { useCallback, useState } from 'react';
import { api } from '../api/client';
import type { UserAnswer } from '../api/types';
import { Link, navigate } from '../app/router';
import { useI18n } from '../i18n/i18n';
import { entriesOf, entriesText } from '../lib/egress';
import { formatDateTime, formatNumber, formatUsd, share } from '../lib/format';
import { ConnectionsTable, EgressRulesSummary, EgressTotalsFacts, profileText, RetentionNote } from '../pages/EgressActivity';
import { RuntimeWithLog, type RuntimeCardContext } from '../pages/HomePage';
import { useResource } from '../ui/useResource';
import { AsyncForm, Card, ErrorNote, Field, Notice, ProgressBar } from '../ui/ui';
import type { AdminUserEgressView, LimitsView, UsageReport, UserEgressBody } from './adminTypes';
import { LIMIT_LABELS, SelectField, TextAreaField, useLimitText } from './common';
import { OneTimeSecret } from '../ui/OneTimeSecret';
import { LIMIT_FIELDS, limitsBody, limitsFormValues } from './logic';
import { RuntimeNode } from './MoveRuntime';
import { UserActions } from './UserActions';
import { UserBadges } from './UsersPage';

export function UserDetailPage({ id }: { id: string }) {
  const { t, locale } = useI18n();
  const path = `/admin/users/${encodeURIComponent(id)}`;
  const user = useResource((signal) => api.get<UserAnswer>(path, { signal }), path);
  const [password, setPassword] = useState<string | null>(null);
  const [profileSaved, setProfileSaved] = useState(false);
  const u = user.data?.user;

  return (
    <div className="stack">
      <p>
        <Link to="/admin/users">← {t('admin.user.back')}</Link>
      </p>
      <ErrorNote error={user.error} />
      {!u && user.loading && <p role="status">{t('common.loading')}</p>}
      {u && (
        <>
          <div className="admin-title">
            <h1>{u.displayName || u.username}</h1>
            <div>
              <UserBadges user={u} />
            </div>
          </div>
          <div className="grid-2">
            <Card title={t('admin.user.profile')}>
              <dl className="facts">
                <dt>{t('field.username')}</dt>
                <dd>{u.username}</dd>
                <dt>{t('admin.field.email')}</dt>
                <dd>{u.email ?? '—'}</dd>
                <dt>{t('admin.user.created')}</dt>
                <dd>{formatDateTime(u.createdAt, locale)}</dd>
                <dt>{t('admin.users.lastLogin')}</dt>
                <dd>{u.lastLoginAt ? formatDateTime(u.lastLoginAt, locale) : t('admin.users.never')}</dd>
              </dl>
              <h3 className="admin-subtitle">{t('admin.user.editProfile')}</h3>
              {profileSaved && <Notice tone="success">{t('admin.common.saved')}</Notice>}
              <AsyncForm
                key={u.updatedAt}
                submitLabel={t('common.save')}
                onSubmit={async (values) => {
                  setProfileSaved(false);
                  const email = (values.email ?? '').trim();
                  await api.patch<UserAnswer>(path, { displayName: (values.displayName ?? '').trim(), email: email === '' ? null : email });
                  await user.reload();
                  setProfileSaved(true);
                }}
              >
                <Field label={t('field.displayName')} name="displayName" defaultValue={u.displayName} maxLength={200} autoComplete="off" />
                <Field label={t('admin.field.emailOptional')} name="email" type="email" defaultValue={u.email ?? ''} maxLength={254} autoComplete="off" />
              </AsyncForm>
            </Card>
            <Card title={t('admin.user.account')}>
              <UserActions
                user={u}
                onChanged={() => user.reload()}
                onPassword={(_u, value) => setPassword(value)}
                onDeleted={() => navigate('/admin/users', { replace: true })}
              />
              {password && (
                <OneTimeSecret
                  label={t('admin.users.temporaryPasswordFor', { name: u.username })}
                  value={password}
                  note={t('admin.users.temporaryPasswordOnce')}
                  onDone={() => setPassword(null)}
                />
              )}
            </Card>
          </div>
          <UserRuntime base={`/api/v1${path}/runtime`} userId={u.id} username={u.username} />
          <UserModels userId={u.id} />
          <UserEgress userId={u.id} />
        </>
      )}
    </div>
  );
}

/** This month's model usage of one user against their limits, and the editor of those limits. */
function UserModels({ userId }: { userId: string }) {
  const { t, locale } = useI18n();
  const limitsPath = `/admin/users/${encodeURIComponent(userId)}/model-limits`;
  const limits = useResource((signal) => api.get<LimitsView>(limitsPath, { signal }), limitsPath);
  // No range: the server's default is this calendar month. The report has everyone; this page shows one.
  const usage = useResource((signal) => api.get<UsageReport>('/admin/usage', { signal }), `user-usage:${userId}`);
  const limitText = useLimitText();
  const [saved, setSaved] = useState(false);

  const mine = usage.data?.perUser.find((row) => row.userId === userId);
  const totals = mine ?? { requests: 0, promptTokens: 0, completionTokens: 0, costMicrodollars: 0, estimatedRequests: 0 };
  const tokens = totals.promptTokens + totals.completionTokens;
  const effective = limits.data?.effective;
  const view = limits.data;
  const form = view ? limitsFormValues(view.overrides) : null;

  return (
    <div className="grid-2">
      <Card title={t('admin.user.usage')}>
        <ErrorNote error={usage.error} />
        {!usage.data && usage.loading && <p role="status">{t('common.loading')}</p>}
        {usage.data && (
          <>
            <p className="big-number">{formatUsd(totals.costMicrodollars, locale)}</p>
            {effective && effective.monthlyCostMicrodollars > 0 && (
              <>
                <ProgressBar value={share(totals.costMicrodollars, effective.monthlyCostMicrodollars)} label={t('usage.budgetUsed')} />
                <p className="muted">{t('admin.user.ofBudget', { budget: formatUsd(effective.monthlyCostMicrodollars, locale) })}</p>
              </>
            )}
            <dl className="facts">
              <dt>{t('usage.tokens')}</dt>
              <dd>
                {formatNumber(tokens, locale)}
                {effective && effective.monthlyTokens > 0 && ` / ${formatNumber(effective.monthlyTokens, locale)}`}
              </dd>
              <dt>{t('usage.requestsColumn')}</dt>
              <dd>{formatNumber(totals.requests, locale)}</dd>
            </dl>
            {effective && effective.monthlyTokens > 0 && <ProgressBar value={share(tokens, effective.monthlyTokens)} label={t('usage.tokensUsed')} />}
            {!mine && <p className="muted">{t('admin.user.noUsage')}</p>}
          </>
        )}
      </Card>
      <Card title={t('admin.limits.title')}>
        <p className="muted">{t('admin.limits.intro')}</p>
        <ErrorNote error={limits.error} />
        {!limits.data && limits.loading && <p role="status">{t('common.loading')}</p>}
        {view && form && (
          <>
            {saved && <Notice tone="success">{t('admin.common.saved')}</Notice>}
            <AsyncForm
              key={JSON.stringify(view.overrides)}
              submitLabel={t('common.save')}
              onSubmit={async (values) => {
                setSaved(false);
                const parsed = limitsBody(values);
                // A wrong value is named under the form, like the server's refusals.
                if (!parsed.ok) throw new Error(t('admin.limits.invalid', { field: t(LIMIT_LABELS[parsed.field]) }));
                await api.put<LimitsView>(limitsPath, parsed.body);
                await limits.reload();
                setSaved(true);
              }}
            >
              {LIMIT_FIELDS.map((field) => (
                <Field
                  key={field}
                  label={t(LIMIT_LABELS[field])}
                  name={field}
                  type="number"
                  inputMode={field === 'monthlyBudgetUsd' ? 'decimal' : 'numeric'}
                  min={0}
                  step={field === 'monthlyBudgetUsd' ? 0.01 : 1}
                  defaultValue={form[field]}
                  placeholder={t('admin.limits.placeholder', { value: limitText(field, view.defaults) })}
                  hint={t('admin.limits.hint', { default: limitText(field, view.defaults), effective: limitText(field, view.effective) })}
                />
              ))}
            </AsyncForm>
          </>
        )}
      </Card>
    </div>
  );
}

/**
 * The user's internet access: their own profile (or the installation's) and lists, which add to
 * the installation's; what applies now in words; the last 7 days and their recent connections.
 */
function UserEgress({ userId }: { userId: string }) {
  const { t } = useI18n();
  const path = `/admin/users/${encodeURIComponent(userId)}/egress`;
  const egress = useResource((signal) => api.get<AdminUserEgressView>(path, { signal }), path);
  const [saved, setSaved] = useState(false);
  const view = egress.data;
  const listText = (entries: readonly string[]) => (entries.length === 0 ? t('egress.emptyList') : entries.join(', '));

  return (
    <>
      <div className="grid-2">
        <Card title={t('egress.title')} className="egress-card">
          <p className="muted">{t('admin.egress.user.intro')}</p>
          <ErrorNote error={egress.error} />
          {!view && egress.loading && <p role="status">{t('common.loading')}</p>}
          {view && (
            <>
              {saved && <Notice tone="success">{t('admin.common.saved')}</Notice>}
              <AsyncForm
                key={JSON.stringify(view.overrides)}
                submitLabel={t('common.save')}
                onSubmit={async (values) => {
                  setSaved(false);
                  const body: UserEgressBody = {
                    profile: values.profile === 'public' || values.profile === 'none' ? values.profile : null,
                    allow: entriesOf(values.allow),
                    deny: entriesOf(values.deny),
                  };
                  await api.put<AdminUserEgressView>(path, body);
                  await egress.reload();
                  setSaved(true);
                }}
              >
                <SelectField
                  label={t('admin.egress.user.profile')}
                  name="profile"
                  defaultValue={view.overrides.profile ?? ''}
                  options={[
                    { value: '', label: t('admin.egress.user.inherit', { profile: profileText(t, view.installation.profile) }) },
                    { value: 'public', label: profileText(t, 'public') },
                    { value: 'none', label: profileText(t, 'none') },
                  ]}
                />
                <TextAreaField
                  label={t('admin.egress.user.allow')}
                  name="allow"
                  rows={3}
                  defaultValue={entriesText(view.overrides.allow)}
                  hint={t('admin.egress.user.fromInstallation', { entries: listText(view.installation.allow) })}
                />
                <TextAreaField
                  label={t('admin.egress.user.deny')}
                  name="deny"
                  rows={3}
                  defaultValue={entriesText(view.overrides.deny)}
                  hint={t('admin.egress.user.fromInstallation', { entries: listText(view.installation.deny) })}
                />
                <p className="muted small">{t('admin.egress.entriesHint')}</p>
              </AsyncForm>
              <h3 className="admin-subtitle">{t('admin.egress.user.effective')}</h3>
              <EgressRulesSummary rules={view.rules} />
            </>
          )}
        </Card>
        <Card title={t('admin.egress.user.activity')}>
          {view && (
            <>
              <EgressTotalsFacts totals={view.totals} />
              <RetentionNote days={view.retentionDays} />
            </>
          )}
        </Card>
      </div>
      {view && (
        <Card title={t('egress.recent')}>
          <ConnectionsTable connections={view.recent} />
        </Card>
      )}
    </>
  );
}

/**
 * The user's runtime and its log; the log follows each new container as the card reports it. On a
 * swarm the card also says which node the runtime is on, and moves it to another.
 */
function UserRuntime({ base, userId, username }: { base: string; userId: string; username: string }) {
  const { t } = useI18n();
  const more = useCallback((card: RuntimeCardContext) => <RuntimeNode userId={userId} username={username} card={card} />, [userId, username]);
  return <RuntimeWithLog base={base} showOpen={false} title={t('admin.user.runtimeOf', { name: username })} more={more} />;
}
