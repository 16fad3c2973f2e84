import { useState } from 'react';
import { api } from '../api/client';
import type { User, UserAnswer } from '../api/types';
import { useSession } from '../app/session';
import { useI18n } from '../i18n/i18n';
import { Button, ErrorNote } from '../ui/ui';
import type { PasswordReset } from './adminTypes';
import { useConfirm } from './common';

const path = (user: User) => `/admin/users/${encodeURIComponent(user.id)}`;

/**
 * What an administrator can do to an account: change its role, disable or enable it, reset its
 * password, delete it. Everything that takes something away asks first; deleting needs the
 * username typed. Used on each row of the users table and on the user's page.
 */
export function UserActions({
  user,
  onChanged,
  onPassword,
  onDeleted,
}: {
  user: User;
  onChanged: (user: User) => void | Promise<void>;
  onPassword: (user: User, temporaryPassword: string) => void;
  onDeleted: (user: User) => void | Promise<void>;
}) {
  const { t } = useI18n();
  const { user: me } = useSession();
  const confirm = useConfirm();
  const [error, setError] = useState<unknown>(null);
  const [enabling, setEnabling] = useState(false);
  const name = user.username;

  if (user.id === me.id) return <span className="muted">{t('admin.users.yourself')}</span>;

  const patch = async (change: Partial<Pick<User, 'role' | 'status'>>) => {
    const answer = await api.patch<UserAnswer>(path(user), change);
    setError(null);
    await onChanged(answer.user);
  };

  const enable = async () => {
    setEnabling(true);
    setError(null);
    try {
      await patch({ status: 'active' });
    } catch (err) {
      setError(err);
    } finally {
      setEnabling(false);
    }
  };

  const changeRole = () => {
    const toAdmin = user.role !== 'admin';
    confirm({
      title: t(toAdmin ? 'admin.users.makeAdminTitle' : 'admin.users.makeMemberTitle', { name }),
      body: <p>{t(toAdmin ? 'admin.users.makeAdminBody' : 'admin.users.makeMemberBody', { name })}</p>,
      confirmLabel: t(toAdmin ? 'admin.users.makeAdmin' : 'admin.users.makeMember'),
      action: () => patch({ role: toAdmin ? 'admin' : 'member' }),
    });
  };

  const disable = () =>
    confirm({
      title: t('admin.users.disableTitle', { name }),
      body: <p>{t('admin.users.disableBody', { name })}</p>,
      confirmLabel: t('admin.users.disable'),
      action: () => patch({ status: 'disabled' }),
    });

  const resetPassword = () =>
    confirm({
      title: t('admin.users.resetTitle', { name }),
      body: <p>{t('admin.users.resetBody', { name })}</p>,
      confirmLabel: t('admin.users.reset'),
      action: async () => {
        const answer = await api.post<PasswordReset>(`${path(user)}/password-reset`);
        setError(null);
        onPassword(answer.user, answer.temporaryPassword);
        await onChanged(answer.user);
      },
    });

  const remove = () =>
    confirm({
      title: t('admin.users.deleteTitle', { name }),
      body: <p>{t('admin.users.deleteBody', { name })}</p>,
      confirmLabel: t('admin.users.delete'),
      typeToConfirm: name,
      action: async () => {
        await api.delete(path(user));
        setError(null);
        await onDeleted(user);
      },
    });

  // Every row has the same buttons: their accessible names say whose row it is.
  const named = (label: string) => ({ 'aria-label': `${label} ${user.username}` });
  return (
    <div className="user-actions">
      <div className="user-actions-buttons">
        <Button variant="ghost" onClick={changeRole} {...named(t(user.role === 'admin' ? 'admin.users.makeMember' : 'admin.users.makeAdmin'))}>
          {t(user.role === 'admin' ? 'admin.users.makeMember' : 'admin.users.makeAdmin')}
        </Button>
        {user.status === 'active' ? (
          <Button variant="ghost" onClick={disable} {...named(t('admin.users.disable'))}>
            {t('admin.users.disable')}
          </Button>
        ) : (
          <Button variant="ghost" busy={enabling} onClick={() => void enable()} {...named(t('admin.users.enable'))}>
            {t('admin.users.enable')}
          </Button>
        )}
        <Button variant="ghost" onClick={resetPassword} {...named(t('admin.users.reset'))}>
          {t('admin.users.reset')}
        </Button>
        <Button variant="ghost" className="button button-ghost admin-danger-text" onClick={remove} {...named(t('admin.users.delete'))}>
          {t('admin.users.delete')}
        </Button>
      </div>
      <ErrorNote error={error} />
    </div>
  );
}
