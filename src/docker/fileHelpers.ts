import type { SettingsSource } from '../lib/settingsStore';
import { infraGone, infraNotFound, isInfraError } from '../lib/infraErrors';
import { IdleLeases } from '../lib/idleLeases';
import type { Logger } from '../lib/logger';
import { ownerLabels, runtimeNames } from './runtimeContainer';
import { OPENCLAW_HOME, RUNTIME_UID, type RuntimeSettings } from '../runtime/runtimeSettings';
import { typedEngineCall } from './engineFaults';
import { LABELS, type RuntimeBackend } from './runtimeBackend';

/** What file access needs to know about a user's runtime; RuntimeManager provides it. */
export interface RuntimeFileTargets {
  /**
   * The user's runtime (its record is created when the user has none, without starting
   * anything) and its container if that is running right now.
   */
  fileTarget(userId: string): { runtimeId: string; username: string; runningContainerId: string | null };
}

/**
 * What a lease is for. `exec`: short agent commands, paced by the control plane. `stream`:
 * anything that calls the engine's archive API, paced by a member's client.
 */
export type FileHostUse = 'exec' | 'stream';

/** A container that has the user's volume mounted and accepts exec; release it when done. */
export interface FileHostLease {
  containerId: string;
  runtimeId: string;
  /**
   * Aborted (an InfraError `gone`) when the container is about to be removed (its runtime purged,
   * the control plane shutting down): every archive stream through this lease must stop at once.
   * That also ends the engine's hold on the container, which a forced removal would otherwise
   * wait for.
   */
  signal: AbortSignal;
  release(): void;
}

export const HELPER_ROLE = 'files';
const HELPER_MEMORY_BYTES = 256 * 1024 ** 2;
const HELPER_PIDS = 64;
// Idles without busy-waiting; docker-init (HostConfig.Init) reaps the exec'd processes.
const HELPER_IDLE_COMMAND = ['node', '-e', 'setInterval(() => {}, 1 << 30)'];
/**
 * How long removing a helper may take before the caller (a purge, shutdown) goes on without it.
 * Its streams are cut first, so the engine normally removes it in well under a second; the bound
 * is for an engine that does not answer, so that a lifecycle operation never waits for ever.
 */
const HELPER_REMOVE_WAIT_MS = 30_000;
/** Runtime leases are never revoked: nothing streams through them. */
const NEVER_REVOKED = new AbortController().signal;

/**
 * Finds a container to reach a user's files through (Docker only: the workspace-volume port,
 * files/workspaceVolumes.ts, is what the file manager sees).
 *
 * Archive streams always go through a helper: a container of the runtime image with the same
 * volume, no network, no capabilities and no restart policy, which idles until released and is
 * removed a minute after its last use (OpenClaw is never started for file access). The engine
 * holds a container's lock for the whole of an archive stream (a putArchive until its body ends,
 * a getArchive until it has been read to the end), and while it does, inspecting, exec'ing into,
 * stopping or removing that container waits. A stream is paced by the member's client, so it must
 * never run through the runtime itself: the platform inspects runtimes in shared places (the one
 * event queue of the runtime watcher, the few lifecycle slots every user's start waits for), and
 * Docker's health check is an exec. A stalled stream holds only its own user's helper.
 *
 * Agent commands (`exec`) run in the runtime while it runs, beside OpenClaw as uid 1000 (they are
 * short and paced by the control plane), otherwise in the helper. Both containers mount the same
 * volume, so a command in either sees every byte a stream wrote: staging folders live in the
 * volume, and moving a staged file into place is a rename within it.
 */
export interface FileHelpersDeps {
  backend: RuntimeBackend;
  targets: RuntimeFileTargets;
  settings: SettingsSource<Pick<RuntimeSettings, 'image'>>;
  logger: Logger;
  /** How long an unused helper container lives. */
  idleMs: number;
  /**
   * What its helpers' names begin with: a command-line run beside the server names its own
   * apart, so neither ever finds the other's helper in the way of its name.
   */
  namePrefix?: string;
}

export class FileHelpers {
  private readonly helpers: IdleLeases<string>;

  constructor(private readonly deps: FileHelpersDeps) {
    this.helpers = new IdleLeases<string>({
      stop: async (runtimeId, containerId) => {
        try {
          await this.removeBounded(containerId, { runtimeId });
        } catch (err) {
          this.deps.logger.warn({ runtimeId, err: (err as Error).message }, 'removing a file helper container failed');
        }
      },
      idleMs: deps.idleMs,
      revoked: () => infraGone("The workspace's files were taken offline (the runtime is being removed, or the server is shutting down) during the transfer."),
    });
  }

  /** The runtimes this process holds a helper for. */
  runtimeIds(): string[] {
    return this.helpers.keys();
  }

