import type { LimitOverrides, LimitsRepository } from '../db/repositories/limitsRepository';
import type { UsageLedger } from './usageLedger';
import type { Clock } from '../lib/clock';
import type { ModelLimits } from './llmSettings';

const MINUTE_MS = 60_000;

/** A limit said no: the gateway answers 429 in OpenAI's shape with `Retry-After`. */
export class LimitExceeded extends Error {
  constructor(
    readonly code: 'requests_per_minute' | 'concurrent_requests' | 'monthly_tokens' | 'monthly_budget',
    readonly type: 'rate_limit_exceeded' | 'insufficient_quota',
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(message);
    this.name = 'LimitExceeded';
  }
}

export interface Admission {
  /** Ends the request's reservation with what it really used. Call once, whatever happened. */
  settle(tokens: number, costMicrodollars: number): void;
}

const monthOf = (ms: number) => {
  const d = new Date(ms);
  return { start: Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1), end: Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1) };
};

/**
 * Per-user model limits: requests per minute (a sliding window), requests at once, and tokens
 * per calendar month. The month's tokens are read from the ledger once, then kept up to date by
 * the requests this process settles; a request reserves its estimate while it runs, so however
 * many run at once, a user passes the monthly budget by at most one request's misestimate.
 */
export class ModelLimiter {
  private readonly recent = new Map<string, number[]>();
  private readonly running = new Map<string, { count: number; reserved: number; reservedCost: number }>();
  private readonly monthly = new Map<string, { start: number; tokens: number; cost: number }>();
  // Every model call reads its caller's overrides, and only this class writes them (setOverrides).
  private readonly overridesCache = new Map<string, LimitOverrides | null>();

  constructor(
    private readonly deps: { defaults: ModelLimits; overrides: LimitsRepository; usage: Pick<UsageLedger, 'totals'>; clock: Clock },
  ) {}

  private storedOverrides(userId: string): LimitOverrides | null {
    let overrides = this.overridesCache.get(userId);
    if (overrides === undefined) {
      overrides = this.deps.overrides.find(userId);
      this.overridesCache.set(userId, overrides);
    }
    return overrides;
  }

  effective(userId: string): ModelLimits {
    const overrides = this.storedOverrides(userId);
    const pick = (key: keyof ModelLimits) => overrides?.[key] ?? this.deps.defaults[key];
    return {
      requestsPerMinute: pick('requestsPerMinute'),
      concurrentRequests: pick('concurrentRequests'),
      monthlyTokens: pick('monthlyTokens'),
      monthlyCostMicrodollars: pick('monthlyCostMicrodollars'),
    };
  }

  overrides(userId: string): LimitOverrides {
    return this.storedOverrides(userId) ?? { requestsPerMinute: null, concurrentRequests: null, monthlyTokens: null, monthlyCostMicrodollars: null };
  }

  get defaults(): ModelLimits {
    return this.deps.defaults;
  }

  tokensThisMonth(userId: string): number {
    return this.month(userId).tokens;
  }

  costThisMonth(userId: string): number {
    return this.month(userId).cost;
  }

  private month(userId: string): { start: number; tokens: number; cost: number } {
    const { start, end } = monthOf(this.deps.clock.now());
    const known = this.monthly.get(userId);
    if (known?.start === start) return known;
    const totals = this.deps.usage.totals(userId, start, end);
    const month = { start, tokens: totals.promptTokens + totals.completionTokens, cost: totals.costMicrodollars };
    this.monthly.set(userId, month);
    return month;
  }

  /** An administrator's change of one user's overrides (null: back to the default). */
  setOverrides(userId: string, overrides: LimitOverrides): void {
    this.deps.overrides.save(userId, overrides, this.deps.clock.now());
    this.overridesCache.delete(userId);
  }

  admit(userId: string, estimatedTokens: number, estimatedCost: number): Admission {
    const now = this.deps.clock.now();
    const limits = this.effective(userId);
    const running = this.running.get(userId) ?? { count: 0, reserved: 0, reservedCost: 0 };
    if (limits.monthlyCostMicrodollars > 0) {
      const spent = this.costThisMonth(userId);
      if (spent + running.reservedCost >= limits.monthlyCostMicrodollars) {
        const { end } = monthOf(now);
        const usd = (micro: number) => `$${(micro / 1e6).toFixed(micro < 1e6 ? 4 : 2)}`;
        throw new LimitExceeded(
          'monthly_budget',
          'insufficient_quota',
          `You have spent your ${usd(limits.monthlyCostMicrodollars)} budget for this month (${usd(spent)} spent); it resets on ${new Date(end).toISOString().slice(0, 10)}. Ask an administrator for more.`,
          Math.ceil((end - now) / 1000),
        );
      }
    }

    if (limits.monthlyTokens > 0) {
      const used = this.tokensThisMonth(userId);
      if (used + running.reserved >= limits.monthlyTokens) {
        const { end } = monthOf(now);
        throw new LimitExceeded(
          'monthly_tokens',
          'insufficient_quota',
          `You have used your ${limits.monthlyTokens} tokens for this month (${used} used${running.reserved > 0 ? `, ${running.reserved} reserved by requests still running` : ''}); the budget resets on ${new Date(end).toISOString().slice(0, 10)}. Ask an administrator for more.`,
          Math.ceil((end - now) / 1000),
        );
      }
    }
    if (limits.concurrentRequests > 0 && running.count >= limits.concurrentRequests) {
      throw new LimitExceeded('concurrent_requests', 'rate_limit_exceeded', `You already have ${running.count} model requests running, your limit; try again when one has finished.`, 1);
    }
    // Only a per-minute limit needs the recent start times, and never more than that many.
    let window: number[] | null = null;
    if (limits.requestsPerMinute > 0) {
      window = this.recent.get(userId) ?? [];
      while (window.length > 0 && (window[0] ?? 0) <= now - MINUTE_MS) window.shift();
      while (window.length > limits.requestsPerMinute) window.shift();
      this.recent.set(userId, window);
      if (window.length >= limits.requestsPerMinute) {
        const resetIn = Math.max(1, Math.ceil(((window[0] ?? now) + MINUTE_MS - now) / 1000));
        throw new LimitExceeded('requests_per_minute', 'rate_limit_exceeded', `You have reached your limit of ${limits.requestsPerMinute} model requests per minute; it resets in ${resetIn} s.`, resetIn);
      }
    } else this.recent.delete(userId);

    window?.push(now);
    running.count++;
    running.reserved += estimatedTokens;
    running.reservedCost += estimatedCost;
    this.running.set(userId, running);
    let settled = false;
    return {
      settle: (tokens: number, costMicrodollars: number) => {
        if (settled) return;
        settled = true;
        running.count--;
        running.reserved -= estimatedTokens;
        running.reservedCost -= estimatedCost;
        if (running.count === 0) this.running.delete(userId);
        const month = this.month(userId);
        month.tokens += tokens;
        month.cost += costMicrodollars;
      },
    };
  }
}
