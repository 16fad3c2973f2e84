import type { Readable } from 'node:stream';
import type { RuntimeRepository, RuntimeWithOwner } from '../db/repositories/runtimeRepository';
import type { UserRepository } from '../db/repositories/userRepository';
import { LABELS, type ContainerSnapshot, type ContainerStats, type RuntimeBackend } from '../docker/runtimeBackend';
import { NO_ORIGIN, SYSTEM_ACTOR, type Actor, type AuditLog, type RequestOrigin } from '../domain/audit';
import type { Transactor } from '../domain/transactor';
import type { Clock } from '../lib/clock';
import { badRequest, conflict, notFound } from '../lib/errors';
import type { Logger } from '../lib/logger';
import { hashSecret, newId, newSecret } from '../lib/secrets';
import { Semaphore } from '../lib/semaphore';
import { ownerLabels, renderRuntime, runtimeNames, workspaceAddresses, type RenderedRuntime } from './containerSpec';
import { Operation, OperationError, type RuntimeEventHub, type OperationKind, type OperationView } from './operations';
import { observe, type ObservedState } from './observedState';
import type { ProxyAttachments } from './proxyAttachments';
import type { HttpProbe } from './readinessProbe';
import { ConfigReadError, writeRuntimeConfig } from './runtimeConfigFile';
import type { RuntimeSettings } from './runtimeSettings';

export interface RuntimeView {
  id: string | null;
  userId: string;
  username: string;
  state: ObservedState;
  stateReason: string | null;
  desiredState: 'running' | 'stopped' | 'deleted';
  image: string | null;
  configuredImage: string;
  /** The container runs another image than the configured one: it upgrades on its next restart. */
  outdatedImage: boolean;
  /** What is rendered now differs from what the container was started with. */
  configStale: boolean;
  createdAt: string | null;
  startedAt: string | null;
  workspaceUrl: string;
  limits: { memoryBytes: number; cpus: number; pidsLimit: number };
  lastError: { code: string; message: string; at: string } | null;
  operation: OperationView | null;
}

export interface RuntimeListItem extends RuntimeView {
  uptimeSeconds: number | null;
  stats: ContainerStats | null;
}

export interface StartedOperation {
  /** null when there was nothing to do (already running / already stopped). */
  operation: OperationView | null;
  runtime: RuntimeView;
}

export interface RuntimeManagerDeps {
  runtimes: RuntimeRepository;
  users: UserRepository;
  backend: RuntimeBackend;
  probe: HttpProbe;
  hub: RuntimeEventHub;
  audit: AuditLog;
  transact: Transactor;
  clock: Clock;
  logger: Logger;
  settings: RuntimeSettings;
  proxies: ProxyAttachments;
  sleep?: (ms: number) => Promise<void>;
}

// Probing starts fast and backs off: a light image answers within a few hundred milliseconds and
// should not wait out a fixed interval, while OpenClaw's ~10 s boot should not be hammered.
const PROBE_FIRST_INTERVAL_MS = 10;
const FAST_PROBING_MS = 2_000;
const PROBE_MAX_INTERVAL_MS = 500;
const INSPECT_WHILE_WAITING_MS = 250;
const PROBE_INTERVAL_MS = 250;
const LOG_TAIL_ON_FAILURE = 20;
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/**
 * Creates, starts, stops and deletes each user's OpenClaw container. Operations on one runtime
 * never overlap: a second request of the same kind joins the one in flight, a different one is
 * refused with 409 RUNTIME_BUSY (waiting behind a multi-minute image pull would look like a hang).
 * Across users, at most `maxParallelOperations` run at once and the rest queue.
 */
export class RuntimeManager {
  private readonly slots: Semaphore;
  private readonly inFlight = new Map<string, Operation>();
  /** Last known container per runtime, refreshed by operations and by the watcher. */
  private readonly snapshots = new Map<string, ContainerSnapshot | null>();
  private readonly readyContainers = new Set<string>();
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(private readonly deps: RuntimeManagerDeps) {
    this.slots = new Semaphore(deps.settings.maxParallelOperations);
    this.sleep = deps.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
  }

  get settings(): RuntimeSettings {
    return this.deps.settings;
  }

  // ---- reading ----

  viewForUser(userId: string): RuntimeView {
    const runtime = this.deps.runtimes.findByUserId(userId);
    if (runtime) return this.view(runtime);
    const user = this.deps.users.findById(userId);
    if (!user) throw notFound('USER_NOT_FOUND', 'No user with this id.');
    return this.emptyView(user.id, user.username);
  }

