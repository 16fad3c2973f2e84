import { useState } from 'react';
import { api, query } from '../api/client';
import type { Page, User } from '../api/types';
import { Link } from '../app/router';
import { useI18n } from '../i18n/i18n';
import { formatDateTime } from '../lib/format';
import { useResource } from '../ui/useResource';
import { Button, Card } from '../ui/ui';
import { Badge, PagedTable, SelectField, useDebounced } from './common';
import { OneTimeSecret } from '../ui/OneTimeSecret';
import { CreateUserForm, InviteForm } from './InviteForm';
import { userPath } from './logic';
import { UserActions } from './UserActions';

const LIMIT = 25;

export function UserBadges({ user }: { user: User }) {
  const { t } = useI18n();
  return (
    <>
      <Badge tone={user.role === 'admin' ? 'info' : 'neutral'}>{t(user.role === 'admin' ? 'role.admin' : 'role.member')}</Badge>{' '}
      <Badge tone={user.status === 'active' ? 'ok' : 'bad'}>{t(user.status === 'active' ? 'admin.status.active' : 'admin.status.disabled')}</Badge>
      {user.mustChangePassword && (
        <>
          {' '}
          <Badge tone="warn">{t('admin.users.mustChange')}</Badge>
        </>
      )}
    </>
  );
}

/** The display name (when it says more than the username) and the email, under the username. */
function UserSubtitle({ user }: { user: User }) {
  const parts = [user.displayName !== user.username ? user.displayName : '', user.email ?? ''].filter(Boolean);
  return parts.length > 0 ? <div className="muted small">{parts.join(' · ')}</div> : null;
}

export function UsersPage() {
  const { t, locale } = useI18n();
  const [search, setSearch] = useState('');
  const [role, setRole] = useState('');
  const [status, setStatus] = useState('');
  const [offset, setOffset] = useState(0);
  const [panel, setPanel] = useState<'invite' | 'create' | null>(null);
  const [password, setPassword] = useState<{ username: string; value: string } | null>(null);
  const settled = useDebounced(search.trim());
  const q = query({ search: settled, role, status, limit: LIMIT, offset });
  const users = useResource((signal) => api.get<Page<User>>(`/admin/users${q}`, { signal }), q);
  const filtered = settled !== '' || role !== '' || status !== '';
  const data = users.data;

  const reload = () => users.reload();

  return (
    <div className="stack">
      <div className="admin-title">
        <h1>{t('admin.users.title')}</h1>
        <div className="actions">
          <Button variant="primary" aria-expanded={panel === 'invite'} onClick={() => setPanel(panel === 'invite' ? null : 'invite')}>
            {t('admin.users.invite')}
          </Button>
          <Button aria-expanded={panel === 'create'} onClick={() => setPanel(panel === 'create' ? null : 'create')}>
            {t('admin.users.create')}
          </Button>
        </div>
      </div>

      {panel === 'invite' && (
        <Card
          title={t('admin.invite.title')}
          actions={
            <Button variant="ghost" onClick={() => setPanel(null)}>
              {t('common.close')}
            </Button>
          }
        >
          <InviteForm onCreated={() => undefined} onClose={() => setPanel(null)} />
        </Card>
      )}
      {panel === 'create' && (
        <Card
          title={t('admin.create.title')}
          actions={
            <Button variant="ghost" onClick={() => setPanel(null)}>
              {t('common.close')}
            </Button>
          }
        >
          <CreateUserForm onCreated={reload} onClose={() => setPanel(null)} />
        </Card>
      )}

      <Card>
        <div className="admin-filters" role="search">
          <div className="field">
            <label htmlFor="admin-user-search">{t('admin.users.search')}</label>
            <input
              id="admin-user-search"
              type="search"
              value={search}
              placeholder={t('admin.users.searchPlaceholder')}
              onChange={(e) => {
                setSearch(e.target.value);
                setOffset(0);
              }}
            />
          </div>
          <SelectField
            label={t('admin.field.role')}
            value={role}
            onChange={(v) => {
              setRole(v);
              setOffset(0);
            }}
            options={[
              { value: '', label: t('admin.common.all') },
              { value: 'admin', label: t('role.admin') },
              { value: 'member', label: t('role.member') },
            ]}
          />
          <SelectField
            label={t('admin.field.status')}
            value={status}
            onChange={(v) => {
              setStatus(v);
              setOffset(0);
            }}
            options={[
              { value: '', label: t('admin.common.all') },
              { value: 'active', label: t('admin.status.active') },
              { value: 'disabled', label: t('admin.status.disabled') },
            ]}
          />
        </div>

        {password && (
          <div className="admin-secret-panel">
            <OneTimeSecret
              label={t('admin.users.temporaryPasswordFor', { name: password.username })}
              value={password.value}
              note={t('admin.users.temporaryPasswordOnce')}
              onDone={() => setPassword(null)}
            />
          </div>
        )}

        <PagedTable
          resource={users}
          empty={filtered ? { title: t('admin.users.noMatch'), body: t('admin.users.noMatchBody') } : { title: t('admin.users.empty'), body: t('admin.users.emptyBody') }}
          count={(total) => t('admin.users.count', { count: total })}
          limit={LIMIT}
          offset={offset}
          onOffset={setOffset}
          head={
            <tr>
              <th scope="col">{t('admin.users.user')}</th>
              <th scope="col">{t('admin.users.roleStatus')}</th>
              <th scope="col" className="hide-narrow">
                {t('admin.users.lastLogin')}
              </th>
              <th scope="col">{t('admin.common.actions')}</th>
            </tr>
          }
          row={(user) => (
            <tr key={user.id} data-testid="user-row" data-username={user.username}>
              <td>
                <Link to={userPath(user.id)}>
                  <strong>{user.username}</strong>
                </Link>
                <UserSubtitle user={user} />
              </td>
              <td>
                <UserBadges user={user} />
              </td>
              <td className="hide-narrow">{user.lastLoginAt ? formatDateTime(user.lastLoginAt, locale) : t('admin.users.never')}</td>
              <td>
                <UserActions
                  user={user}
                  onChanged={reload}
                  onPassword={(u, value) => setPassword({ username: u.username, value })}
                  onDeleted={async () => {
                    // The last one of a page gone: step back a page.
                    if (data?.items.length === 1 && offset > 0) setOffset(Math.max(0, offset - LIMIT));
                    else await reload();
                  }}
                />
              </td>
            </tr>
          )}
        />
      </Card>
    </div>
  );
}
