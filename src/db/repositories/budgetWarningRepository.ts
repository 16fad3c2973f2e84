import type { Db } from '../database';

export type BudgetThreshold = 80 | 100;

/** Which budget warnings were mailed, per user and month ('2026-06'), so none is mailed twice. */
export class BudgetWarningRepository {
  constructor(private readonly db: Db) {}

  /** The highest threshold already recorded for the user's month; 0: none. */
  highestSent(userId: string, month: string): number {
    const row = this.db.prepare('SELECT MAX(threshold) AS t FROM budget_warnings WHERE user_id = ? AND month = ?').get(userId, month) as { t: number | null };
    return row.t ?? 0;
  }

  /** False when it was recorded already (by another process, say). */
  record(userId: string, month: string, threshold: BudgetThreshold, now: number): boolean {
    return this.db.prepare('INSERT OR IGNORE INTO budget_warnings (user_id, month, threshold, sent_at) VALUES (?, ?, ?, ?)').run(userId, month, threshold, now).changes === 1;
  }
}
