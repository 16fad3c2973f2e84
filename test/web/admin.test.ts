/**
 * The admin pages' pure logic (web/src/admin/logic.ts): routing by pathname, day ranges as the
 * API's times, the per-user reading of bulk answers, runtime summaries and form parsing.
 */
import type { RuntimeListItem } from '../../web/src/api/types';
import type { BulkResult, CatalogModel } from '../../web/src/admin/adminTypes';
import {
  adminRoute,
  bulkOutcome,
  byCost,
  figuresFreshness,
  limitsBody,
  limitsFormValues,
  modelBody,
  monthRange,
  openRangeQuery,
  rangeQuery,
  repeatCount,
  runtimeSummary,
  sectionOf,
  sumTotals,
  upstreamNotInCatalog,
  usdOf,
} from '../../web/src/admin/logic';
import { runtimeView } from './fixtures';

const runtime = (userId: string, state: RuntimeListItem['state'], extra: Partial<RuntimeListItem> = {}): RuntimeListItem => ({
  ...runtimeView(state, { id: `r-${userId}`, userId, username: `user-${userId}`, workspaceUrl: '', limits: { memoryBytes: 1024, cpus: 1, pidsLimit: 100 } }),
  uptimeSeconds: null,
  stats: null,
  statsAgeSeconds: null,
  statsStale: false,
  stoppedByAdmin: null,
  ...extra,
});

test('routes: sections, a user page, and anything else is not found', () => {
  expect(adminRoute('/admin')).toEqual({ page: 'overview' });
  expect(adminRoute('/admin/')).toEqual({ page: 'overview' });
  expect(adminRoute('/admin/users')).toEqual({ page: 'users' });
  expect(adminRoute('/admin/runtimes/')).toEqual({ page: 'runtimes' });
  expect(adminRoute('/admin/nodes')).toEqual({ page: 'nodes' });
  expect(adminRoute('/admin/users/0b7c1f0e-1111-4222-8333-944445555666')).toEqual({ page: 'user', id: '0b7c1f0e-1111-4222-8333-944445555666' });
  expect(adminRoute('/admin/overview')).toEqual({ page: 'notFound' });
  expect(adminRoute('/admin/nope')).toEqual({ page: 'notFound' });
  expect(adminRoute('/admin/users/a/b')).toEqual({ page: 'notFound' });
  expect(adminRoute('/admin/models/x')).toEqual({ page: 'notFound' });
  expect(adminRoute('/admin/users/%E0%A4%A')).toEqual({ page: 'notFound' });
  expect(sectionOf({ page: 'user', id: 'x' })).toBe('users');
  expect(sectionOf({ page: 'notFound' })).toBeNull();
});

test('this month in UTC, and day ranges as [from, to) times with the last day included', () => {
  expect(monthRange(Date.UTC(2026, 1, 14, 23, 59))).toEqual({ from: '2026-02-01', to: '2026-02-28' });
  expect(monthRange(Date.UTC(2024, 11, 31, 12))).toEqual({ from: '2024-12-01', to: '2024-12-31' });
  expect(rangeQuery({ from: '2026-02-01', to: '2026-02-28' })).toEqual({ ok: true, from: '2026-02-01T00:00:00.000Z', to: '2026-03-01T00:00:00.000Z' });
  expect(rangeQuery({ from: '2026-02-03', to: '2026-02-03' })).toEqual({ ok: true, from: '2026-02-03T00:00:00.000Z', to: '2026-02-04T00:00:00.000Z' });
  expect(rangeQuery({ from: '2026-02-03', to: '2026-02-02' })).toEqual({ ok: false, problem: 'order' });
  expect(rangeQuery({ from: '2026-02-30', to: '2026-03-02' })).toEqual({ ok: false, problem: 'invalid' });
  expect(rangeQuery({ from: '', to: '2026-03-02' })).toEqual({ ok: false, problem: 'invalid' });
  // At most 400 days, as the server allows: 2025-01-01 to 2026-02-04 is exactly 400.
  expect(rangeQuery({ from: '2025-01-01', to: '2026-02-04' }).ok).toBe(true);
  expect(rangeQuery({ from: '2025-01-01', to: '2026-02-05' })).toEqual({ ok: false, problem: 'tooLong' });
});

