import type { RequestHandler, Response } from 'express';
import type { ApiTokenService, TokenAuth } from '../domain/apiTokens';
import { originOf } from '../http/context';
import { writeJsonError } from '../http/jsonError';

export const DAV_REALM = 'ClawLoops files';

const STATE = new WeakMap<object, TokenAuth>();

/** The member a WebDAV request acts for (set by davAuthentication). */
export function davCaller(req: object): TokenAuth {
  const found = STATE.get(req);
  if (!found) throw new Error('WebDAV request without authentication: middleware order is wrong');
  return found;
}

function refuse(res: Response, message: string): void {
  res.setHeader('WWW-Authenticate', `Basic realm="${DAV_REALM}", charset="UTF-8"`);
  writeJsonError(res, 401, 'DAV_AUTH_REQUIRED', message);
}

/** `Basic <base64(user:secret)>` → the two parts, or null for anything else (never a throw). */
export function parseBasic(header: string | undefined): { username: string; secret: string } | null {
  if (!header) return null;
  const match = /^Basic[ \t]+([A-Za-z0-9+/=_-]{1,1024})[ \t]*$/i.exec(header);
  if (!match?.[1]) return null;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) return null;
  return { username: decoded.slice(0, colon), secret: decoded.slice(colon + 1) };
}

/**
 * WebDAV clients speak HTTP Basic only: the username and an app password, which is a personal
 * API token with the `files` scope. The login password is never accepted (a token is not a
 * password: it is random, revocable, and scoped), and cookies are ignored, so a browser on
 * another site can never ride a console session into the files.
 */
export function davAuthentication(tokens: ApiTokenService): RequestHandler {
  return (req, res, next) => {
    const basic = parseBasic(req.get('authorization'));
    if (!basic) return refuse(res, 'Sign in with your username and an app password (an API token with the "files" scope).');
    const found = tokens.authenticate(basic.secret, originOf(req));
    if (!found || found.user.username.toLowerCase() !== basic.username.toLowerCase()) {
      return refuse(res, 'The username or app password is wrong, or the app password was revoked or has expired.');
    }
    if (!found.token.scopes.includes('files')) return refuse(res, 'This API token does not have the "files" scope.');
    STATE.set(req, found);
    next();
  };
}
