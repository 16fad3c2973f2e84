import type { EgressConnection, EgressRepository, EgressTotals } from '../db/repositories/egressRepository';
import type { Clock } from '../lib/clock';
import type { Logger } from '../lib/logger';

export interface EgressRecordSettings {
  /** How long a connection stays in the record. */
  retentionMs: number;
  /** The most rows kept whatever their age: the oldest go first. */
  maxRows: number;
}

/** Connections waiting to be written at most; beyond, they are counted, not kept (an agent's flood must not grow memory). */
const MAX_PENDING = 5_000;
const FLUSH_EVERY_MS = 1_000;
const PRUNE_EVERY_MS = 60 * 60_000;

/**
 * The record of runtimes' outside connections: what the egress proxy reports is written in
 * batches (one transaction a second, not one per connection), and pruned to the retention. A
 * flood beyond what a batch holds is counted and logged rather than buffered without bound.
 */
export class EgressRecord {
  private pending: EgressConnection[] = [];
  private dropped = 0;
  private flushTimer: NodeJS.Timeout | null = null;
  private pruneTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly deps: { repository: EgressRepository; settings: EgressRecordSettings; clock: Clock; logger: Logger },
  ) {}

  /** Starts the hourly pruning (and prunes once now). */
  start(): void {
    this.prune();
    this.pruneTimer = setInterval(() => this.prune(), PRUNE_EVERY_MS);
    this.pruneTimer.unref();
  }

  add(connection: EgressConnection): void {
    if (this.pending.length >= MAX_PENDING) {
      this.dropped++;
      return;
    }
    this.pending.push(connection);
    if (!this.flushTimer) {
      this.flushTimer = setTimeout(() => this.flush(), FLUSH_EVERY_MS);
      this.flushTimer.unref();
    }
  }

  /** Writes what is pending now (shutdown, and tests that read the record at once). */
  flush(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    const batch = this.pending;
    this.pending = [];
    if (this.dropped > 0) {
      this.deps.logger.warn({ dropped: this.dropped }, 'runtimes opened outside connections faster than they could be recorded; some were not recorded');
      this.dropped = 0;
    }
    if (batch.length === 0) return;
    try {
      this.deps.repository.insertConnections(batch);
    } catch (err) {
      this.deps.logger.error({ rows: batch.length, err: (err as Error).message }, 'could not write the egress record');
    }
  }

  prune(): void {
    try {
      const removed = this.deps.repository.prune(this.deps.clock.now() - this.deps.settings.retentionMs, this.deps.settings.maxRows);
      if (removed > 0) this.deps.logger.info({ removed }, 'egress record pruned to its retention');
    } catch (err) {
      this.deps.logger.error({ err: (err as Error).message }, 'could not prune the egress record');
    }
  }

  // ---- reading (what is pending is written first, so a view is never behind the proxy by a batch) ----

  recent(userId: string, limit: number): EgressConnection[] {
    this.flush();
    return this.deps.repository.recent(userId, limit);
  }

  totalsFor(userId: string, since: number): EgressTotals {
    this.flush();
    return this.deps.repository.totalsFor(userId, since);
  }

  summary(since: number, topHosts: number): { users: (EgressTotals & { userId: string; username: string })[]; topHosts: { host: string; connections: number; denied: number; bytes: number }[] } {
    this.flush();
    return { users: this.deps.repository.totalsByUser(since), topHosts: this.deps.repository.topHosts(since, topHosts) };
  }

  get retentionDays(): number {
    return Math.round(this.deps.settings.retentionMs / 86_400_000);
  }

  close(): void {
    if (this.pruneTimer) clearInterval(this.pruneTimer);
    this.pruneTimer = null;
    this.flush();
  }
}
