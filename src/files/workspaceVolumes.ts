import type { Readable } from 'node:stream';

/**
 * The workspace-volume port: how the file manager reaches a user's volume, whatever runs the
 * containers. The Docker implementation is src/docker/dockerWorkspaceVolumes.ts; tests use
 * test/support/fakeWorkspaceVolumes.ts.
 *
 * Failures are typed (lib/infraErrors.ts), never to be recognised by their wording:
 * - `unavailable`: the engine cannot be reached (the HTTP layer answers 503 ENGINE_UNAVAILABLE);
 * - `gone`: what the access ran in went away during the call (the runtime stopped or started:
 *   a new access reaches the volume again), or the access was taken away (`signal`);
 * - `not_found`: the volume cannot be reached now for a lasting reason, said in the message
 *   (e.g. the runtime's image is not on the host yet).
 */

/**
 * What an access is for. `command`: short agent runs (list, stat, usage, mkdir, move, delete),
 * paced by the control plane. `stream`: archive streams (uploads, text saves, imports, downloads,
 * exports), paced by a member's client; an implementation must keep those away from anything a
 * stalled client could hold up for others (the Docker one streams through a per-user helper).
 */
export type VolumeUse = 'command' | 'stream';

export interface AgentLimits {
  /** stdout and stderr together; more fails the run. */
  maxOutputBytes: number;
  /** A run longer than this fails. */
  timeoutMs: number;
}

/** How a run of the file agent ended; its one JSON response is on stdout. */
export interface AgentRun {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/**
 * The engine's archive endpoint for one path, on a socket of this machine: a request that a
 * thread of its own can make and read without the control plane's event loop (a backup's
 * sealing worker does, for the CPU the main thread would spend on every byte).
 */
export interface EngineArchiveRequest {
  socketPath: string;
  /** The API version the engine was told to speak, if any (as `/v1.41/…`). */
  apiVersion?: string | undefined;
  containerId: string;
  path: string;
}

/** Access to one user's volume; release it when done. */
export interface VolumeAccess {
  readonly runtimeId: string;
  /**
   * Aborted (reason: an InfraError `gone`) when the access is taken away: the runtime is being
   * purged, or the control plane is shutting down. Every stream through this access must stop
   * at once; the implementation may wait for them to stop before it removes anything.
   */
  readonly signal: AbortSignal;
  /** Runs the file agent (files/agent/) as the runtime's user with `input` on its stdin. */
  runAgent(input: string, limits: AgentLimits): Promise<AgentRun>;
  /**
   * Streams a tar archive into the existing folder `dir` (a path as the agent sees the volume).
   * Resolves once all of it is unpacked; rejects when the engine refuses it, `archive` fails or
   * `signal` aborts (then with the signal's reason).
   */
  writeArchive(dir: string, archive: Readable, signal: AbortSignal): Promise<void>;
  /** A tar stream of `path` (the entry itself, links not followed); null when nothing is there. */
  readArchive(path: string): Promise<Readable | null>;
  /**
   * The same tar as readArchive, as a request on this machine's engine socket, for a reader on
   * another thread; null when the volume is reached some other way (over the network, a fake)
   * or the access was taken away. The access must be held until that read has ended.
   */
  archiveRequest(path: string): EngineArchiveRequest | null;
  release(): void;
}

export interface WorkspaceVolumes {
  acquire(userId: string, use: VolumeUse): Promise<VolumeAccess>;
  /** Ends every access to a runtime's volume, before the volume is purged (streams are cut first). */
  closeRuntime(runtimeId: string): Promise<void>;
  /** Start-up and shutdown: ends every access and whatever an earlier process left; how many were left. */
  closeAll(): Promise<number>;
  /** Ends this process's accesses only (a command-line run beside a running server leaves the server's alone). */
  closeOwn(): Promise<void>;
}