  viewById(runtimeId: string): RuntimeView | null {
    const runtime = this.deps.runtimes.findById(runtimeId);
    return runtime ? this.view(runtime) : null;
  }

  listViews(): RuntimeView[] {
    return this.deps.runtimes.list().map((r) => this.view(r));
  }

  /**
   * Running runtimes whose container was started with another config or image than the one
   * rendered now (e.g. the model list changed): they pick it up only when restarted, because
   * OpenClaw's hot reload cannot be relied on past the first change.
   */
  staleRunning(): RuntimeView[] {
    return this.listViews().filter((view) => view.state === 'running' && (view.configStale || view.outdatedImage));
  }

  /** Every runtime with one-shot CPU and memory figures of the running ones (the admin's overview). */
  async listWithStats(): Promise<RuntimeListItem[]> {
    const now = this.deps.clock.now();
    return Promise.all(
      this.listViews().map(async (view) => {
        const stats = view.id && view.startedAt ? await this.stats(view.id) : null;
        return {
          ...view,
          uptimeSeconds: view.startedAt ? Math.max(0, Math.round((now - Date.parse(view.startedAt)) / 1000)) : null,
          stats,
        };
      }),
    );
  }

  /** Where a user's files can be reached: the runtime (its record made if missing) and its container if running. */
  fileTarget(userId: string): { runtimeId: string; username: string; runningContainerId: string | null } {
    const runtime = this.ensureRuntime(userId);
    const snapshot = this.snapshots.get(runtime.id);
    return { runtimeId: runtime.id, username: runtime.username, runningContainerId: snapshot?.status === 'running' ? snapshot.id : null };
  }

  private readonly purgeHooks: ((runtimeId: string) => Promise<void>)[] = [];

  /** Runs before a runtime's volume is removed: whatever else mounts it must let go first. */
  beforePurge(hook: (runtimeId: string) => Promise<void>): void {
    this.purgeHooks.push(hook);
  }

  runtimeIdForUser(userId: string): string | null {
    return this.deps.runtimes.findByUserId(userId)?.id ?? null;
  }

  /**
   * Where a user's workspace traffic goes right now: the container's address on its network
   * while it runs and is ready, else null. On the request path of every proxied request, so it
   * reads only memory and one row.
   */
  routeForUser(userId: string): { runtimeId: string | null; address: string | null } {
    const runtime = this.deps.runtimes.findByUserId(userId);
    if (!runtime) return { runtimeId: null, address: null };
    const snapshot = this.snapshots.get(runtime.id) ?? null;
    if (!snapshot || this.observed(runtime, snapshot).state !== 'running') return { runtimeId: runtime.id, address: null };
    return { runtimeId: runtime.id, address: snapshot.addresses[runtimeNames(runtime.id).network] ?? null };
  }

  private observed(runtime: RuntimeWithOwner, snapshot: ContainerSnapshot | null) {
    return observe({
      snapshot,
      readyConfirmed: snapshot !== null && this.readyContainers.has(snapshot.id),
      operation: this.inFlight.get(runtime.id) ?? null,
      desiredState: runtime.desiredState,
      lastErrorCode: runtime.lastError?.code ?? null,
      lastErrorMessage: runtime.lastError?.message ?? null,
    });
  }

  view(runtime: RuntimeWithOwner): RuntimeView {
    const { settings } = this.deps;
    const snapshot = this.snapshots.get(runtime.id) ?? null;
    const observed = this.observed(runtime, snapshot);
    const latest = this.deps.hub.latestOperation(runtime.id);
    return {
      ...this.emptyView(runtime.userId, runtime.username),
      id: runtime.id,
      state: observed.state,
      stateReason: observed.state === 'failed' ? (runtime.lastError?.message ?? observed.reason) : observed.reason,
      desiredState: runtime.desiredState,
      image: snapshot?.image ?? null,
      outdatedImage: snapshot !== null && snapshot.image !== settings.image,
      configStale: snapshot !== null && snapshot.labels[LABELS.configHash] !== this.expectedConfigHash(runtime),
      createdAt: iso(snapshot?.createdAt ?? null),
      startedAt: snapshot?.status === 'running' ? iso(snapshot.startedAt) : null,
      lastError: runtime.lastError ? { ...runtime.lastError, at: new Date(runtime.lastError.at).toISOString() } : null,
      operation: latest?.snapshot ?? null,
    };
  }

