import type { Request } from 'express';
import type { Logger } from '../lib/logger';
import type { RequestOrigin } from '../domain/audit';
import type { AuthenticatedSession } from '../domain/sessions';
import { unauthorized } from '../lib/errors';

/** Per-request state set by middleware; kept off `req` itself so nothing relies on globals. */
export interface RequestState {
  log: Logger;
  auth: AuthenticatedSession | null;
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

/** The signed-in caller; route guards guarantee it exists before handlers run. */
export function authOf(req: Request): AuthenticatedSession {
  const auth = requestState(req).auth;
  if (!auth) throw unauthorized('AUTH_REQUIRED', 'Sign in first.');
  return auth;
}

export function originOf(req: Request): RequestOrigin {
  return { ip: req.ip ?? null, userAgent: req.get('user-agent') ?? null };
}
