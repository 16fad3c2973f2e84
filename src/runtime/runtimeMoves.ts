import type { RuntimeRepository } from '../db/repositories/runtimeRepository';
import type { Actor, AuditLog, RequestOrigin } from '../domain/audit';
import { conflict, notFound } from '../lib/errors';
import type { Logger } from '../lib/logger';
import type { StartedOperation } from './runtimeLifecycle';
import type { NodeView, RuntimeNodes } from './runtimeNodes';
import type { RuntimeManager } from './runtimeManager';
import { ownerOf } from './runtimeViews';

export interface NodesOverview {
  /** What runs the runtimes: `docker` has one machine and no nodes to show. */
  backend: 'docker' | 'swarm';
  nodes: NodeView[];
  runtimes: { runtimeId: string; userId: string; username: string; node: string | null }[];
}

/**
 * The administrator's view of where runtimes run, and moving one to another node: the runtime
 * is stopped and held (no start can overlap) while its data is copied, as for a restore.
 */
export class RuntimeMoves {
  constructor(
    private readonly deps: {
      nodes: RuntimeNodes | null;
      manager: Pick<RuntimeManager, 'withDataHeld'>;
      runtimes: Pick<RuntimeRepository, 'list' | 'findByUserId'>;
      audit: AuditLog;
      logger: Logger;
    },
  ) {}

  async overview(): Promise<NodesOverview> {
    const { nodes } = this.deps;
    if (!nodes) return { backend: 'docker', nodes: [], runtimes: [] };
    const [list, placements] = await Promise.all([nodes.nodes(), nodes.placements()]);
    return {
      backend: 'swarm',
      nodes: list,
      runtimes: this.deps.runtimes.list().map((r) => ({ runtimeId: r.id, userId: r.userId, username: r.username, node: placements.get(r.id) ?? null })),
    };
  }

  async move(actor: Actor, origin: RequestOrigin, userId: string, node: string, copy: boolean): Promise<StartedOperation> {
    const { nodes } = this.deps;
    if (!nodes) throw conflict('SINGLE_HOST', 'Runtimes run on one machine here (CLAWLOOPS_RUNTIME_BACKEND=docker): there is no other node to move one to.');
    const runtime = this.deps.runtimes.findByUserId(userId);
    if (!runtime) throw notFound('RUNTIME_NOT_FOUND', 'This user has no runtime yet.');
    const owner = ownerOf(runtime);
    // Refused at once when it cannot work (no such node, its data on a node that is down), before the runtime is stopped for it.
    await nodes.checkMove(owner, node, { copy });
    return this.deps.manager.withDataHeld(actor, userId, origin, 'move', async (op) => {
      op.update({ step: 'moving', percent: 5, message: 'Preparing the move' });
      const result = await nodes.move(owner, node, { copy }, (progress) => {
        const share = progress.bytesTotal && progress.bytesDone !== null ? Math.min(1, progress.bytesDone / Math.max(1, progress.bytesTotal)) : 0;
        op.update({ step: 'moving', percent: 5 + Math.round(share * 85), message: progress.message, bytesDone: progress.bytesDone, bytesTotal: progress.bytesTotal });
      });
      this.deps.logger.info({ username: owner.username, ...result }, 'runtime moved to another node');
      this.deps.audit.record({
        action: 'runtime.moved',
        actor,
        target: { type: 'user', id: userId, label: owner.username },
        origin,
        detail: { from: result.from, to: result.to, copied: copy, bytes: result.bytes, operationId: op.id },
      });
    });
  }
}