  private emptyView(userId: string, username: string): RuntimeView {
    const { settings } = this.deps;
    return {
      id: null,
      userId,
      username,
      state: 'absent',
      stateReason: null,
      desiredState: 'deleted',
      image: null,
      configuredImage: settings.image,
      outdatedImage: false,
      configStale: false,
      createdAt: null,
      startedAt: null,
      workspaceUrl: workspaceAddresses(settings).url(username),
      limits: { memoryBytes: settings.memoryBytes, cpus: settings.nanoCpus / 1e9, pidsLimit: settings.pidsLimit },
      lastError: null,
      operation: null,
    };
  }

  /** The hash the runtime would get if it were rendered now; null if it has never had a network. */
  private expectedConfigHash(runtime: RuntimeWithOwner): string | null {
    const subnet = this.subnets.get(runtime.id);
    if (!subnet) return runtime.configHash;
    return this.render(runtime, subnet, { gatewayPassword: '', modelKey: '' }).configHash;
  }

  private readonly subnets = new Map<string, string>();

  private render(runtime: RuntimeWithOwner, subnet: string, secrets: { gatewayPassword: string; modelKey: string }): RenderedRuntime {
    return renderRuntime(identityOf(runtime), this.deps.settings, { subnet }, secrets);
  }

  // ---- operations ----

  start(actor: Actor, userId: string, origin: RequestOrigin): StartedOperation {
    const runtime = this.ensureRuntime(userId);
    if (runtime.userStatus !== 'active') throw conflict('USER_DISABLED', 'This account is disabled; its runtime cannot be started.');
    const joined = this.joinOrRefuse(runtime, 'start');
    if (joined) return joined;
    const current = this.view(runtime);
    if (current.state === 'running' && !current.configStale && !current.outdatedImage) return { operation: null, runtime: current };
    return this.launch(runtime, 'start', actor, origin, (op) => this.runStart(op, runtime.id));
  }

  stop(actor: Actor, userId: string, origin: RequestOrigin): StartedOperation {
    const runtime = this.requireRuntime(userId);
    const joined = this.joinOrRefuse(runtime, 'stop');
    if (joined) return joined;
    const snapshot = this.snapshots.get(runtime.id) ?? null;
    if (!snapshot || snapshot.status === 'exited' || snapshot.status === 'created' || snapshot.status === 'dead') {
      this.deps.runtimes.setDesiredState(runtime.id, runtime.desiredState === 'deleted' ? 'deleted' : 'stopped', this.deps.clock.now());
      return { operation: null, runtime: this.view(this.requireRuntime(userId)) };
    }
    return this.launch(runtime, 'stop', actor, origin, (op) => this.runStop(op, runtime.id, 'stopped'));
  }

  restart(actor: Actor, userId: string, origin: RequestOrigin): StartedOperation {
    const runtime = this.ensureRuntime(userId);
    if (runtime.userStatus !== 'active') throw conflict('USER_DISABLED', 'This account is disabled; its runtime cannot be started.');
    const joined = this.joinOrRefuse(runtime, 'restart');
    if (joined) return joined;
    return this.launch(runtime, 'restart', actor, origin, async (op) => {
      await this.runStop(op, runtime.id, 'stopped');
      await this.runStart(op, runtime.id);
    });
  }

  /** Removes the container and its network; with `purge`, also the volume holding the user's data. */
  remove(actor: Actor, userId: string, origin: RequestOrigin, options: { purge: boolean; confirm?: string | undefined }): StartedOperation {
    const runtime = this.requireRuntime(userId);
    if (options.purge && options.confirm !== runtime.username) {
      throw badRequest(
        'PURGE_CONFIRMATION_REQUIRED',
        `Purging deletes all of ${runtime.username}'s workspace data for good. Repeat the request with confirm=${runtime.username} to proceed.`,
      );
    }
    const kind: OperationKind = options.purge ? 'purge' : 'delete';
    const joined = this.joinOrRefuse(runtime, kind);
    if (joined) return joined;
    return this.launch(runtime, kind, actor, origin, (op) => this.runRemove(op, runtime.id, options.purge));
  }

