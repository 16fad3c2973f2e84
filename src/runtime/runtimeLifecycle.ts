import type { SettingsSource } from '../lib/settingsStore';
import type { RuntimeRepository, RuntimeWithOwner, StopCause } from '../db/repositories/runtimeRepository';
import type { UserRepository } from '../db/repositories/userRepository';
import { NO_ORIGIN, SYSTEM_ACTOR, type Actor, type AuditLog, type RequestOrigin } from '../domain/audit';
import type { Clock } from '../lib/clock';
import { badRequest, conflict, notFound } from '../lib/errors';
import { isInfraError } from '../lib/infraErrors';
import type { Logger } from '../lib/logger';
import { hashSecret, newId, newSecret } from '../lib/secrets';
import { Semaphore } from '../lib/semaphore';
import { Operation, OperationError, type OperationKind, type OperationView, type RuntimeEventHub } from './operations';
import { isDown, type RuntimeOwner, type RuntimePlacement, type RuntimeProvisioner } from './provisioner';
import type { RuntimePreparations } from './runtimePreparations';
import type { RuntimeReadiness } from './runtimeReadiness';
import type { RuntimeRegistry } from './runtimeRegistry';
import { ConfigReadError, writeRuntimeConfig, type RuntimeData } from './runtimeConfigFile';
import type { RuntimeSettings } from './runtimeSettings';
import type { RenderedRuntime } from './runtimeSpec';
import { ownerOf, renderFor, settingsFor, type RuntimeView, type RuntimeViews } from './runtimeViews';

export interface StartedOperation {
  /** null when there was nothing to do (already running / already stopped). */
  operation: OperationView | null;
  runtime: RuntimeView;
}

/** Why a stop was asked for, when the actor alone does not say (the platform's own stops). */
export interface StopReason {
  cause: StopCause;
  /** An idle stop: how long the runtime had been without activity. */
  idleMs?: number;
}

export interface RuntimeLifecycleDeps {
  runtimes: RuntimeRepository;
  users: UserRepository;
  provisioner: RuntimeProvisioner;
  /** One preparation per runtime at a time: a start joins a new account's background one. */
  preparations: RuntimePreparations;
  registry: RuntimeRegistry;
  views: RuntimeViews;
  readiness: RuntimeReadiness;
  hub: RuntimeEventHub;
  audit: AuditLog;
  clock: Clock;
  logger: Logger;
  settings: SettingsSource<RuntimeSettings>;
  /** Called when a runtime is (re)started, so idle stop counts from there. */
  onStarted: (runtimeId: string) => void;
}

/**
 * Creates, starts, stops and deletes each user's runtime through the provisioner. Operations on
 * one runtime never overlap: a second request of the same kind joins the one in flight, a
 * different one is refused with 409 RUNTIME_BUSY (waiting behind a multi-minute image pull would
 * look like a hang). Across users, at most `maxParallelOperations` run at once and the rest queue.
 */
export class RuntimeLifecycle {
  private readonly slots: Semaphore;
  private readonly purgeHooks: ((runtimeId: string) => Promise<void>)[] = [];
  private readonly startHooks: ((runtimeId: string, userId: string) => Promise<void>)[] = [];

  constructor(private readonly deps: RuntimeLifecycleDeps) {
    this.slots = new Semaphore(deps.settings.get().maxParallelOperations);
  }

  /** Operations waiting for a slot. */
  get queued(): number {
    return this.slots.queued;
  }

  /** Runs before a runtime's data is removed: whatever else holds it must let go first. */
  beforePurge(hook: (runtimeId: string) => Promise<void>): void {
    this.purgeHooks.push(hook);
  }

  /**
   * Runs at every start before anything is made or started: whatever must be true of the
   * runtime's data first (a restore a crash interrupted is finished). A rejection fails the start.
   */
  beforeStart(hook: (runtimeId: string, userId: string) => Promise<void>): void {
    this.startHooks.push(hook);
  }

