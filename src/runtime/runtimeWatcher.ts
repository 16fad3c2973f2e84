import { isInfraError } from '../lib/infraErrors';
import type { SettingsSource } from '../lib/settingsStore';
import type { RuntimeRepository } from '../db/repositories/runtimeRepository';
import { NO_ORIGIN, SYSTEM_ACTOR, type AuditLog } from '../domain/audit';
import type { Clock } from '../lib/clock';
import type { Logger } from '../lib/logger';
import { formatBytes, OOM_KILLED } from './observedState';
import { isUp, type RuntimeChange, type RuntimeProvisioner, type Subscription } from './provisioner';
import type { RuntimeManager } from './runtimeManager';
import type { RuntimeSettings } from './runtimeSettings';

export interface RuntimeWatcherDeps {
  manager: RuntimeManager;
  runtimes: RuntimeRepository;
  provisioner: RuntimeProvisioner;
  audit: AuditLog;
  clock: Clock;
  logger: Logger;
  settings: SettingsSource<Pick<RuntimeSettings, 'crashLoop' | 'memoryBytes'>>;
  /** Waits between reconnection attempts to a dropped change feed: 0.5 s doubling up to this. */
  maxReconnectDelayMs?: number;
  /** Told once per crash loop the watcher stopped (administrators are mailed); must not throw. */
  onCrashLoop?: (incident: CrashLoopIncident) => void;
}

export interface CrashLoopIncident {
  runtimeId: string;
  userId: string;
  username: string;
  exits: number;
  windowMs: number;
  exitCode: number | null;
}

export interface ReconcileReport {
  adopted: number;
  orphanContainersRemoved: number;
  orphanNetworksRemoved: number;
  missingContainersCleared: number;
  restarted: number;
}

export const CRASH_LOOP = 'CRASH_LOOP';
const IDLE_CHECK_INTERVAL_MS = 30_000;

/**
 * Keeps the runtime manager's picture true to what the provisioner really runs. It reconciles the
 * whole state at start-up and after every drop of the change feed, and otherwise reacts to the
 * provisioner's changes (exited, out of memory, removed, health) instead of polling. It also
 * decides when a runtime that keeps dying must be stopped rather than left to the restart policy.
 */
export class RuntimeWatcher {
  private subscription: Subscription | null = null;
  private closed = false;
  private reconnectDelayMs = 500;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private idleTimer: NodeJS.Timeout | null = null;
  /** Events are handled one at a time, in order: a die must not be processed after the destroy that follows it. */
  private queue: Promise<void> = Promise.resolve();
  private readonly oomSeen = new Set<string>();
  private readonly exits = new Map<string, number[]>();
  private readonly maxReconnectDelayMs: number;

  constructor(private readonly deps: RuntimeWatcherDeps) {
    this.maxReconnectDelayMs = deps.maxReconnectDelayMs ?? 30_000;
    this.reconnectDelayMs = Math.min(this.reconnectDelayMs, this.maxReconnectDelayMs);
  }

  /** Subscribes first and reconciles second, so nothing that happens in between is missed. */
  async start(): Promise<ReconcileReport | null> {
    // Always ticking: an administrator may turn idle stop on (or change it) while we run.
    this.idleTimer = setInterval(() => {
      this.deps.manager.stopIdle();
      void this.reattachProxies();
    }, IDLE_CHECK_INTERVAL_MS);
    this.idleTimer.unref();
    try {
      await this.subscribe();
      const report = await this.reconcile();
      await this.reattachProxies();
      return report;
    } catch (err) {
      this.subscription?.close();
      this.subscription = null;
      if (this.refusedClaim(err)) return null;
      this.deps.logger.warn({ err: (err as Error).message }, 'cannot read runtime state from the provisioner yet; retrying');
      this.scheduleReconnect();
      return null;
    }
  }

  /** Another installation owns our instance name: nothing may be adopted or swept, now or later. */
  private refusedClaim(err: unknown): boolean {
    if (!isInfraError(err, 'conflict')) return false;
    this.deps.logger.error({ err: (err as Error).message }, 'runtime state is left alone: another installation owns this instance name');
    this.close();
    return true;
  }

  close(): void {
    this.closed = true;
    this.subscription?.close();
    this.subscription = null;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    if (this.idleTimer) clearInterval(this.idleTimer);
  }

