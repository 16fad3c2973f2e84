import type { SettingsSource } from '../lib/settingsStore';
import type { Readable } from 'node:stream';
import type { RuntimeRepository, RuntimeWithOwner } from '../db/repositories/runtimeRepository';
import type { UserRepository } from '../db/repositories/userRepository';
import { NO_ORIGIN, SYSTEM_ACTOR, type Actor, type AuditLog, type RequestOrigin } from '../domain/audit';
import type { Clock } from '../lib/clock';
import { notFound } from '../lib/errors';
import type { Logger } from '../lib/logger';
import type { ObservedState } from './observedState';
import type { Operation, RuntimeEventHub } from './operations';
import { isUp, type PullProgress, type RuntimeInstance, type RuntimePlacement, type RuntimeProvisioner, type RuntimeStats } from './provisioner';
import type { HttpProbe } from './readinessProbe';
import { RuntimeActivity } from './runtimeActivity';
import { RuntimeLifecycle, type StartedOperation, type StopReason } from './runtimeLifecycle';
import { RuntimePreparations } from './runtimePreparations';
import { RuntimeReadiness } from './runtimeReadiness';
import { RuntimeRegistry } from './runtimeRegistry';
import type { RuntimeSettings } from './runtimeSettings';
import { RuntimeFigures } from './runtimeFigures';
import { listWithFigures, registryTargets, type RuntimeListItem } from './runtimeList';
import { ownerOf, RuntimeViews, type RuntimeView } from './runtimeViews';

export type { RuntimeListItem, RuntimeView, StartedOperation, StopReason };

export interface RuntimeManagerDeps {
  runtimes: RuntimeRepository;
  users: UserRepository;
  provisioner: RuntimeProvisioner;
  probe: HttpProbe;
  hub: RuntimeEventHub;
  audit: AuditLog;
  clock: Clock;
  logger: Logger;
  settings: SettingsSource<RuntimeSettings>;
  sleep?: (ms: number) => Promise<void>;
  /** How the figures of the admin's list are kept (RuntimeFigures' defaults otherwise). */
  figures?: { intervalMs?: number; concurrency?: number };
}

/**
 * The runtime layer's one front: the HTTP routes, the watcher, the account hooks and the file
 * service talk to this. It only wires and delegates to modules of one job each: the registry
 * (what runs), views (what to show and where to route), the lifecycle (operations), readiness
 * (probing) and activity (idle stop).
 */
export class RuntimeManager {
  private readonly registry: RuntimeRegistry;
  private readonly views: RuntimeViews;
  private readonly readiness: RuntimeReadiness;
  private readonly lifecycle: RuntimeLifecycle;
  private readonly activity: RuntimeActivity;
  /** CPU and memory of the running runtimes, kept current in the background once started (server start-up). */
  readonly figures: RuntimeFigures;
  private readonly preparations: RuntimePreparations;

  constructor(private readonly deps: RuntimeManagerDeps) {
    const { runtimes, users, provisioner, hub, clock, settings } = deps;
    const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
    this.registry = new RuntimeRegistry({ runtimes, provisioner, hub, clock });
    // The lifecycle is made below; the seed runs only once a preparation finished, long after.
    this.preparations = new RuntimePreparations(provisioner, deps.logger, (owner, placement) => this.lifecycle.seedConfig(owner, placement));
    this.views = new RuntimeViews({ runtimes, users, provisioner, registry: this.registry, hub, clock, settings });
    this.readiness = new RuntimeReadiness({ runtimes, provisioner, registry: this.registry, probe: deps.probe, clock, settings, sleep });
    this.activity = new RuntimeActivity({
      runtimes,
      registry: this.registry,
      clock,
      settings,
      stop: (userId, idleMs) => this.lifecycle.stop({ ...SYSTEM_ACTOR, username: '(idle stop)' }, userId, NO_ORIGIN, { cause: 'idle', idleMs }),
    });
    this.lifecycle = new RuntimeLifecycle({
      runtimes,
      users,
      provisioner,
      preparations: this.preparations,
      registry: this.registry,
      views: this.views,
      readiness: this.readiness,
      hub,
      audit: deps.audit,
      clock,
      logger: deps.logger,
      settings,
      onStarted: (runtimeId) => this.activity.touch(runtimeId),
    });
    this.figures = new RuntimeFigures({
      provisioner,
      targets: registryTargets(runtimes, this.registry),
      subscribeStates: (listener) => hub.subscribeStates(listener),
      clock,
      logger: deps.logger,
      ...deps.figures,
    });
  }

  get settings(): Readonly<RuntimeSettings> {
    return this.deps.settings.get();
  }

  // ---- reading (views) ----

