import type { BudgetThreshold } from '../../src/db/repositories/budgetWarningRepository';
import { BudgetWarnings, type BudgetCrossing } from '../../src/llm/budgetWarnings';
import type { ModelLimits } from '../../src/llm/llmSettings';
import { ManualClock } from '../support/harness';

/** The store as the database keeps it: one row per user, month and threshold. */
class MemoryStore {
  readonly rows = new Set<string>();
  reads = 0;
  highestSent(userId: string, month: string): number {
    this.reads++;
    return Math.max(0, ...[80, 100].filter((t) => this.rows.has(`${userId}/${month}/${t}`)));
  }
  record(userId: string, month: string, threshold: BudgetThreshold): boolean {
    const key = `${userId}/${month}/${threshold}`;
    if (this.rows.has(key)) return false;
    this.rows.add(key);
    return true;
  }
}

function setup(limits: Partial<ModelLimits>, store = new MemoryStore(), clock = new ManualClock()) {
  const use = { tokens: 0, cost: 0 };
  const told: [string, BudgetCrossing][] = [];
  const warnings = new BudgetWarnings({
    limiter: {
      effective: () => ({ requestsPerMinute: 0, concurrentRequests: 0, monthlyTokens: 0, monthlyCostMicrodollars: 0, ...limits }),
      tokensThisMonth: () => use.tokens,
      costThisMonth: () => use.cost,
    },
    store,
    clock,
    notify: (userId, crossing) => told.push([userId, crossing]),
  });
  return { use, told, warnings, store, clock };
}

test('nothing below 80 %; 80 % once; 100 % once; the figures and the reset day are told', () => {
  const { use, told, warnings } = setup({ monthlyTokens: 1000 });
  use.tokens = 799;
  warnings.check('u');
  expect(told).toEqual([]);
  use.tokens = 800;
  warnings.check('u');
  use.tokens = 950;
  warnings.check('u');
  use.tokens = 1000;
  warnings.check('u');
  use.tokens = 1200;
  warnings.check('u');
  expect(told.map(([, c]) => c.threshold)).toEqual([80, 100]);
  expect(told[0]?.[1]).toEqual({ threshold: 80, tokens: { used: 800, limit: 1000 }, costMicrodollars: null, resetsAt: Date.parse('2026-07-01T00:00:00Z') });
});

test('whichever limit is further along counts; a jump straight past 100 % tells only that', () => {
  const { use, told, warnings } = setup({ monthlyTokens: 1_000_000, monthlyCostMicrodollars: 10_000_000 });
  use.tokens = 10;
  use.cost = 10_500_000;
  warnings.check('u');
  expect(told).toEqual([['u', { threshold: 100, tokens: { used: 10, limit: 1_000_000 }, costMicrodollars: { used: 10_500_000, limit: 10_000_000 }, resetsAt: Date.parse('2026-07-01T00:00:00Z') }]]);
});

test('no limit, no warning; what is stored is not told again by another instance, and a new month starts over', () => {
  const none = setup({});
  none.use.tokens = 10 ** 9;
  none.warnings.check('u');
  expect(none.told).toEqual([]);

  const first = setup({ monthlyTokens: 100 });
  first.use.tokens = 85;
  first.warnings.check('u');
  // A restarted platform: the same store, a new instance.
  const again = setup({ monthlyTokens: 100 }, first.store, first.clock);
  again.use.tokens = 90;
  again.warnings.check('u');
  again.warnings.check('u');
  expect(again.told).toEqual([]);
  expect(first.store.reads).toBe(2);
  first.clock.advance(31 * 86_400_000);
  again.warnings.check('u');
  expect(again.told.map(([, c]) => c.threshold)).toEqual([80]);
  expect([...first.store.rows].sort()).toEqual(['u/2026-06/80', 'u/2026-07/80']);
});
