import type { SettingsRepository } from '../db/repositories/settingsRepository';
import type { Clock } from '../lib/clock';
import type { RuntimeSettings } from '../runtime/runtimeSettings';
import type { Actor, AuditLog, RequestOrigin } from './audit';
import type { Transactor } from './transactor';

const IDLE_STOP_KEY = 'runtime.idleStopMinutes';
export const MAX_IDLE_STOP_MINUTES = 7 * 24 * 60;

export interface PlatformSettingsView {
  /** 0: runtimes are never stopped for being idle. */
  idleStopMinutes: number;
}

/**
 * Settings an administrator changes at runtime. The environment supplies the defaults; a stored
 * value wins, and takes effect at once in the live runtime settings the manager reads.
 */
export class PlatformSettingsService {
  constructor(
    private readonly repository: SettingsRepository,
    private readonly runtime: Pick<RuntimeSettings, 'idleStopMs'>,
    private readonly audit: AuditLog,
    private readonly transact: Transactor,
    private readonly clock: Clock,
  ) {
    const stored = repository.get(IDLE_STOP_KEY);
    if (typeof stored === 'number' && Number.isInteger(stored) && stored >= 0 && stored <= MAX_IDLE_STOP_MINUTES) {
      runtime.idleStopMs = stored * 60_000;
    }
  }

  view(): PlatformSettingsView {
    return { idleStopMinutes: Math.round(this.runtime.idleStopMs / 60_000) };
  }

  update(actor: Actor, change: Partial<PlatformSettingsView>, origin: RequestOrigin): PlatformSettingsView {
    const before = this.view();
    this.transact(() => {
      if (change.idleStopMinutes !== undefined) this.repository.set(IDLE_STOP_KEY, change.idleStopMinutes, this.clock.now());
      this.audit.record({ action: 'settings.update', actor, origin, detail: { before, after: { ...before, ...change } } });
    });
    if (change.idleStopMinutes !== undefined) this.runtime.idleStopMs = change.idleStopMinutes * 60_000;
    return this.view();
  }
}