  viewForUser(userId: string): RuntimeView {
    return this.views.viewForUser(userId);
  }

  viewById(runtimeId: string): RuntimeView | null {
    return this.views.viewById(runtimeId);
  }

  listViews(): RuntimeView[] {
    return this.views.listViews();
  }

  staleRunning(): RuntimeView[] {
    return this.views.staleRunning();
  }

  /** Every runtime with the figures kept in the background: answers without asking the engine. */
  listWithStats(): RuntimeListItem[] {
    // One read of the rows serves both the views and who stopped each one.
    const rows = this.deps.runtimes.list();
    const actors = new Map(rows.flatMap((r) => (r.stop?.actor ? [[r.id, r.stop.actor] as const] : [])));
    return listWithFigures(
      rows.map((r) => this.views.view(r)),
      this.figures,
      this.deps.clock,
      actors,
    );
  }

  /** The observed state of every runtime, from memory and one read of the rows (what the metrics count). */
  observedStates(): ObservedState[] {
    return this.deps.runtimes.list().map((r) => this.registry.observed(r).state);
  }

  /** Operations waiting for a slot, and those launched and not finished (queued ones included). */
  operationCounts(): { queued: number; inFlight: number } {
    return { queued: this.lifecycle.queued, inFlight: this.registry.inFlight.size };
  }

  view(runtime: RuntimeWithOwner): RuntimeView {
    return this.views.view(runtime);
  }

  routeForUser(userId: string): { runtimeId: string | null; url: string | null } {
    return this.views.routeForUser(userId);
  }

  stats(runtimeId: string): Promise<RuntimeStats | null> {
    return this.views.stats(runtimeId);
  }

  runtimeIdForUser(userId: string): string | null {
    return this.deps.runtimes.findByUserId(userId)?.id ?? null;
  }

  /** Where a user's files can be reached: the runtime (its record made if missing) and its incarnation if it runs. */
  fileTarget(userId: string): { runtimeId: string; username: string; runningContainerId: string | null } {
    const runtime = this.lifecycle.ensureRuntime(userId);
    const instance = this.registry.instance(runtime.id);
    return { runtimeId: runtime.id, username: runtime.username, runningContainerId: instance && isUp(instance.phase) ? instance.id : null };
  }

  async logs(userId: string, options: { tail: number; follow: boolean }): Promise<Readable> {
    const runtime = this.lifecycle.requireRuntime(userId);
    const instanceId = this.registry.instance(runtime.id)?.id ?? runtime.containerId;
    const lines = instanceId ? await this.deps.provisioner.logs(instanceId, options) : null;
    if (!lines) throw notFound('RUNTIME_NOT_CREATED', 'This runtime has no container at the moment, so it has no log. Start it first.');
    return lines;
  }

  /** Takes ownership of this installation's instance name on the provisioner (see RuntimeProvisioner.claim). */
  claimInstallation(): Promise<void> {
    return this.deps.provisioner.claim();
  }

  /** Whose running runtime has this network address (the egress proxy's caller); null for anyone else. */
  ownerAtAddress(address: string): { userId: string; username: string } | null {
    const owner = this.registry.ownerAt(address);
    return owner ? { userId: owner.userId, username: owner.username } : null;
  }

  isBusy(runtimeId: string): boolean {
    return this.registry.isBusy(runtimeId);
  }

  // ---- operations (lifecycle) ----

  start(actor: Actor, userId: string, origin: RequestOrigin): StartedOperation {
    return this.lifecycle.start(actor, userId, origin);
  }

  stop(actor: Actor, userId: string, origin: RequestOrigin, reason?: StopReason): StartedOperation {
    return this.lifecycle.stop(actor, userId, origin, reason);
  }

  restart(actor: Actor, userId: string, origin: RequestOrigin): StartedOperation {
    return this.lifecycle.restart(actor, userId, origin);
  }

  remove(actor: Actor, userId: string, origin: RequestOrigin, options: { purge: boolean; confirm?: string | undefined }): StartedOperation {
    return this.lifecycle.remove(actor, userId, origin, options);
  }

  beforePurge(hook: (runtimeId: string) => Promise<void>): void {
    this.lifecycle.beforePurge(hook);
  }

  beforeStart(hook: (runtimeId: string, userId: string) => Promise<void>): void {
    this.lifecycle.beforeStart(hook);
  }

  withDataHeld(actor: Actor, userId: string, origin: RequestOrigin, kind: 'restore' | 'move', work: (op: Operation) => Promise<void>): StartedOperation {
    return this.lifecycle.withDataHeld(actor, userId, origin, kind, work);
  }

  drain(timeoutMs: number): Promise<void> {
    return this.lifecycle.drain(timeoutMs);
  }

