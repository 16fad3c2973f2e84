import { Router } from 'express';
import { z } from 'zod';
import { actorOf } from '../../domain/authService';
import { IMAGE_PATTERN } from '../../domain/platformSettings';
import type { ImageRollout } from '../../runtime/imageRollout';
import { authOf, originOf } from '../context';
import { body, idParam, parseInput } from '../validation';
import type * as Api from '../apiTypes';

const rolloutBody = body({
  image: z.string().max(255).regex(IMAGE_PATTERN, 'must be an image reference pinned by tag, e.g. ghcr.io/openclaw/openclaw:2026.9.6 (no digest)'),
  canaryUserId: idParam.optional(),
});

/** `/admin/runtimes/rollout`, behind the admin guard: move running runtimes onto a new image, health-gated, and follow it. */
export function adminRolloutRoutes(rollout: ImageRollout): Router {
  const router = Router();
  router.get('/runtimes/rollout', (_req, res) => {
    res.json({ rollout: rollout.current } satisfies Api.RolloutAnswer);
  });
  router.post('/runtimes/rollout', (req, res) => {
    const input = parseInput(rolloutBody, req.body ?? {});
    res.status(202).json({ rollout: rollout.start(actorOf(authOf(req).user), originOf(req), input) } satisfies Api.RolloutAnswer);
  });
  return router;
}
