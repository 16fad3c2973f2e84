import { useEffect, useRef, type ReactNode } from 'react';
import { useLeaveGuard } from '../files/sharedQueue';
import { api } from '../api/client';
import { LANGUAGES, mailLanguage, useI18n, type Language } from '../i18n/i18n';
import { Link, useLocation } from './router';
import { useSession } from './session';

/** `onChosen`: a signed-in page also keeps the choice on the server, for the mails the user gets. */
export function LanguageSwitch({ onChosen }: { onChosen?: (language: Language) => void }) {
  const { language, setLanguage, t } = useI18n();
  return (
    <label className="language">
      <span className="visually-hidden">{t('nav.language')}</span>
      <select
        value={language}
        onChange={(e) => {
          const next = e.target.value as Language;
          setLanguage(next);
          onChosen?.(next);
        }}
        aria-label={t('nav.language')}
      >
        {LANGUAGES.map((l) => (
          <option key={l.id} value={l.id}>
            {l.label}
          </option>
        ))}
      </select>
    </label>
  );
}

/** The signed-in frame: navigation, language, who is signed in, and the page. */
export function Shell({ children }: { children: ReactNode }) {
  const { t, language } = useI18n();
  const { user, signOut } = useSession();
  // An account that never chose a language (made before the switch kept it) gets the one in use here.
  useEffect(() => {
    if (user.language === null) void api.put('/account/language', { language: mailLanguage(language) }).catch(() => undefined);
    // Once per account signed in, not on every switch (the switch says so itself).
  }, [user.id]);
  const { pathname } = useLocation();
  useLeaveGuard();
  const items: { to: string; label: string }[] = [
    { to: '/', label: t('nav.home') },
    { to: '/files', label: t('nav.files') },
    { to: '/usage', label: t('nav.usage') },
    { to: '/account', label: t('nav.account') },
    ...(user.role === 'admin' ? [{ to: '/admin', label: t('nav.admin') }] : []),
  ];
  const current = (to: string) => (to === '/' ? pathname === '/' : pathname === to || pathname.startsWith(`${to}/`));
  const here = [...items].reverse().find((item) => current(item.to));
  // A new page: its name in the title, and focus at its start so keyboard and screen-reader users begin there.
  const first = useRef(true);
  useEffect(() => {
    document.title = here ? `${here.label} · ClawLoops` : 'ClawLoops';
    if (first.current) {
      first.current = false;
      return;
    }
    document.getElementById('main')?.focus();
  }, [pathname, here?.label]);
  return (
    <div className="shell">
      <a className="skip-link" href="#main">
        {t('nav.skip')}
      </a>
      <header className="topbar">
        <Link to="/" className="brand">
          ClawLoops
        </Link>
        <nav aria-label={t('nav.main')} className="mainnav">
          {items.map((item) => (
            <Link key={item.to} to={item.to} aria-current={current(item.to) ? 'page' : undefined}>
              {item.label}
            </Link>
          ))}
        </nav>
        <div className="topbar-end">
          {/* Best effort: the console's own switch has already happened, whatever the server says. */}
          <LanguageSwitch onChosen={(next) => void api.put('/account/language', { language: mailLanguage(next) }).catch(() => undefined)} />
          <span className="whoami" title={user.username}>
            {user.displayName || user.username}
          </span>
          <button type="button" className="button button-ghost" onClick={() => void signOut()}>
            {t('nav.signOut')}
          </button>
        </div>
      </header>
      <main id="main" className="page" tabIndex={-1}>
        {children}
      </main>
    </div>
  );
}
