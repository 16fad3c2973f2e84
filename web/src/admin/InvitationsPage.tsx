import { useState } from 'react';
import { api, query } from '../api/client';
import type { Invitation, Page } from '../api/types';
import { Link } from '../app/router';
import { useI18n } from '../i18n/i18n';
import type { MessageKey } from '../i18n/en';
import { formatDateTime } from '../lib/format';
import { useResource } from '../ui/useResource';
import { Button, Card } from '../ui/ui';
import { Badge, PagedTable, useConfirm } from './common';
import { InviteForm } from './InviteForm';
import { userPath } from './logic';

const LIMIT = 25;

const STATUS: Record<Invitation['status'], { key: MessageKey; tone: 'ok' | 'warn' | 'bad' | 'neutral' | 'info' }> = {
  pending: { key: 'admin.invitations.pending', tone: 'info' },
  accepted: { key: 'admin.invitations.accepted', tone: 'ok' },
  revoked: { key: 'admin.invitations.revoked', tone: 'bad' },
  expired: { key: 'admin.invitations.expired', tone: 'neutral' },
};

export function InvitationsPage() {
  const { t, locale } = useI18n();
  const confirm = useConfirm();
  const [offset, setOffset] = useState(0);
  const [inviting, setInviting] = useState(false);
  const q = query({ limit: LIMIT, offset });
  const invitations = useResource((signal) => api.get<Page<Invitation>>(`/admin/invitations${q}`, { signal }), q);

  const who = (i: Invitation) => [i.username, i.email].filter(Boolean).join(' · ') || t('admin.invitations.anyone');

  const revoke = (i: Invitation) =>
    confirm({
      title: t('admin.invitations.revokeTitle'),
      body: <p>{t('admin.invitations.revokeBody', { who: who(i) })}</p>,
      confirmLabel: t('admin.invitations.revoke'),
      action: async () => {
        await api.post(`/admin/invitations/${encodeURIComponent(i.id)}/revoke`);
        await invitations.reload();
      },
    });

  return (
    <div className="stack">
      <div className="admin-title">
        <h1>{t('admin.invitations.title')}</h1>
        <Button variant="primary" aria-expanded={inviting} onClick={() => setInviting(!inviting)}>
          {t('admin.users.invite')}
        </Button>
      </div>
      {inviting && (
        <Card
          title={t('admin.invite.title')}
          actions={
            <Button variant="ghost" onClick={() => setInviting(false)}>
              {t('common.close')}
            </Button>
          }
        >
          <InviteForm
            onCreated={async () => {
              setOffset(0);
              await invitations.reload();
            }}
            onClose={() => setInviting(false)}
          />
        </Card>
      )}
      <Card>
        <PagedTable
          resource={invitations}
          empty={{ title: t('admin.invitations.empty'), body: t('admin.invitations.emptyBody') }}
          limit={LIMIT}
          offset={offset}
          onOffset={setOffset}
          head={
            <tr>
              <th scope="col">{t('admin.invitations.for')}</th>
              <th scope="col">{t('admin.invitations.state')}</th>
              <th scope="col" className="hide-narrow">
                {t('admin.invitations.created')}
              </th>
              <th scope="col">{t('admin.invitations.expires')}</th>
              <th scope="col">{t('admin.common.actions')}</th>
            </tr>
          }
          row={(i) => (
            <tr key={i.id}>
              <td>
                {i.acceptedUserId ? <Link to={userPath(i.acceptedUserId)}>{who(i)}</Link> : who(i)}
                <div className="muted small">{t(i.role === 'admin' ? 'role.admin' : 'role.member')}</div>
              </td>
              <td>
                <Badge tone={STATUS[i.status].tone}>{t(STATUS[i.status].key)}</Badge>
                {i.acceptedAt && <div className="muted small">{formatDateTime(i.acceptedAt, locale)}</div>}
                {i.revokedAt && <div className="muted small">{formatDateTime(i.revokedAt, locale)}</div>}
              </td>
              <td className="hide-narrow">{formatDateTime(i.createdAt, locale)}</td>
              <td>{formatDateTime(i.expiresAt, locale)}</td>
              <td>
                {i.status === 'pending' ? (
                  <Button variant="ghost" className="button button-ghost admin-danger-text" onClick={() => revoke(i)} aria-label={`${t('admin.invitations.revoke')} ${who(i)}`}>
                    {t('admin.invitations.revoke')}
                  </Button>
                ) : (
                  <span className="muted">—</span>
                )}
              </td>
            </tr>
          )}
        />
      </Card>
    </div>
  );
}
