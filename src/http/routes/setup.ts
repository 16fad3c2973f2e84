import { Router } from 'express';
import { z } from 'zod';
import type { SetupService } from '../../domain/setupService';
import { originOf } from '../context';
import { presentUser } from '../presenters';
import { setSessionCookie, type CookiePolicy } from '../sessionCookie';
import { body, displayNameField, emailField, parseInput, passwordField, usernameField } from '../validation';
import type * as Api from '../apiTypes';

const setupBody = body({
  token: z.string().min(1, 'required').max(200),
  username: usernameField,
  password: passwordField,
  displayName: displayNameField.optional(),
  email: emailField.optional(),
});

export function setupRouter(setup: SetupService, cookies: CookiePolicy): Router {
  const router = Router();

  router.get('/', (_req, res) => {
    res.json({ needed: setup.isNeeded() } satisfies Api.SetupStatus);
  });

  router.post('/', async (req, res) => {
    const { token, ...input } = parseInput(setupBody, req.body);
    const signedIn = await setup.complete(token, input, originOf(req));
    setSessionCookie(res, signedIn.token, cookies);
    res.status(201).json({ user: presentUser(signedIn.user) } satisfies Api.UserAnswer);
  });

  return router;
}
