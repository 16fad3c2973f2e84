import type { RequestHandler } from 'express';
import type { ApiTokenScope } from '../../db/repositories/apiTokenRepository';
import type { ApiTokenService } from '../../domain/apiTokens';
import { forbidden, unauthorized } from '../../lib/errors';
import { bearerCredential } from '../bearer';
import { originOf, requestState } from '../context';

const READS = new Set(['GET', 'HEAD']);

/**
 * The scopes that admit a token to a request under /api/v1 (any one of them is enough), or null
 * when no token may make it. Deny by default: accounts, sessions, tokens themselves, invitations
 * and setup are for a person at the console, and a path this does not know is refused, whatever
 * route it would reach. Express matches routes case-insensitively, so this does too.
 */
export function scopesAdmitting(method: string, apiPath: string): readonly ApiTokenScope[] | 'any' | null {
  const path = apiPath.toLowerCase();
  const under = (prefix: string): boolean => path === prefix || path.startsWith(`${prefix}/`);
  const read = READS.has(method);
  if (under('/admin')) return ['admin'];
  if (under('/runtime')) return read ? ['read', 'runtime'] : ['runtime'];
  if (under('/files')) return read ? ['read', 'files'] : ['files'];
  if (under('/usage') || under('/models') || under('/egress')) return read ? ['read'] : null;
  if (path === '/auth/me' || path === '/auth/me/') return read ? 'any' : null;
  return null;
}

/**
 * A request with `Authorization: Bearer` is a script's: it is authenticated by its token alone
 * (any cookie is ignored, so a token request never rides on a browser session) and refused
 * outright when the token does not work; it never falls back to the cookie. Other schemes are
 * not ours (a proxy in front may use Basic for itself) and are left alone.
 */
export function loadApiToken(tokens: ApiTokenService): RequestHandler {
  return (req, res, next) => {
    const header = req.get('authorization');
    if (header === undefined || !/^bearer\b/i.test(header.trimStart())) return next();
    res.setHeader('WWW-Authenticate', 'Bearer realm="ClawLoops API"');
    const secret = bearerCredential(header);
    if (secret === null) throw unauthorized('TOKEN_INVALID', 'Send a personal API token as "Authorization: Bearer <token>".');
    const found = tokens.authenticate(secret, originOf(req));
    if (!found) throw unauthorized('TOKEN_INVALID', 'This API token is unknown, expired or revoked, or its account is disabled.');
    requestState(req).token = found;
    next();
  };
}

/** Holds token requests to their scopes; requests with a session cookie pass untouched. */
export const requireTokenScope: RequestHandler = (req, _res, next) => {
  const token = requestState(req).token?.token;
  if (!token) return next();
  const admitting = scopesAdmitting(req.method, req.path);
  if (admitting === null) {
    throw forbidden('TOKEN_NOT_ALLOWED', 'API tokens cannot do this; sign in to the console instead.');
  }
  if (admitting !== 'any' && !admitting.some((scope) => token.scopes.includes(scope))) {
    throw forbidden('TOKEN_SCOPE_MISSING', `This API token needs the ${admitting.map((s) => `"${s}"`).join(' or ')} scope for this request.`);
  }
  next();
};
