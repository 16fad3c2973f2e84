import type { Db } from '../database';

export interface LimitOverrides {
  requestsPerMinute: number | null;
  concurrentRequests: number | null;
  monthlyTokens: number | null;
  monthlyCostMicrodollars: number | null;
}

interface Row {
  requests_per_minute: number | null;
  concurrent_requests: number | null;
  monthly_tokens: number | null;
  monthly_cost_microdollars: number | null;
}

/** Per-user overrides of the model limits. */
export class LimitsRepository {
  constructor(private readonly db: Db) {}

  find(userId: string): LimitOverrides | null {
    const row = this.db.prepare('SELECT requests_per_minute, concurrent_requests, monthly_tokens, monthly_cost_microdollars FROM llm_limits WHERE user_id = ?').get(userId) as Row | undefined;
    return row
      ? {
          requestsPerMinute: row.requests_per_minute,
          concurrentRequests: row.concurrent_requests,
          monthlyTokens: row.monthly_tokens,
          monthlyCostMicrodollars: row.monthly_cost_microdollars,
        }
      : null;
  }

  save(userId: string, overrides: LimitOverrides, now: number): void {
    this.db
      .prepare(
        `INSERT INTO llm_limits (user_id, requests_per_minute, concurrent_requests, monthly_tokens, monthly_cost_microdollars, updated_at)
         VALUES (@userId, @requestsPerMinute, @concurrentRequests, @monthlyTokens, @monthlyCostMicrodollars, @now)
         ON CONFLICT(user_id) DO UPDATE SET requests_per_minute = excluded.requests_per_minute,
           concurrent_requests = excluded.concurrent_requests, monthly_tokens = excluded.monthly_tokens,
           monthly_cost_microdollars = excluded.monthly_cost_microdollars, updated_at = excluded.updated_at`,
      )
      .run({ userId, ...overrides, now });
  }
}
