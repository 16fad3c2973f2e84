import type { Readable } from 'node:stream';
import type { EngineArchiveRequest } from '../files/workspaceVolumes';
import type { FileEntry, LogLine, PullProgress, RuntimeStats } from '../runtime/provisioner';

// The engine moves the same files, pull progress, log lines and figures as the provisioner port.
export type { FileEntry, LogLine, PullProgress };
export type ContainerStats = RuntimeStats;

/**
 * The low-level Docker engine adapter's interface (containers, networks, volumes, archives,
 * exec). Only src/docker/ builds on it: the runtime layer drives the RuntimeProvisioner port
 * (src/runtime/provisioner.ts), which DockerRuntimeProvisioner implements on top of this.
 */

export const MANAGED_LABEL = 'io.clawloops.managed';
export const LABELS = {
  managed: MANAGED_LABEL,
  runtimeId: 'io.clawloops.runtime-id',
  userId: 'io.clawloops.user-id',
  username: 'io.clawloops.username',
  configHash: 'io.clawloops.config-hash',
  role: 'io.clawloops.role',
  /** Which ClawLoops installation owns it, when several share one engine. */
  instance: 'io.clawloops.instance',
  /** On the marker volume that claims an instance name for one installation: its id. */
  installation: 'io.clawloops.installation',
  /** On containers we do not manage that must join every runtime network: control-plane | traefik. */
  proxy: 'io.clawloops.proxy',
} as const;

export interface NetworkInfo {
  id: string;
  name: string;
  /** CIDR of the network, e.g. 172.20.0.0/16: every proxy that reaches the runtime sits in it. */
  subnet: string;
  gateway: string;
  /** No route out of the subnet: what every runtime network is since isolation depends on it (see ensureNetwork). */
  internal: boolean;
  /**
   * Whether the host has an address on the network's bridge (the gateway). Through it a runtime
   * reaches every service on the host that listens on all addresses, and the engine's own name
   * server forwards its lookups to the host's; without it the runtime reaches only what is
   * attached to its network.
   */
  hostAddress: boolean;
}

/** The network option that keeps the host off a bridge (no address for it, so nothing to reach it by). */
export const NO_HOST_ADDRESS_OPTION = 'com.docker.network.bridge.inhibit_ipv4';

/** A short-lived container that only holds a runtime's volume (file access while the runtime is stopped). */
export interface HelperContainerSpec {
  name: string;
  image: string;
  labels: Record<string, string>;
  user: string;
  /** Replaces the image's entrypoint: the helper idles while commands are exec'd into it. */
  entrypoint: string[];
  volumeName: string;
  volumeMountPath: string;
  memoryBytes: number;
  pidsLimit: number;
}

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface ContainerSpec {
  name: string;
  /**
   * The same for every incarnation of a runtime. OpenClaw records its gateway's owner as
   * pid@hostname in its state database and can only tell a dead owner on the same hostname: on a
   * new container with a new hostname (after a crash or kill, an upgrade, a restore of a running
   * runtime's backup) it refuses to start for the lease's five minutes.
   */
  hostname: string;
  image: string;
  labels: Record<string, string>;
  env: Record<string, string>;
  user: string;
  cmd?: string[];
  workingDir?: string;
  volumeName: string;
  volumeMountPath: string;
  networkName: string;
  networkAliases: string[];
  memoryBytes: number;
  nanoCpus: number;
  pidsLimit: number;
  /** The command Docker runs to mark the container healthy; its events feed observed state. */
  healthcheck: { test: string[]; intervalMs: number; timeoutMs: number; startPeriodMs: number; retries: number };
  extraHosts: string[];
}

export type ContainerStatus = 'created' | 'running' | 'paused' | 'restarting' | 'removing' | 'exited' | 'dead';

export interface ContainerSnapshot {
  id: string;
  name: string;
  image: string;
  labels: Record<string, string>;
  status: ContainerStatus;
  health: 'starting' | 'healthy' | 'unhealthy' | null;
  exitCode: number | null;
  oomKilled: boolean;
  restartCount: number;
  error: string | null;
  createdAt: number | null;
  startedAt: number | null;
  finishedAt: number | null;
  /** IP address on each attached network, by network name. */
  addresses: Record<string, string>;
  memoryLimitBytes: number;
  nanoCpus: number;
  pidsLimit: number | null;
}

export interface ContainerEvent {
  containerId: string;
  /** Docker's action: create, start, die, oom, kill, stop, destroy, health_status: healthy, ... */
  action: string;
  labels: Record<string, string>;
  exitCode: number | null;
  at: number;
}

export interface EventSubscription {
  close(): void;
}

