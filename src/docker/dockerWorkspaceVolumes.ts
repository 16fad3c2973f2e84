import type { Readable } from 'node:stream';
import type { AgentLimits, AgentRun, EngineArchiveRequest, VolumeAccess, VolumeUse, WorkspaceVolumes } from '../files/workspaceVolumes';
import { RUNTIME_UID } from '../runtime/runtimeSettings';
import { typedEngineCall } from './engineFaults';
import { FileHelpers, type FileHelpersDeps, type FileHostLease } from './fileHelpers';
import type { RuntimeBackend } from './runtimeBackend';

/**
 * The workspace-volume port on a Docker engine: the file agent runs by `docker exec` (`node -e`,
 * as uid 1000) in the user's runtime while it runs and in a file helper otherwise; archive
 * streams go through the engine's archive API, always into the helper (fileHelpers.ts says why).
 * Every engine failure leaves typed (engineFaults.ts).
 */
export class DockerWorkspaceVolumes implements WorkspaceVolumes {
  /** Docker's own view, for the engine tests: which container a lease reaches the volume through. */
  readonly helpers: FileHelpers;

  constructor(
    private readonly deps: FileHelpersDeps & {
      /** The bundled file agent (files/agentScript.ts). */
      agentScript: () => Promise<string>;
    },
  ) {
    this.helpers = new FileHelpers(deps);
  }

  async acquire(userId: string, use: VolumeUse): Promise<VolumeAccess> {
    const lease = await this.helpers.acquire(userId, use === 'command' ? 'exec' : 'stream');
    return new DockerVolumeAccess(lease, this.deps.backend, this.deps.agentScript);
  }

  closeRuntime(runtimeId: string): Promise<void> {
    return this.helpers.removeForRuntime(runtimeId);
  }

  closeAll(): Promise<number> {
    return this.helpers.removeAll();
  }

  async closeOwn(): Promise<void> {
    await Promise.all([...this.helpers.runtimeIds()].map((runtimeId) => this.helpers.removeForRuntime(runtimeId)));
  }
}

class DockerVolumeAccess implements VolumeAccess {
  constructor(
    private readonly lease: FileHostLease,
    private readonly backend: RuntimeBackend,
    private readonly agentScript: () => Promise<string>,
  ) {}

  get runtimeId(): string {
    return this.lease.runtimeId;
  }

  get signal(): AbortSignal {
    return this.lease.signal;
  }

  async runAgent(input: string, limits: AgentLimits): Promise<AgentRun> {
    const command = ['node', '-e', await this.agentScript()];
    // 404/409 here: the runtime stopped (or was re-created) since it was chosen.
    return typedEngineCall(
      'running the file agent',
      () => this.backend.exec(this.lease.containerId, command, { user: `${RUNTIME_UID}:${RUNTIME_UID}`, stdin: input, ...limits }),
      { target: true },
    );
  }

  writeArchive(dir: string, archive: Readable, signal: AbortSignal): Promise<void> {
    return typedEngineCall('writing into the workspace volume', () => this.backend.putArchive(this.lease.containerId, dir, archive, signal), { target: true });
  }

  readArchive(path: string): Promise<Readable | null> {
    if (this.lease.signal.aborted) return Promise.reject(this.lease.signal.reason as Error);
    return typedEngineCall('reading from the workspace volume', () => this.backend.getArchive(this.lease.containerId, path, this.lease.signal), { target: true });
  }

  archiveRequest(path: string): EngineArchiveRequest | null {
    return this.lease.signal.aborted ? null : this.backend.archiveRequest(this.lease.containerId, path);
  }

  release(): void {
    this.lease.release();
  }
}
