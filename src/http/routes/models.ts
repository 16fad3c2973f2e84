import { Router } from 'express';
import { z } from 'zod';
import { actorOf } from '../../domain/authService';
import type { ModelCatalog } from '../../llm/modelCatalog';
import type { ModelGateway } from '../../llm/modelGateway';
import type { RuntimeManager } from '../../runtime/runtimeManager';
import { authOf, originOf } from '../context';
import { requireAuth } from '../middleware/authentication';
import { body, parseInput } from '../validation';
import type * as Api from '../apiTypes';

const modelId = z.string().regex(/^[\w.:/-]{1,100}$/, 'must be 1-100 letters, digits or . _ : / -');
const tokens = z.number().int('must be a whole number').min(1).max(10_000_000).nullable();
const price = z.number().min(0).max(10_000);
const modelBody = body({
  upstreamModel: modelId.optional(),
  displayName: z.string().min(1).max(100).optional(),
  enabled: z.boolean().optional(),
  isDefault: z.boolean().optional(),
  contextWindow: tokens.optional(),
  maxTokens: tokens.optional(),
  /** US dollars per million tokens. */
  inputPricePerMTok: price.optional(),
  outputPricePerMTok: price.optional(),
});

/** `/api/v1/models`: the models the signed-in user's runtime may use. */
export function ownModelsRouter(catalog: ModelCatalog): Router {
  const router = Router();
  router.use(requireAuth());
  router.get('/', (_req, res) => {
    res.json({ models: catalog.available() } satisfies Api.AvailableModels);
  });
  return router;
}

/** `/admin/models`: the catalog with what the upstream offers; changes are audited. Behind the admin guard. */
export function adminModelRoutes(catalog: ModelCatalog, gateway: ModelGateway, runtimes: Pick<RuntimeManager, 'staleRunning'>): Router {
  // Running runtimes keep the model list they started with; the admin sees which, and can
  // restart them (POST /admin/runtimes/restart {"stale": true}).
  const staleRuntimes = (): Api.StaleRuntime[] => runtimes.staleRunning().map((view) => ({ userId: view.userId, username: view.username }));
  const router = Router();
  router.get('/models', async (_req, res) => {
    let upstream: string[] | null = null;
    let upstreamError: string | null = null;
    try {
      upstream = await gateway.upstreamModels();
    } catch (err) {
      upstreamError = (err as Error).message;
    }
    res.json({ models: catalog.list(), upstream, upstreamError, staleRuntimes: staleRuntimes() } satisfies Api.AdminModels);
  });
  router.put('/models/:id', (req, res) => {
    const id = parseInput(modelId, req.params.id, 'path');
    const input = parseInput(modelBody, req.body ?? {});
    const { inputPricePerMTok, outputPricePerMTok, ...rest } = input;
    const change = {
      ...Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)),
      ...(inputPricePerMTok !== undefined ? { inputMicrodollarsPerMTok: Math.round(inputPricePerMTok * 1e6) } : {}),
      ...(outputPricePerMTok !== undefined ? { outputMicrodollarsPerMTok: Math.round(outputPricePerMTok * 1e6) } : {}),
    };
    res.json({ model: catalog.save(actorOf(authOf(req).user), id, change, originOf(req)), staleRuntimes: staleRuntimes() } satisfies Api.SavedModel);
  });
  router.delete('/models/:id', (req, res) => {
    catalog.remove(actorOf(authOf(req).user), parseInput(modelId, req.params.id, 'path'), originOf(req));
    res.json({ staleRuntimes: staleRuntimes() } satisfies Api.ModelChangeAnswer);
  });
  return router;
}
