import { Router } from 'express';
import { z } from 'zod';
import { LANGUAGES } from '../../domain/accountRules';
import type { InvitationService } from '../../domain/invitationService';
import { originOf } from '../context';
import { presentUser } from '../presenters';
import { setSessionCookie, type CookiePolicy } from '../sessionCookie';
import { body, displayNameField, parseInput, passwordField, usernameField } from '../validation';
import type * as Api from '../apiTypes';

const acceptBody = body({
  username: usernameField.optional(),
  password: passwordField,
  displayName: displayNameField.optional(),
  /** The console's language at acceptance: the new account's mails are written in it. */
  language: z.enum(LANGUAGES, { message: `must be one of ${LANGUAGES.join(', ')}` }).optional(),
});
const secretParam = z.string().max(200);

/** Public: the invitation secret in the path is the credential. */
export function invitationsRouter(invitations: InvitationService, cookies: CookiePolicy): Router {
  const router = Router();

  router.get('/:secret', (req, res) => {
    const invitation = invitations.preview(parseInput(secretParam, req.params.secret, 'path'));
    res.json({
      invitation: {
        role: invitation.role,
        username: invitation.username,
        email: invitation.email,
        expiresAt: new Date(invitation.expiresAt).toISOString(),
      },
    } satisfies Api.InvitationPreview);
  });

  router.post('/:secret/accept', async (req, res) => {
    const secret = parseInput(secretParam, req.params.secret, 'path');
    const input = parseInput(acceptBody, req.body);
    const signedIn = await invitations.accept(secret, input, originOf(req));
    setSessionCookie(res, signedIn.token, cookies);
    res.status(201).json({ user: presentUser(signedIn.user) } satisfies Api.UserAnswer);
  });

  return router;
}
