import { Router } from 'express';
import { z } from 'zod';
import { LANGUAGES } from '../../domain/accountRules';
import type { AuthService } from '../../domain/authService';
import { notFound } from '../../lib/errors';
import { originOf, sessionOf } from '../context';
import { requireAuth } from '../middleware/authentication';
import { presentSession } from '../presenters';
import { body, idParam, parseInput, passwordField } from '../validation';
import type * as Api from '../apiTypes';

const passwordBody = body({ currentPassword: passwordField, newPassword: passwordField });
const languageBody = body({ language: z.enum(LANGUAGES, { message: `must be one of ${LANGUAGES.join(', ')}` }) });

export function accountRouter(auth: AuthService): Router {
  const router = Router();

  router.post('/password', requireAuth({ allowPendingPasswordChange: true }), async (req, res) => {
    const { currentPassword, newPassword } = parseInput(passwordBody, req.body);
    await auth.changePassword(sessionOf(req), currentPassword, newPassword, originOf(req));
    res.status(204).end();
  });

  // The language switch is on every signed-in page, the forced password change included.
  router.put('/language', requireAuth({ allowPendingPasswordChange: true }), (req, res) => {
    const { language } = parseInput(languageBody, req.body);
    auth.setLanguage(sessionOf(req), language);
    res.json({ language } satisfies Api.AccountLanguage);
  });

  router.use(requireAuth());

  router.get('/sessions', (req, res) => {
    const caller = sessionOf(req);
    res.json({ items: auth.listSessions(caller).map((s) => presentSession(s, caller.session.id)) } satisfies Api.SessionList);
  });

  router.post('/sessions/revoke-others', (req, res) => {
    res.json({ revoked: auth.revokeOtherSessions(sessionOf(req), originOf(req)) } satisfies Api.RevokedSessions);
  });

  router.delete('/sessions/:id', (req, res) => {
    const id = parseInput(idParam, req.params.id, 'path');
    if (!auth.revokeSession(sessionOf(req), id, originOf(req))) {
      throw notFound('SESSION_NOT_FOUND', 'You have no session with this id.');
    }
    res.status(204).end();
  });

  return router;
}
