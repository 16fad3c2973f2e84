import { useId, useState } from 'react';
import { api } from '../api/client';
import type { ApiTokenList, ApiTokenScope, CreatedApiToken } from '../api/types';
import { useI18n } from '../i18n/i18n';
import type { MessageKey } from '../i18n/en';
import { formatDateTime } from '../lib/format';
import { OneTimeSecret } from '../ui/OneTimeSecret';
import { useResource } from '../ui/useResource';
import { AsyncForm, Button, Card, ConfirmDialog, ErrorNote, Field } from '../ui/ui';

const SCOPES: { scope: ApiTokenScope; label: MessageKey; hint: MessageKey }[] = [
  { scope: 'read', label: 'tokens.scope.read', hint: 'tokens.scope.readHint' },
  { scope: 'runtime', label: 'tokens.scope.runtime', hint: 'tokens.scope.runtimeHint' },
  { scope: 'files', label: 'tokens.scope.files', hint: 'tokens.scope.filesHint' },
  { scope: 'admin', label: 'tokens.scope.admin', hint: 'tokens.scope.adminHint' },
];
const EXPIRY_DAYS = [7, 30, 90, 365];
const scopeLabel = (scope: ApiTokenScope): MessageKey => SCOPES.find((s) => s.scope === scope)?.label ?? 'tokens.scope.read';

/** Personal API tokens for scripts: made here, their secret shown once, revoked here. */
export function ApiTokensCard({ isAdmin, username }: { isAdmin: boolean; username: string }) {
  const { t, locale } = useI18n();
  const tokens = useResource((signal) => api.get<ApiTokenList>('/account/tokens', { signal }), 'tokens');
  const [creating, setCreating] = useState(false);
  const [created, setCreated] = useState<CreatedApiToken | null>(null);
  const [revoking, setRevoking] = useState<{ id: string; name: string } | null>(null);
  const expiryId = useId();
  const scopes = SCOPES.filter((s) => s.scope !== 'admin' || isAdmin);
  return (
    <Card
      title={t('tokens.title')}
      actions={
        !creating &&
        !created && (
          <Button variant="primary" onClick={() => setCreating(true)}>
            {t('tokens.new')}
          </Button>
        )
      }
    >
      <p className="muted">{t('tokens.intro')}</p>
      {created && (
        <OneTimeSecret
          id="api-token-secret"
          label={t('tokens.secret', { name: created.token.name })}
          value={created.secret}
          note={t('tokens.secretOnce')}
          onDone={() => setCreated(null)}
        />
      )}
      {created?.token.scopes.includes('files') && (
        <div data-testid="webdav-connect">
          <p className="secret-label">{t('tokens.davTitle')}</p>
          <dl className="facts">
            <dt>{t('tokens.davAddress')}</dt>
            <dd>
              <code>{`${window.location.origin}/dav/`}</code>
            </dd>
            <dt>{t('field.username')}</dt>
            <dd>
              <code>{username}</code>
            </dd>
            <dt>{t('tokens.davPassword')}</dt>
            <dd>{t('tokens.davPasswordIsToken')}</dd>
          </dl>
        </div>
      )}
      {creating && (
        <AsyncForm
          id="api-token-form"
          submitLabel={t('tokens.create')}
          onSubmit={async (values) => {
            const chosen = scopes.filter((s) => values[`scope-${s.scope}`] === 'on').map((s) => s.scope);
            if (chosen.length === 0) throw new Error(t('tokens.noScope'));
            const answer = await api.post<CreatedApiToken>('/account/tokens', { name: values.name ?? '', scopes: chosen, expiresInDays: Number(values.expiresInDays) });
            setCreating(false);
            setCreated(answer);
            await tokens.reload();
          }}
        >
          <Field label={t('tokens.name')} name="name" required maxLength={100} placeholder={t('tokens.namePlaceholder')} />
          <fieldset className="field">
            <legend>{t('tokens.scopes')}</legend>
            {scopes.map((s) => (
              <label key={s.scope} className="checkbox">
                <input type="checkbox" name={`scope-${s.scope}`} defaultChecked={s.scope === 'read'} /> <strong>{t(s.label)}</strong>{' '}
                <span className="muted">{t(s.hint)}</span>
              </label>
            ))}
          </fieldset>
          <div className="field">
            <label htmlFor={expiryId}>{t('tokens.expiry')}</label>
            <select id={expiryId} name="expiresInDays" defaultValue="30">
              {EXPIRY_DAYS.map((days) => (
                <option key={days} value={days}>
                  {t('tokens.days', { count: days })}
                </option>
              ))}
            </select>
          </div>
          <div className="actions">
            <Button onClick={() => setCreating(false)}>{t('tokens.cancel')}</Button>
          </div>
        </AsyncForm>
      )}
      <ErrorNote error={tokens.error} />
      {tokens.data && tokens.data.items.length === 0 && !created && <p>{t('tokens.none')}</p>}
      {tokens.data && tokens.data.items.length > 0 && (
        <div className="table-wrap">
          <table data-testid="api-tokens">
            <thead>
              <tr>
                <th scope="col">{t('tokens.name')}</th>
                <th scope="col">{t('tokens.scopes')}</th>
                <th scope="col">{t('tokens.lastUsed')}</th>
                <th scope="col">{t('tokens.expires')}</th>
                <th scope="col">
                  <span className="visually-hidden">{t('tokens.actions')}</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {tokens.data.items.map((token) => (
                <tr key={token.id}>
                  <td>
                    {token.name} <code className="muted">{token.hint}…</code>
                  </td>
                  <td>{token.scopes.map((scope) => t(scopeLabel(scope))).join(', ')}</td>
                  <td>{token.lastUsedAt ? `${formatDateTime(token.lastUsedAt, locale)}${token.lastUsedIp ? ` · ${token.lastUsedIp}` : ''}` : t('tokens.never')}</td>
                  <td>{token.expired ? <span className="badge">{t('tokens.expired')}</span> : formatDateTime(token.expiresAt, locale)}</td>
                  <td>
                    <Button variant="danger" onClick={() => setRevoking({ id: token.id, name: token.name })}>
                      {t('tokens.revoke')}
                    </Button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <ConfirmDialog
        open={revoking !== null}
        title={t('tokens.revokeTitle', { name: revoking?.name ?? '' })}
        confirmLabel={t('tokens.revoke')}
        onClose={() => setRevoking(null)}
        onConfirm={async () => {
          if (revoking) await api.delete(`/account/tokens/${revoking.id}`);
          await tokens.reload();
        }}
      >
        <p>{t('tokens.revokeBody')}</p>
      </ConfirmDialog>
    </Card>
  );
}