export interface RuntimeBackend {
  imageExists(image: string): Promise<boolean>;
  /** Rejects with a message that names the image and the engine's reason. */
  pullImage(image: string, onProgress: (progress: PullProgress) => void, signal?: AbortSignal): Promise<void>;

  /**
   * An internal network (no route out of its subnet), with or without an address for the host
   * (`hostAddress`: a control plane running on the host needs one to reach its runtimes, and
   * they it; one in a container is attached to the network itself). One that exists but differs
   * (made by an earlier version, or for the other kind of control plane) is replaced: whatever
   * joined it is detached first.
   */
  ensureNetwork(name: string, labels: Record<string, string>, options: { hostAddress: boolean }): Promise<NetworkInfo>;
  /** Detaches whatever still joins it (the control plane, a proxy) first; absent is fine. */
  removeNetwork(name: string): Promise<void>;
  /** Attaches a container we do not manage (the control plane itself, a proxy) to a runtime network at a fixed address. */
  connectToNetwork(networkName: string, containerId: string, attachment: { ipv4Address: string; aliases: string[] }): Promise<void>;
  /** Running containers of this installation labelled as proxies, with the networks they are on. */
  findProxyContainers(): Promise<{ id: string; role: string; networks: string[] }[]>;
  listManagedNetworks(): Promise<(NetworkInfo & { labels: Record<string, string> })[]>;

  ensureVolume(name: string, labels: Record<string, string>): Promise<{ created: boolean }>;
  removeVolume(name: string): Promise<void>;
  volumeExists(name: string): Promise<boolean>;
  /**
   * Claims this backend's instance name for `installationId` (a marker volume, made unless one
   * exists) and resolves with the installation that holds it: ours, or another one's.
   */
  claimInstance(installationId: string): Promise<{ owner: string }>;
  listManagedVolumes(): Promise<{ name: string; labels: Record<string, string> }[]>;

  createContainer(spec: ContainerSpec): Promise<string>;
  /**
   * Writes entries into `dir` of a created, running or stopped container, in order. An entry
   * replaces whatever is at its path (a symbolic link is replaced, never followed).
   */
  putFiles(containerId: string, dir: string, entries: FileEntry[]): Promise<void>;
  /** No network, no restart policy, the runtime's hardening; see HelperContainerSpec. */
  createHelperContainer(spec: HelperContainerSpec): Promise<string>;
  /**
   * Runs a command in a running container as `user` with `stdin` as its input. Output beyond
   * `maxOutputBytes` or a run longer than `timeoutMs` fails the call.
   */
  exec(containerId: string, command: string[], options: { user: string; stdin: string; maxOutputBytes: number; timeoutMs: number }): Promise<ExecResult>;
  /**
   * Streams a tar archive into the existing folder `dir` of a container, running or stopped
   * (Docker's archive API). Rejects when the engine refuses it or `archive` fails. The engine
   * holds the container's lock until the archive ends (a getArchive: until it has been read to
   * the end or dropped): inspecting, exec'ing into, stopping or removing it waits meanwhile.
   */
  putArchive(containerId: string, dir: string, archive: Readable, signal?: AbortSignal): Promise<void>;
  /** A tar stream of `path` (the entry itself, links not followed) from a running or stopped container; null when it does not exist. */
  getArchive(containerId: string, path: string, signal?: AbortSignal): Promise<Readable | null>;
  /** getArchive as a request another thread can make on this machine's engine socket; null when the engine is reached otherwise (TCP). */
  archiveRequest(containerId: string, path: string): EngineArchiveRequest | null;
  startContainer(id: string): Promise<void>;
  stopContainer(id: string, timeoutSeconds: number): Promise<void>;
  /** Freezes every process of a running container (cgroup freezer); false when it was not running. */
  pauseContainer(id: string): Promise<boolean>;
  /** Not paused (or gone) is fine. */
  unpauseContainer(id: string): Promise<void>;
  removeContainer(id: string): Promise<void>;
  /** null when the container does not exist. */
  inspectContainer(id: string): Promise<ContainerSnapshot | null>;
  /**
   * Every container of this installation. Runtimes are inspected; the others (file helpers) are
   * described from the engine's list alone (no health, exit code, restart count or limits), since
   * inspecting waits for a lock that an archive stream may hold.
   */
  listManagedContainers(): Promise<ContainerSnapshot[]>;

  /** Calls `onEvent` for every event of a managed container; `onEnd` once when the stream drops. */
  subscribeEvents(onEvent: (event: ContainerEvent) => void, onEnd: (error: Error | null) => void): Promise<EventSubscription>;
  stats(id: string): Promise<ContainerStats | null>;
  /** Log lines of a container (null when it does not exist); with `follow` the stream stays open until destroyed. */
  logs(id: string, options: { tail: number; follow: boolean }): Promise<Readable | null>;
}