  /** Waits for every operation in flight, at most `timeoutMs`. */
  async drain(timeoutMs: number): Promise<void> {
    if (this.inFlight.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all([...this.inFlight.values()].map((op) => op.done)),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs))),
    ]);
    clearTimeout(timer);
  }

  /** Waits for whatever operation is in flight on a runtime (tests, shutdown, hooks). */
  async settled(runtimeId: string): Promise<void> {
    await this.inFlight.get(runtimeId)?.done;
  }

  async logs(userId: string, options: { tail: number; follow: boolean }): Promise<Readable> {
    const runtime = this.requireRuntime(userId);
    const containerId = this.snapshots.get(runtime.id)?.id ?? runtime.containerId;
    const lines = containerId ? await this.deps.backend.logs(containerId, options) : null;
    if (!lines) throw notFound('RUNTIME_NOT_CREATED', 'This runtime has no container at the moment, so it has no log. Start it first.');
    return lines;
  }

  async stats(runtimeId: string): Promise<ContainerStats | null> {
    const snapshot = this.snapshots.get(runtimeId);
    if (!snapshot || snapshot.status !== 'running') return null;
    return this.deps.backend.stats(snapshot.id).catch(() => null);
  }

  isBusy(runtimeId: string): boolean {
    return this.inFlight.has(runtimeId);
  }

  private ensureRuntime(userId: string): RuntimeWithOwner {
    const existing = this.deps.runtimes.findByUserId(userId);
    if (existing) return existing;
    if (!this.deps.users.findById(userId)) throw notFound('USER_NOT_FOUND', 'No user with this id.');
    const created = this.deps.runtimes.ensureForUser(newId(), userId, this.deps.clock.now());
    this.deps.hub.publishCreated(userId, created.id);
    return created;
  }

  private requireRuntime(userId: string): RuntimeWithOwner {
    const runtime = this.deps.runtimes.findByUserId(userId);
    if (runtime) return runtime;
    if (!this.deps.users.findById(userId)) throw notFound('USER_NOT_FOUND', 'No user with this id.');
    throw notFound('RUNTIME_NOT_CREATED', 'This user has no runtime yet. Start it first.');
  }

  private joinOrRefuse(runtime: RuntimeWithOwner, kind: OperationKind): StartedOperation | null {
    const current = this.inFlight.get(runtime.id);
    if (!current) return null;
    if (current.kind === kind) return { operation: current.snapshot, runtime: this.view(runtime) };
    const step = current.snapshot.message.toLowerCase();
    throw conflict(
      'RUNTIME_BUSY',
      `A ${current.kind} of this runtime is in progress (${step}); try again when it has finished.`,
    );
  }

  private launch(
    runtime: RuntimeWithOwner,
    kind: OperationKind,
    actor: Actor,
    origin: RequestOrigin,
    work: (op: Operation) => Promise<void>,
  ): StartedOperation {
    const { clock, hub, audit, logger } = this.deps;
    const op = new Operation(runtime.id, runtime.userId, kind, (view) => hub.publishProgress(view), clock.now());
    this.inFlight.set(runtime.id, op);
    hub.track(op);
    audit.record({
      action: `runtime.${kind}`,
      actor,
      target: { type: 'runtime', id: runtime.id, label: runtime.username },
      origin,
      detail: { operationId: op.id },
    });
    void (async () => {
      const release = await this.slots.acquire((ahead) =>
        op.update({
          step: 'queued',
          percent: 0,
          message: ahead === 0 ? 'Queued: next in line' : `Queued behind ${ahead} other ${ahead === 1 ? 'runtime' : 'runtimes'}`,
          queuePosition: ahead,
        }),
      );
      try {
        await work(op);
        op.succeed(kind === 'start' || kind === 'restart' ? 'Ready' : 'Done', clock.now());
      } catch (err) {
        const error =
          err instanceof OperationError
            ? { code: err.code, message: err.message }
            : { code: 'ENGINE_ERROR', message: `The Docker engine refused the ${kind}: ${err instanceof Error ? err.message : String(err)}` };
        logger.warn({ runtimeId: runtime.id, username: runtime.username, kind, code: error.code, reason: error.message }, 'runtime operation failed');
        if (this.deps.runtimes.findById(runtime.id)) {
          this.deps.runtimes.setError(runtime.id, error, clock.now());
          // A failed start is not retried behind the user's back (at the next reconcile, say):
          // they see the reason and start again when it is fixed.
          if (kind === 'start' || kind === 'restart') this.deps.runtimes.setDesiredState(runtime.id, 'stopped', clock.now());
        }
        op.fail(error, clock.now());
      } finally {
        release();
        this.inFlight.delete(runtime.id);
        hub.publishState(runtime.id);
      }
    })();
    return { operation: op.snapshot, runtime: this.view(this.deps.runtimes.findById(runtime.id) ?? runtime) };
  }

  private async runStart(op: Operation, runtimeId: string): Promise<void> {
    const { backend, runtimes, clock, settings } = this.deps;
    const runtime = runtimes.findById(runtimeId);
    if (!runtime) throw new OperationError('RUNTIME_NOT_FOUND', 'The runtime was deleted meanwhile.');
    runtimes.setDesiredState(runtimeId, 'running', clock.now());
    runtimes.setError(runtimeId, null, clock.now());
    const names = runtimeNames(runtimeId);

    op.update({ step: 'preparing', percent: 2, message: 'Preparing the network and the data volume' });
    // Independent engine calls go out together: each is a round trip, and they add up.
    const [hasImage, network, , existing] = await Promise.all([
      backend.imageExists(settings.image),
      backend.ensureNetwork(names.network, ownerLabels(identityOf(runtime), 'network')),
      backend.ensureVolume(names.volume, ownerLabels(identityOf(runtime), 'volume')),
      runtime.containerId ? backend.inspectContainer(runtime.containerId) : Promise.resolve(null),
    ]);
    this.subnets.set(runtimeId, network.subnet);
    await this.deps.proxies.attach(names.network, network.subnet);

    if (!hasImage) {
      op.update({ step: 'pulling', percent: 5, message: `Downloading ${settings.image}` });
      try {
        await backend.pullImage(settings.image, (p) =>
          op.update({
            step: 'pulling',
            percent: 5 + (p.bytesTotal > 0 ? (p.bytesDone / p.bytesTotal) * 45 : 0),
            message: `Downloading ${settings.image}`,
            bytesDone: p.bytesDone,
            bytesTotal: p.bytesTotal,
          }),
        );
      } catch (err) {
        throw new OperationError('IMAGE_PULL_FAILED', `The runtime image ${settings.image} is not on this host and could not be downloaded: ${(err as Error).message}`);
      }
    }

    const probeRender = this.render(runtime, network.subnet, { gatewayPassword: '', modelKey: '' });
    let snapshot = existing;
    const reusable = snapshot !== null && snapshot.image === settings.image && snapshot.labels[LABELS.configHash] === probeRender.configHash;
    if (snapshot && !reusable) {
      op.update({ step: 'removing', percent: 55, message: 'Replacing the container with the current configuration' });
      await backend.stopContainer(snapshot.id, settings.stopTimeoutSeconds);
      await backend.removeContainer(snapshot.id);
      this.forgetContainer(runtimeId, snapshot.id);
      snapshot = null;
    }

    let rendered = probeRender;
    if (!snapshot) {
      op.update({ step: 'creating', percent: 58, message: 'Creating the container' });
      // New secrets with every new container: a leaked key dies with the container it was made for.
      const secrets = { gatewayPassword: newSecret(), modelKey: newSecret() };
      rendered = this.render(runtime, network.subnet, secrets);
      let containerId: string;
      try {
        containerId = await backend.createContainer(rendered.spec);
      } catch (err) {
        throw new OperationError('CONTAINER_CREATE_FAILED', `Docker could not create the runtime container: ${(err as Error).message}`);
      }
      runtimes.setContainer(
        runtimeId,
        { containerId, image: settings.image, configHash: rendered.configHash, modelKeyHash: hashSecret(secrets.modelKey) },
        clock.now(),
      );
      op.update({ step: 'configuring', percent: 62, message: 'Writing the OpenClaw configuration' });
      const [created] = await Promise.all([backend.inspectContainer(containerId), this.writeConfig(runtime, containerId, rendered)]);
      if (!created) throw new OperationError('CONTAINER_VANISHED', 'The runtime container was removed while it was being created.');
      snapshot = created;
    } else {
      // Every start, not only a new container's: whatever the agent or the member changed in the
      // file since, the platform-owned keys are back before OpenClaw reads it.
      op.update({ step: 'configuring', percent: 62, message: 'Writing the OpenClaw configuration' });
      await this.writeConfig(runtime, snapshot.id, rendered);
    }
    this.snapshots.set(runtimeId, snapshot);

    op.update({ step: 'starting', percent: 66, message: 'Starting OpenClaw' });
    this.readyContainers.delete(snapshot.id);
    await backend.startContainer(snapshot.id);
    snapshot = await this.refresh(runtimeId, snapshot.id);

    if (!snapshot) throw new OperationError('CONTAINER_VANISHED', 'The runtime container was removed while it was starting.');
    await this.waitUntilReady(op, runtimeId, snapshot, names.network);
    runtimes.markStarted(runtimeId, clock.now());
    this.touch(runtimeId);
    this.deps.hub.publishState(runtimeId);
  }

  /** Writes openclaw.json (the member's settings kept, the platform's re-applied) and logs what it had to change. */
  private async writeConfig(runtime: RuntimeWithOwner, containerId: string, rendered: RenderedRuntime): Promise<void> {
    const { backend, settings, clock, logger } = this.deps;
    let result;
    try {
      result = await writeRuntimeConfig(backend, containerId, rendered, settings.models, clock.now());
    } catch (err) {
      if (!(err instanceof ConfigReadError)) throw err;
      // Nothing was written: falling back to the platform's config would throw the member's settings away.
      throw new OperationError('CONFIG_READ_FAILED', `The OpenClaw configuration in the runtime's volume could not be read, so nothing was changed and OpenClaw was not started: ${err.message}`);
    }
    const who = { runtimeId: runtime.id, username: runtime.username };
    if (result.outcome === 'set-aside') {
      logger.warn(
        { ...who, reason: result.reason, keptAs: result.setAsideAs },
        result.setAsideAs
          ? 'the runtime\'s openclaw.json could not be used; it was kept aside and the platform\'s configuration written instead'
          : 'the runtime\'s openclaw.json could not be used and was too large to keep; the platform\'s configuration was written instead',
      );
    } else if (result.reset.length > 0) {
      logger.warn({ ...who, reset: result.reset }, 'platform-owned settings in the runtime\'s openclaw.json were reset');
    }
  }

  /**
   * Probes the container's address often while a light image may answer any moment, then backs
   * off; it re-inspects the container only every few hundred milliseconds (or while it has no
   * address yet) to notice an exit without a Docker round trip per probe.
   */
  private async waitUntilReady(op: Operation, runtimeId: string, started: ContainerSnapshot, networkName: string): Promise<void> {
    const { backend, clock, settings, probe } = this.deps;
    const containerId = started.id;
    const startedAt = clock.now();
    const deadline = startedAt + settings.readyTimeoutMs;
    let snapshot: ContainerSnapshot = started;
    let inspectedAt = startedAt;
    let live = false;
    let interval = PROBE_FIRST_INTERVAL_MS;
    for (;;) {
      const address = snapshot.addresses[networkName];
      if (address) {
        if (!live) live = (await probe.status(address, '/healthz', 2_000)) === 200;
        if (live && (await probe.status(address, '/readyz', 2_000)) === 200) {
          this.readyContainers.add(containerId);
          return;
        }
      }
      if (!address || clock.now() - inspectedAt >= INSPECT_WHILE_WAITING_MS) {
        const fresh = await backend.inspectContainer(containerId);
        inspectedAt = clock.now();
        this.snapshots.set(runtimeId, fresh);
        if (!fresh) throw new OperationError('CONTAINER_VANISHED', 'The runtime container was removed while it was starting.');
        snapshot = fresh;
        if (fresh.status === 'exited' || fresh.status === 'dead' || fresh.status === 'restarting') {
          const tail = await this.logTail(containerId);
          const why = fresh.oomKilled
            ? `ran out of memory (limit ${Math.round(fresh.memoryLimitBytes / 1024 ** 2)} MiB)`
            : `exited with code ${fresh.exitCode ?? 'unknown'}`;
          await this.stopFailedStart(runtimeId, containerId);
          throw new OperationError('RUNTIME_EXITED', `OpenClaw ${why} while starting.${tail}`);
        }
      }
      const elapsed = clock.now() - startedAt;
      if (clock.now() >= deadline) {
        const tail = await this.logTail(containerId);
        await this.stopFailedStart(runtimeId, containerId);
        throw new OperationError(
          'READY_TIMEOUT',
          `OpenClaw did not become ready within ${Math.round(settings.readyTimeoutMs / 1000)} s (${live ? '/healthz answered, /readyz did not' : '/healthz never answered'}); it was stopped.${tail}`,
        );
      }
      op.update({
        step: 'waiting-for-health',
        percent: 70 + Math.min(29, (elapsed / settings.readyTimeoutMs) * 29 * 3),
        message: live ? 'Waiting for OpenClaw to finish starting' : 'Waiting for OpenClaw to answer',
      });
      await this.sleep(interval);
      if (elapsed > FAST_PROBING_MS) interval = Math.min(PROBE_MAX_INTERVAL_MS, Math.round(interval * 1.5));
    }
  }

  private async logTail(containerId: string): Promise<string> {
    try {
      const stream = await this.deps.backend.logs(containerId, { tail: LOG_TAIL_ON_FAILURE, follow: false });
      if (!stream) return '';
      const lines: string[] = [];
      for await (const entry of stream as AsyncIterable<{ stream: string; line: string }>) {
        lines.push(`${entry.stream === 'stderr' ? '! ' : ''}${entry.line}`);
      }
      return lines.length > 0 ? ` Last log lines:\n${lines.slice(-LOG_TAIL_ON_FAILURE).join('\n')}` : '';
    } catch {
      return '';
    }
  }

  /**
   * Stops the container of a start that failed and reads it back before the operation ends: the
   * watcher's event for the stop may come later, and whoever reads the runtime when the start has
   * failed must find it failed, not still starting.
   */
  private async stopFailedStart(runtimeId: string, containerId: string): Promise<void> {
    await this.deps.backend.stopContainer(containerId, this.deps.settings.stopTimeoutSeconds).catch(() => undefined);
    this.deps.runtimes.setDesiredState(runtimeId, 'stopped', this.deps.clock.now());
    await this.refresh(runtimeId, containerId).catch(() => null);
  }

  private async runStop(op: Operation, runtimeId: string, desired: 'stopped' | 'deleted'): Promise<void> {
    const { backend, runtimes, clock, settings } = this.deps;
    runtimes.setDesiredState(runtimeId, desired, clock.now());
    const runtime = runtimes.findById(runtimeId);
    const containerId = runtime?.containerId ?? this.snapshots.get(runtimeId)?.id;
    if (!containerId) return;
    op.update({ step: 'stopping', percent: 20, message: 'Stopping OpenClaw' });
    await backend.stopContainer(containerId, settings.stopTimeoutSeconds);
    this.readyContainers.delete(containerId);
    await this.refresh(runtimeId, containerId);
  }

  private async runRemove(op: Operation, runtimeId: string, purge: boolean): Promise<void> {
    const { backend, runtimes, clock, logger } = this.deps;
    await this.runStop(op, runtimeId, 'deleted');
    const runtime = runtimes.findById(runtimeId);
    const names = runtimeNames(runtimeId);
    op.update({ step: 'removing', percent: 60, message: purge ? 'Removing the container and all data' : 'Removing the container (data is kept)' });
    if (runtime?.containerId) await backend.removeContainer(runtime.containerId);
    this.forgetContainer(runtimeId, runtime?.containerId ?? null);
    // The model key dies with the container it was made for.
    runtimes.setContainer(runtimeId, { containerId: null, modelKeyHash: null }, clock.now());
    await backend.removeNetwork(names.network);
    this.subnets.delete(runtimeId);
    if (purge) {
      for (const hook of this.purgeHooks) await hook(runtimeId);
      await backend.removeVolume(names.volume);
      runtimes.delete(runtimeId);
      logger.info({ runtimeId, username: runtime?.username }, 'runtime purged with its data volume');
    }
  }

  // ---- what the watcher and hooks use ----

  /** Re-reads one container from the engine; tells stream listeners if anything changed. */
  async refresh(runtimeId: string, containerId: string): Promise<ContainerSnapshot | null> {
    const snapshot = await this.deps.backend.inspectContainer(containerId);
    this.applySnapshot(runtimeId, containerId, snapshot);
    return snapshot;
  }

  applySnapshot(runtimeId: string, containerId: string, snapshot: ContainerSnapshot | null): void {
    const known = this.snapshots.get(runtimeId);
    if (known && known.id !== containerId && snapshot === null) return; // an older container went away
    if (snapshot === null) this.forgetContainer(runtimeId, containerId);
    else {
      this.snapshots.set(runtimeId, snapshot);
      if (snapshot.status !== 'running') this.readyContainers.delete(containerId);
    }
    this.deps.hub.publishState(runtimeId);
  }

  markReady(containerId: string): void {
    this.readyContainers.add(containerId);
  }

  /** Takes over a container found on the engine (start-up, after an engine restart). */
  adopt(runtimeId: string, snapshot: ContainerSnapshot): void {
    this.deps.runtimes.setContainer(
      runtimeId,
      { containerId: snapshot.id, image: snapshot.image, configHash: snapshot.labels[LABELS.configHash] ?? null },
      this.deps.clock.now(),
    );
    this.applySnapshot(runtimeId, snapshot.id, snapshot);
  }

  /** The stored container is gone from the engine (external `docker rm`, or while we were down). */
  containerGone(runtimeId: string, containerId: string): void {
    const runtime = this.deps.runtimes.findById(runtimeId);
    if (runtime?.containerId === containerId) this.deps.runtimes.setContainer(runtimeId, { containerId: null, modelKeyHash: null }, this.deps.clock.now());
    this.applySnapshot(runtimeId, containerId, null);
  }

  /**
   * Probes a container Docker (re)started on its own (restart policy, adoption) until /readyz
   * answers, so it shows as running as soon as it is, not at the next health check.
   */
  async confirmReady(runtimeId: string, containerId: string): Promise<boolean> {
    const { clock, settings, probe } = this.deps;
    const names = runtimeNames(runtimeId);
    const deadline = clock.now() + settings.readyTimeoutMs;
    while (clock.now() < deadline) {
      if (this.inFlight.has(runtimeId)) return false;
      const snapshot = await this.deps.backend.inspectContainer(containerId);
      if (!snapshot || snapshot.status !== 'running') return false;
      const address = snapshot.addresses[names.network];
      if (address && (await probe.status(address, '/readyz', 2_000)) === 200) {
        this.readyContainers.add(containerId);
        this.applySnapshot(runtimeId, containerId, snapshot);
        return true;
      }
      await this.sleep(PROBE_INTERVAL_MS * 4);
    }
    return false;
  }

  /**
   * Stops a runtime the platform must not leave running (OOM kill, crash loop): the restart policy
   * would otherwise bring it back forever. The reason stays on the runtime for its owner to read.
   */
  async stopAfterFailure(runtimeId: string, error: { code: string; message: string }): Promise<void> {
    const { backend, runtimes, clock, settings, audit, logger } = this.deps;
    const runtime = runtimes.findById(runtimeId);
    if (!runtime || this.inFlight.has(runtimeId)) return;
    // Stopped first, recorded second: whoever reads "stopped" must find it really stopped.
    if (runtime.containerId) await backend.stopContainer(runtime.containerId, settings.stopTimeoutSeconds).catch(() => undefined);
    runtimes.setDesiredState(runtimeId, 'stopped', clock.now());
    runtimes.setError(runtimeId, error, clock.now());
    logger.warn({ runtimeId, username: runtime.username, code: error.code, reason: error.message }, 'runtime stopped after a failure');
    audit.record({
      action: 'runtime.failure-stop',
      actor: SYSTEM_ACTOR,
      target: { type: 'runtime', id: runtimeId, label: runtime.username },
      origin: NO_ORIGIN,
      detail: { code: error.code },
    });
    if (runtime.containerId) await this.refresh(runtimeId, runtime.containerId);
    else this.deps.hub.publishState(runtimeId);
  }

  /** The last log lines of a container, formatted for an error message ('' when there are none). */
  async logTailFor(containerId: string): Promise<string> {
    return this.logTail(containerId);
  }

  /** Waits for every operation in flight on any runtime of this user. */
  async settledForUser(userId: string): Promise<void> {
    await Promise.all([...this.inFlight.values()].filter((op) => op.userId === userId).map((op) => op.done));
  }

  rememberSubnet(runtimeId: string, subnet: string): void {
    this.subnets.set(runtimeId, subnet);
  }

  private forgetContainer(runtimeId: string, containerId: string | null): void {
    const known = this.snapshots.get(runtimeId);
    if (!known || containerId === null || known.id === containerId) this.snapshots.delete(runtimeId);
    if (containerId) this.readyContainers.delete(containerId);
  }

  // ---- activity (idle stop) ----

  private readonly lastActivity = new Map<string, number>();

  /** Anything a user or their agent does through the platform keeps their runtime awake. */
  touch(runtimeId: string): void {
    this.lastActivity.set(runtimeId, this.deps.clock.now());
  }

  touchUser(userId: string): void {
    const id = this.runtimeIdForUser(userId);
    if (id) this.touch(id);
  }

  /** Stops running runtimes idle for longer than the setting; returns how many it stopped. */
  stopIdle(): number {
    const { settings, clock } = this.deps;
    if (settings.idleStopMs <= 0) return 0;
    let stopped = 0;
    for (const runtime of this.deps.runtimes.list()) {
      const snapshot = this.snapshots.get(runtime.id);
      if (!snapshot || snapshot.status !== 'running' || this.inFlight.has(runtime.id)) continue;
      const last = this.lastActivity.get(runtime.id) ?? runtime.lastStartedAt ?? 0;
      if (clock.now() - last < settings.idleStopMs) continue;
      this.stop({ ...SYSTEM_ACTOR, username: '(idle stop)' }, runtime.userId, NO_ORIGIN);
      stopped++;
    }
    return stopped;
  }
}

const identityOf = (runtime: RuntimeWithOwner) => ({ runtimeId: runtime.id, userId: runtime.userId, username: runtime.username });