  async acquire(userId: string, use: FileHostUse): Promise<FileHostLease> {
    const target = this.deps.targets.fileTarget(userId);
    if (use === 'exec' && target.runningContainerId) {
      return { containerId: target.runningContainerId, runtimeId: target.runtimeId, signal: NEVER_REVOKED, release: () => undefined };
    }
    const lease = await this.helpers.acquire(target.runtimeId, () => this.startHelper(target.runtimeId, target.username, userId));
    return { containerId: lease.value, runtimeId: target.runtimeId, signal: lease.signal, release: lease.release };
  }

  /**
   * Removes a runtime's helper (idle, or before its volume is purged). Whatever still streams
   * through it is cut first, so the removal does not wait for a client that stopped reading or
   * sending; it is bounded all the same (HELPER_REMOVE_WAIT_MS).
   */
  async removeForRuntime(runtimeId: string): Promise<void> {
    if (await this.helpers.remove(runtimeId)) return;
    await this.removeLabelled((labels) => labels[LABELS.runtimeId] === runtimeId);
  }

  /** Start-up and shutdown: helpers are disposable, none survives the process that made it. */
  async removeAll(): Promise<number> {
    this.helpers.forgetAll();
    return this.removeLabelled(() => true);
  }

  private async removeLabelled(match: (labels: Record<string, string>) => boolean): Promise<number> {
    const containers = await typedEngineCall('listing file helper containers', () => this.deps.backend.listManagedContainers());
    const stale = containers.filter((c) => c.labels[LABELS.role] === HELPER_ROLE && match(c.labels));
    await Promise.all(stale.map((c) => this.removeBounded(c.id, { runtimeId: c.labels[LABELS.runtimeId] ?? null })));
    return stale.length;
  }

  /** A forced removal, waited for at most HELPER_REMOVE_WAIT_MS; it goes on in the background after that. */
  private async removeBounded(containerId: string, context: { runtimeId: string | null }): Promise<void> {
    const removal = typedEngineCall('removing a file helper container', () => this.deps.backend.removeContainer(containerId));
    let timer: NodeJS.Timeout | undefined;
    const gaveUp = await Promise.race([
      removal.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), HELPER_REMOVE_WAIT_MS);
        timer.unref();
      }),
    ]).finally(() => clearTimeout(timer));
    if (!gaveUp) return;
    removal.catch((err: unknown) => this.deps.logger.warn({ ...context, err: (err as Error).message }, 'removing a file helper container failed'));
    this.deps.logger.warn({ ...context, containerId: containerId.slice(0, 12), waitedMs: HELPER_REMOVE_WAIT_MS }, 'the engine has not removed a file helper container yet; going on without waiting for it');
  }

  private async startHelper(runtimeId: string, username: string, userId: string): Promise<string> {
    const { backend } = this.deps;
    const settings = this.deps.settings.get();
    if (!(await typedEngineCall('looking for the runtime image', () => backend.imageExists(settings.image)))) {
      throw infraNotFound(`Files cannot be reached while the runtime is stopped: the runtime image ${settings.image} is not on this host yet. Start the runtime once to fetch it.`);
    }
    const identity = { runtimeId, userId, username };
    const names = runtimeNames(runtimeId);
    await typedEngineCall('creating the workspace volume', () => backend.ensureVolume(names.volume, ownerLabels(identity, 'volume')));
    const spec = {
      name: `${this.deps.namePrefix ?? 'clawloops-files'}-${username}-${runtimeId.slice(0, 8)}`,
      image: settings.image,
      labels: { ...ownerLabels(identity, 'runtime'), [LABELS.role]: HELPER_ROLE },
      user: `${RUNTIME_UID}:${RUNTIME_UID}`,
      entrypoint: HELPER_IDLE_COMMAND,
      volumeName: names.volume,
      volumeMountPath: OPENCLAW_HOME,
      memoryBytes: HELPER_MEMORY_BYTES,
      pidsLimit: HELPER_PIDS,
    };
    const create = () => typedEngineCall('creating a file helper container', () => backend.createHelperContainer(spec));
    let containerId: string;
    try {
      containerId = await create();
    } catch (err) {
      // A helper left behind by a crashed control plane still holds the name (the engine answers 409).
      if (!isInfraError(err, 'conflict')) throw err;
      await this.removeLabelled((labels) => labels[LABELS.runtimeId] === runtimeId);
      containerId = await create();
    }
    try {
      // A fresh volume's root belongs to root when the image lacks the folder: give it to uid 1000,
      // exactly as a runtime start does.
      await typedEngineCall('preparing a file helper container', async () => {
        await backend.putFiles(containerId, '/home/node', [{ path: '.openclaw', type: 'directory', mode: 0o700, uid: RUNTIME_UID, gid: RUNTIME_UID }]);
        await backend.startContainer(containerId);
      });
    } catch (err) {
      await backend.removeContainer(containerId).catch(() => undefined);
      throw err;
    }
    this.deps.logger.debug({ runtimeId, username }, 'file helper container started');
    return containerId;
  }
}
