import type { BudgetThreshold, BudgetWarningRepository } from '../db/repositories/budgetWarningRepository';
import type { Clock } from '../lib/clock';
import type { ModelLimiter } from './modelLimits';

export interface BudgetCrossing {
  threshold: BudgetThreshold;
  /** Each limit that is set, with this month's use of it. */
  tokens: { used: number; limit: number } | null;
  costMicrodollars: { used: number; limit: number } | null;
  /** When the month's budget starts again (UTC). */
  resetsAt: number;
}

const THRESHOLDS: readonly BudgetThreshold[] = [100, 80];

/**
 * Tells once per month and threshold when a user's model use crosses 80 % and then 100 % of
 * their monthly budget (tokens or spend, whichever is further along). What was told is stored,
 * so a restart does not tell it again; a jump straight past 100 % tells only the 100 %.
 */
export class BudgetWarnings {
  /** The highest threshold told per user for the month in `month`; read from the store once per user and month. */
  private readonly told = new Map<string, { month: string; highest: number }>();

  constructor(
    private readonly deps: {
      limiter: Pick<ModelLimiter, 'effective' | 'tokensThisMonth' | 'costThisMonth'>;
      store: Pick<BudgetWarningRepository, 'highestSent' | 'record'>;
      clock: Clock;
      notify: (userId: string, crossing: BudgetCrossing) => void;
    },
  ) {}

  /** After each charged model call of the user. */
  check(userId: string): void {
    const limits = this.deps.limiter.effective(userId);
    if (limits.monthlyTokens <= 0 && limits.monthlyCostMicrodollars <= 0) return;
    const tokens = limits.monthlyTokens > 0 ? { used: this.deps.limiter.tokensThisMonth(userId), limit: limits.monthlyTokens } : null;
    const costMicrodollars = limits.monthlyCostMicrodollars > 0 ? { used: this.deps.limiter.costThisMonth(userId), limit: limits.monthlyCostMicrodollars } : null;
    const share = Math.max(tokens ? tokens.used / tokens.limit : 0, costMicrodollars ? costMicrodollars.used / costMicrodollars.limit : 0);
    const threshold = THRESHOLDS.find((t) => share * 100 >= t);
    if (threshold === undefined) return;

    const now = new Date(this.deps.clock.now());
    const month = now.toISOString().slice(0, 7);
    let known = this.told.get(userId);
    if (known?.month !== month) {
      known = { month, highest: this.deps.store.highestSent(userId, month) };
      this.told.set(userId, known);
    }
    if (threshold <= known.highest) return;
    known.highest = threshold;
    if (!this.deps.store.record(userId, month, threshold, now.getTime())) return;
    const resetsAt = Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1);
    this.deps.notify(userId, { threshold, tokens, costMicrodollars, resetsAt });
  }

  /** A deleted user's entry goes with them. */
  forgetUser(userId: string): void {
    this.told.delete(userId);
  }
}
