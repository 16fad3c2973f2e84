import type { RuntimeRepository } from '../db/repositories/runtimeRepository';
import { LABELS, type ContainerEvent, type EventSubscription, type RuntimeBackend } from '../docker/runtimeBackend';
import { NO_ORIGIN, SYSTEM_ACTOR, type AuditLog } from '../domain/audit';
import type { Clock } from '../lib/clock';
import type { Logger } from '../lib/logger';
import { formatBytes, OOM_KILLED } from './observedState';
import type { RuntimeManager } from './runtimeManager';
import type { ProxyAttachments } from './proxyAttachments';
import type { RuntimeSettings } from './runtimeSettings';

export interface RuntimeWatcherDeps {
  manager: RuntimeManager;
  runtimes: RuntimeRepository;
  backend: RuntimeBackend;
  audit: AuditLog;
  clock: Clock;
  logger: Logger;
  settings: Pick<RuntimeSettings, 'crashLoop' | 'memoryBytes'>;
  proxies: ProxyAttachments;
  /** Waits between reconnection attempts to a dropped event stream: 0.5 s doubling up to this. */
  maxReconnectDelayMs?: number;
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
 * Keeps the runtime manager's picture true to what the engine really runs. It reconciles the whole
 * state at start-up and after every event-stream drop, and otherwise reacts to Docker's own events
 * (die, oom, destroy, health changes) instead of polling. It also decides when a runtime that
 * keeps dying must be stopped rather than left to the restart policy.
 */
export class RuntimeWatcher {
  private subscription: EventSubscription | null = null;
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
      this.deps.logger.warn({ err: (err as Error).message }, 'cannot read runtime state from the Docker engine yet; retrying');
      this.scheduleReconnect();
      return null;
    }
  }

  close(): void {
    this.closed = true;
    this.subscription?.close();
    this.subscription = null;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    if (this.idleTimer) clearInterval(this.idleTimer);
  }

  /** A re-created Traefik container has lost the runtime networks: join it to them again. */
  async reattachProxies(): Promise<void> {
    try {
      await this.deps.proxies.ensureAll(await this.deps.backend.listManagedNetworks());
    } catch (err) {
      this.deps.logger.warn({ err: (err as Error).message }, 'checking the proxies on runtime networks failed');
    }
  }

  /** Resolves once every event received so far has been handled (tests, shutdown). */
  drained(): Promise<void> {
    return this.queue;
  }

  private async subscribe(): Promise<void> {
    this.subscription = await this.deps.backend.subscribeEvents(
      (event) => {
        this.queue = this.queue.then(() => this.handle(event)).catch((err: unknown) => {
          this.deps.logger.error({ err: (err as Error).message, action: event.action }, 'handling a Docker event failed');
        });
      },
      (error) => this.onStreamEnd(error),
    );
    this.reconnectDelayMs = Math.min(500, this.maxReconnectDelayMs);
  }

  private onStreamEnd(error: Error | null): void {
    this.subscription = null;
    if (this.closed) return;
    this.deps.logger.warn({ err: error?.message ?? 'stream ended' }, 'Docker event stream dropped; reconnecting');
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
          this.deps.logger.info(report, 'Docker event stream restored and state re-read');
        } catch (err) {
          this.subscription?.close();
          this.subscription = null;
          this.deps.logger.warn({ err: (err as Error).message, retryInMs: this.reconnectDelayMs }, 'Docker engine still unreachable');
          this.scheduleReconnect();
        }
      })();
    }, delay);
    this.reconnectTimer.unref();
  }

  /** Makes stored state match the engine, adopting, clearing and removing as needed. */
  async reconcile(): Promise<ReconcileReport> {
    const { backend, runtimes, manager, logger } = this.deps;
    const report: ReconcileReport = { adopted: 0, orphanContainersRemoved: 0, orphanNetworksRemoved: 0, missingContainersCleared: 0, restarted: 0 };
    const [containers, networks] = await Promise.all([backend.listManagedContainers(), backend.listManagedNetworks()]);
    const rows = new Map(runtimes.list().map((r) => [r.id, r]));

    for (const network of networks) {
      const runtimeId = network.labels[LABELS.runtimeId];
      if (runtimeId && rows.has(runtimeId)) {
        manager.rememberSubnet(runtimeId, network.subnet);
        continue;
      }
      // A network holds no data: one that belongs to no runtime is only in the way.
      if (containers.some((c) => network.name in c.addresses)) continue;
      await backend.removeNetwork(network.name);
      logger.info({ network: network.name }, 'removed a managed network that belongs to no runtime');
      report.orphanNetworksRemoved++;
    }

    const seen = new Set<string>();
    for (const container of containers.filter((c) => c.labels[LABELS.role] === 'runtime')) {
      const runtimeId = container.labels[LABELS.runtimeId] ?? '';
      const row = rows.get(runtimeId);
      const belongs = row !== undefined && row.userId === container.labels[LABELS.userId];
      const duplicate = belongs && row.containerId !== null && row.containerId !== container.id && containers.some((c) => c.id === row.containerId);
      if (!belongs || duplicate) {
        await backend.removeContainer(container.id);
        report.orphanContainersRemoved++;
        logger.warn(
          { containerId: container.id.slice(0, 12), name: container.name, username: container.labels[LABELS.username] ?? null, reason: duplicate ? 'superseded' : 'no such runtime' },
          'removed a managed container that belongs to no runtime',
        );
        this.deps.audit.record({
          action: 'runtime.orphan-removed',
          actor: SYSTEM_ACTOR,
          target: { type: 'container', id: container.id, label: container.name },
          origin: NO_ORIGIN,
          detail: { runtimeId: runtimeId || null, username: container.labels[LABELS.username] ?? null, reason: duplicate ? 'superseded' : 'no such runtime' },
        });
        continue;
      }
      seen.add(runtimeId);
      if (row.containerId !== container.id) report.adopted++;
      manager.adopt(runtimeId, container);
      if (container.status === 'running') this.confirmInBackground(runtimeId, container.id);
    }

    for (const row of rows.values()) {
      if (seen.has(row.id) || manager.isBusy(row.id)) continue;
      if (row.containerId) {
        manager.containerGone(row.id, row.containerId);
        report.missingContainersCleared++;
        logger.warn({ runtimeId: row.id, username: row.username }, 'a runtime container disappeared while the control plane was not watching');
      }
    }

    // Whatever should run and does not (the container was removed behind our back, or the host
    // rebooted and the engine did not bring it back) is started again.
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

  private async handle(event: ContainerEvent): Promise<void> {
    const { manager, runtimes } = this.deps;
    if (event.labels[LABELS.role] !== 'runtime') return;
    const runtimeId = event.labels[LABELS.runtimeId];
    if (!runtimeId) return;
    const row = runtimes.findById(runtimeId);
    if (!row) return;

    if (event.action === 'oom') {
      this.oomSeen.add(event.containerId);
      return;
    }
    if (event.action === 'destroy') {
      this.oomSeen.delete(event.containerId);
      manager.containerGone(runtimeId, event.containerId);
      return;
    }
    const snapshot = await manager.refresh(runtimeId, event.containerId);
    if (event.action === 'start' && snapshot?.status === 'running' && !manager.isBusy(runtimeId)) {
      // The engine restarted it on its own (restart policy): confirm readiness in the background.
      this.confirmInBackground(runtimeId, event.containerId);
      return;
    }
    if (event.action !== 'die' || manager.isBusy(runtimeId) || row.desiredState !== 'running') return;
    if (row.containerId !== event.containerId) return;

    const oom = this.oomSeen.delete(event.containerId) || snapshot?.oomKilled === true;
    if (oom) {
      const limit = snapshot?.memoryLimitBytes || this.deps.settings.memoryBytes;
      await manager.stopAfterFailure(runtimeId, { code: OOM_KILLED, message: `out of memory (limit ${formatBytes(limit)})` });
      return;
    }
    if (this.isCrashLoop(runtimeId)) {
      const { maxExits, windowMs } = this.deps.settings.crashLoop;
      const tail = await manager.logTailFor(event.containerId);
      await manager.stopAfterFailure(runtimeId, {
        code: CRASH_LOOP,
        message: `OpenClaw exited ${maxExits} times within ${Math.round(windowMs / 1000)} s (last exit code ${event.exitCode ?? 'unknown'}), so it was stopped instead of being restarted again.${tail}`,
      });
      this.exits.delete(runtimeId);
    }
  }

  /**
   * Readiness of a container the engine (re)started on its own is confirmed off the event queue.
   * The engine may fail under it (it is restarting, say): that is logged, never left unhandled,
   * and the next event or reconcile after the engine is back confirms it again.
   */
  private confirmInBackground(runtimeId: string, instanceId: string): void {
    this.deps.manager.confirmReady(runtimeId, instanceId).catch((err: unknown) => {
      this.deps.logger.warn({ runtimeId, err: (err as Error).message }, 'confirming a runtime\'s readiness failed; it is confirmed again when the engine answers');
    });
  }

  private isCrashLoop(runtimeId: string): boolean {
    const { maxExits, windowMs } = this.deps.settings.crashLoop;
    const now = this.deps.clock.now();
    const recent = (this.exits.get(runtimeId) ?? []).filter((t) => now - t < windowMs);
    recent.push(now);
    this.exits.set(runtimeId, recent);
    return recent.length >= maxExits;
  }
}
