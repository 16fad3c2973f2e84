import type { RequestHandler } from 'express';
import type { SessionService } from '../../domain/sessions';
import { forbidden, unauthorized } from '../../lib/errors';
import { originOf, requestState } from '../context';
import { readSessionCookie } from '../sessionCookie';

/** Resolves the session cookie (if any) to the caller; never rejects by itself. */
export function loadSession(sessions: SessionService): RequestHandler {
  return (req, _res, next) => {
    const token = readSessionCookie(req);
    if (token) requestState(req).auth = sessions.authenticate(token, originOf(req));
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
    const auth = requestState(req).auth;
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