  /**
   * Works on a user's data with the runtime stopped and held: no start, stop or other operation
   * can overlap it (they are refused with RUNTIME_BUSY), and it stays stopped afterwards. Its
   * progress is the operation's, on the runtime's event stream like a start's.
   */
  withDataHeld(actor: Actor, userId: string, origin: RequestOrigin, kind: 'restore' | 'move', work: (op: Operation) => Promise<void>): StartedOperation {
    const runtime = this.requireRuntime(userId);
    const current = this.deps.registry.inFlight.get(runtime.id);
    if (current) throw conflict('RUNTIME_BUSY', `A ${current.kind} of this runtime is in progress (${current.snapshot.message.toLowerCase()}); try again when it has finished.`);
    return this.launch(runtime, kind, actor, origin, async (op) => {
      await this.runStop(op, runtime.id, 'stopped');
      try {
        await work(op);
      } finally {
        // What a preparation seeded is no longer what the data holds: the next start writes the config.
        this.deps.runtimes.clearSeededConfig(runtime.id, this.deps.clock.now());
      }
    });
  }

  start(actor: Actor, userId: string, origin: RequestOrigin): StartedOperation {
    const runtime = this.ensureRuntime(userId);
    if (runtime.userStatus !== 'active') throw conflict('USER_DISABLED', 'This account is disabled; its runtime cannot be started.');
    const joined = this.joinOrRefuse(runtime, 'start');
    if (joined) return joined;
    const current = this.deps.views.view(runtime);
    if (current.state === 'running' && !current.configStale && !current.outdatedImage) return { operation: null, runtime: current };
    return this.launch(runtime, 'start', actor, origin, (op) => this.runStart(op, runtime.id));
  }

