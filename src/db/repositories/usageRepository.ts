import type { Db } from '../database';

export type UsageStatus = 'ok' | 'upstream_error' | 'aborted' | 'unreachable' | 'timeout';

export interface UsageRecord {
  at: number;
  userId: string;
  username: string;
  runtimeId: string | null;
  endpoint: string;
  model: string;
  streamed: boolean;
  status: UsageStatus;
  httpStatus: number | null;
  promptTokens: number;
  completionTokens: number;
  costMicrodollars: number;
  latencyMs: number;
  /** The tokens are the gateway's conservative estimate, not the upstream's usage (it sent none, or the call ended early). */
  estimated: boolean;
}

export interface UsageTotals {
  requests: number;
  promptTokens: number;
  completionTokens: number;
  costMicrodollars: number;
  /** Of `requests`, those charged by the gateway's estimate (their tokens and cost are in the sums). */
  estimatedRequests: number;
}

const TOTALS = `COUNT(*) AS requests, COALESCE(SUM(prompt_tokens), 0) AS promptTokens,
  COALESCE(SUM(completion_tokens), 0) AS completionTokens, COALESCE(SUM(cost_microdollars), 0) AS costMicrodollars,
  COALESCE(SUM(estimated), 0) AS estimatedRequests`;

/** The model usage ledger: append-only rows, aggregated on read. */
export class UsageRepository {
  /** Built once: the ledger writes a batch every 50 ms while calls end. */
  private readonly insertAll: (records: readonly UsageRecord[]) => void;

  constructor(private readonly db: Db) {
    this.insertAll = db.transaction((records: readonly UsageRecord[]) => {
      const insert = db.prepare(
        `INSERT INTO llm_usage (at, user_id, username, runtime_id, endpoint, model, streamed, status, http_status,
           prompt_tokens, completion_tokens, cost_microdollars, latency_ms, estimated)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      );
      // Positional values: a copy of each row with named bindings cost a few µs per model call.
      for (const r of records) {
        insert.run(r.at, r.userId, r.username, r.runtimeId, r.endpoint, r.model, r.streamed ? 1 : 0, r.status, r.httpStatus, r.promptTokens, r.completionTokens, r.costMicrodollars, r.latencyMs, r.estimated ? 1 : 0);
      }
    });
  }

  /** Appends rows in one transaction: one WAL commit for many calls instead of one each. */
  appendAll(records: readonly UsageRecord[]): void {
    this.insertAll(records);
  }

  totals(userId: string, from: number, to: number): UsageTotals {
    return this.db.prepare(`SELECT ${TOTALS} FROM llm_usage WHERE user_id = ? AND at >= ? AND at < ?`).get(userId, from, to) as UsageTotals;
  }

  perDay(userId: string, from: number, to: number): (UsageTotals & { day: string })[] {
    return this.db
      .prepare(
        `SELECT strftime('%Y-%m-%d', at / 1000, 'unixepoch') AS day, ${TOTALS}
         FROM llm_usage WHERE user_id = ? AND at >= ? AND at < ? GROUP BY day ORDER BY day`,
      )
      .all(userId, from, to) as (UsageTotals & { day: string })[];
  }

  perModel(userId: string, from: number, to: number): (UsageTotals & { model: string })[] {
    return this.db
      .prepare(`SELECT model, ${TOTALS} FROM llm_usage WHERE user_id = ? AND at >= ? AND at < ? GROUP BY model ORDER BY model`)
      .all(userId, from, to) as (UsageTotals & { model: string })[];
  }

  /** Everyone's totals in [from, to): per user, per model and per day (UTC) (admin reports). */
  report(
    from: number,
    to: number,
  ): { perUser: (UsageTotals & { userId: string; username: string })[]; perModel: (UsageTotals & { model: string })[]; perDay: (UsageTotals & { day: string })[] } {
    return {
      perDay: this.db
        .prepare(`SELECT strftime('%Y-%m-%d', at / 1000, 'unixepoch') AS day, ${TOTALS} FROM llm_usage WHERE at >= ? AND at < ? GROUP BY day ORDER BY day`)
        .all(from, to) as (UsageTotals & { day: string })[],
      perUser: this.db
        .prepare(`SELECT user_id AS userId, MAX(username) AS username, ${TOTALS} FROM llm_usage WHERE at >= ? AND at < ? GROUP BY user_id ORDER BY username`)
        .all(from, to) as (UsageTotals & { userId: string; username: string })[],
      perModel: this.db
        .prepare(`SELECT model, ${TOTALS} FROM llm_usage WHERE at >= ? AND at < ? GROUP BY model ORDER BY model`)
        .all(from, to) as (UsageTotals & { model: string })[],
    };
  }
}
