import { useState } from 'react';
import { api } from '../api/client';
import type { RevokedSessions, SessionList } from '../api/types';
import { useSession } from '../app/session';
import { useI18n } from '../i18n/i18n';
import { formatDateTime } from '../lib/format';
import { useResource } from '../ui/useResource';
import { Button, Card, ConfirmDialog, ErrorNote, Notice } from '../ui/ui';
import { ApiTokensCard } from './ApiTokensCard';
import { PasswordForm } from './entryPages';

export function AccountPage() {
  const { t, locale } = useI18n();
  const { user, refresh } = useSession();
  const sessions = useResource((signal) => api.get<SessionList>('/account/sessions', { signal }), 'sessions');
  const [changed, setChanged] = useState(false);
  const [confirming, setConfirming] = useState(false);
  const [revoked, setRevoked] = useState<number | null>(null);
  const others = sessions.data?.items.filter((s) => !s.current).length ?? 0;
  return (
    <div className="stack">
      <h1>{t('account.title')}</h1>
      <Card title={t('account.profile')}>
        <dl className="facts">
          <dt>{t('field.username')}</dt>
          <dd>{user.username}</dd>
          <dt>{t('account.displayName')}</dt>
          <dd>{user.displayName || '—'}</dd>
          <dt>{t('account.role')}</dt>
          <dd>{t(user.role === 'admin' ? 'role.admin' : 'role.member')}</dd>
        </dl>
      </Card>
      <Card title={t('account.changePassword')}>
        {changed && <Notice tone="success">{t('account.passwordChanged')}</Notice>}
        <PasswordForm
          onDone={async () => {
            setChanged(true);
            await refresh();
            await sessions.reload();
          }}
        />
      </Card>
      <Card
        title={t('account.sessions')}
        actions={
          <Button variant="danger" disabled={others === 0} onClick={() => setConfirming(true)}>
            {t('account.signOutOthers')}
          </Button>
        }
      >
        <ErrorNote error={sessions.error} />
        {revoked !== null && <Notice tone="success">{t('account.revoked', { count: revoked })}</Notice>}
        {sessions.data && (
          <div className="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">{t('account.device')}</th>
                  <th scope="col">{t('account.ip')}</th>
                  <th scope="col">{t('account.lastSeen')}</th>
                  <th scope="col">{t('account.expires')}</th>
                </tr>
              </thead>
              <tbody>
                {sessions.data.items.map((s) => (
                  <tr key={s.id}>
                    <td>
                      {s.userAgent ?? '—'} {s.current && <span className="badge">{t('account.thisSession')}</span>}
                    </td>
                    <td>{s.ip ?? '—'}</td>
                    <td>{formatDateTime(s.lastSeenAt, locale)}</td>
                    <td>{formatDateTime(s.expiresAt, locale)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </Card>
      <ApiTokensCard isAdmin={user.role === 'admin'} username={user.username} />
      <ConfirmDialog
        open={confirming}
        title={t('account.signOutOthersTitle')}
        confirmLabel={t('account.signOutOthers')}
        onClose={() => setConfirming(false)}
        onConfirm={async () => {
          const result = await api.post<RevokedSessions>('/account/sessions/revoke-others');
          setRevoked(result.revoked);
          await sessions.reload();
        }}
      >
        <p>{t('account.signOutOthersBody', { count: others })}</p>
      </ConfirmDialog>
    </div>
  );
}
