import type { RuntimeFileTargets } from '../docker/fileHelpers';
import type { VolumeAccess, VolumeUse, WorkspaceVolumes } from '../files/workspaceVolumes';
import { SwarmVolumeAccess, type SwarmFileAgents } from './swarmFileAgents';

/**
 * The workspace-volume port on a swarm: every access, commands and streams alike, goes through
 * the runtime's file agent beside its volume (swarmFileAgents.ts), wherever that node is. The
 * agent serves each request in its own process or stream, so a stalled client holds up nothing
 * of the runtime's and nobody else's: there is no engine lock to keep streams away from.
 */
export class SwarmWorkspaceVolumes implements WorkspaceVolumes {
  constructor(
    private readonly agents: SwarmFileAgents,
    private readonly targets: RuntimeFileTargets,
  ) {}

  async acquire(userId: string, _use: VolumeUse): Promise<VolumeAccess> {
    const target = this.targets.fileTarget(userId);
    const { connection, release } = await this.agents.acquire({ runtimeId: target.runtimeId, userId, username: target.username });
    return new SwarmVolumeAccess(target.runtimeId, connection, release);
  }

  closeRuntime(runtimeId: string): Promise<void> {
    return this.agents.removeForRuntime(runtimeId);
  }

  closeAll(): Promise<number> {
    return this.agents.removeAll();
  }

  async closeOwn(): Promise<void> {
    await Promise.all(this.agents.runtimeIds().map((runtimeId) => this.agents.removeForRuntime(runtimeId)));
  }
}
