import { Router } from 'express';
import type { AuthService } from '../../domain/authService';
import { authOf, originOf } from '../context';
import { requireAuth } from '../middleware/authentication';
import { presentUser } from '../presenters';
import { clearSessionCookie, setSessionCookie, type CookiePolicy } from '../sessionCookie';
import { body, parseInput, passwordField, usernameField } from '../validation';
import type * as Api from '../apiTypes';

const loginBody = body({ username: usernameField, password: passwordField });

export function authRouter(auth: AuthService, cookies: CookiePolicy): Router {
  const router = Router();
  const signedIn = requireAuth({ allowPendingPasswordChange: true });

  router.post('/login', async (req, res) => {
    const { username, password } = parseInput(loginBody, req.body);
    const result = await auth.login(username, password, originOf(req));
    setSessionCookie(res, result.token, cookies);
    res.json({ user: presentUser(result.user) } satisfies Api.UserAnswer);
  });

  router.post('/logout', signedIn, (req, res) => {
    auth.logout(authOf(req), originOf(req));
    clearSessionCookie(res, cookies);
    res.status(204).end();
  });

  router.get('/me', signedIn, (req, res) => {
    const { user, session } = authOf(req);
    res.json({ user: presentUser(user), session: { id: session.id, expiresAt: new Date(session.expiresAt).toISOString() } } satisfies Api.Me);
  });

  return router;
}
