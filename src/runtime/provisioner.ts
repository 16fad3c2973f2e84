import type { Readable } from 'node:stream';

/**
 * The port the runtime layer drives, at the level of JupyterHub's Spawner: it provisions, runs,
 * observes and removes one user's runtime, in the product's terms. How a runtime is made real
 * (Docker containers on bridge networks today, Swarm services next) lives entirely behind it, in
 * src/docker/ and its siblings; nothing above this file knows about containers, networks, labels,
 * proxies or engine wording. Failures the caller decides on are the typed InfraErrors of
 * src/lib/infraErrors.ts (not_found, conflict, gone, unavailable).
 */

/** Whose runtime it is. Every resource a provisioner makes is tagged with it, so it can be found again after a restart. */
export interface RuntimeOwner {
  runtimeId: string;
  userId: string;
  username: string;
}

/**
 * Where one incarnation of a runtime is in its life, in our own words:
 * - created: made, never started (or reset); starting: running, its own health check not yet decided;
 * - running: running, no health verdict from the platform's side; healthy / unhealthy: the health check's verdict;
 * - restarting: the restart policy is bringing it back after an exit; paused: frozen by someone else;
 * - removing: on its way out; exited: ended (see exitCode); oom: killed for exceeding its memory limit;
 * - crashed: ended in a state it cannot be started from again as it is.
 * A runtime with no incarnation at all is absent (null where an instance is expected).
 */
export type RuntimePhase = 'created' | 'starting' | 'running' | 'healthy' | 'unhealthy' | 'restarting' | 'paused' | 'removing' | 'exited' | 'oom' | 'crashed';

/** Phases in which the runtime's process is up (it may still be booting). */
export const isUp = (phase: RuntimePhase): boolean => phase === 'starting' || phase === 'running' || phase === 'healthy' || phase === 'unhealthy';

/** Phases in which nothing runs and nothing is on its way: a stop has nothing to do. */
export const isDown = (phase: RuntimePhase): boolean => phase === 'created' || phase === 'exited' || phase === 'oom' || phase === 'crashed';

/** One incarnation of a runtime as the provisioner observes it. */
export interface RuntimeInstance {
  /** Opaque; changes whenever the runtime is re-created. */
  id: string;
  /** What the provisioner calls it, for logs and the audit trail. */
  name: string;
  owner: RuntimeOwner;
  image: string;
  /** The `specHash` of the RuntimeSpec it was created from (null when it carries none). */
  specHash: string | null;
  phase: RuntimePhase;
  exitCode: number | null;
  /** The provisioner's own words about a failure, when it has any. */
  reason: string | null;
  createdAt: number | null;
  startedAt: number | null;
  finishedAt: number | null;
  /** Base URL the platform's proxies reach OpenClaw at (http://host:port); null while it has none. */
  url: string | null;
  memoryLimitBytes: number;
}

/** What the placement of a runtime tells its configuration. */
export interface RuntimePlacement {
  /** Exactly the addresses whose X-Forwarded-User the runtime may believe: the proxies in front of it. */
  trustedProxies: string[];
  /** This preparation made the runtime's data: nothing has ever run on it (see seedData). */
  freshData?: boolean;
}

/** What to run, independent of how it is run. */
export interface RuntimeSpec {
  owner: RuntimeOwner;
  image: string;
  /** Replaces the image's command; empty keeps it. */
  command: string[];
  workingDir: string;
  env: Record<string, string>;
  /** Kept apart from `env`: never part of `specHash`, never logged. */
  secretEnv: Record<string, string>;
  /** The runtime's process runs as this uid and gid. */
  uid: number;
  /** Where the user's persistent data is mounted inside the runtime. */
  dataPath: string;
  /** The port OpenClaw listens on, and the path that answers 200 once it is ready. */
  port: number;
  readinessPath: string;
  limits: { memoryBytes: number; nanoCpus: number; pidsLimit: number };
  /** Changes whenever anything rendered changes (secrets excluded); compared to RuntimeInstance.specHash. */
  specHash: string;
}

/** A file, folder or hard link written into a runtime's data (see writeFiles). */
export interface FileEntry {
  /** Relative to the directory the entries are put into. */
  path: string;
  /** A hard link gives the existing entry at `linkTarget` a second name (a move without copying, links not followed). */
  type: 'file' | 'directory' | 'hardlink';
  content?: Buffer;
  /** For a hard link: the existing entry, relative to the same directory as `path`. */
  linkTarget?: string;
  mode: number;
  uid: number;
  gid: number;
}

export interface PullProgress {
  /** Sum over layers of bytes downloaded so far, and of their sizes once known. */
  bytesDone: number;
  bytesTotal: number;
  status: string;
}

