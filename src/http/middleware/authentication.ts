import type { RequestHandler } from 'express';
import type { SessionService } from '../../domain/sessions';
import { forbidden, unauthorized } from '../../lib/errors';
import { originOf, requestState } from '../context';
import { readSessionCookie, refuseCookieConflict, type CookiePolicy } from '../sessionCookie';

/** Resolves the session cookie (if any) to the caller; refuses only a request with two of them (one was planted). */
export function loadSession(sessions: SessionService, cookies: CookiePolicy): RequestHandler {
  return (req, res, next) => {
    // A token request is authenticated by its token alone (apiTokenAuth.ts).
    if (requestState(req).token) return next();
    const read = readSessionCookie(req, cookies);
    if (read.kind === 'conflict') refuseCookieConflict(req, res, cookies);
    if (read.kind === 'one') requestState(req).auth = sessions.authenticate(read.token, originOf(req));
    next();
  };
}

export interface AuthRequirement {
  /** Routes a user with a forced password change may still call (me, logout, change password). */
  allowPendingPasswordChange?: boolean;
  adminOnly?: boolean;
}

export function requireAuth(requirement: AuthRequirement = {}): RequestHandler {
  return (req, _res, next) => {
    const { auth: session, token } = requestState(req);
    const auth = session ?? token;
    if (!auth) throw unauthorized('AUTH_REQUIRED', 'Sign in first.');
    if (auth.user.mustChangePassword && !requirement.allowPendingPasswordChange) {
      throw forbidden('PASSWORD_CHANGE_REQUIRED', 'You must change your password before doing anything else.');
    }
    if (requirement.adminOnly && auth.user.role !== 'admin') {
      throw forbidden('ADMIN_REQUIRED', 'Only administrators can do this.');
    }
    next();
  };
}
