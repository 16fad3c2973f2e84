import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { Transform } from 'node:stream';
import { rebaseArchive } from '../backup/workspaceRestore';
import { LABELS } from '../docker/runtimeBackend';
import { RUNTIME_ROLE } from '../docker/runtimeContainer';
import { RESTORE_DIR } from '../files/agent/protocol';
import type { FileAgentClient } from '../files/agentClient';
import { conflict } from '../lib/errors';
import type { Logger } from '../lib/logger';
import type { RuntimeOwner } from '../runtime/provisioner';
import type { MoveProgress, MoveResult, NodeView, RuntimeNodes } from '../runtime/runtimeNodes';
import { OPENCLAW_HOME } from '../runtime/runtimeSettings';
import { ANY_NODE, NODE_LABEL } from './runtimeService';
import type { NodeSnapshot, SwarmEngine } from './swarmEngine';
import { SwarmVolumeAccess, type SwarmFileAgents } from './swarmFileAgents';
import type { SwarmRuntimeProvisioner } from './swarmRuntimeProvisioner';

const REPORT_EVERY_BYTES = 8 * 1024 ** 2;

/**
 * The swarm's nodes and moving a runtime between them. A node-local volume cannot follow its
 * runtime, so a move copies it: a file agent on the old node streams the volume as tar to one on
 * the new node, which unpacks it beside whatever that node held under the volume's name and
 * swaps the two trees only once every byte is in (the workspace restore's swap,
 * files/agent/volumeSwap.ts). Only then is the runtime re-pinned and the old node's copy
 * removed: a failure anywhere before leaves the runtime where it was, with its data.
 */
export class SwarmRuntimeNodes implements RuntimeNodes {
  constructor(
    private readonly engine: SwarmEngine,
    private readonly provisioner: SwarmRuntimeProvisioner,
    private readonly agents: SwarmFileAgents,
    private readonly agentClient: FileAgentClient,
    private readonly logger: Logger,
  ) {}

  nodes(): Promise<NodeView[]> {
    return this.provisioner.nodeLoads();
  }

  async placements(): Promise<Map<string, string>> {
    const placements = new Map<string, string>();
    for (const overlay of await this.engine.listOverlays()) {
      const runtimeId = overlay.labels[LABELS.runtimeId];
      if (runtimeId) placements.set(runtimeId, overlay.labels[NODE_LABEL] ?? ANY_NODE);
    }
    return placements;
  }

  async checkMove(owner: RuntimeOwner, node: string, options: { copy: boolean }): Promise<void> {
    await this.planMove(owner, node, options);
  }

  /** Where the runtime is and where it goes, once both are known to allow the move. */
  private async planMove(owner: RuntimeOwner, node: string, options: { copy: boolean }): Promise<{ from: string | null; source: NodeSnapshot | undefined; target: NodeSnapshot }> {
    const nodes = await this.engine.listNodes();
    const target = nodes.find((n) => n.id === node || n.hostname === node);
    if (!target) throw conflict('NODE_NOT_FOUND', `No node ${node} in the swarm.`);
    if (target.state !== 'ready' || target.availability !== 'active') {
      throw conflict('NODE_UNAVAILABLE', `The node ${target.hostname} is ${target.state !== 'ready' ? target.state : `set to ${target.availability}`}: a runtime cannot move there now.`);
    }
    const from = await this.provisioner.pinnedNode(owner.runtimeId);
    if (from === ANY_NODE) throw conflict('RUNTIME_NOT_PINNED', 'Workspaces are on shared storage: this runtime runs on any node and has nothing to move.');
    if (from === target.id) throw conflict('RUNTIME_ALREADY_THERE', `The runtime is on ${target.hostname} already.`);
    const source = from ? nodes.find((n) => n.id === from) : undefined;
    if (options.copy && from && source?.state !== 'ready') {
      throw conflict(
        'SOURCE_NODE_DOWN',
        `The runtime's data is on ${source?.hostname ?? 'a node that left the swarm'}, which is ${source?.state ?? 'gone'}: it cannot be copied. Move it without its data and restore it from a backup, or bring the node back.`,
      );
    }
    return { from, source, target };
  }