  settled(runtimeId: string): Promise<void> {
    return this.lifecycle.settled(runtimeId);
  }

  settledForUser(userId: string): Promise<void> {
    return this.lifecycle.settledForUser(userId);
  }

  stopAfterFailure(runtimeId: string, error: { code: string; message: string }, cause: 'out_of_memory' | 'crash_loop'): Promise<void> {
    return this.lifecycle.stopAfterFailure(runtimeId, error, cause);
  }

  /**
   * Makes a user's runtime resources (network, data volume) ahead of their first start, in the
   * background, so that start does not pay for them. The runtime's record is made now (its id
   * names the resources); a failure is logged and the first start prepares again. Throws only
   * when the user does not exist.
   */
  prepareInBackground(userId: string): void {
    const runtime = this.lifecycle.ensureRuntime(userId);
    const { runtimes } = this.deps;
    this.preparations.inBackground(ownerOf(runtime), {
      // Deleted meanwhile (the account, or the runtime by an admin): nothing is made for it.
      stillWanted: () => {
        const current = runtimes.findById(runtime.id);
        return current !== null && current.userStatus === 'active' && current.desiredState !== 'deleted';
      },
      onPrepared: (placement) => {
        if (runtimes.findById(runtime.id)) this.registry.rememberPlacement(runtime.id, placement);
      },
    });
  }

  /** Makes a user's runtime resources now, without seeding the volume (a restore fills it itself). */
  async prepareResources(userId: string): Promise<{ fresh: boolean }> {
    const runtime = this.lifecycle.ensureRuntime(userId);
    const placement = await this.deps.provisioner.prepare(ownerOf(runtime));
    this.registry.rememberPlacement(runtime.id, placement);
    return { fresh: placement.freshData === true };
  }

  // ---- what the watcher and hooks use (registry, readiness) ----

  refresh(runtimeId: string, instanceId: string): Promise<RuntimeInstance | null> {
    return this.registry.refresh(runtimeId, instanceId);
  }

  adopt(runtimeId: string, instance: RuntimeInstance): void {
    this.registry.adopt(runtimeId, instance);
  }

  instanceGone(runtimeId: string, instanceId: string): void {
    this.registry.instanceGone(runtimeId, instanceId);
  }

  rememberPlacement(runtimeId: string, placement: RuntimePlacement): void {
    this.registry.rememberPlacement(runtimeId, placement);
  }

  confirmReady(runtimeId: string, instanceId: string): Promise<boolean> {
    return this.readiness.confirmReady(runtimeId, instanceId);
  }

  /**
   * Freezes a user's running runtime so its data holds still while it is read (a backup): every
   * process stops where it stands and goes on when the returned function is called; it shows as
   * running meanwhile. Null when there is nothing to freeze (not running, or an operation is
   * under way on it) or the provisioner cannot.
   */
  async freezeForBackup(userId: string): Promise<(() => Promise<void>) | null> {
    const runtime = this.deps.runtimes.findByUserId(userId);
    if (!runtime || this.registry.isBusy(runtime.id)) return null;
    // A command-line backup beside the server has watched nothing: it asks the provisioner.
    const instance = this.registry.instance(runtime.id) ?? (runtime.containerId ? await this.deps.provisioner.inspect(runtime.containerId).catch(() => null) : null);
    if (!instance || !isUp(instance.phase)) return null;
    this.registry.frozen.add(runtime.id);
    let frozen = false;
    try {
      frozen = await this.deps.provisioner.freeze(instance.id);
    } catch (err) {
      this.deps.logger.warn({ username: runtime.username, err: (err as Error).message }, 'could not freeze a runtime for a backup; its files are read while it runs');
    }
    if (!frozen) {
      this.registry.frozen.delete(runtime.id);
      return null;
    }
    return async () => {
      try {
        await this.deps.provisioner.thaw(instance.id);
      } finally {
        this.registry.frozen.delete(runtime.id);
        await this.registry.refresh(runtime.id, instance.id).catch(() => null);
      }
    };
  }

  /** Makes sure `image` is on the host, fetching it when it is not; rejects with the reason. */
  async ensureImage(image: string, onProgress: (progress: PullProgress) => void): Promise<void> {
    if (!(await this.deps.provisioner.imageAvailable(image))) await this.deps.provisioner.pullImage(image, onProgress);
  }

  logTailFor(instanceId: string): Promise<string> {
    return this.readiness.logTail(instanceId);
  }

  // ---- activity (idle stop) ----

  touch(runtimeId: string): void {
    this.activity.touch(runtimeId);
  }

  touchUser(userId: string): void {
    this.activity.touchUser(userId);
  }

  stopIdle(): number {
    return this.activity.stopIdle();
  }
}
