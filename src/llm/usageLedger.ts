import type { UsageRecord, UsageRepository, UsageTotals } from '../db/repositories/usageRepository';
import type { Logger } from '../lib/logger';

/**
 * The usage ledger as the gateway writes it: each call's row is queued and the queue is written
 * in one transaction at the end of the current event-loop turn. Under load, the calls ending in
 * one turn share a single WAL commit (an autocommit INSERT per call cost ~60 µs of the gateway's
 * CPU per request); when idle, a row reaches the database a moment after its call ends. Reads
 * write the queue first, so they always see every finished call. A crash loses at most the rows
 * of the turn in progress (and after the restart, the month's totals read back miss them).
 */
export class UsageLedger {
  private queue: UsageRecord[] = [];
  private scheduled = false;

  constructor(
    private readonly repository: UsageRepository,
    private readonly logger: Logger,
  ) {}

  append(record: UsageRecord): void {
    this.queue.push(record);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.flush());
  }

  /** Writes every queued row now (reads, shutdown). */
  flush(): void {
    this.scheduled = false;
    if (this.queue.length === 0) return;
    const rows = this.queue;
    this.queue = [];
    try {
      this.repository.appendAll(rows);
    } catch (err) {
      // Never let a ledger failure take down model calls; say loudly what was not recorded.
      this.logger.error({ err, rows: rows.length }, 'writing model usage to the ledger failed; these calls are not recorded');
    }
  }

  totals(userId: string, from: number, to: number): UsageTotals {
    this.flush();
    return this.repository.totals(userId, from, to);
  }

  perDay(userId: string, from: number, to: number): ReturnType<UsageRepository['perDay']> {
    this.flush();
    return this.repository.perDay(userId, from, to);
  }

  perModel(userId: string, from: number, to: number): ReturnType<UsageRepository['perModel']> {
    this.flush();
    return this.repository.perModel(userId, from, to);
  }

  report(from: number, to: number): ReturnType<UsageRepository['report']> {
    this.flush();
    return this.repository.report(from, to);
  }
}
