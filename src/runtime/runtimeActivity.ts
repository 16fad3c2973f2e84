import type { SettingsSource } from '../lib/settingsStore';
import type { RuntimeRepository } from '../db/repositories/runtimeRepository';
import type { Clock } from '../lib/clock';
import { isUp } from './provisioner';
import type { RuntimeRegistry } from './runtimeRegistry';
import type { RuntimeSettings } from './runtimeSettings';

export interface RuntimeActivityDeps {
  runtimes: RuntimeRepository;
  registry: RuntimeRegistry;
  clock: Clock;
  settings: SettingsSource<Pick<RuntimeSettings, 'idleStopMs'>>;
  /** Stops a user's runtime (the lifecycle's stop, as the idle-stop actor), idle for `idleMs`. */
  stop: (userId: string, idleMs: number) => void;
}

/** When each runtime was last used, and the idle stop that follows from it. */
export class RuntimeActivity {
  private readonly lastActivity = new Map<string, number>();

  constructor(private readonly deps: RuntimeActivityDeps) {}

  /** Anything a user or their agent does through the platform keeps their runtime awake. */
  touch(runtimeId: string): void {
    this.lastActivity.set(runtimeId, this.deps.clock.now());
  }

  touchUser(userId: string): void {
    const id = this.deps.runtimes.findByUserId(userId)?.id;
    if (id) this.touch(id);
  }

  /** Stops running runtimes idle for longer than the setting; returns how many it stopped. */
  stopIdle(): number {
    const { clock, registry } = this.deps;
    const settings = this.deps.settings.get();
    if (settings.idleStopMs <= 0) return 0;
    let stopped = 0;
    for (const runtime of this.deps.runtimes.list()) {
      const instance = registry.instance(runtime.id);
      if (!instance || !isUp(instance.phase) || registry.isBusy(runtime.id)) continue;
      const last = this.lastActivity.get(runtime.id) ?? runtime.lastStartedAt ?? 0;
      if (clock.now() - last < settings.idleStopMs) continue;
      this.deps.stop(runtime.userId, settings.idleStopMs);
      stopped++;
    }
    return stopped;
  }
}
