import type { User } from '../db/repositories/userRepository';
import { RESERVED_PREFIX, safeInnerPath, type WorkspaceAddresses } from './workspaceAddresses';
import type { WorkspaceSessionService } from './workspaceSessions';

export const WORKSPACE_COOKIE = 'clawloops_ws';

/** A request for a workspace, as either front door (the built-in router, Traefik's forward-auth) sees it. */
export interface WorkspaceRequest {
  host: string | undefined;
  /** Path and query as the browser sent them. */
  uri: string;
  method: string;
  cookieHeader: string | undefined;
  /** A page load a person is looking at (GET accepting HTML, not a WebSocket): worth a redirect or a page. */
  navigation: boolean;
}

export interface WorkspaceCookie {
  name: string;
  value: string;
  path: string;
  maxAgeMs: number;
  secure: boolean;
}

export type GateDecision =
  /** Not a workspace request at all: the platform answers it. */
  | { kind: 'platform' }
  | { kind: 'invalid'; status: 400 | 404; code: string; message: string }
  /** The owner, signed in. `reserved` names a control-plane endpoint on the workspace (`start`, `events`, ...). */
  | {
      kind: 'allow';
      user: User;
      username: string;
      innerPath: string;
      reserved: string | null;
      /** The workspace session, and the platform session it derives from (and ends with). */
      sessionId: string;
      platformSessionId: string;
    }
  | { kind: 'redeemed'; cookie: WorkspaceCookie; location: string; user: User }
  | { kind: 'sign-in'; location: string }
  | { kind: 'denied'; status: 401 | 403; code: string; message: string; retryUrl: string | null };

/**
 * The one access decision for workspace traffic. Both front doors call it: the control plane's
 * built-in router before proxying, and the forward-auth endpoint Traefik asks. Nothing here
 * fails open: every branch that is not `allow` keeps the request away from the runtime.
 */
export class WorkspaceGatekeeper {
  constructor(
    private readonly addresses: WorkspaceAddresses,
    private readonly workspaceSessions: WorkspaceSessionService,
    private readonly secureCookies: boolean,
  ) {}

  decide(request: WorkspaceRequest): GateDecision {
    const queryAt = request.uri.indexOf('?');
    const path = queryAt === -1 ? request.uri : request.uri.slice(0, queryAt);
    const target = this.addresses.resolve(request.host, path);
    if (target.kind === 'platform') return { kind: 'platform' };
    if (target.kind === 'invalid') return { kind: 'invalid', status: 404, code: 'NO_SUCH_WORKSPACE', message: target.reason };
    const { username } = target;
    const innerPath = `${target.innerPath}${queryAt === -1 ? '' : request.uri.slice(queryAt)}`;
    const reserved = target.innerPath.startsWith(RESERVED_PREFIX) ? target.innerPath.slice(RESERVED_PREFIX.length) : null;
    const reopen = this.signInUrl(username, '/');

    if (reserved === 'redeem') {
      if (request.method !== 'GET' && request.method !== 'HEAD') {
        return { kind: 'denied', status: 403, code: 'TICKET_METHOD', message: 'A sign-in link is opened with GET.', retryUrl: reopen };
      }
      const query = new URLSearchParams(queryAt === -1 ? '' : request.uri.slice(queryAt + 1));
      const result = this.workspaceSessions.redeem(query.get('ticket') ?? '', username);
      if (!result.ok) return { kind: 'denied', status: 403, code: result.code, message: result.message, retryUrl: reopen };
      return {
        kind: 'redeemed',
        user: result.user,
        location: `${this.addresses.basePath(username)}${safeInnerPath(result.nextPath)}`,
        cookie: {
          name: WORKSPACE_COOKIE,
          value: result.token,
          // Host-only (no Domain attribute), and in path mode limited to this workspace's path.
          path: this.addresses.basePath(username) || '/',
          maxAgeMs: result.maxAgeMs,
          secure: this.secureCookies,
        },
      };
    }

    let otherOwner: User | null = null;
    for (const token of cookieValues(request.cookieHeader, WORKSPACE_COOKIE)) {
      const identity = this.workspaceSessions.authenticate(token);
      if (!identity) continue;
      if (identity.user.username === username) {
        return { kind: 'allow', user: identity.user, username, innerPath, reserved, sessionId: identity.session.id, platformSessionId: identity.session.sessionId };
      }
      otherOwner = identity.user;
    }
    if (otherOwner) {
      return {
        kind: 'denied',
        status: 403,
        code: 'NOT_WORKSPACE_OWNER',
        message: `This workspace belongs to another account. You are signed in as ${otherOwner.username}.`,
        retryUrl: null,
      };
    }
    if (request.navigation) return { kind: 'sign-in', location: this.signInUrl(username, reserved === null ? innerPath : '/') };
    return { kind: 'denied', status: 401, code: 'WORKSPACE_SIGN_IN_REQUIRED', message: 'Open this workspace from the platform to sign in.', retryUrl: reopen };
  }

  /** The platform endpoint that checks the platform session and hands out a ticket. */
  signInUrl(username: string, innerPath: string): string {
    const params = new URLSearchParams({ workspace: username, next: safeInnerPath(innerPath) });
    return `${this.addresses.config.platformOrigin}/_clawloops/open?${params.toString()}`;
  }
}

/** Every value of cookie `name` in a Cookie header (path mode may hold several). */
export function cookieValues(header: string | undefined, name: string): string[] {
  if (!header || header.length > 16_384) return [];
  const values: string[] = [];
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq !== -1 && part.slice(0, eq).trim() === name) {
      const value = part.slice(eq + 1).trim();
      if (value) values.push(value);
    }
    if (values.length >= 8) break;
  }
  return values;
}