  /**
   * Stops a user's runtime and records who or what stopped it. Without a reason the actor says:
   * the owner is the member, another signed-in user an administrator (only they reach other
   * users' runtimes), no user the platform.
   */
  stop(actor: Actor, userId: string, origin: RequestOrigin, reason?: StopReason): StartedOperation {
    const runtime = this.requireRuntime(userId);
    const joined = this.joinOrRefuse(runtime, 'stop');
    if (joined) return joined;
    const instance = this.deps.registry.instance(runtime.id);
    if (!instance || isDown(instance.phase)) {
      this.deps.runtimes.setDesiredState(runtime.id, runtime.desiredState === 'deleted' ? 'deleted' : 'stopped', this.deps.clock.now());
      return { operation: null, runtime: this.deps.views.view(this.requireRuntime(userId)) };
    }
    const cause: StopCause = reason?.cause ?? (actor.id === null ? 'system' : actor.id === runtime.userId ? 'member' : 'admin');
    return this.launch(runtime, 'stop', actor, origin, async (op) => {
      await this.runStop(op, runtime.id, 'stopped');
      // Recorded once it is really stopped: the state event that follows carries it.
      const { runtimes, clock } = this.deps;
      runtimes.setStop(runtime.id, { cause, at: clock.now(), detail: null, idleMs: reason?.idleMs ?? null, actor: cause === 'admin' ? actor.username : null }, clock.now());
    });
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

  /** Removes the runtime and its placement; with `purge`, also the user's data. */
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
    const { inFlight } = this.deps.registry;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all([...[...inFlight.values()].map((op) => op.done), this.deps.preparations.drain()]),
      new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs))),
    ]);
    clearTimeout(timer);
  }

  /** Waits for whatever operation is in flight on a runtime (tests, shutdown, hooks). */
  async settled(runtimeId: string): Promise<void> {
    await this.deps.registry.inFlight.get(runtimeId)?.done;
  }

  /** Waits for every operation in flight on any runtime of this user. */
  async settledForUser(userId: string): Promise<void> {
    await Promise.all([...this.deps.registry.inFlight.values()].filter((op) => op.userId === userId).map((op) => op.done));
    // A background preparation of a new account may still be creating its network or volume.
    await this.deps.preparations.settledForUser(userId);
  }

  /**
   * Stops a runtime the platform must not leave running (OOM kill, crash loop): the restart policy
   * would otherwise bring it back forever. The reason stays on the runtime for its owner to read.
   */
  async stopAfterFailure(runtimeId: string, error: { code: string; message: string }, cause: 'out_of_memory' | 'crash_loop'): Promise<void> {
    const { provisioner, runtimes, clock, audit, logger, registry } = this.deps;
    const settings = this.deps.settings.get();
    const runtime = runtimes.findById(runtimeId);
    if (!runtime || registry.isBusy(runtimeId)) return;
    // Stopped first, recorded second: whoever reads "stopped" must find it really stopped.
    if (runtime.containerId) await provisioner.stop(runtime.containerId, settings.stopTimeoutSeconds).catch(() => undefined);
    runtimes.setDesiredState(runtimeId, 'stopped', clock.now());
    runtimes.setError(runtimeId, error, clock.now());
    runtimes.setStop(runtimeId, { cause, at: clock.now(), detail: error.message, idleMs: null, actor: null }, clock.now());
    logger.warn({ runtimeId, username: runtime.username, code: error.code, reason: error.message }, 'runtime stopped after a failure');
    audit.record({
      action: 'runtime.failure-stop',
      actor: SYSTEM_ACTOR,
      target: { type: 'runtime', id: runtimeId, label: runtime.username },
      origin: NO_ORIGIN,
      detail: { code: error.code },
    });
    if (runtime.containerId) await registry.refresh(runtimeId, runtime.containerId);
    else this.deps.hub.publishState(runtimeId);
  }

  ensureRuntime(userId: string): RuntimeWithOwner {
    const existing = this.deps.runtimes.findByUserId(userId);
    if (existing) return existing;
    if (!this.deps.users.findById(userId)) throw notFound('USER_NOT_FOUND', 'No user with this id.');
    const created = this.deps.runtimes.ensureForUser(newId(), userId, this.deps.clock.now());
    this.deps.hub.publishCreated(userId, created.id);
    return created;
  }

  requireRuntime(userId: string): RuntimeWithOwner {
    const runtime = this.deps.runtimes.findByUserId(userId);
    if (runtime) return runtime;
    if (!this.deps.users.findById(userId)) throw notFound('USER_NOT_FOUND', 'No user with this id.');
    throw notFound('RUNTIME_NOT_CREATED', 'This user has no runtime yet. Start it first.');
  }

  private joinOrRefuse(runtime: RuntimeWithOwner, kind: OperationKind): StartedOperation | null {
    const current = this.deps.registry.inFlight.get(runtime.id);
    if (!current) return null;
    if (current.kind === kind) return { operation: current.snapshot, runtime: this.deps.views.view(runtime) };
    const step = current.snapshot.message.toLowerCase();
    throw conflict('RUNTIME_BUSY', `A ${current.kind} of this runtime is in progress (${step}); try again when it has finished.`);
  }

  private launch(runtime: RuntimeWithOwner, kind: OperationKind, actor: Actor, origin: RequestOrigin, work: (op: Operation) => Promise<void>): StartedOperation {
    const { clock, hub, audit, logger, registry } = this.deps;
    const op = new Operation(runtime.id, runtime.userId, kind, (view) => hub.publishProgress(view), clock.now());
    registry.inFlight.set(runtime.id, op);
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
            : isInfraError(err, 'unavailable')
              ? { code: 'ENGINE_UNAVAILABLE', message: `The ${kind} could not finish: ${err.message}` }
              : { code: 'ENGINE_ERROR', message: `The container engine refused the ${kind}: ${err instanceof Error ? err.message : String(err)}` };
        logger.warn({ runtimeId: runtime.id, username: runtime.username, kind, code: error.code, reason: error.message }, 'runtime operation failed');
        try {
          if (this.deps.runtimes.findById(runtime.id)) {
            this.deps.runtimes.setError(runtime.id, error, clock.now());
            // A failed start is not retried behind the user's back (at the next reconcile, say):
            // they see the reason and start again when it is fixed.
            if (kind === 'start' || kind === 'restart') this.deps.runtimes.setDesiredState(runtime.id, 'stopped', clock.now());
          }
        } catch (recordErr) {
          logger.error({ runtimeId: runtime.id, err: (recordErr as Error).message }, 'recording a failed runtime operation failed');
        }
        op.fail(error, clock.now());
      } finally {
        release();
        registry.inFlight.delete(runtime.id);
        hub.publishState(runtime.id);
      }
    })();
    return { operation: op.snapshot, runtime: this.deps.views.view(this.deps.runtimes.findById(runtime.id) ?? runtime) };
  }

  private async runStart(op: Operation, runtimeId: string): Promise<void> {
    const { provisioner, runtimes, clock, registry } = this.deps;
    const runtime = runtimes.findById(runtimeId);
    if (!runtime) throw new OperationError('RUNTIME_NOT_FOUND', 'The runtime was deleted meanwhile.');
    // One snapshot for the whole operation: an admin's change meanwhile applies to the next one.
    const settings = settingsFor(runtime, this.deps.settings.get());
    runtimes.setDesiredState(runtimeId, 'running', clock.now());
    runtimes.setError(runtimeId, null, clock.now());
    // Whoever stopped it last no longer explains its state once it is being started again.
    runtimes.setStop(runtimeId, null, clock.now());

    op.update({ step: 'preparing', percent: 2, message: 'Preparing the network and the data volume' });
    for (const hook of this.startHooks) await hook(runtimeId, runtime.userId);
    // Independent calls go out together: each is a round trip, and they add up.
    const [hasImage, placement, existing] = await Promise.all([
      provisioner.imageAvailable(settings.image),
      this.deps.preparations.prepare(ownerOf(runtime)),
      runtime.containerId ? provisioner.inspect(runtime.containerId) : Promise.resolve(null),
    ]);
    registry.rememberPlacement(runtimeId, placement);
    // Read after the preparation, which may have seeded the volume just now.
    const seededConfigHash = runtimes.findById(runtimeId)?.seededConfigHash ?? null;

    if (!hasImage) {
      op.update({ step: 'pulling', percent: 5, message: `Downloading ${settings.image}` });
      try {
        await provisioner.pullImage(settings.image, (p) =>
          op.update({
            step: 'pulling',
            percent: 5 + (p.bytesTotal > 0 ? (p.bytesDone / p.bytesTotal) * 45 : 0),
            message: `Downloading ${settings.image}`,
            bytesDone: p.bytesDone,
            bytesTotal: p.bytesTotal,
          }),
        );
      } catch (err) {
        if (isInfraError(err, 'unavailable')) throw err;
        throw new OperationError('IMAGE_PULL_FAILED', `The runtime image ${settings.image} is not on this host and could not be downloaded: ${(err as Error).message}`);
      }
    }

    const probeRender = renderFor(runtime, settings, placement, { gatewayPassword: '', modelKey: '' });
    let instance = existing;
    const reusable = instance !== null && instance.image === settings.image && instance.specHash === probeRender.configHash;
    if (instance && !reusable) {
      op.update({ step: 'removing', percent: 55, message: 'Replacing the container with the current configuration' });
      await provisioner.stop(instance.id, settings.stopTimeoutSeconds);
      await provisioner.removeInstance(instance.id);
      registry.forget(runtimeId, instance.id);
      instance = null;
    }

    let rendered = probeRender;
    if (!instance) {
      op.update({ step: 'creating', percent: 58, message: 'Creating the container' });
      // New secrets with every new incarnation: a leaked key dies with the one it was made for.
      const secrets = { gatewayPassword: newSecret(), modelKey: newSecret() };
      rendered = renderFor(runtime, settings, placement, secrets);
      let instanceId: string;
      try {
        instanceId = await provisioner.create(rendered.spec);
      } catch (err) {
        if (isInfraError(err, 'unavailable')) throw err;
        throw new OperationError('CONTAINER_CREATE_FAILED', `The runtime container could not be created: ${(err as Error).message}`);
      }
      runtimes.setContainer(runtimeId, { containerId: instanceId, image: settings.image, configHash: rendered.configHash, modelKeyHash: hashSecret(secrets.modelKey) }, clock.now());
      op.update({ step: 'configuring', percent: 62, message: 'Writing the OpenClaw configuration' });
      // A volume seeded with exactly this config before any container existed has had nothing run
      // on it since (the file API cannot reach openclaw.json): writing it again would only cost time.
      const seeded = seededConfigHash !== null && seededConfigHash === rendered.configHash;
      const [created] = await Promise.all([provisioner.inspect(instanceId), seeded ? Promise.resolve() : this.writeConfig(runtime, instanceId, rendered)]);
      if (!created) throw new OperationError('CONTAINER_VANISHED', 'The runtime container was removed while it was being created.');
      instance = created;
    } else {
      // Every start, not only a new incarnation's: whatever the agent or the member changed in the
      // file since, the platform-owned keys are back before OpenClaw reads it.
      op.update({ step: 'configuring', percent: 62, message: 'Writing the OpenClaw configuration' });
      await this.writeConfig(runtime, instance.id, rendered);
    }
    registry.remember(runtimeId, instance);

    op.update({ step: 'starting', percent: 66, message: 'Starting OpenClaw' });
    registry.markUnready(instance.id);
    await provisioner.start(instance.id);
    const started = await registry.refresh(runtimeId, instance.id);
    if (!started) throw new OperationError('CONTAINER_VANISHED', 'The runtime container was removed while it was starting.');
    await this.deps.readiness.waitUntilReady(op, runtimeId, started);
    runtimes.markStarted(runtimeId, clock.now());
    this.deps.onStarted(runtimeId);
    this.deps.hub.publishState(runtimeId);
  }

  /**
   * Writes the platform's openclaw.json into a new runtime's data before any container exists (a
   * preparation's seed, in the background at account creation), so its first start can skip it.
   */
  async seedConfig(owner: RuntimeOwner, placement: RuntimePlacement): Promise<void> {
    const { provisioner, runtimes, clock } = this.deps;
    const runtime = runtimes.findById(owner.runtimeId);
    if (!runtime || runtime.containerId) return;
    const settings = this.deps.settings.get();
    const rendered = renderFor(runtime, settings, placement, { gatewayPassword: '', modelKey: '' });
    let seeded = false;
    const freshData: RuntimeData = {
      // The preparation made this data just now: there is nothing to read, let alone to keep.
      readEntry: async () => null,
      writeFiles: async (_instanceId, dir, entries) => {
        seeded = await provisioner.seedData(owner, settings.image, rendered.spec.dataPath, dir, entries);
      },
    };
    await writeRuntimeConfig(freshData, '', rendered, settings.models, clock.now());
    if (seeded) runtimes.setSeededConfig(owner.runtimeId, rendered.configHash, clock.now());
  }

  /** Writes openclaw.json (the member's settings kept, the platform's re-applied) and logs what it had to change. */
  private async writeConfig(runtime: RuntimeWithOwner, instanceId: string, rendered: RenderedRuntime): Promise<void> {
    const { provisioner, clock, logger } = this.deps;
    const settings = this.deps.settings.get();
    let result;
    try {
      result = await writeRuntimeConfig(provisioner, instanceId, rendered, settings.models, clock.now());
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

  private async runStop(op: Operation, runtimeId: string, desired: 'stopped' | 'deleted'): Promise<void> {
    const { provisioner, runtimes, clock, registry } = this.deps;
    // One snapshot for the whole operation: an admin's change meanwhile applies to the next one.
    const settings = this.deps.settings.get();
    runtimes.setDesiredState(runtimeId, desired, clock.now());
    const runtime = runtimes.findById(runtimeId);
    const instanceId = runtime?.containerId ?? registry.instance(runtimeId)?.id;
    if (!instanceId) return;
    op.update({ step: 'stopping', percent: 20, message: 'Stopping OpenClaw' });
    // Frozen for a backup's read: a frozen process cannot hear SIGTERM; the backup gets its files as they are.
    if (registry.frozen.has(runtimeId)) await provisioner.thaw(instanceId).catch(() => undefined);
    await provisioner.stop(instanceId, settings.stopTimeoutSeconds);
    registry.markUnready(instanceId);
    await registry.refresh(runtimeId, instanceId);
  }

  private async runRemove(op: Operation, runtimeId: string, purge: boolean): Promise<void> {
    const { provisioner, runtimes, clock, logger, registry } = this.deps;
    await this.runStop(op, runtimeId, 'deleted');
    const runtime = runtimes.findById(runtimeId);
    op.update({ step: 'removing', percent: 60, message: purge ? 'Removing the container and all data' : 'Removing the container (data is kept)' });
    if (runtime?.containerId) await provisioner.removeInstance(runtime.containerId);
    registry.forget(runtimeId, runtime?.containerId ?? null);
    // The model key dies with the incarnation it was made for.
    runtimes.setContainer(runtimeId, { containerId: null, modelKeyHash: null }, clock.now());
    // A background preparation still in flight would otherwise re-create what is released here.
    await this.deps.preparations.settled(runtimeId);
    await provisioner.release(runtimeId, { withData: false });
    registry.forgetPlacement(runtimeId);
    if (purge) {
      for (const hook of this.purgeHooks) await hook(runtimeId);
      await provisioner.release(runtimeId, { withData: true });
      runtimes.delete(runtimeId);
      logger.info({ runtimeId, username: runtime?.username }, 'runtime purged with its data volume');
    }
  }
}
