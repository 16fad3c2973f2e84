import type { Request } from 'express';
import type { Logger } from '../lib/logger';
import type { RequestOrigin } from '../domain/audit';
import type { AuthenticatedSession } from '../domain/sessions';
import { tokenCredentialId, type TokenAuth } from '../domain/apiTokens';
import type { User } from '../db/repositories/userRepository';
import { unauthorized } from '../lib/errors';

/** Per-request state set by middleware; kept off `req` itself so nothing relies on globals. */
export interface RequestState {
  log: Logger;
  /** A signed-in browser (the session cookie). */
  auth: AuthenticatedSession | null;
  /** A script with a personal API token (`Authorization: Bearer`); cookies are then ignored. */
  token: TokenAuth | null;
}

/** Whoever calls: a signed-in browser or a token, as the user it acts for. */
export interface Caller {
  user: User;
  /** What closes the connections it opens: a platform session id, or a token's `token:<id>`. */
  credentialId: string;
}

const STATE = new WeakMap<Request, RequestState>();

export function setRequestState(req: Request, state: RequestState): void {
  STATE.set(req, state);
}

export function requestState(req: Request): RequestState {
  const state = STATE.get(req);
  if (!state) throw new Error('request state missing: middleware order is wrong');
  return state;
}

/** The caller, by session or token; route guards guarantee one exists before handlers run. */
export function authOf(req: Request): Caller {
  const { auth, token } = requestState(req);
  if (auth) return { user: auth.user, credentialId: auth.session.id };
  if (token) return { user: token.user, credentialId: tokenCredentialId(token.token.id) };
  throw unauthorized('AUTH_REQUIRED', 'Sign in first.');
}

/** The signed-in browser's session: for what only a person at the console may do (sessions, password, tokens). */
export function sessionOf(req: Request): AuthenticatedSession {
  const auth = requestState(req).auth;
  if (!auth) throw unauthorized('AUTH_REQUIRED', 'Sign in first.');
  return auth;
}

export function originOf(req: Request): RequestOrigin {
  return { ip: req.ip ?? null, userAgent: req.get('user-agent') ?? null };
}
