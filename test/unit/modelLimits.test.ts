/**
 * ModelLimiter (src/llm/modelLimits.ts): per-user requests per minute (a sliding window),
 * requests at once, and monthly token and cost budgets with reservations for calls in flight.
 * Time is a fake clock; the ledger and the stored overrides are in-memory stand-ins.
 */
import type { LimitOverrides, LimitsRepository } from '../../src/db/repositories/limitsRepository';
import type { UsageTotals } from '../../src/db/repositories/usageRepository';
import type { ModelLimits } from '../../src/llm/llmSettings';
import { LimitExceeded, ModelLimiter } from '../../src/llm/modelLimits';

const NONE: ModelLimits = { requestsPerMinute: 0, concurrentRequests: 0, monthlyTokens: 0, monthlyCostMicrodollars: 0 };
const NO_OVERRIDES: LimitOverrides = { requestsPerMinute: null, concurrentRequests: null, monthlyTokens: null, monthlyCostMicrodollars: null };

function setup(defaults: Partial<ModelLimits> = {}, start = Date.UTC(2026, 10, 15, 12, 0, 0)) {
  let now = start;
  const stored = new Map<string, LimitOverrides>();
  const ledger: { at: number; tokens: number; cost: number }[] = [];
  const repositoryReads: string[] = [];
  const overrides = {
    find: (userId: string) => {
      repositoryReads.push(userId);
      return stored.get(userId) ?? null;
    },
    save: (userId: string, value: LimitOverrides) => void stored.set(userId, { ...value }),
  } as Pick<LimitsRepository, 'find' | 'save'> as LimitsRepository;
  const usage = {
    totals: (_userId: string, from: number, to: number): UsageTotals => {
      const rows = ledger.filter((r) => r.at >= from && r.at < to);
      return {
        requests: rows.length,
        promptTokens: rows.reduce((s, r) => s + r.tokens, 0),
        completionTokens: 0,
        costMicrodollars: rows.reduce((s, r) => s + r.cost, 0),
        estimatedRequests: 0,
      };
    },
  };
  const limiter = new ModelLimiter({ defaults: { ...NONE, ...defaults }, overrides, usage, clock: { now: () => now } });
  return {
    limiter,
    ledger,
    repositoryReads,
    advance: (ms: number) => (now += ms),
    set: (ms: number) => (now = ms),
  };
}

/** The LimitExceeded an admission throws, or null when it passed. */
function refusal(admit: () => unknown): LimitExceeded | null {
  try {
    admit();
    return null;
  } catch (err) {
    if (err instanceof LimitExceeded) return err;
    throw err;
  }
}

describe('ModelLimiter: which limits apply', () => {
  test('defaults, overrides and what is effective; null falls back to the default', () => {
    const { limiter } = setup({ requestsPerMinute: 60, monthlyTokens: 1000 });
    expect(limiter.overrides('u1')).toEqual(NO_OVERRIDES);
    expect(limiter.effective('u1')).toEqual({ ...NONE, requestsPerMinute: 60, monthlyTokens: 1000 });
    limiter.setOverrides('u1', { ...NO_OVERRIDES, requestsPerMinute: 5, concurrentRequests: 2 });
    expect(limiter.effective('u1')).toEqual({ requestsPerMinute: 5, concurrentRequests: 2, monthlyTokens: 1000, monthlyCostMicrodollars: 0 });
    expect(limiter.effective('u2')).toEqual({ ...NONE, requestsPerMinute: 60, monthlyTokens: 1000 });
    // 0 overrides a default too: "no limit" for this user.
    limiter.setOverrides('u1', { ...NO_OVERRIDES, monthlyTokens: 0 });
    expect(limiter.effective('u1').monthlyTokens).toBe(0);
  });

  test('overrides are read once and read again after a change', () => {
    const { limiter, repositoryReads } = setup();
    limiter.effective('u1');
    limiter.effective('u1');
    limiter.admit('u1', 0, 0).settle(0, 0);
    expect(repositoryReads).toEqual(['u1']);
    limiter.setOverrides('u1', { ...NO_OVERRIDES, concurrentRequests: 1 });
    expect(limiter.effective('u1').concurrentRequests).toBe(1);
    expect(repositoryReads).toEqual(['u1', 'u1']);
  });
});

