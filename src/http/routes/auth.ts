import { Router, type Request } from 'express';
import type { AuthService } from '../../domain/authService';
import type { Clock } from '../../lib/clock';
import { originOf, requestState, sessionOf } from '../context';
import { requireAuth } from '../middleware/authentication';
import { presentApiToken, presentUser } from '../presenters';
import { clearSessionCookie, setSessionCookie, type CookiePolicy } from '../sessionCookie';
import { body, parseInput, passwordField, usernameField } from '../validation';
import type * as Api from '../apiTypes';

const loginBody = body({ username: usernameField, password: passwordField });

export function authRouter(auth: AuthService, cookies: CookiePolicy, clock: Clock): Router {
  const router = Router();
  const signedIn = requireAuth({ allowPendingPasswordChange: true });

  router.post('/login', async (req, res) => {
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
