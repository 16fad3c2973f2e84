import { Router, type Request } from 'express';
import type { AuthService } from '../../domain/authService';
import type { Clock } from '../../lib/clock';
import { forbidden } from '../../lib/errors';
import { originOf, requestState, sessionOf } from '../context';
import { requireAuth } from '../middleware/authentication';
import { presentApiToken, presentUser } from '../presenters';
import { clearSessionCookie, setSessionCookie, type CookiePolicy } from '../sessionCookie';
import { body, parseInput, passwordField, usernameField } from '../validation';
import type * as Api from '../apiTypes';

const loginBody = body({ username: usernameField, password: passwordField });

export function authRouter(auth: AuthService, cookies: CookiePolicy, clock: Clock, methods: Api.SignInMethods): Router {
  const router = Router();
  const signedIn = requireAuth({ allowPendingPasswordChange: true });

  // The sign-in page asks before it shows a password form or a provider's button.
  router.get('/methods', (_req, res) => {
    res.json(methods);
  });

  router.post('/login', async (req, res) => {
    if (!methods.password) throw forbidden('PASSWORD_SIGN_IN_DISABLED', 'Sign-in with a password is turned off here: use single sign-on.');
    const { username, password } = parseInput(loginBody, req.body);
    const result = await auth.login(username, password, originOf(req));
    setSessionCookie(res, result.token, cookies);
    res.json({ user: presentUser(result.user) } satisfies Api.UserAnswer);
  });

  router.post('/logout', signedIn, (req, res) => {
    auth.logout(sessionOf(req), originOf(req));
    clearSessionCookie(res, cookies);
    res.status(204).end();
  });

  const me = (req: Request): Api.Me => {
    const { auth: signedIn, token } = requestState(req);
    if (!signedIn && token) return { user: presentUser(token.user), session: null, token: presentApiToken(token.token, clock.now()) };
    const { user, session } = sessionOf(req);
    return { user: presentUser(user), session: { id: session.id, expiresAt: new Date(session.expiresAt).toISOString() } };
  };

  router.get('/me', signedIn, (req, res) => {
    res.json(me(req));
  });

  // Nobody signed in is an answer, not an error: the console asks this on every first visit.
  router.get('/session', (req, res) => {
    res.json((requestState(req).auth ? me(req) : { user: null, session: null }) satisfies Api.SessionState);
  });

  return router;
}
