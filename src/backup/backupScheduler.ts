import type { SettingsRepository } from '../db/repositories/settingsRepository';
import type { Clock } from '../lib/clock';
import type { Logger } from '../lib/logger';
import type { BackupService } from './backupService';
import { backupsToRemove } from './retention';

export interface BackupSchedule {
  enabled: boolean;
  /** The hour of the day (UTC) the daily backup starts at, 0-23. */
  hourUtc: number;
  /** Scheduled backups kept: the newest of each of the last N days... */
  keepDaily: number;
  /** ...and of each of the last N weeks. */
  keepWeekly: number;
}

export const DEFAULT_SCHEDULE: BackupSchedule = { enabled: false, hourUtc: 3, keepDaily: 7, keepWeekly: 4 };
export const SCHEDULE_LIMITS = { keepDaily: { min: 1, max: 366 }, keepWeekly: { min: 0, max: 520 } } as const;

const SCHEDULE_KEY = 'backup.schedule';
const LAST_RUN_KEY = 'backup.lastScheduledDay';
const TICK_MS = 60_000;

const isSchedule = (v: unknown): v is BackupSchedule =>
  typeof v === 'object' &&
  v !== null &&
  typeof (v as BackupSchedule).enabled === 'boolean' &&
  Number.isInteger((v as BackupSchedule).hourUtc) &&
  Number.isInteger((v as BackupSchedule).keepDaily) &&
  Number.isInteger((v as BackupSchedule).keepWeekly);

/**
 * Takes a backup once a day at the administrator's hour and applies the retention to scheduled
 * backups afterwards. A day's run is recorded before it starts, so a restart that day does not
 * take a second one; a run that is missed (the platform was down at that hour) happens at the
 * next check of that day.
 */
export class BackupScheduler {
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly deps: {
      backups: Pick<BackupService, 'create' | 'list' | 'remove' | 'hasKey'>;
      settings: Pick<SettingsRepository, 'get' | 'set'>;
      clock: Clock;
      logger: Logger;
      /** How long the copy of a deleted account's workspace is kept. */
      offboardingKeepDays: number;
    },
  ) {}

  private prunedAt = 0;

  /** Removes offboarding copies past their time; at most once an hour (it reads every manifest). */
  async pruneOffboarding(): Promise<number> {
    const now = this.deps.clock.now();
    if (now - this.prunedAt < 3_600_000 || !this.deps.backups.hasKey()) return 0;
    this.prunedAt = now;
    const cutoff = now - this.deps.offboardingKeepDays * 86_400_000;
    let removed = 0;
    for (const backup of await this.deps.backups.list()) {
      if (backup.readable && backup.trigger === 'offboarding' && Date.parse(backup.createdAt) < cutoff) {
        this.deps.backups.remove(backup.id);
        this.deps.logger.info({ backup: backup.id, users: backup.users }, 'removed the copy of a deleted account past its time');
        removed++;
      }
    }
    return removed;
  }

  schedule(): BackupSchedule {
    const stored = this.deps.settings.get(SCHEDULE_KEY);
    return isSchedule(stored) ? stored : DEFAULT_SCHEDULE;
  }

  setSchedule(schedule: BackupSchedule): BackupSchedule {
    this.deps.settings.set(SCHEDULE_KEY, schedule, this.deps.clock.now());
    return schedule;
  }

  start(): void {
    this.timer = setInterval(() => void this.tick(), TICK_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** One check: runs the day's backup when it is due; resolves with what it did. */
  async tick(): Promise<'not-due' | 'done' | 'failed'> {
    await this.pruneOffboarding().catch((err: unknown) => this.deps.logger.warn({ err: (err as Error).message }, 'removing old offboarding copies failed'));
    const schedule = this.schedule();
    const now = new Date(this.deps.clock.now());
    const today = now.toISOString().slice(0, 10);
    if (!schedule.enabled || !this.deps.backups.hasKey() || now.getUTCHours() < schedule.hourUtc || this.deps.settings.get(LAST_RUN_KEY) === today) return 'not-due';
    this.deps.settings.set(LAST_RUN_KEY, today, now.getTime());
    try {
      await this.deps.backups.create(() => {}, 'scheduled');
    } catch (err) {
      this.deps.logger.error({ err: (err as Error).message }, 'the scheduled backup failed; the next one is tomorrow');
      return 'failed';
    }
    const scheduled = (await this.deps.backups.list()).filter((b) => b.readable && b.trigger === 'scheduled');
    for (const id of backupsToRemove(scheduled, schedule.keepDaily, schedule.keepWeekly)) {
      this.deps.backups.remove(id);
      this.deps.logger.info({ backup: id }, 'removed a scheduled backup past its retention');
    }
    return 'done';
  }
}