test('open ranges: either end may be left out', () => {
  expect(openRangeQuery({ from: '', to: '' })).toEqual({ ok: true, from: undefined, to: undefined });
  expect(openRangeQuery({ from: '2026-01-05', to: '' })).toEqual({ ok: true, from: '2026-01-05T00:00:00.000Z', to: undefined });
  expect(openRangeQuery({ from: '', to: '2026-01-05' })).toEqual({ ok: true, from: undefined, to: '2026-01-06T00:00:00.000Z' });
  expect(openRangeQuery({ from: '2026-01-06', to: '2026-01-05' })).toEqual({ ok: false, problem: 'order' });
  expect(openRangeQuery({ from: 'yesterday', to: '' })).toEqual({ ok: false, problem: 'invalid' });
});

test('a bulk answer becomes who went ahead and each refusal with its reason', () => {
  const started = (userId: string, username: string): BulkResult => ({ userId, ok: true, operation: null, runtime: { ...runtime(userId, 'stopping'), username } });
  const results: BulkResult[] = [
    started('u1', 'alice'),
    { userId: 'u2', ok: false, error: { code: 'USER_DISABLED', message: 'The account is disabled.' } },
    started('u3', 'carol'),
    { userId: 'u4', ok: false, error: { code: 'USER_NOT_FOUND', message: 'No user with this id.' } },
  ];
  const outcome = bulkOutcome(results, new Map([['u2', 'bob']]));
  expect(outcome.succeeded).toEqual(['alice', 'carol']);
  expect(outcome.failed).toEqual([
    { userId: 'u2', username: 'bob', message: 'The account is disabled.' },
    { userId: 'u4', username: 'u4', message: 'No user with this id.' },
  ]);
  expect(bulkOutcome([], new Map())).toEqual({ succeeded: [], failed: [] });
});

test('runtime summary: running, their memory, failing and stale ones', () => {
  const summary = runtimeSummary([
    runtime('a', 'running', { stats: { memoryBytes: 300, memoryLimitBytes: 1024, cpuPercent: 1 }, configStale: true }),
    runtime('b', 'running', { stats: null, outdatedImage: true }),
    runtime('c', 'failed', { lastError: { code: 'X', message: 'image pull failed', at: '' } }),
    runtime('d', 'unhealthy'),
    runtime('e', 'stopped', { configStale: true }),
  ]);
  expect(summary.total).toBe(5);
  expect(summary.running).toBe(2);
  expect(summary.memoryBytes).toBe(300);
  expect(summary.memoryLimitBytes).toBe(2048);
  expect(summary.failing.map((r) => r.userId)).toEqual(['c', 'd']);
  // Only running ones count as stale: a stopped runtime gets the new settings when it starts.
  expect(summary.stale.map((r) => r.userId)).toEqual(['a', 'b']);
});

test('figures are said to be old when the renewal lags, stale when it failed, and nothing when fresh or absent', () => {
  const stats = { memoryBytes: 1, memoryLimitBytes: 2, cpuPercent: 0 };
  expect(figuresFreshness(runtime('a', 'running', { stats, statsAgeSeconds: 4 }))).toBeNull();
  expect(figuresFreshness(runtime('a', 'running', { stats, statsAgeSeconds: 45 }))).toEqual({ kind: 'old', ageSeconds: 45 });
  expect(figuresFreshness(runtime('a', 'running', { stats, statsAgeSeconds: 4, statsStale: true }))).toEqual({ kind: 'stale', ageSeconds: 4 });
  expect(figuresFreshness(runtime('a', 'stopped'))).toBeNull();
});

