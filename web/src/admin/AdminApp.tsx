import { Link, useLocation } from '../app/router';
import { useI18n } from '../i18n/i18n';
import type { MessageKey } from '../i18n/en';
import { EmptyState } from '../ui/ui';
import { AuditPage } from './AuditPage';
import { BackupsPage } from './BackupsPage';
import { ConfirmProvider } from './common';
import { EgressPage } from './EgressPage';
import { InvitationsPage } from './InvitationsPage';
import { ADMIN_SECTIONS, adminRoute, sectionOf, sectionPath, type AdminSection } from './logic';
import { ModelsPage } from './ModelsPage';
import { NodesPage } from './NodesPage';
import { OverviewPage } from './OverviewPage';
import { RuntimesPage } from './RuntimesPage';
import { SettingsPage } from './SettingsPage';
import { AdminUsagePage } from './UsagePage';
import { UserDetailPage } from './UserDetailPage';
import { UsersPage } from './UsersPage';

const NAV_KEYS: Record<AdminSection, MessageKey> = {
  overview: 'admin.nav.overview',
  users: 'admin.nav.users',
  invitations: 'admin.nav.invitations',
  runtimes: 'admin.nav.runtimes',
  nodes: 'admin.nav.nodes',
  models: 'admin.nav.models',
  egress: 'admin.nav.egress',
  usage: 'admin.nav.usage',
  backups: 'admin.nav.backups',
  audit: 'admin.nav.audit',
  settings: 'admin.nav.settings',
};

/** The admin pages (loaded only for administrators): a sub-navigation and the page of the path. */
export default function AdminApp() {
  const { t } = useI18n();
  const { pathname } = useLocation();
  const route = adminRoute(pathname);
  const current = sectionOf(route);

  let page;
  switch (route.page) {
    case 'overview':
      page = <OverviewPage />;
      break;
    case 'users':
      page = <UsersPage />;
      break;
    case 'user':
      page = <UserDetailPage key={route.id} id={route.id} />;
      break;
    case 'invitations':
      page = <InvitationsPage />;
      break;
    case 'runtimes':
      page = <RuntimesPage />;
      break;
    case 'nodes':
      page = <NodesPage />;
      break;
    case 'models':
      page = <ModelsPage />;
      break;
    case 'egress':
      page = <EgressPage />;
      break;
    case 'usage':
      page = <AdminUsagePage />;
      break;
    case 'backups':
      page = <BackupsPage />;
      break;
    case 'audit':
      page = <AuditPage />;
      break;
    case 'settings':
      page = <SettingsPage />;
      break;
    case 'notFound':
      page = (
        <EmptyState title={t('admin.notFound.title')}>
          <Link to="/admin">{t('admin.notFound.back')}</Link>
        </EmptyState>
      );
      break;
  }

  return (
    <ConfirmProvider>
      <div id="admin" className="admin">
        <nav className="admin-nav" aria-label={t('admin.nav.label')}>
          <ul>
            {ADMIN_SECTIONS.map((section) => (
              <li key={section}>
                <Link to={sectionPath(section)} aria-current={section === current ? 'page' : undefined}>
                  {t(NAV_KEYS[section])}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        <div className="admin-page">{page}</div>
      </div>
    </ConfirmProvider>
  );
}
