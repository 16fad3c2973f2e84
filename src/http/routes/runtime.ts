import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import type { LogLine } from '../../runtime/provisioner';
import { actorOf } from '../../domain/authService';
import { AppError } from '../../lib/errors';
import type { RuntimeEventHub } from '../../runtime/operations';
import type { RuntimeManager, StartedOperation } from '../../runtime/runtimeManager';
import { authOf, originOf } from '../context';
import { requireAuth } from '../middleware/authentication';
import type * as Api from '../apiTypes';
import type { EventStream, EventStreams, StreamOwner } from '../sse';
import { body, idParam, parseInput } from '../validation';

export interface RuntimeRouteDeps {
  manager: RuntimeManager;
  hub: RuntimeEventHub;
  streams: EventStreams;
}

const flag = z.enum(['0', '1', 'true', 'false']).transform((v) => v === '1' || v === 'true');

const deleteQuery = z.strictObject({
  purge: flag.default(false),
  confirm: z.string().max(64).optional(),
});
const deleteBody = body({ confirm: z.string().max(64).optional() });
const emptyBody = body({});

const logsQuery = z.strictObject({
  tail: z.coerce.number().int('must be a whole number').min(0).max(10_000).default(200),
  follow: flag.default(false),
});

const bulkRestartBody = body({
  userIds: z.array(idParam).min(1).max(500).optional(),
  /** Every running runtime whose config or image is out of date. */
  stale: z.literal(true).optional(),
}).refine((v) => (v.userIds === undefined) !== (v.stale === undefined), 'give either userIds or stale: true');
const bulkStopBody = body({ userIds: z.array(idParam).min(1).max(500) });

/**
 * Applies one lifecycle action to many users. Each user's outcome is reported on its own: one
 * refusal (a disabled account, an unknown id) must not hide that the others went ahead.
 */
function applyToEach(userIds: readonly string[], action: (userId: string) => StartedOperation): Api.BulkResult[] {
  return [...new Set(userIds)].map((userId) => {
    try {
      return { userId, ok: true as const, ...action(userId) };
    } catch (err) {
      if (!(err instanceof AppError)) throw err;
      return { userId, ok: false as const, error: { code: err.code, message: err.message } };
    }
  });
}

const answer = (res: Response, result: Api.StartedOperation) => res.status(result.operation ? 202 : 200).json(result);

/**
 * Streams a user's runtime state and operation progress as SSE: the current state first (with
 * the operation in flight, if any), so a client that connects mid-operation knows at once where
 * it stands. Also used by the wake page on workspace hosts.
 */
export function streamRuntimeEvents(deps: RuntimeRouteDeps, req: Request, res: Response, userId: string, owner: StreamOwner): void {
  const { manager, hub, streams } = deps;
  const initial: Api.RuntimeView = manager.viewForUser(userId);
  const stream = streams.start(req, res, owner);
  stream.send('state', initial);
  const runtimeId = initial.id ?? manager.runtimeIdForUser(userId);
  const follow = (id: string) =>
    stream.onClose(
      hub.subscribe(id, (event) => {
        if (event.type === 'progress') stream.send('progress', event.operation satisfies Api.OperationView);
        else stream.send('state', manager.viewForUser(userId) satisfies Api.RuntimeView);
      }),
    );
  if (runtimeId) follow(runtimeId);
  else {
    // No runtime yet: its first start creates one; pick it up then.
    const unsubscribe = hub.subscribeCreated(userId, (id) => {
      unsubscribe();
      follow(id);
    });
    stream.onClose(unsubscribe);
  }
}

/** Whoever opens a stream: the signed-in caller and the platform session it ends with (an admin's stream counts as the admin's). */
const callerOf = (req: Request): StreamOwner => {
  const { user, credentialId } = authOf(req);
  return { userId: user.id, sessionId: credentialId };
};

/**
 * The lifecycle endpoints of one runtime. The same router serves a member's own runtime
 * (`/runtime`) and any user's for admins (`/admin/users/:id/runtime`); only how the user id is
 * found differs.
 */
