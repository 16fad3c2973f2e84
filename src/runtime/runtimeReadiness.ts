import type { SettingsSource } from '../lib/settingsStore';
import type { RuntimeRepository } from '../db/repositories/runtimeRepository';
import type { Clock } from '../lib/clock';
import { OperationError, type Operation } from './operations';
import { isUp, type RuntimeInstance, type RuntimeProvisioner } from './provisioner';
import type { HttpProbe } from './readinessProbe';
import type { RuntimeRegistry } from './runtimeRegistry';
import type { RuntimeSettings } from './runtimeSettings';
import { READINESS_PATH } from './runtimeSpec';

export interface RuntimeReadinessDeps {
  runtimes: RuntimeRepository;
  provisioner: RuntimeProvisioner;
  registry: RuntimeRegistry;
  probe: HttpProbe;
  clock: Clock;
  settings: SettingsSource<RuntimeSettings>;
  sleep: (ms: number) => Promise<void>;
}

// Probing starts fast and backs off: a light image answers within a few hundred milliseconds and
// should not wait out a fixed interval, while OpenClaw's ~10 s boot should not be hammered.
const PROBE_FIRST_INTERVAL_MS = 5;
const FAST_PROBING_MS = 2_000;
const PROBE_MAX_INTERVAL_MS = 500;
const INSPECT_WHILE_WAITING_MS = 250;
const CONFIRM_INTERVAL_MS = 1_000;
const LOG_TAIL_ON_FAILURE = 20;

/** Deciding when a runtime is ready: the platform's own probe of /healthz and /readyz, and the failure words when it is not. */
export class RuntimeReadiness {
  constructor(private readonly deps: RuntimeReadinessDeps) {}

  /**
   * Probes the runtime often while a light image may answer any moment, then backs off; it
   * re-inspects the incarnation only every few hundred milliseconds (or while it has no URL yet)
   * to notice an exit without a provisioner round trip per probe.
   */
  async waitUntilReady(op: Operation, runtimeId: string, started: RuntimeInstance): Promise<void> {
    const { provisioner, clock, probe, registry } = this.deps;
    const settings = this.deps.settings.get();
    const instanceId = started.id;
    const startedAt = clock.now();
    const deadline = startedAt + settings.readyTimeoutMs;
    let instance: RuntimeInstance = started;
    let inspectedAt = startedAt;
    let live = false;
    let interval = PROBE_FIRST_INTERVAL_MS;
    for (;;) {
      const url = instance.url;
      if (url) {
        // Readiness first: when it answers, one request was the whole wait. Liveness is asked only
        // while readiness fails, to say in a timeout whether OpenClaw answered at all.
        if ((await probe.status(url, READINESS_PATH, 2_000)) === 200) {
          registry.markReady(instanceId);
          return;
        }
        if (!live) live = (await probe.status(url, '/healthz', 2_000)) === 200;
      }
      if (!url || clock.now() - inspectedAt >= INSPECT_WHILE_WAITING_MS) {
        const fresh = await provisioner.inspect(instanceId);
        inspectedAt = clock.now();
        if (!fresh) {
          registry.forget(runtimeId, instanceId);
          throw new OperationError('CONTAINER_VANISHED', 'The runtime container was removed while it was starting.');
        }
        registry.remember(runtimeId, fresh);
        instance = fresh;
        if (fresh.phase === 'exited' || fresh.phase === 'crashed' || fresh.phase === 'oom' || fresh.phase === 'restarting') {
          const tail = await this.logTail(instanceId);
          const why = fresh.phase === 'oom' ? `ran out of memory (limit ${Math.round(fresh.memoryLimitBytes / 1024 ** 2)} MiB)` : `exited with code ${fresh.exitCode ?? 'unknown'}`;
          await this.stopFailedStart(runtimeId, instanceId);
          throw new OperationError('RUNTIME_EXITED', `OpenClaw ${why} while starting.${tail}`);
        }
      }
      const elapsed = clock.now() - startedAt;
      if (clock.now() >= deadline) {
        const tail = await this.logTail(instanceId);
        await this.stopFailedStart(runtimeId, instanceId);
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
      await this.deps.sleep(interval);
      if (elapsed > FAST_PROBING_MS) interval = Math.min(PROBE_MAX_INTERVAL_MS, Math.round(interval * 1.5));
    }
  }

  /**
   * Probes an incarnation the provisioner (re)started on its own (restart policy, adoption) until
   * /readyz answers, so it shows as running as soon as it is, not at the next health check.
   * Rejects when the provisioner fails under it (an engine restarting): callers catch and log.
   */
  async confirmReady(runtimeId: string, instanceId: string): Promise<boolean> {
    const { clock, probe, provisioner, registry } = this.deps;
    const settings = this.deps.settings.get();
    const deadline = clock.now() + settings.readyTimeoutMs;
    while (clock.now() < deadline) {
      if (registry.isBusy(runtimeId)) return false;
      const instance = await provisioner.inspect(instanceId);
      if (!instance || !isUp(instance.phase)) return false;
      if (instance.url && (await probe.status(instance.url, READINESS_PATH, 2_000)) === 200) {
        registry.markReady(instanceId);
        registry.apply(runtimeId, instanceId, instance);
        return true;
      }
      await this.deps.sleep(CONFIRM_INTERVAL_MS);
    }
    return false;
  }

  /** The last log lines of an incarnation, formatted for an error message ('' when there are none). */
  async logTail(instanceId: string): Promise<string> {
    try {
      const stream = await this.deps.provisioner.logs(instanceId, { tail: LOG_TAIL_ON_FAILURE, follow: false });
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
   * Stops the incarnation of a start that failed and reads it back before the operation ends: the
   * watcher's change for the stop may come later, and whoever reads the runtime when the start
   * has failed must find it failed, not still starting.
   */
  private async stopFailedStart(runtimeId: string, instanceId: string): Promise<void> {
    await this.deps.provisioner.stop(instanceId, this.deps.settings.get().stopTimeoutSeconds).catch(() => undefined);
    this.deps.runtimes.setDesiredState(runtimeId, 'stopped', this.deps.clock.now());
    await this.deps.registry.refresh(runtimeId, instanceId).catch(() => null);
  }
}