test('usage totals and ranking', () => {
  const rows = [
    { name: 'b', requests: 1, promptTokens: 10, completionTokens: 5, costMicrodollars: 0, estimatedRequests: 0 },
    { name: 'a', requests: 2, promptTokens: 1, completionTokens: 1, costMicrodollars: 500, estimatedRequests: 1 },
    { name: 'c', requests: 3, promptTokens: 100, completionTokens: 0, costMicrodollars: 0, estimatedRequests: 2 },
  ];
  expect(sumTotals(rows)).toEqual({ requests: 6, promptTokens: 111, completionTokens: 6, costMicrodollars: 500, estimatedRequests: 3 });
  expect(byCost(rows, (r) => r.name).map((r) => r.name)).toEqual(['a', 'c', 'b']);
});

test('limits form: empty is the default, numbers are checked, the budget is in dollars', () => {
  expect(limitsBody({ requestsPerMinute: '', concurrentRequests: '3', monthlyTokens: '0', monthlyBudgetUsd: '12.5' })).toEqual({
    ok: true,
    body: { requestsPerMinute: null, concurrentRequests: 3, monthlyTokens: 0, monthlyBudgetUsd: 12.5 },
  });
  expect(limitsBody({ requestsPerMinute: '1.5' })).toEqual({ ok: false, field: 'requestsPerMinute' });
  expect(limitsBody({ monthlyBudgetUsd: '-1' })).toEqual({ ok: false, field: 'monthlyBudgetUsd' });
  expect(limitsBody({ monthlyTokens: 'lots' })).toEqual({ ok: false, field: 'monthlyTokens' });
  expect(limitsFormValues(null)).toEqual({ requestsPerMinute: '', concurrentRequests: '', monthlyTokens: '', monthlyBudgetUsd: '' });
  expect(limitsFormValues({ requestsPerMinute: 10, concurrentRequests: null, monthlyTokens: 0, monthlyCostMicrodollars: 2_500_000 })).toEqual({
    requestsPerMinute: '10',
    concurrentRequests: '',
    monthlyTokens: '0',
    monthlyBudgetUsd: '2.5',
  });
  expect(usdOf(1_100_000)).toBe(1.1);
});

test('model form: defaults from the id, checkboxes, and the first wrong field named', () => {
  expect(modelBody({ id: 'gpt-4o', upstreamModel: '', displayName: '', contextWindow: '128000', maxTokens: '', inputPricePerMTok: '2.5', outputPricePerMTok: '', enabled: 'on' })).toEqual({
    ok: true,
    id: 'gpt-4o',
    body: { upstreamModel: 'gpt-4o', displayName: 'gpt-4o', enabled: true, isDefault: false, contextWindow: 128000, maxTokens: null, inputPricePerMTok: 2.5, outputPricePerMTok: 0 },
  });
  expect(modelBody({ id: 'openai/gpt 4' })).toEqual({ ok: false, field: 'id' });
  expect(modelBody({ id: 'm', contextWindow: '0' })).toEqual({ ok: false, field: 'contextWindow' });
  expect(modelBody({ id: 'm', outputPricePerMTok: '20000' })).toEqual({ ok: false, field: 'outputPricePerMTok' });
});

test('upstream models not yet in the catalog', () => {
  const model = (id: string, upstreamModel = id): CatalogModel => ({
    id,
    upstreamModel,
    displayName: id,
    enabled: true,
    isDefault: false,
    contextWindow: null,
    maxTokens: null,
    inputMicrodollarsPerMTok: 0,
    outputMicrodollarsPerMTok: 0,
  });
  expect(upstreamNotInCatalog(['z', 'a', 'mapped', 'known', 'a'], [model('known'), model('alias', 'mapped')])).toEqual(['a', 'z']);
  expect(upstreamNotInCatalog(null, [])).toEqual([]);
});

test('an audit row stands for several events only when the server counted repeats into it', () => {
  expect(repeatCount({ reason: 'wrong_password', count: 37, firstAt: '2026-06-01T12:00:00.000Z', lastAt: '2026-06-01T12:14:00.000Z' })).toBe(37);
  expect(repeatCount({ reason: 'wrong_password', count: 1 })).toBeNull();
  expect(repeatCount({ count: '37' })).toBeNull();
  expect(repeatCount({ count: 2.5 })).toBeNull();
  expect(repeatCount(null)).toBeNull();
  expect(repeatCount({ sessionId: 'x' })).toBeNull();
});
