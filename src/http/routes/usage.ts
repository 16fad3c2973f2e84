import { Router } from 'express';
import { z } from 'zod';
import type { ModelGateway } from '../../llm/modelGateway';
import { authOf } from '../context';
import { requireAuth } from '../middleware/authentication';
import { parseInput } from '../validation';
import type * as Api from '../apiTypes';

/** `/api/v1/usage`: the signed-in user's own model usage this month (totals, per day, per model). */
export function usageRouter(gateway: ModelGateway): Router {
  const router = Router();
  router.use(requireAuth());
  router.get('/', (req, res) => {
    parseInput(z.strictObject({}), req.query, 'query');
    res.json(gateway.ownUsage(authOf(req).user.id) satisfies Api.OwnUsage);
  });
  return router;
}