  /** Upkeep of what others may undo behind our back (a re-created proxy loses the runtimes' networks). */
  async reattachProxies(): Promise<void> {
    if (this.closed) return;
    await (async () => {
      await this.deps.provisioner.claim();
      await this.deps.provisioner.maintain();
    })().catch((err: unknown) => {
      this.deps.logger.warn({ err: (err as Error).message }, 'runtime provisioner upkeep failed');
    });
  }

  /** Resolves once every event received so far has been handled (tests, shutdown). */
  drained(): Promise<void> {
    return this.queue;
  }

  private async subscribe(): Promise<void> {
    this.subscription = await this.deps.provisioner.watch(
      (change) => {
        this.queue = this.queue.then(() => this.handle(change)).catch((err: unknown) => {
          this.deps.logger.error({ err: (err as Error).message, change: change.kind }, 'handling a runtime change failed');
        });
      },
      (error) => this.onStreamEnd(error),
    );
    this.reconnectDelayMs = Math.min(500, this.maxReconnectDelayMs);
  }

  private onStreamEnd(error: Error | null): void {
    this.subscription = null;
    if (this.closed) return;
    this.deps.logger.warn({ err: error?.message ?? 'stream ended' }, 'runtime change feed dropped; reconnecting');
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.closed || this.reconnectTimer) return;
    const delay = this.reconnectDelayMs;
    this.reconnectDelayMs = Math.min(this.maxReconnectDelayMs, this.reconnectDelayMs * 2);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      void (async () => {
        try {
          await this.subscribe();
          const report = await this.reconcile();
          this.deps.logger.info(report, 'runtime change feed restored and state re-read');
        } catch (err) {
          this.subscription?.close();
          this.subscription = null;
          if (this.refusedClaim(err)) return;
          this.deps.logger.warn({ err: (err as Error).message, retryInMs: this.reconnectDelayMs }, 'runtime provisioner still unreachable');
          this.scheduleReconnect();
        }
      })();
    }, delay);
    this.reconnectTimer.unref();
  }

  /** Makes stored state match what the provisioner has, adopting, clearing and removing as needed. */
  async reconcile(): Promise<ReconcileReport> {
    const { provisioner, runtimes, manager, logger } = this.deps;
    const report: ReconcileReport = { adopted: 0, orphanContainersRemoved: 0, orphanNetworksRemoved: 0, missingContainersCleared: 0, restarted: 0 };
    // Before anything is listed: what another installation made must never look like our orphans.
    await provisioner.claim();
    const { instances, placements } = await provisioner.inventory();
    const rows = new Map(runtimes.list().map((r) => [r.id, r]));

    for (const [runtimeId, placement] of placements) if (rows.has(runtimeId)) manager.rememberPlacement(runtimeId, placement);
    report.orphanNetworksRemoved = await provisioner.sweepPlacements(new Set(rows.keys()));

    const seen = new Set<string>();
    for (const found of instances) {
      let instance = found;
      const { runtimeId, userId, username } = instance.owner;
      const row = rows.get(runtimeId);
      const belongs = row !== undefined && row.userId === userId;
      const duplicate = belongs && row.containerId !== null && row.containerId !== instance.id && instances.some((i) => i.id === row.containerId);
      if (!belongs || duplicate) {
        const reason = duplicate ? 'superseded' : 'no such runtime';
        await provisioner.removeInstance(instance.id);
        report.orphanContainersRemoved++;
        logger.warn({ instanceId: instance.id.slice(0, 12), name: instance.name, username: username || null, reason }, 'removed a runtime instance that belongs to no runtime');
        this.deps.audit.record({
          action: 'runtime.orphan-removed',
          actor: SYSTEM_ACTOR,
          target: { type: 'container', id: instance.id, label: instance.name },
          origin: NO_ORIGIN,
          detail: { runtimeId: runtimeId || null, username: username || null, reason },
        });
        continue;
      }
      seen.add(runtimeId);
      if (row.containerId !== instance.id) report.adopted++;
      // Frozen for a backup when the control plane stopped: nothing else would ever let it go on.
      if (instance.phase === 'paused') {
        await provisioner.thaw(instance.id);
        const thawed = await provisioner.inspect(instance.id);
        if (thawed) instance = thawed;
        logger.warn({ runtimeId, username }, 'let a runtime frozen by an interrupted backup go on');
      }
      manager.adopt(runtimeId, instance);
      if (isUp(instance.phase)) this.confirmInBackground(runtimeId, instance.id);
    }

    for (const row of rows.values()) {
      if (seen.has(row.id) || manager.isBusy(row.id)) continue;
      if (row.containerId) {
        manager.instanceGone(row.id, row.containerId);
        report.missingContainersCleared++;
        logger.warn({ runtimeId: row.id, username: row.username }, 'a runtime disappeared while the control plane was not watching');
      }
    }

    // Whatever should run and does not (removed behind our back, or the host rebooted and the
    // engine did not bring it back) is started again.
    for (const row of runtimes.list()) {
      if (row.desiredState !== 'running' || row.userStatus !== 'active' || manager.isBusy(row.id)) continue;
      const view = manager.view(row);
      if (view.state !== 'absent' && view.state !== 'stopped') continue;
      try {
        manager.start({ ...SYSTEM_ACTOR, username: '(reconcile)' }, row.userId, NO_ORIGIN);
        report.restarted++;
      } catch (err) {
        logger.warn({ runtimeId: row.id, err: (err as Error).message }, 'could not restart a runtime that should be running');
      }
    }
    return report;
  }

  private async handle(change: RuntimeChange): Promise<void> {
    const { manager, runtimes } = this.deps;
    const { runtimeId, instanceId } = change;
    const row = runtimes.findById(runtimeId);
    if (!row) return;

    if (change.kind === 'out-of-memory') {
      this.oomSeen.add(instanceId);
      return;
    }
    if (change.kind === 'removed') {
      this.oomSeen.delete(instanceId);
      manager.instanceGone(runtimeId, instanceId);
      return;
    }
    const instance = await manager.refresh(runtimeId, instanceId);
    if (change.kind === 'started' && instance && isUp(instance.phase) && !manager.isBusy(runtimeId)) {
      // The provisioner restarted it on its own (restart policy): confirm readiness in the background.
      this.confirmInBackground(runtimeId, instanceId);
      return;
    }
    if (change.kind !== 'exited' || manager.isBusy(runtimeId) || row.desiredState !== 'running') return;
    if (row.containerId !== instanceId) return;

    const oom = this.oomSeen.delete(instanceId) || instance?.phase === 'oom';
    if (oom) {
      const limit = instance?.memoryLimitBytes || this.deps.settings.get().memoryBytes;
      await manager.stopAfterFailure(runtimeId, { code: OOM_KILLED, message: `out of memory (limit ${formatBytes(limit)})` }, 'out_of_memory');
      return;
    }
    if (this.isCrashLoop(runtimeId)) {
      const { maxExits, windowMs } = this.deps.settings.get().crashLoop;
      const tail = await manager.logTailFor(instanceId);
      await manager.stopAfterFailure(runtimeId, {
        code: CRASH_LOOP,
        message: `OpenClaw exited ${maxExits} times within ${Math.round(windowMs / 1000)} s (last exit code ${change.exitCode ?? 'unknown'}), so it was stopped instead of being restarted again.${tail}`,
      }, 'crash_loop');
      this.exits.delete(runtimeId);
      // One incident: the runtime stays stopped until someone starts it, so this is told once.
      this.deps.onCrashLoop?.({ runtimeId, userId: row.userId, username: row.username, exits: maxExits, windowMs, exitCode: change.exitCode ?? null });
    }
  }

  /**
   * Readiness of a runtime the provisioner (re)started on its own is confirmed off the change queue.
   * The provisioner may fail under it (it is restarting, say): that is logged, never left unhandled,
   * and the next event or reconcile after the engine is back confirms it again.
   */
  private confirmInBackground(runtimeId: string, instanceId: string): void {
    this.deps.manager.confirmReady(runtimeId, instanceId).catch((err: unknown) => {
      this.deps.logger.warn({ runtimeId, err: (err as Error).message }, 'confirming a runtime\'s readiness failed; it is confirmed again when the engine answers');
    });
  }

  private isCrashLoop(runtimeId: string): boolean {
    const { maxExits, windowMs } = this.deps.settings.get().crashLoop;
    const now = this.deps.clock.now();
    const recent = (this.exits.get(runtimeId) ?? []).filter((t) => now - t < windowMs);
    recent.push(now);
    this.exits.set(runtimeId, recent);
    return recent.length >= maxExits;
  }
}
