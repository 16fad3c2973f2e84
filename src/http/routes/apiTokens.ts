import { Router } from 'express';
import { z } from 'zod';
import { API_TOKEN_SCOPES } from '../../db/repositories/apiTokenRepository';
import { MAX_TOKEN_DAYS, type ApiTokenService } from '../../domain/apiTokens';
import type { Clock } from '../../lib/clock';
import { originOf, sessionOf } from '../context';
import { requireAuth } from '../middleware/authentication';
import { presentApiToken } from '../presenters';
import { body, idParam, parseInput } from '../validation';
import type * as Api from '../apiTypes';

const newTokenBody = body({
  name: z
    .string()
    .trim()
    .min(1, 'must not be empty')
    .max(100, 'must be at most 100 characters')
    .regex(/^\P{Cc}*$/u, 'must not contain control characters'),
  scopes: z.array(z.enum(API_TOKEN_SCOPES)).min(1, 'choose at least one scope').max(API_TOKEN_SCOPES.length),
  expiresInDays: z.number().int('must be a whole number of days').min(1).max(MAX_TOKEN_DAYS),
});

/** `/api/v1/account/tokens`: a signed-in person's own API tokens (never reachable with a token). */
export function apiTokensRouter(tokens: ApiTokenService, clock: Clock): Router {
  const router = Router();
  router.use(requireAuth());

  router.get('/', (req, res) => {
    const now = clock.now();
    res.json({ items: tokens.list(sessionOf(req).user.id).map((t) => presentApiToken(t, now)) } satisfies Api.ApiTokenList);
  });

  router.post('/', (req, res) => {
    const input = parseInput(newTokenBody, req.body);
    const { token, secret } = tokens.create(sessionOf(req).user, input, originOf(req));
    res.status(201).json({ token: presentApiToken(token, clock.now()), secret } satisfies Api.CreatedApiToken);
  });

  router.delete('/:id', (req, res) => {
    tokens.revoke(sessionOf(req).user, parseInput(idParam, req.params.id, 'path'), originOf(req));
    res.status(204).end();
  });

  return router;
}
