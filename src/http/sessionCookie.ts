import type { Request, Response } from 'express';
import { cookieValues } from '../lib/cookies';
import { AppError } from '../lib/errors';

/** Over plain http. A sibling host (a workspace page) can set a cookie of this name for the whole domain. */
export const SESSION_COOKIE = 'clawloops_session';
/**
 * Over https. The browser accepts a `__Host-` cookie only from the platform's own host, Secure, on
 * Path=/, without a Domain: no workspace host can plant or shadow it.
 */
export const SECURE_SESSION_COOKIE = '__Host-clawloops_session';

export interface CookiePolicy {
  secure: boolean;
  maxAgeMs: number;
  /** The platform's host name: where a planted domain-wide copy would have been set. */
  host: string;
}

export const sessionCookieName = (policy: Pick<CookiePolicy, 'secure'>): string => (policy.secure ? SECURE_SESSION_COOKIE : SESSION_COOKIE);

export type SessionCookieRead = { kind: 'none' } | { kind: 'one'; token: string } | { kind: 'conflict' };

/**
 * The session cookie of a request. Two of them mean a second one was planted (a page on another
 * host of the domain can set one for the whole domain, and the browser then sends both, in an
 * order the page can influence): such a request is never authenticated with either.
 */
export function readSessionCookie(req: Request, policy: Pick<CookiePolicy, 'secure'>): SessionCookieRead {
  const values = cookieValues(req.headers.cookie, sessionCookieName(policy), 2);
  if (values.length === 0) return { kind: 'none' };
  if (values.length > 1) return { kind: 'conflict' };
  return { kind: 'one', token: values[0] as string };
}

export function setSessionCookie(res: Response, token: string, policy: CookiePolicy): void {
  res.cookie(sessionCookieName(policy), token, {
    httpOnly: true,
    sameSite: 'lax',
    path: '/',
    secure: policy.secure,
    maxAge: policy.maxAgeMs,
  });
}

export function clearSessionCookie(res: Response, policy: CookiePolicy): void {
  res.clearCookie(sessionCookieName(policy), { httpOnly: true, sameSite: 'lax', path: '/', secure: policy.secure });
}

/**
 * Answers a request that carries two session cookies: both are expired where a page could have
 * put them (host-only and domain-wide, on the request's path and its parents), and the client is
 * told to sign in again.
 */
export function refuseCookieConflict(req: Request, res: Response, policy: CookiePolicy): never {
  const name = sessionCookieName(policy);
  const segments = (req.originalUrl.split('?')[0] ?? '/').split('/').filter(Boolean).slice(0, 6);
  const paths = ['/', ...segments.map((_, i) => `/${segments.slice(0, i + 1).join('/')}`)];
  for (const path of paths) {
    res.append('Set-Cookie', `${name}=; Path=${path}; Max-Age=0; HttpOnly; SameSite=Lax${policy.secure ? '; Secure' : ''}`);
    // A __Host- cookie cannot carry a Domain, so only the plain name can have a domain-wide copy.
    if (!policy.secure) res.append('Set-Cookie', `${name}=; Path=${path}; Domain=${policy.host}; Max-Age=0; HttpOnly; SameSite=Lax`);
  }
  throw new AppError(
    400,
    'SESSION_COOKIE_CONFLICT',
    'This browser sent two session cookies for this site; one may have been set by a page on another host of this domain. Both were cleared: sign in again.',
  );
}
