import type { ReactNode } from 'react';
import { api } from '../api/client';
import type { InvitationPreview, SignInMethods } from '../api/types';
import { LanguageSwitch } from '../app/Shell';
import type { MessageKey } from '../i18n/en';
import { mailLanguage, useI18n } from '../i18n/i18n';
import { formatDateTime } from '../lib/format';
import { useResource } from '../ui/useResource';
import { AsyncForm, ErrorNote, Field, Notice } from '../ui/ui';

/** The frame of the pages shown before signing in. */
function EntryFrame({ title, children }: { title: string; children: ReactNode }) {
  return (
    <main className="entry">
      <div className="entry-top">
        <span className="brand">ClawLoops</span>
        <LanguageSwitch />
      </div>
      <section className="card entry-card">
        <h1>{title}</h1>
        {children}
      </section>
    </main>
  );
}

export function SetupPage({ token, onDone }: { token: string; onDone: () => Promise<void> }) {
  const { t } = useI18n();
  return (
    <EntryFrame title={t('setup.title')}>
      <p>{t('setup.intro')}</p>
      <AsyncForm
        id="setup"
        submitLabel={t('setup.submit')}
        onSubmit={async (v) => {
          await api.post('/setup', { token: v.token, username: v.username, password: v.password, ...(v.displayName ? { displayName: v.displayName } : {}) });
          await onDone();
        }}
      >
        <Field label={t('setup.token')} name="token" defaultValue={token} required autoComplete="off" hint={t('setup.tokenHint')} />
        <Field label={t('field.username')} name="username" required autoComplete="username" />
        <Field label={t('field.displayName')} name="displayName" autoComplete="name" />
        <Field label={t('field.newPassword')} name="password" type="password" required minLength={10} autoComplete="new-password" hint={t('field.passwordHint')} />
      </AsyncForm>
    </EntryFrame>
  );
}

/** Where single sign-on starts; `next` (a workspace hand-off) is where the browser goes afterwards. */
function providerStartUrl(): string {
  const next = new URLSearchParams(location.search).get('next');
  return `/api/v1/auth/oidc/start${next && next.startsWith('/_clawloops/open') ? `?next=${encodeURIComponent(next)}` : ''}`;
}

export function LoginPage({ notice, signedOut, onSignedIn }: { notice: string | null; signedOut?: boolean; onSignedIn: () => Promise<void> }) {
  const { t } = useI18n();
  const methods = useResource((signal) => api.get<SignInMethods>('/auth/methods', { signal }), 'methods');
  const oidc = methods.data?.oidc ?? null;
  // Until the answer arrives the form is shown: passwords are the default and the common case.
  const password = methods.data?.password ?? true;
  return (
    <EntryFrame title={t('login.title')}>
      {notice && <Notice tone="warning">{notice}</Notice>}
      {signedOut && oidc && (
        <p>
          <a href="/api/v1/auth/oidc/end-session">{t('login.providerSignOut', { name: oidc.name })}</a>
        </p>
      )}
      {oidc && (
        <p>
          <a className="button button-primary" href={providerStartUrl()}>
            {t('login.withProvider', { name: oidc.name })}
          </a>
        </p>
      )}
      {oidc && password && <p className="muted">{t('login.or')}</p>}
      {password && (
        <AsyncForm
          id="login"
          submitLabel={t('login.submit')}
          onSubmit={async (v) => {
            await api.post('/auth/login', { username: v.username, password: v.password });
            await onSignedIn();
          }}
        >
          <Field label={t('field.username')} name="username" required autoComplete="username" autoFocus={!oidc} />
          <Field label={t('field.password')} name="password" type="password" required autoComplete="current-password" />
        </AsyncForm>
      )}
    </EntryFrame>
  );
}

const REFUSAL_REASONS = ['expired', 'provider_error', 'failed', 'not_allowed', 'no_account', 'email_unverified', 'ambiguous', 'disabled', 'unavailable'] as const;

/** Where a refused single sign-on lands (the server redirects here with the reason). */
export function SignInRefusedPage({ reason }: { reason: string | null }) {
  const { t } = useI18n();
  const known = REFUSAL_REASONS.find((r) => r === reason) ?? 'failed';
  return (
    <EntryFrame title={t('refused.title')}>
      <Notice tone="warning">{t(`refused.${known}` as MessageKey)}</Notice>
      <p>
        <a className="button" href="/login">
          {t('refused.back')}
        </a>
      </p>
    </EntryFrame>
  );
}

export function InvitePage({ secret, signedInAs, onAccepted }: { secret: string; signedInAs: string | null; onAccepted: () => Promise<void> }) {
  const { t, locale, language } = useI18n();
  const invitation = useResource((signal) => api.get<InvitationPreview>(`/invitations/${encodeURIComponent(secret)}`, { signal }), secret);
  return (
    <EntryFrame title={t('invite.title')}>
      {signedInAs && <Notice tone="warning">{t('invite.signedInAs', { name: signedInAs })}</Notice>}
      {invitation.loading && !invitation.data && <p role="status">{t('common.loading')}</p>}
      <ErrorNote error={invitation.error} />
      {invitation.data && (
        <>
          <p>{t('invite.intro', { role: t(invitation.data.invitation.role === 'admin' ? 'role.admin' : 'role.member'), expires: formatDateTime(invitation.data.invitation.expiresAt, locale) })}</p>
          <AsyncForm
            id="invite"
            submitLabel={t('invite.submit')}
            onSubmit={async (v) => {
              await api.post(`/invitations/${encodeURIComponent(secret)}/accept`, {
                ...(invitation.data?.invitation.username ? {} : { username: v.username }),
                password: v.password,
                ...(v.displayName ? { displayName: v.displayName } : {}),
                language: mailLanguage(language),
              });
              await onAccepted();
            }}
          >
            <Field
              label={t('field.username')}
              name="username"
              required
              autoComplete="username"
              defaultValue={invitation.data.invitation.username ?? ''}
              readOnly={invitation.data.invitation.username !== null}
            />
            <Field label={t('field.displayName')} name="displayName" autoComplete="name" />
            <Field label={t('field.newPassword')} name="password" type="password" required minLength={10} autoComplete="new-password" hint={t('field.passwordHint')} />
          </AsyncForm>
        </>
      )}
    </EntryFrame>
  );
}

export function PasswordChangePage({ onDone }: { onDone: () => Promise<void> }) {
  const { t } = useI18n();
  return (
    <EntryFrame title={t('password.forcedTitle')}>
      <Notice tone="warning">{t('password.forcedIntro')}</Notice>
      <PasswordForm onDone={onDone} />
    </EntryFrame>
  );
}

export function PasswordForm({ onDone }: { onDone: () => Promise<void> }) {
  const { t } = useI18n();
  return (
    <AsyncForm
      id="password"
      submitLabel={t('password.submit')}
      onSubmit={async (v) => {
        if (v.newPassword !== v.repeat) throw new Error(t('password.mismatch'));
        await api.post('/account/password', { currentPassword: v.currentPassword, newPassword: v.newPassword });
        await onDone();
      }}
    >
      <Field label={t('field.currentPassword')} name="currentPassword" type="password" required autoComplete="current-password" />
      <Field label={t('field.newPassword')} name="newPassword" type="password" required minLength={10} autoComplete="new-password" hint={t('field.passwordHint')} />
      <Field label={t('field.repeatPassword')} name="repeat" type="password" required minLength={10} autoComplete="new-password" />
    </AsyncForm>
  );
}
