import type { User } from '../db/repositories/userRepository';
import { cookieValues } from '../lib/cookies';
import { hashSecret, newSecret } from '../lib/secrets';
import { RESERVED_PREFIX, safeInnerPath, type WorkspaceAddresses } from './workspaceAddresses';
import type { WorkspaceAuthenticator } from './workspaceAccessCache';
import type { WorkspaceSessionService } from './workspaceSessions';

export const WORKSPACE_COOKIE = 'clawloops_ws';
/** Set by a workspace host on the browser that starts a sign-in; the ticket it gets is bound to it. */
export const WORKSPACE_BIND_COOKIE = 'clawloops_ws_bind';
/** Long enough to sign in on the platform in between. */
const BIND_COOKIE_MAX_AGE_MS = 15 * 60_000;
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** A request for a workspace, as either front door (the built-in router, Traefik's forward-auth) sees it. */
export interface WorkspaceRequest {
  host: string | undefined;
  /** Path and query as the browser sent them. */
  uri: string;
  method: string;
  cookieHeader: string | undefined;
  /** The browser's Origin header, if any. */
  origin: string | undefined;
  /** A WebSocket upgrade. */
  upgrade: boolean;
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
  | { kind: 'redeemed'; cookies: WorkspaceCookie[]; location: string; user: User }
  /** To the platform to get a ticket, with the cookie the ticket will be bound to. */
  | { kind: 'sign-in'; location: string; cookies: WorkspaceCookie[] }
  | { kind: 'denied'; status: 401 | 403; code: string; message: string; retryUrl: string | null };

/**
 * The one access decision for workspace traffic. Both front doors call it: the control plane's
 * built-in router before proxying, and the forward-auth endpoint Traefik asks. Nothing here
 * fails open: every branch that is not `allow` keeps the request away from the runtime.
 */
export class WorkspaceGatekeeper {
  /** The names of the cookies workspace hosts set: `__Host-` whenever the browser allows it (https, one host per workspace). */
  readonly cookieNames: { session: string; bind: string };

  constructor(
    private readonly addresses: WorkspaceAddresses,
    private readonly workspaceSessions: WorkspaceSessionService,
    private readonly secureCookies: boolean,
    /** Checks workspace cookies; the platform passes its cache of answers (workspaceAccessCache.ts). */
    private readonly authenticator: WorkspaceAuthenticator = workspaceSessions,
  ) {
    const prefix = secureCookies && addresses.mode === 'host' ? '__Host-' : '';
    this.cookieNames = { session: `${prefix}${WORKSPACE_COOKIE}`, bind: `${prefix}${WORKSPACE_BIND_COOKIE}` };
  }

  decide(request: WorkspaceRequest): GateDecision {
    const queryAt = request.uri.indexOf('?');
    const path = queryAt === -1 ? request.uri : request.uri.slice(0, queryAt);
    const target = this.addresses.resolve(request.host, path);
    if (target.kind === 'platform') return { kind: 'platform' };
    if (target.kind === 'invalid') return { kind: 'invalid', status: 404, code: 'NO_SUCH_WORKSPACE', message: target.reason };
    const { username } = target;
    const innerPath = `${target.innerPath}${queryAt === -1 ? '' : request.uri.slice(queryAt)}`;
    const reserved = target.innerPath.startsWith(RESERVED_PREFIX) ? target.innerPath.slice(RESERVED_PREFIX.length) : null;
    // Built only for a refusal: an allowed request (nearly all of them) never needs it.
    const reopen = (): string => this.signInUrl(username, '/');

    const query = (): URLSearchParams => new URLSearchParams(queryAt === -1 ? '' : request.uri.slice(queryAt + 1));
    if (reserved === 'redeem') {
      if (request.method !== 'GET' && request.method !== 'HEAD') {
        return { kind: 'denied', status: 403, code: 'TICKET_METHOD', message: 'A sign-in link is opened with GET.', retryUrl: reopen() };
      }
      // Only the browser that started this sign-in holds the cookie the ticket was bound to: a
      // ticket someone else obtained cannot log this browser into their workspace.
      const binding = cookieValues(request.cookieHeader, this.cookieNames.bind, 2);
      const result = this.workspaceSessions.redeem(query().get('ticket') ?? '', username, binding.length === 1 ? (binding[0] ?? null) : null);
      if (!result.ok) return { kind: 'denied', status: 403, code: result.code, message: result.message, retryUrl: reopen() };
      return {
        kind: 'redeemed',
        user: result.user,
        location: `${this.addresses.basePath(username)}${safeInnerPath(result.nextPath)}`,
        cookies: [
          this.cookie(this.cookieNames.session, result.token, username, result.maxAgeMs),
          this.cookie(this.cookieNames.bind, '', username, 0),
        ],
      };
    }
    if (reserved === 'login') {
      if (request.method !== 'GET' && request.method !== 'HEAD') {
        return { kind: 'denied', status: 403, code: 'SIGN_IN_METHOD', message: 'Sign-in starts with GET.', retryUrl: reopen() };
      }
      return this.startSignIn(username, query().get('next') ?? '/');
    }

    let otherOwner: User | null = null;
    for (const token of cookieValues(request.cookieHeader, this.cookieNames.session)) {
      const identity = this.authenticator.authenticate(token);
      if (!identity) continue;
      if (identity.user.username === username) {
        // A page on another origin (another workspace, anything the agent put online) must not
        // ride on the owner's cookie: WebSockets and state-changing requests only from here.
        const own = this.addresses.origin(username);
        if ((request.upgrade || !SAFE_METHODS.has(request.method)) && request.origin !== undefined && request.origin !== own) {
          return {
            kind: 'denied',
            status: 403,
            code: 'ORIGIN_NOT_ALLOWED',
            message: `Requests to this workspace from ${request.origin.slice(0, 200)} are refused; use the workspace at ${own}.`,
            retryUrl: null,
          };
        }
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
    if (request.navigation) return this.startSignIn(username, reserved === null ? innerPath : '/');
    return { kind: 'denied', status: 401, code: 'WORKSPACE_SIGN_IN_REQUIRED', message: 'Open this workspace from the platform to sign in.', retryUrl: reopen() };
  }

  /**
   * Sends the browser to the platform for a ticket, after giving it a random cookie on this
   * workspace host; the platform binds the ticket to that cookie's hash (carried in the URL).
   */
  private startSignIn(username: string, next: string): GateDecision {
    const binding = newSecret();
    const params = new URLSearchParams({ workspace: username, next: safeInnerPath(next), bind: hashSecret(binding) });
    return {
      kind: 'sign-in',
      location: `${this.addresses.config.platformOrigin}/_clawloops/open?${params.toString()}`,
      cookies: [this.cookie(this.cookieNames.bind, binding, username, BIND_COOKIE_MAX_AGE_MS)],
    };
  }

  private cookie(name: string, value: string, username: string, maxAgeMs: number): WorkspaceCookie {
    // Host-only (no Domain attribute), and in path mode limited to this workspace's path.
    return { name, value, path: this.addresses.basePath(username) || '/', maxAgeMs, secure: this.secureCookies };
  }

  /** The platform endpoint that checks the platform session and hands out a ticket. */
  signInUrl(username: string, innerPath: string): string {
    const params = new URLSearchParams({ workspace: username, next: safeInnerPath(innerPath) });
    return `${this.addresses.config.platformOrigin}/_clawloops/open?${params.toString()}`;
  }
}