describe('ModelLimiter: requests per minute', () => {
  test('a sliding window: the oldest request leaves it a minute after it started', () => {
    const t = setup({ requestsPerMinute: 3 });
    for (let i = 0; i < 3; i++) {
      t.limiter.admit('u1', 0, 0).settle(0, 0);
      t.advance(10_000);
    }
    // 30 s after the first: the window is full until 60 s after it.
    const refused = refusal(() => t.limiter.admit('u1', 0, 0));
    expect(refused).toMatchObject({ code: 'requests_per_minute', type: 'rate_limit_exceeded', retryAfterSeconds: 30 });
    expect(refused?.message).toMatch(/3 model requests per minute; it resets in 30 s/);
    t.advance(29_999);
    expect(refusal(() => t.limiter.admit('u1', 0, 0))?.retryAfterSeconds).toBe(1);
    t.advance(1);
    expect(refusal(() => t.limiter.admit('u1', 0, 0))).toBeNull();
    // Another user has a window of their own.
    expect(refusal(() => t.limiter.admit('u2', 0, 0))).toBeNull();
  });

  test('refused requests do not count; a lowered limit applies at once', () => {
    const t = setup({ requestsPerMinute: 2 });
    t.limiter.admit('u1', 0, 0);
    t.limiter.admit('u1', 0, 0);
    for (let i = 0; i < 5; i++) expect(refusal(() => t.limiter.admit('u1', 0, 0))).not.toBeNull();
    t.advance(60_000);
    expect(refusal(() => t.limiter.admit('u1', 0, 0))).toBeNull();
    t.limiter.setOverrides('u1', { ...NO_OVERRIDES, requestsPerMinute: 1 });
    expect(refusal(() => t.limiter.admit('u1', 0, 0))?.code).toBe('requests_per_minute');
  });
});

describe('ModelLimiter: requests at once', () => {
  test('a slot frees when a request settles, once however often it is settled', () => {
    const { limiter } = setup({ concurrentRequests: 2 });
    const first = limiter.admit('u1', 0, 0);
    limiter.admit('u1', 0, 0);
    expect(refusal(() => limiter.admit('u1', 0, 0))).toMatchObject({ code: 'concurrent_requests', retryAfterSeconds: 1 });
    first.settle(0, 0);
    first.settle(0, 0);
    expect(refusal(() => limiter.admit('u1', 0, 0))).toBeNull();
    expect(refusal(() => limiter.admit('u1', 0, 0))?.code).toBe('concurrent_requests');
  });
});

describe('ModelLimiter: monthly budgets', () => {
  test('tokens: the ledger of the month, plus what requests in flight reserved', () => {
    const t = setup({ monthlyTokens: 1000 });
    t.ledger.push({ at: Date.UTC(2026, 10, 2), tokens: 600, cost: 0 });
    // Last month's use does not count.
    t.ledger.push({ at: Date.UTC(2026, 9, 30), tokens: 5000, cost: 0 });
    const a = t.limiter.admit('u1', 300, 0);
    t.limiter.admit('u1', 99, 0);
    // 600 used + 399 reserved: one more token is left, so one more request passes.
    const b = t.limiter.admit('u1', 50, 0);
    const refused = refusal(() => t.limiter.admit('u1', 1, 0));
    expect(refused).toMatchObject({ code: 'monthly_tokens', type: 'insufficient_quota' });
    expect(refused?.message).toMatch(/1000 tokens for this month \(600 used, 449 reserved by requests still running\); the budget resets on 2026-12-01/);
    expect(refused?.retryAfterSeconds).toBe((Date.UTC(2026, 11, 1) - Date.UTC(2026, 10, 15, 12)) / 1000);
    // Settling replaces a reservation with what was really used.
    a.settle(10, 0);
    b.settle(10, 0);
    expect(t.limiter.tokensThisMonth('u1')).toBe(620);
    expect(refusal(() => t.limiter.admit('u1', 1, 0))).toBeNull();
  });

  test('cost: refused once spent plus reserved reaches the budget, in dollars', () => {
    const t = setup({ monthlyCostMicrodollars: 2_000_000 });
    t.ledger.push({ at: Date.UTC(2026, 10, 1), tokens: 0, cost: 1_500_000 });
    const call = t.limiter.admit('u1', 0, 400_000);
    t.limiter.admit('u1', 0, 100_000);
    const refused = refusal(() => t.limiter.admit('u1', 0, 1));
    expect(refused).toMatchObject({ code: 'monthly_budget', type: 'insufficient_quota' });
    expect(refused?.message).toMatch(/your \$2\.00 budget for this month \(\$1\.50 spent\)/);
    call.settle(0, 100_000);
    expect(t.limiter.costThisMonth('u1')).toBe(1_600_000);
    expect(refusal(() => t.limiter.admit('u1', 0, 1))).toBeNull();
  });

  test('a new month starts from the ledger of that month', () => {
    const t = setup({ monthlyTokens: 100 }, Date.UTC(2026, 10, 30, 23, 59, 0));
    t.limiter.admit('u1', 10, 0).settle(100, 0);
    t.ledger.push({ at: Date.UTC(2026, 10, 30, 23, 59, 0), tokens: 100, cost: 0 });
    expect(refusal(() => t.limiter.admit('u1', 1, 0))?.code).toBe('monthly_tokens');
    t.set(Date.UTC(2026, 11, 1, 0, 0, 0));
    expect(t.limiter.tokensThisMonth('u1')).toBe(0);
    expect(refusal(() => t.limiter.admit('u1', 1, 0))).toBeNull();
  });

  test('no limit set: nothing is refused, whatever the use', () => {
    const t = setup();
    t.ledger.push({ at: Date.UTC(2026, 10, 1), tokens: 10 ** 12, cost: 10 ** 12 });
    for (let i = 0; i < 100; i++) t.limiter.admit('u1', 10 ** 6, 10 ** 6);
    expect(refusal(() => t.limiter.admit('u1', 10 ** 6, 10 ** 6))).toBeNull();
  });
});