export interface RuntimeStats {
  memoryBytes: number;
  memoryLimitBytes: number;
  cpuPercent: number;
}

export interface LogLine {
  stream: 'stdout' | 'stderr';
  line: string;
  /** The line was longer than the log viewer shows; its end was dropped. */
  truncated?: true;
}

/** Something happened to a runtime's incarnation; re-read it for the details. */
export interface RuntimeChange {
  kind:
    | 'started'
    | 'exited'
    /** Killed for exceeding its memory limit (an `exited` follows). */
    | 'out-of-memory'
    | 'removed'
    /** Anything else (health verdict, stop requested, paused): its phase may have changed. */
    | 'changed';
  runtimeId: string;
  instanceId: string;
  exitCode: number | null;
}

export interface Subscription {
  close(): void;
}

/** Everything of this installation a provisioner finds, for reconciling after a restart. */
export interface RuntimeInventory {
  instances: RuntimeInstance[];
  /** The placement of every runtime that has one, by runtime id. */
  placements: Map<string, RuntimePlacement>;
}

export interface RuntimeProvisioner {
  /**
   * Takes ownership of everything this installation provisions (its instance name) before
   * anything is listed, adopted or swept; idempotent. Rejects with a `conflict` InfraError when
   * another installation owns that name, and with `unavailable` while the provisioner is.
   */
  claim(): Promise<void>;
  imageAvailable(image: string): Promise<boolean>;
  /** Rejects with a message that names the image and the reason. */
  pullImage(image: string, onProgress: (progress: PullProgress) => void, signal?: AbortSignal): Promise<void>;

  /** Makes sure the runtime's own resources (its data, its place to run) exist; idempotent. */
  prepare(owner: RuntimeOwner): Promise<RuntimePlacement>;
  /**
   * Writes entries into `dir` of the runtime's data (mounted at `dataPath`) before any incarnation
   * exists, with `image`'s file system around it; false when that image is not here yet.
   */
  seedData(owner: RuntimeOwner, image: string, dataPath: string, dir: string, entries: FileEntry[]): Promise<boolean>;
  /** Creates a new incarnation (not started); resolves with its id. */
  create(spec: RuntimeSpec): Promise<string>;
  /** Writes entries into `dir` (below the data path) of an incarnation, running or not; an entry replaces whatever is at its path. */
  writeFiles(instanceId: string, dir: string, entries: FileEntry[]): Promise<void>;
  /** A tar stream of `path` (the entry itself, links not followed); null when it does not exist. */
  readEntry(instanceId: string, path: string, signal?: AbortSignal): Promise<Readable | null>;
  /** Starting one that runs already is fine. */
  start(instanceId: string): Promise<void>;
  /** Stopping one that is stopped or gone is fine. */
  stop(instanceId: string, timeoutSeconds: number): Promise<void>;
  /**
   * Freezes every process of a running incarnation where it stands (nothing it does moves on,
   * nothing is lost) until `thaw`: its data holds still for a moment. False when it is not running.
   */
  freeze(instanceId: string): Promise<boolean>;
  /** Lets a frozen incarnation go on; one that is not frozen (or gone) is fine. */
  thaw(instanceId: string): Promise<void>;
  /** Removes an incarnation (its data stays); gone already is fine. */
  removeInstance(instanceId: string): Promise<void>;
  /**
   * Frees what `prepare` made: without `withData`, everything but the user's data; with it, the
   * data too, for good. Absent is fine.
   */
  release(runtimeId: string, options: { withData: boolean }): Promise<void>;
  /** Removes every incarnation and resource tagged with this user (a deleted account), data included. */
  removeEverythingOf(userId: string): Promise<{ instances: { runtimeId: string; instanceId: string }[]; places: number; volumes: number }>;

  /** null when it does not exist. */
  inspect(instanceId: string): Promise<RuntimeInstance | null>;
  /** Every runtime incarnation and placement of this installation. */
  inventory(): Promise<RuntimeInventory>;
  /** Removes placements of runtimes not in `known` (they hold no data); resolves with how many. */
  sweepPlacements(known: Set<string>): Promise<number>;
  /** Calls `onChange` for every change of a runtime's incarnation; `onEnd` once when the feed drops. */
  watch(onChange: (change: RuntimeChange) => void, onEnd: (error: Error | null) => void): Promise<Subscription>;
  /** Periodic upkeep of what others may have undone behind our back (a re-created proxy); never rejects. */
  maintain(): Promise<void>;
  /** null when it has no running incarnation to measure. */
  stats(instanceId: string): Promise<RuntimeStats | null>;
  /** Log lines (objects of LogLine); null when the incarnation does not exist. With `follow`, open until destroyed. */
  logs(instanceId: string, options: { tail: number; follow: boolean }): Promise<Readable | null>;
}