  async move(owner: RuntimeOwner, node: string, options: { copy: boolean }, onProgress: (progress: MoveProgress) => void): Promise<MoveResult> {
    const { from, source, target } = await this.planMove(owner, node, options);

    // Nothing may hold the volume or the overlay meanwhile: the runtime's service (it is stopped)
    // and its usual file agent go; the next start makes a new service where the runtime is pinned.
    await this.agents.removeForRuntime(owner.runtimeId);
    for (const service of await this.engine.listServices()) {
      if (service.labels[LABELS.runtimeId] === owner.runtimeId && service.labels[LABELS.role] === RUNTIME_ROLE) await this.provisioner.removeInstance(service.id);
    }

    let bytes: number | null = null;
    if (options.copy && from) bytes = await this.copy(owner, from, target.id, onProgress);
    onProgress({ message: `Pinning the runtime to ${target.hostname}`, bytesDone: bytes, bytesTotal: bytes });
    await this.provisioner.repin(owner, target.id);
    if (options.copy && from) {
      onProgress({ message: `Removing the old copy from ${source?.hostname ?? from}`, bytesDone: bytes, bytesTotal: bytes });
      await this.provisioner.removeDataOn(owner.runtimeId, from).catch((err: unknown) => {
        this.logger.warn({ runtimeId: owner.runtimeId, node: from, err: (err as Error).message }, 'the old copy of a moved runtime could not be removed from its node');
      });
    }
    return { from: source?.hostname ?? from ?? 'none', to: target.hostname, bytes };
  }

  /** Copies the volume from one node to the other; resolves with the bytes streamed. */
  private async copy(owner: RuntimeOwner, from: string, to: string, onProgress: (progress: MoveProgress) => void): Promise<number> {
    const source = await this.agents.acquireOn(owner, from, 'from');
    try {
      const target = await this.agents.acquireOn(owner, to, 'to');
      try {
        const sourceAccess = new SwarmVolumeAccess(owner.runtimeId, source.connection, () => undefined);
        const targetAccess = new SwarmVolumeAccess(owner.runtimeId, target.connection, () => undefined);
        const usage = await this.agentClient.run<{ bytes: number }>(sourceAccess, { op: 'usage', root: OPENCLAW_HOME });
        await this.agentClient.run(sourceAccess, { op: 'clearRestores', volumeRoot: OPENCLAW_HOME });
        await this.agentClient.run(targetAccess, { op: 'clearRestores', volumeRoot: OPENCLAW_HOME });
        const archive = await source.connection.readArchive(OPENCLAW_HOME);
        if (!archive) throw new Error('the runtime has no data on its node to copy');
        let bytes = 0;
        let reported = 0;
        onProgress({ message: 'Copying the workspace to its new node', bytesDone: 0, bytesTotal: usage.bytes });
        const counted = archive.pipe(
          new Transform({
            transform(chunk: Buffer, _e, done) {
              bytes += chunk.length;
              if (bytes - reported >= REPORT_EVERY_BYTES) {
                reported = bytes;
                onProgress({ message: 'Copying the workspace to its new node', bytesDone: bytes, bytesTotal: usage.bytes });
              }
              done(null, chunk);
            },
          }),
        );
        archive.on('error', (err) => counted.destroy(err));
        const id = randomUUID();
        await targetAccess.writeArchive(OPENCLAW_HOME, rebaseArchive(counted, path.posix.basename(OPENCLAW_HOME), `${RESTORE_DIR}/${id}`), target.connection.signal);
        onProgress({ message: 'Putting the copied files in place', bytesDone: bytes, bytesTotal: usage.bytes });
        await this.agentClient.run(targetAccess, { op: 'swapVolume', volumeRoot: OPENCLAW_HOME, id });
        await this.agentClient.run(targetAccess, { op: 'clearRestores', volumeRoot: OPENCLAW_HOME });
        return bytes;
      } finally {
        await target.release();
      }
    } finally {
      await source.release();
    }
  }
}
