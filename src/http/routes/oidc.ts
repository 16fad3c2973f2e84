import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import { cookieValues } from '../../lib/cookies';
import { AppError, notFound } from '../../lib/errors';
import { OidcRefusal, type OidcSignIn } from '../../oidc/oidcSignIn';
import { originOf, requestState } from '../context';
import { setSessionCookie, type CookiePolicy } from '../sessionCookie';
import { parseInput } from '../validation';

/** The console page that explains a refused sign-in (web/src/pages/entryPages.tsx). */
export const REFUSED_PAGE = '/sign-in-refused';

const TRANSACTION_MAX_AGE_MS = 10 * 60_000;

// A path of this origin only (no scheme, no host, no `//` or `\` that a browser reads as one).
const returnPath = z
  .string()
  .max(1000)
  .regex(/^\/(?![/\\])[\x21-\x7e]*$/, 'must be a path of this site')
  .refine((v) => !v.includes('\\'), 'must be a path of this site');
const startQuery = z.object({ next: returnPath.optional() });

/**
 * The browser's half of a sign-in in progress: an HttpOnly cookie with the secret its pending
 * transaction is kept under. Over https a `__Host-` cookie, which no sibling host can plant (a
 * planted one would sign the victim in as the attacker); over http it is scoped to these routes.
 */
function transactionCookie(cookies: CookiePolicy): { name: string; path: string } {
  return cookies.secure ? { name: '__Host-clawloops_oidc', path: '/' } : { name: 'clawloops_oidc', path: '/api/v1/auth/oidc' };
}

function readTransactionCookie(req: Request, cookies: CookiePolicy): string | null {
  const values = cookieValues(req.headers.cookie, transactionCookie(cookies).name, 2);
  // Two of them: one was planted; neither is trusted.
  return values.length === 1 ? (values[0] as string) : null;
}

function clearTransactionCookie(res: Response, cookies: CookiePolicy): void {
  const { name, path } = transactionCookie(cookies);
  res.clearCookie(name, { httpOnly: true, sameSite: 'lax', path, secure: cookies.secure });
}

export function oidcRouter(signIn: OidcSignIn, cookies: CookiePolicy): Router {
  const router = Router();

  router.get('/start', async (req, res) => {
    const { next } = parseInput(startQuery, req.query, 'query');
    let started: { url: string; browserSecret: string };
    try {
      started = await signIn.start(next ?? null, originOf(req));
    } catch (err) {
      // A navigation, not a fetch: the browser gets a page saying why, not a JSON error.
      if (err instanceof AppError && err.status >= 500) return res.redirect(303, `${REFUSED_PAGE}?reason=unavailable`);
      throw err;
    }
    const { url, browserSecret } = started;
    const { name, path } = transactionCookie(cookies);
    // Lax: the provider sends the browser back with a top-level GET, which carries Lax cookies.
    res.cookie(name, browserSecret, { httpOnly: true, sameSite: 'lax', path, secure: cookies.secure, maxAge: TRANSACTION_MAX_AGE_MS });
    res.redirect(303, url);
  });

  router.get('/callback', async (req, res) => {
    const secret = readTransactionCookie(req, cookies);
    clearTransactionCookie(res, cookies);
    // The URL the provider redirected to, rebuilt from the configured one: never from Host headers.
    const callbackUrl = new URL(signIn.settings.redirectUri);
    const query = req.originalUrl.indexOf('?');
    callbackUrl.search = query === -1 ? '' : req.originalUrl.slice(query);
    try {
      const { signedIn, returnTo } = await signIn.complete(secret, callbackUrl, originOf(req));
      setSessionCookie(res, signedIn.token, cookies);
      res.redirect(303, returnTo ?? '/');
    } catch (err) {
      if (err instanceof OidcRefusal) return res.redirect(303, `${REFUSED_PAGE}?reason=${err.reason}`);
      // A navigation: the browser gets a page, not JSON (a username an invitation fixed was taken
      // meanwhile, the password-hashing queue was full…). Anything else is a bug: the error handler's 500.
      if (err instanceof AppError) {
        requestState(req).log.warn({ code: err.code }, 'single sign-on callback refused');
        return res.redirect(303, `${REFUSED_PAGE}?reason=${err.status >= 500 ? 'unavailable' : 'failed'}`);
      }
      throw err;
    }
  });

  // After ClawLoops' own sign-out: the provider's, so the next sign-in asks for credentials again.
  router.get('/end-session', async (req, res) => {
    const url = await signIn.endSessionUrl(originOf(req));
    if (!url) throw notFound('NO_END_SESSION', 'The sign-in provider has no sign-out page.');
    res.redirect(303, url);
  });

  return router;
}
