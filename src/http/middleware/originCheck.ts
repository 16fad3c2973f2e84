import type { RequestHandler } from 'express';
import { AppError, forbidden } from '../../lib/errors';
import { requestState } from '../context';
import { readSessionCookie, type CookiePolicy } from '../sessionCookie';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

function originFromReferer(referer: string | undefined): string | null {
  if (!referer) return null;
  try {
    return new URL(referer).origin;
  } catch {
    return null;
  }
}

/**
 * Cross-site request forgery guard. SameSite=Lax does not help here: workspace hosts such as
 * `alice.<domain>` are the same site as the platform, and the user's agent runs code there.
 * So every state-changing request must come from the platform's exact origin. A request with
 * neither Origin nor Referer is accepted only if it carries no session cookie (a script or
 * curl, which cannot ride on a browser's session). Requests with an API token are not checked.
 */
export function requirePlatformOrigin(platformOrigin: string, cookies: Pick<CookiePolicy, 'secure'>): RequestHandler {
  return (req, _res, next) => {
    if (SAFE_METHODS.has(req.method)) return next();
    // A token is not something a browser attaches by itself: no forgery to guard against.
    if (requestState(req).token) return next();
    const declared = req.get('origin') ?? originFromReferer(req.get('referer'));
    if (declared === platformOrigin) return next();
    if (declared === null && readSessionCookie(req, cookies).kind === 'none') return next();
    throw forbidden(
      'ORIGIN_NOT_ALLOWED',
      declared === null
        ? 'State-changing requests with a session must carry an Origin header.'
        : `Requests from ${declared.slice(0, 200)} are not allowed; use the platform at ${platformOrigin}.`,
    );
  };
}

/** Only JSON bodies are accepted; anything else is refused before parsing. */
export const requireJsonBody: RequestHandler = (req, _res, next) => {
  const hasBody = req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] ?? '0') !== '0';
  if (hasBody && !req.is('application/json')) {
    throw new AppError(415, 'UNSUPPORTED_MEDIA_TYPE', 'Send the request body as JSON with Content-Type: application/json.');
  }
  next();
};
