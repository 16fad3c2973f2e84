import { lazy, Suspense, useCallback, useEffect, useState } from 'react';
import { api, ApiError, SESSION_ENDED } from '../api/client';
import type { Me, SessionState, SetupStatus, User } from '../api/types';
import { useI18n } from '../i18n/i18n';
import { endUploads } from '../files/sharedQueue';
import { AccountPage } from '../pages/AccountPage';
import { FilesPage } from '../pages/FilesPage';
import { HomePage } from '../pages/HomePage';
import { InvitePage, LoginPage, PasswordChangePage, SetupPage, SignInRefusedPage } from '../pages/entryPages';
import { UsagePage } from '../pages/UsagePage';
import { ErrorNote } from '../ui/ui';
import { navigate, useLocation } from './router';
import { SessionProvider } from './session';
import { Shell } from './Shell';

// Admins only: kept out of the first load.
const AdminApp = lazy(() => import('../admin/AdminApp'));

type Boot =
  | { kind: 'loading' }
  | { kind: 'failed'; error: unknown }
  | { kind: 'setup' }
  | { kind: 'signedOut'; notice: string | null; byUser?: boolean }
  | { kind: 'signedIn'; user: User };

/** Where a sign-in may send the browser on: only the workspace hand-off of this origin. */
export function safeNext(next: string | null): string | null {
  return next && next.startsWith('/_clawloops/open') && !next.startsWith('//') ? next : null;
}

export function App() {
  const { t } = useI18n();
  const { pathname, search } = useLocation();
  const [boot, setBoot] = useState<Boot>({ kind: 'loading' });

  const load = useCallback(async () => {
    // Both questions at once: the first paint waits for one round trip, not two. Nobody signed
    // in is an answer of /auth/session, not a 401: a first visit makes no failing request.
    const current = api.get<SessionState>('/auth/session');
    current.catch(() => undefined);
    try {
      const { needed } = await api.get<SetupStatus>('/setup');
      if (needed) return setBoot({ kind: 'setup' });
      const { user } = await current;
      setBoot(user ? { kind: 'signedIn', user } : { kind: 'signedOut', notice: null });
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) setBoot({ kind: 'signedOut', notice: null });
      // Both session cookies were cleared by the server: sign in again, saying why.
      else if (err instanceof ApiError && err.code === 'SESSION_COOKIE_CONFLICT') setBoot({ kind: 'signedOut', notice: t('login.cookieConflict') });
      else setBoot({ kind: 'failed', error: err });
    }
  }, []);

  useEffect(() => {
    void load();
  }, [load]);

  useEffect(() => {
    // Only a session that was there can end: a first visit's 401 just shows the sign-in page.
    const ended = () => {
      endUploads();
      setBoot((current) => (current.kind === 'signedIn' ? { kind: 'signedOut', notice: t('login.sessionEnded') } : current));
    };
    window.addEventListener(SESSION_ENDED, ended);
    return () => window.removeEventListener(SESSION_ENDED, ended);
  }, [t]);

  const signedIn = useCallback(async () => {
    const next = safeNext(new URLSearchParams(location.search).get('next'));
    const { user } = await api.get<Me>('/auth/me');
    if (next && !user.mustChangePassword) {
      location.assign(next);
      return;
    }
    if (location.pathname === '/login' || location.pathname === '/setup' || location.pathname.startsWith('/invite/')) navigate('/', { replace: true });
    setBoot({ kind: 'signedIn', user });
  }, []);

  // A refused single sign-on, whoever is (or is not) signed in in this browser.
  if (pathname === '/sign-in-refused') return <SignInRefusedPage reason={search.get('reason')} />;

  const invite = /^\/invite\/([A-Za-z0-9_-]+)$/.exec(pathname);
  if (invite?.[1]) return <InvitePage secret={invite[1]} signedInAs={boot.kind === 'signedIn' ? boot.user.username : null} onAccepted={signedIn} />;

  switch (boot.kind) {
    case 'loading':
      return (
        <p className="boot" role="status">
          {t('common.loading')}
        </p>
      );
    case 'failed':
      return (
        <main className="entry">
          <ErrorNote error={boot.error} />
          <button className="button button-primary" type="button" onClick={() => void load()}>
            {t('common.retry')}
          </button>
        </main>
      );
    case 'setup':
      return <SetupPage token={search.get('token') ?? ''} onDone={signedIn} />;
    case 'signedOut':
      return <LoginPage notice={boot.notice} signedOut={boot.byUser === true} onSignedIn={signedIn} />;
    case 'signedIn':
      break;
  }

  const user = boot.user;
  const session = {
    user,
    refresh: async () => {
      const { user: fresh } = await api.get<Me>('/auth/me');
      setBoot({ kind: 'signedIn', user: fresh });
    },
    signOut: async () => {
      endUploads();
      await api.post('/auth/logout').catch(() => undefined);
      navigate('/login', { replace: true });
      setBoot({ kind: 'signedOut', notice: t('login.signedOut'), byUser: true });
    },
  };

  if (user.mustChangePassword) {
    return (
      <SessionProvider value={session}>
        <PasswordChangePage onDone={signedIn} />
      </SessionProvider>
    );
  }

  let page;
  if (pathname === '/' || pathname === '/login' || pathname === '/setup') page = <HomePage />;
  else if (pathname === '/files') page = <FilesPage />;
  else if (pathname === '/usage') page = <UsagePage />;
  else if (pathname === '/account') page = <AccountPage />;
  else if (pathname.startsWith('/admin') && user.role === 'admin')
    page = (
      <Suspense fallback={<p role="status">{t('common.loading')}</p>}>
        <AdminApp />
      </Suspense>
    );
  else page = <NotFound />;

  return (
    <SessionProvider value={session}>
      <Shell>{page}</Shell>
    </SessionProvider>
  );
}

function NotFound() {
  const { t } = useI18n();
  return (
    <section className="card">
      <h1>{t('notFound.title')}</h1>
      <p>{t('notFound.body')}</p>
    </section>
  );
}
