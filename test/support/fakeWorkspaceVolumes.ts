import fs from 'node:fs';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { extract, pack } from 'tar-stream';
import { runFileAgent } from '../../src/files/agent/operations';
import type { AgentRequest } from '../../src/files/agent/protocol';
import type { AgentLimits, AgentRun, VolumeAccess, VolumeUse, WorkspaceVolumes } from '../../src/files/workspaceVolumes';
import { infraGone, infraUnavailable, type InfraError } from '../../src/lib/infraErrors';

/**
 * The workspace-volume port without an engine: every user's volume is one folder on the host
 * (`volumeDir`; point FilesSettings.volumeRoot at it and root below it), the file agent runs in
 * this process, and archives are unpacked and packed with tar-stream. Good for the HTTP layer
 * and the service's decisions; the real isolation (uid 1000, no network, the engine's archive
 * API) is test/integration's job.
 *
 * Faults are switched on by tests: `unreachable` fails every call the way an engine that does not
 * answer does; `goneOnce` makes the next agent run find its container gone; `stallWrites` holds
 * archive writes until they are cut.
 */
export class FakeWorkspaceVolumes implements WorkspaceVolumes {
  unreachable = false;
  goneOnce = false;
  /** Archive writes take nothing until their signal aborts (an engine that stopped reading); `onWrite` hears each one start. */
  stallWrites = false;
  onWrite: (() => void) | null = null;
  /** Every byte each archive write was given, in order (what the engine would have read as tar). */
  readonly archives: Buffer[][] = [];
  /** A lasting reason the volume cannot be reached (e.g. no runtime image yet), as acquire's failure. */
  refuseWith: InfraError | null = null;
  readonly acquired: { userId: string; use: VolumeUse }[] = [];
  private readonly open = new Set<AbortController>();
  agentRuns = 0;

  constructor(readonly volumeDir: string) {
    fs.mkdirSync(volumeDir, { recursive: true });
  }

  get held(): number {
    return this.open.size;
  }

  async acquire(userId: string, use: VolumeUse): Promise<VolumeAccess> {
    this.failIfUnreachable();
    if (this.refuseWith) throw this.refuseWith;
    this.acquired.push({ userId, use });
    const controller = new AbortController();
    this.open.add(controller);
    return new FakeAccess(this, controller, () => this.open.delete(controller));
  }

  async closeRuntime(): Promise<void> {
    this.closeOpen();
  }

  async closeOwn(): Promise<void> {
    this.closeOpen();
  }

  async closeAll(): Promise<number> {
    this.failIfUnreachable();
    return this.closeOpen();
  }

  failIfUnreachable(): void {
    if (this.unreachable) throw infraUnavailable('the Docker engine did not answer (connect ECONNREFUSED, a fake)');
  }

  private closeOpen(): number {
    const count = this.open.size;
    for (const controller of this.open) controller.abort(infraGone("The workspace's files were taken offline during the transfer."));
    this.open.clear();
    return count;
  }
}

class FakeAccess implements VolumeAccess {
  readonly runtimeId = 'fake-runtime';

  constructor(
    private readonly volumes: FakeWorkspaceVolumes,
    private readonly controller: AbortController,
    readonly release: () => void,
  ) {}

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  async runAgent(input: string, _limits: AgentLimits): Promise<AgentRun> {
    this.volumes.failIfUnreachable();
    if (this.volumes.goneOnce) {
      this.volumes.goneOnce = false;
      throw infraGone('the container went away while running the file agent');
    }
    this.volumes.agentRuns++;
    return { exitCode: 0, stdout: JSON.stringify(runFileAgent(JSON.parse(input) as AgentRequest)), stderr: '' };
  }

  async writeArchive(dir: string, archive: Readable, signal: AbortSignal): Promise<void> {
    this.volumes.failIfUnreachable();
    this.volumes.onWrite?.();
    if (this.volumes.stallWrites) {
      await new Promise<never>((_resolve, reject) => {
        const stop = () => reject(signal.reason as Error);
        if (signal.aborted) stop();
        else signal.addEventListener('abort', stop, { once: true });
      });
    }
    const reader = extract();
    reader.on('entry', (header, body, next) => {
      const target = path.join(dir, header.name);
      if (header.type === 'directory') fs.mkdirSync(target, { recursive: true, mode: header.mode ?? 0o755 });
      else if (header.type === 'symlink') fs.symlinkSync(header.linkname ?? '', target);
      if (header.type !== 'file') {
        body.resume();
        body.once('end', next);
        return;
      }
      pipeline(body, fs.createWriteStream(target, { mode: header.mode ?? 0o644 })).then(() => next(), next);
    });
    const seen: Buffer[] = [];
    this.volumes.archives.push(seen);
    const tap = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        seen.push(chunk);
        done(null, chunk);
      },
    });
    await pipeline(archive, tap, reader, { signal });
  }

  async readArchive(entryPath: string): Promise<Readable | null> {
    this.volumes.failIfUnreachable();
    if (this.signal.aborted) throw this.signal.reason as Error;
    if (!fs.existsSync(entryPath)) return null;
    const archive = pack();
    const add = (full: string, name: string) => {
      const st = fs.lstatSync(full);
      const header = { name, mode: st.mode & 0o7777, mtime: st.mtime };
      if (st.isDirectory()) {
        archive.entry({ ...header, type: 'directory' });
        for (const child of fs.readdirSync(full)) add(path.join(full, child), `${name}/${child}`);
      } else if (st.isSymbolicLink()) archive.entry({ ...header, type: 'symlink', linkname: fs.readlinkSync(full) });
      else archive.entry({ ...header, type: 'file', size: st.size }, fs.readFileSync(full));
    };
    add(entryPath, path.basename(entryPath));
    archive.finalize();
    // A Node stream, as the engine's is (tar-stream packs are streamx streams).
    return Readable.from(archive);
  }

  /** No engine here: archives are read on the caller's thread. */
  archiveRequest(): null {
    return null;
  }
}
