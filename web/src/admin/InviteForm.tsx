import { useState } from 'react';
import { api } from '../api/client';
import type { Role, User } from '../api/types';
import { useI18n } from '../i18n/i18n';
import { AsyncForm, Button, Field, Notice } from '../ui/ui';
import { useResource } from '../ui/useResource';
import type { CreatedInvitation, CreatedUser, MailStatus } from './adminTypes';
import { CheckboxField, SelectField } from './common';
import { OneTimeSecret } from '../ui/OneTimeSecret';

const MAX_HOURS = 720;

function useRoleOptions() {
  const { t } = useI18n();
  return [
    { value: 'member', label: t('role.member') },
    { value: 'admin', label: t('role.admin') },
  ];
}

/** Creates an invitation; its link is shown once, to copy and pass on. */
export function InviteForm({ onCreated, onClose }: { onCreated: () => void | Promise<void>; onClose: () => void }) {
  const { t, locale } = useI18n();
  const roles = useRoleOptions();
  const mail = useResource((signal) => api.get<MailStatus>('/admin/mail', { signal }), 'mail');
  const [created, setCreated] = useState<{ link: string; emailed: string | null } | null>(null);
  if (created !== null) {
    return (
      <div>
        {created.emailed && <Notice tone="success">{t('admin.invite.emailQueued', { email: created.emailed })}</Notice>}
        <OneTimeSecret id="invite-link" label={t('admin.invite.link')} value={created.link} note={t('admin.invite.linkOnce')} onDone={onClose} />
      </div>
    );
  }
  const mailEnabled = mail.data?.enabled === true;
  return (
    <AsyncForm
      submitLabel={t('admin.invite.submit')}
      onSubmit={async (values) => {
        const hours = Number(values.expiresInHours);
        const email = values.email?.trim() ?? '';
        // Only a box that was shown and ticked mails the link, and only with an address to mail it to.
        const sendEmail = mailEnabled && email !== '' && values.sendEmail === 'on';
        const answer = await api.post<CreatedInvitation>('/admin/invitations', {
          role: values.role as Role,
          ...(values.username?.trim() ? { username: values.username.trim() } : {}),
          ...(email ? { email } : {}),
          expiresInHours: Number.isInteger(hours) ? hours : 72,
          ...(email ? { sendEmail, language: locale === 'zh-CN' ? 'zh-CN' : 'en' } : {}),
        });
        setCreated({ link: answer.link, emailed: answer.emailQueued ? email : null });
        await onCreated();
      }}
    >
      <div className="admin-form-grid">
        <SelectField label={t('admin.field.role')} name="role" defaultValue="member" options={roles} />
        <Field label={t('admin.invite.username')} name="username" hint={t('admin.invite.usernameHint')} autoComplete="off" maxLength={64} />
        <Field label={t('admin.field.emailOptional')} name="email" type="email" autoComplete="off" maxLength={254} />
        {mailEnabled && <CheckboxField label={t('admin.invite.sendEmail')} name="sendEmail" defaultChecked hint={t('admin.invite.sendEmailHint')} />}
        <Field
          label={t('admin.invite.expires')}
          name="expiresInHours"
          type="number"
          inputMode="numeric"
          min={1}
          max={MAX_HOURS}
          step={1}
          defaultValue={72}
          required
          hint={t('admin.invite.expiresHint', { max: MAX_HOURS })}
        />
      </div>
    </AsyncForm>
  );
}

/** Creates an account directly; without a password the server makes a temporary one, shown once. */
export function CreateUserForm({ onCreated, onClose }: { onCreated: (user: User) => void | Promise<void>; onClose: () => void }) {
  const { t } = useI18n();
  const roles = useRoleOptions();
  const [created, setCreated] = useState<CreatedUser | null>(null);
  if (created) {
    return created.temporaryPassword ? (
      <OneTimeSecret
        label={t('admin.users.temporaryPasswordFor', { name: created.user.username })}
        value={created.temporaryPassword}
        note={t('admin.users.temporaryPasswordOnce')}
        onDone={onClose}
      />
    ) : (
      <div>
        <Notice tone="success">{t('admin.create.done', { name: created.user.username })}</Notice>
        <div className="actions">
          <Button onClick={onClose}>{t('secret.done')}</Button>
        </div>
      </div>
    );
  }
  return (
    <AsyncForm
      submitLabel={t('admin.create.submit')}
      onSubmit={async (values) => {
        const answer = await api.post<CreatedUser>('/admin/users', {
          username: (values.username ?? '').trim(),
          role: values.role as Role,
          ...(values.displayName?.trim() ? { displayName: values.displayName.trim() } : {}),
          ...(values.email?.trim() ? { email: values.email.trim() } : {}),
          ...(values.password ? { password: values.password } : {}),
        });
        setCreated(answer);
        await onCreated(answer.user);
      }}
    >
      <div className="admin-form-grid">
        <Field label={t('field.username')} name="username" required autoComplete="off" maxLength={64} />
        <Field label={t('field.displayName')} name="displayName" autoComplete="off" maxLength={200} />
        <Field label={t('admin.field.emailOptional')} name="email" type="email" autoComplete="off" maxLength={254} />
        <SelectField label={t('admin.field.role')} name="role" defaultValue="member" options={roles} />
        <Field label={t('admin.create.password')} name="password" type="password" autoComplete="new-password" hint={t('admin.create.passwordHint')} />
      </div>
    </AsyncForm>
  );
}
