import type { RequestHandler } from 'express';
import { USERNAME_PATTERN } from '../../domain/accountRules';
import type { AuditLog } from '../../domain/audit';
import { actorOf } from '../../domain/authService';
import type { SessionService } from '../../domain/sessions';
import { safeInnerPath, type WorkspaceAddresses } from '../../domain/workspaceAddresses';
import type { WorkspaceSessionService } from '../../domain/workspaceSessions';
import { originOf } from '../context';
import { readSessionCookie, type CookiePolicy } from '../sessionCookie';
import { sendMessagePage } from './pages';

export const WORKSPACE_OPEN_PATH = '/_clawloops/open';

export interface WorkspaceOpenDeps {
  cookies: Pick<CookiePolicy, 'secure'>;
  sessions: SessionService;
  workspaceSessions: WorkspaceSessionService;
  addresses: WorkspaceAddresses;
  audit: AuditLog;
}

/**
 * "Open workspace" on the platform: checks the platform session, issues a single-use ticket
 * and sends the browser to its workspace host, which redeems it for a host-only cookie. Only a
 * user's own workspace opens this way; nobody else's, administrators included.
 */
export function workspaceOpenHandler(deps: WorkspaceOpenDeps): RequestHandler {
  return (req, res) => {
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('Referrer-Policy', 'no-referrer');
    const workspaceParam = typeof req.query.workspace === 'string' ? req.query.workspace.toLowerCase() : undefined;
    if (workspaceParam !== undefined && !USERNAME_PATTERN.test(workspaceParam)) {
      sendMessagePage(res, 400, { title: 'No such workspace', message: 'The link does not name a workspace.' });
      return;
    }
    const read = readSessionCookie(req, deps.cookies);
    // Two session cookies (one planted by a sibling host) authenticate nobody: sign in again.
    const auth = read.kind === 'one' ? deps.sessions.authenticate(read.token, originOf(req)) : null;
    if (!auth) {
      res.redirect(302, `/login?next=${encodeURIComponent(req.originalUrl)}`);
      return;
    }
    if (auth.user.mustChangePassword) {
      res.redirect(302, '/');
      return;
    }
    const username = workspaceParam ?? auth.user.username;
    if (username !== auth.user.username) {
      deps.audit.record({
        action: 'workspace.open_refused',
        actor: actorOf(auth.user),
        target: { type: 'workspace', id: null, label: username },
        origin: originOf(req),
      });
      sendMessagePage(res, 403, {
        title: 'Access refused',
        message: `This workspace belongs to another account. You are signed in as ${auth.user.username}; each workspace opens only for its owner.`,
        link: { href: `${WORKSPACE_OPEN_PATH}`, label: 'Open your own workspace' },
      });
      return;
    }
    // The ticket is bound to a cookie the workspace host gives the browser first; without that
    // binding, the browser is sent there to get one (and comes straight back).
    const bind = typeof req.query.bind === 'string' && /^[0-9a-f]{64}$/.test(req.query.bind) ? req.query.bind : null;
    if (bind === null) {
      const login = `${deps.addresses.origin(username)}${deps.addresses.reservedPath(username, 'login')}?${new URLSearchParams({ next: safeInnerPath(req.query.next) }).toString()}`;
      res.redirect(302, login);
      return;
    }
    const { ticket } = deps.workspaceSessions.issueTicket(auth, safeInnerPath(req.query.next), bind);
    deps.audit.record({
      action: 'workspace.open',
      actor: actorOf(auth.user),
      target: { type: 'workspace', id: auth.user.id, label: username },
      origin: originOf(req),
    });
    const redeem = `${deps.addresses.origin(username)}${deps.addresses.reservedPath(username, 'redeem')}?ticket=${ticket}`;
    res.redirect(302, redeem);
  };
}