function runtimeEndpoints(deps: RuntimeRouteDeps, userIdOf: (req: Request) => string): Router {
  const { manager, streams } = deps;
  const router = Router({ mergeParams: true });

  router.get('/', (req, res) => {
    res.json(manager.viewForUser(userIdOf(req)) satisfies Api.RuntimeView);
  });

  router.post('/start', (req, res) => {
    parseInput(emptyBody, req.body ?? {});
    answer(res, manager.start(actorOf(authOf(req).user), userIdOf(req), originOf(req)));
  });

  router.post('/stop', (req, res) => {
    parseInput(emptyBody, req.body ?? {});
    answer(res, manager.stop(actorOf(authOf(req).user), userIdOf(req), originOf(req)));
  });

  router.post('/restart', (req, res) => {
    parseInput(emptyBody, req.body ?? {});
    answer(res, manager.restart(actorOf(authOf(req).user), userIdOf(req), originOf(req)));
  });

  router.delete('/', (req, res) => {
    const query = parseInput(deleteQuery, req.query, 'query');
    const fromBody = parseInput(deleteBody, req.body ?? {});
    answer(
      res,
      manager.remove(actorOf(authOf(req).user), userIdOf(req), originOf(req), { purge: query.purge, confirm: query.confirm ?? fromBody.confirm }),
    );
  });

  // One-shot memory and CPU of the running container (null when it is not running).
  router.get('/stats', async (req, res) => {
    const runtimeId = manager.runtimeIdForUser(userIdOf(req));
    res.json({ stats: runtimeId ? await manager.stats(runtimeId) : null } satisfies Api.RuntimeStats);
  });

  router.get('/events', (req, res) => {
    streamRuntimeEvents(deps, req, res, userIdOf(req), callerOf(req));
  });

  router.get('/logs', async (req, res) => {
    const query = parseInput(logsQuery, req.query, 'query');
    const owner = callerOf(req);
    streams.assertRoom(owner.userId);
    const lines = await manager.logs(userIdOf(req), query);
    let stream: EventStream;
    try {
      stream = streams.start(req, res, owner);
    } catch (err) {
      lines.destroy();
      throw err;
    }
    stream.onClose(() => lines.destroy());
    // Backpressure: a client that reads slowly stops the engine's log stream, not our memory.
    lines.on('data', (entry: LogLine) => {
      if (!stream.send('log', entry satisfies Api.LogLine)) {
        lines.pause();
        stream.onWritable(() => lines.resume());
      }
    });
    lines.on('end', () => stream.end('end', { reason: query.follow ? 'the runtime stopped' : 'end of log' }));
    lines.on('error', (err: Error) => stream.end('error', { code: 'LOGS_FAILED', message: `Reading the log failed: ${err.message}` }));
  });

  return router;
}

/** `/api/v1/runtime`: the signed-in user's own runtime. */
export function ownRuntimeRouter(deps: RuntimeRouteDeps): Router {
  const router = Router();
  router.use(requireAuth());
  router.use('/', runtimeEndpoints(deps, (req) => authOf(req).user.id));
  return router;
}

/** Admin routes: any user's runtime, and the list of all runtimes. Mounted behind the admin guard. */
export function adminRuntimeRoutes(deps: RuntimeRouteDeps): Router {
  const router = Router();
  router.use(
    '/users/:id/runtime',
    runtimeEndpoints(deps, (req) => parseInput(z.object({ id: idParam }), req.params, 'path').id),
  );
  router.get('/runtimes', (_req, res) => {
    res.json({ items: deps.manager.listWithStats() } satisfies Api.RuntimeList);
  });
  router.post('/runtimes/restart', (req, res) => {
    const input = parseInput(bulkRestartBody, req.body ?? {});
    const userIds = input.userIds ?? deps.manager.staleRunning().map((view) => view.userId);
    const actor = actorOf(authOf(req).user);
    res.json({ results: applyToEach(userIds, (userId) => deps.manager.restart(actor, userId, originOf(req))) } satisfies Api.BulkAnswer);
  });
  router.post('/runtimes/stop', (req, res) => {
    const input = parseInput(bulkStopBody, req.body ?? {});
    const actor = actorOf(authOf(req).user);
    res.json({ results: applyToEach(input.userIds, (userId) => deps.manager.stop(actor, userId, originOf(req))) } satisfies Api.BulkAnswer);
  });
  return router;
}
