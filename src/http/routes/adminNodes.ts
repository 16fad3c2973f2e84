import { Router } from 'express';
import { z } from 'zod';
import { actorOf } from '../../domain/authService';
import type { RuntimeMoves } from '../../runtime/runtimeMoves';
import type * as Api from '../apiTypes';
import { authOf, originOf } from '../context';
import { body, idParam, parseInput } from '../validation';

const moveBody = body({
  node: z.string().min(1).max(128),
  /** False moves the runtime without its data (its node is lost; restore it from a backup after). */
  copy: z.boolean().default(true),
});

/** `/admin/nodes` and moving a runtime between nodes, mounted behind the admin guard. */
export function adminNodesRoutes(moves: RuntimeMoves): Router {
  const router = Router();
  router.get('/nodes', async (_req, res) => {
    res.json((await moves.overview()) satisfies Api.NodesOverview);
  });
  router.post('/users/:id/runtime/move', async (req, res) => {
    const { id } = parseInput(z.object({ id: idParam }), req.params, 'path');
    const input = parseInput(moveBody, req.body ?? {});
    const started = await moves.move(actorOf(authOf(req).user), originOf(req), id, input.node, input.copy);
    res.status(started.operation ? 202 : 200).json(started satisfies Api.StartedOperation);
  });
  return router;
}
