/**
 * The admin pages' pure logic: routes, date ranges, form parsing and the reading of bulk answers.
 * No DOM and no React here, so jest checks it in node (test/web/admin.test.ts).
 */
import type { RuntimeListItem, UsageTotals } from '../api/types';
import type { BulkResult, CatalogModel, LimitOverrides, LimitsBody, ModelBody } from './adminTypes';

// ---- Routes ----

export type AdminSection = 'overview' | 'users' | 'invitations' | 'runtimes' | 'nodes' | 'models' | 'egress' | 'usage' | 'backups' | 'audit' | 'settings';
export type AdminRoute = { page: AdminSection } | { page: 'user'; id: string } | { page: 'notFound' };

export const ADMIN_SECTIONS: readonly AdminSection[] = ['overview', 'users', 'invitations', 'runtimes', 'nodes', 'models', 'egress', 'usage', 'backups', 'audit', 'settings'];

export function sectionPath(section: AdminSection): string {
  return section === 'overview' ? '/admin' : `/admin/${section}`;
}

export function userPath(id: string): string {
  return `/admin/users/${encodeURIComponent(id)}`;
}

/** Which admin page a pathname shows: /admin, /admin/<section>, /admin/users/<id>. */
export function adminRoute(pathname: string): AdminRoute {
  const parts = pathname.split('/').filter(Boolean);
  if (parts[0] !== 'admin') return { page: 'notFound' };
  const [, section, id, ...rest] = parts;
  if (section === undefined) return { page: 'overview' };
  if (section === 'users' && id !== undefined && rest.length === 0) {
    try {
      return { page: 'user', id: decodeURIComponent(id) };
    } catch {
      return { page: 'notFound' };
    }
  }
  if (id === undefined && section !== 'overview' && (ADMIN_SECTIONS as readonly string[]).includes(section)) return { page: section as AdminSection };
  return { page: 'notFound' };
}

/** The section a route belongs to, for the sub-navigation's current item. */
export function sectionOf(route: AdminRoute): AdminSection | null {
  if (route.page === 'user') return 'users';
  if (route.page === 'notFound') return null;
  return route.page;
}

// ---- Dates (UTC days, as the server counts months) ----

const DAY_MS = 86_400_000;
export const MAX_RANGE_DAYS = 400;

/** YYYY-MM-DD of a time, in UTC. */
export function isoDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

export interface DayRange {
  /** First day, YYYY-MM-DD. */
  from: string;
  /** Last day, included, YYYY-MM-DD. */
  to: string;
}

/** This calendar month (UTC), first to last day. */
export function monthRange(now: number): DayRange {
  const date = new Date(now);
  const first = Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), 1);
  const next = Date.UTC(date.getUTCFullYear(), date.getUTCMonth() + 1, 1);
  return { from: isoDay(first), to: isoDay(next - DAY_MS) };
}

/** The start of a YYYY-MM-DD day in UTC, or null when it is not a date. */
export function dayStart(day: string): number | null {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(day)) return null;
  const ms = Date.parse(`${day}T00:00:00Z`);
  return Number.isNaN(ms) || isoDay(ms) !== day ? null : ms;
}

export type RangeProblem = 'invalid' | 'order' | 'tooLong';
export type RangeQuery = { ok: true; from: string; to: string } | { ok: false; problem: RangeProblem };

/** A day range as the API's [from, to) ISO times; the last day counts in full. */
export function rangeQuery(range: DayRange): RangeQuery {
  const from = dayStart(range.from);
  const last = dayStart(range.to);
  if (from === null || last === null) return { ok: false, problem: 'invalid' };
  const to = last + DAY_MS;
  if (to <= from) return { ok: false, problem: 'order' };
  if (to - from > MAX_RANGE_DAYS * DAY_MS) return { ok: false, problem: 'tooLong' };
  return { ok: true, from: new Date(from).toISOString(), to: new Date(to).toISOString() };
}

/** Optional ends (the audit filter): an empty day is no bound. */
export function openRangeQuery(range: DayRange): { ok: true; from?: string; to?: string } | { ok: false; problem: RangeProblem } {
  const from = range.from ? dayStart(range.from) : undefined;
  const last = range.to ? dayStart(range.to) : undefined;
  if (from === null || last === null) return { ok: false, problem: 'invalid' };
  const to = last === undefined ? undefined : last + DAY_MS;
  if (from !== undefined && to !== undefined && to <= from) return { ok: false, problem: 'order' };
  return { ok: true, from: from === undefined ? undefined : new Date(from).toISOString(), to: to === undefined ? undefined : new Date(to).toISOString() };
}

// ---- Bulk answers ----

export interface BulkOutcome {
  /** Usernames whose action went ahead. */
  succeeded: string[];
  failed: { userId: string; username: string; message: string }[];
}

/** Splits a bulk answer into who went ahead and who did not (with the server's reason each). */
export function bulkOutcome(results: readonly BulkResult[], usernames: ReadonlyMap<string, string>): BulkOutcome {
  const outcome: BulkOutcome = { succeeded: [], failed: [] };
  for (const result of results) {
    if (result.ok) outcome.succeeded.push(result.runtime.username || usernames.get(result.userId) || result.userId);
    else outcome.failed.push({ userId: result.userId, username: usernames.get(result.userId) ?? result.userId, message: result.error.message });
  }
  return outcome;
}

// ---- Runtimes ----

export interface RuntimeSummary {
  total: number;
  running: number;
  /** Memory in use by the running ones (figures that could be read). */
  memoryBytes: number;
  /** Their memory limits added up. */
  memoryLimitBytes: number;
  failing: RuntimeListItem[];
  /** Running with an outdated image or config: what `{stale: true}` restarts. */
  stale: RuntimeListItem[];
}

export function runtimeSummary(items: readonly RuntimeListItem[]): RuntimeSummary {
  const running = items.filter((r) => r.state === 'running');
  return {
    total: items.length,
    running: running.length,
    memoryBytes: running.reduce((sum, r) => sum + (r.stats?.memoryBytes ?? 0), 0),
    memoryLimitBytes: running.reduce((sum, r) => sum + r.limits.memoryBytes, 0),
    failing: items.filter((r) => r.state === 'failed' || r.state === 'unhealthy'),
    stale: running.filter((r) => r.configStale || r.outdatedImage),
  };
}

/** Figures older than this are said to be old next to them (the server renews them every few seconds). */
export const FIGURES_OLD_SECONDS = 30;

/**
 * How fresh a runtime's CPU and memory figures are, for the words next to them: null when they are
 * fresh (or absent), `old` when the server's renewal lags behind, `stale` when it failed.
 */
export function figuresFreshness(runtime: Pick<RuntimeListItem, 'stats' | 'statsAgeSeconds' | 'statsStale'>): { kind: 'old' | 'stale'; ageSeconds: number } | null {
  if (!runtime.stats || runtime.statsAgeSeconds === null) return null;
  if (runtime.statsStale) return { kind: 'stale', ageSeconds: runtime.statsAgeSeconds };
  return runtime.statsAgeSeconds > FIGURES_OLD_SECONDS ? { kind: 'old', ageSeconds: runtime.statsAgeSeconds } : null;
}

/** The words of why a runtime fails: its last error, else the state's reason. */
export function failureReason(runtime: Pick<RuntimeListItem, 'lastError' | 'stateReason'>): string | null {
  return runtime.lastError?.message ?? runtime.stateReason ?? null;
}

// ---- Audit ----

/** How many events a row stands for when the server counted repeats into it (failed sign-ins in a flood); null for one. */
export function repeatCount(detail: unknown): number | null {
  if (typeof detail !== 'object' || detail === null) return null;
  const count = (detail as { count?: unknown }).count;
  return typeof count === 'number' && Number.isSafeInteger(count) && count > 1 ? count : null;
}

// ---- Usage ----

export function sumTotals(rows: readonly UsageTotals[]): UsageTotals {
  return rows.reduce<UsageTotals>(
    (sum, r) => ({
      requests: sum.requests + r.requests,
      promptTokens: sum.promptTokens + r.promptTokens,
      completionTokens: sum.completionTokens + r.completionTokens,
      costMicrodollars: sum.costMicrodollars + r.costMicrodollars,
      estimatedRequests: sum.estimatedRequests + r.estimatedRequests,
    }),
    { requests: 0, promptTokens: 0, completionTokens: 0, costMicrodollars: 0, estimatedRequests: 0 },
  );
}

/** Most spent first; among equals most tokens, then by name. */
export function byCost<T extends UsageTotals>(rows: readonly T[], name: (row: T) => string): T[] {
  return [...rows].sort(
    (a, b) =>
      b.costMicrodollars - a.costMicrodollars ||
      b.promptTokens + b.completionTokens - (a.promptTokens + a.completionTokens) ||
      name(a).localeCompare(name(b)),
  );
}

// ---- Forms ----

export type NumberCheck = { ok: true; value: number | null } | { ok: false };

/** An optional number field: empty is null; otherwise it must be a number in range (whole if asked). */
export function optionalNumber(text: string | undefined, rules: { integer: boolean; min: number; max: number }): NumberCheck {
  const trimmed = (text ?? '').trim();
  if (trimmed === '') return { ok: true, value: null };
  const value = Number(trimmed);
  if (!Number.isFinite(value) || value < rules.min || value > rules.max || (rules.integer && !Number.isInteger(value))) return { ok: false };
  return { ok: true, value };
}

export const LIMIT_FIELDS = ['requestsPerMinute', 'concurrentRequests', 'monthlyTokens', 'monthlyBudgetUsd'] as const;
export type LimitField = (typeof LIMIT_FIELDS)[number];

/** The limits form as the API's body (empty = the default), or the first field that is wrong. */
export function limitsBody(values: Record<string, string>): { ok: true; body: LimitsBody } | { ok: false; field: LimitField } {
  const body: LimitsBody = { requestsPerMinute: null, concurrentRequests: null, monthlyTokens: null, monthlyBudgetUsd: null };
  for (const field of LIMIT_FIELDS) {
    const check = optionalNumber(values[field], field === 'monthlyBudgetUsd' ? { integer: false, min: 0, max: 1_000_000 } : { integer: true, min: 0, max: Number.MAX_SAFE_INTEGER });
    if (!check.ok) return { ok: false, field };
    body[field] = check.value;
  }
  return { ok: true, body };
}

/** The overrides as the form shows them (budget in dollars; empty = the default). */
export function limitsFormValues(overrides: LimitOverrides | null): Record<LimitField, string> {
  const text = (value: number | null | undefined) => (value === null || value === undefined ? '' : String(value));
  return {
    requestsPerMinute: text(overrides?.requestsPerMinute),
    concurrentRequests: text(overrides?.concurrentRequests),
    monthlyTokens: text(overrides?.monthlyTokens),
    monthlyBudgetUsd: overrides?.monthlyCostMicrodollars === null || overrides?.monthlyCostMicrodollars === undefined ? '' : String(usdOf(overrides.monthlyCostMicrodollars)),
  };
}

/** Dollars from microdollars, without float noise (2.5, not 2.4999999). */
export function usdOf(microdollars: number): number {
  return Math.round(microdollars) / 1e6;
}

export const MODEL_ID = /^[\w.:/-]{1,100}$/;
export type ModelField = 'id' | 'upstreamModel' | 'displayName' | 'contextWindow' | 'maxTokens' | 'inputPricePerMTok' | 'outputPricePerMTok';

/** The model form as the API's body, or the first field that is wrong. Checkboxes are present when ticked. */
export function modelBody(values: Record<string, string>): { ok: true; id: string; body: ModelBody } | { ok: false; field: ModelField } {
  const id = (values.id ?? '').trim();
  if (!MODEL_ID.test(id)) return { ok: false, field: 'id' };
  const upstreamModel = (values.upstreamModel ?? '').trim() || id;
  if (!MODEL_ID.test(upstreamModel)) return { ok: false, field: 'upstreamModel' };
  const displayName = (values.displayName ?? '').trim() || id;
  if (displayName.length > 100) return { ok: false, field: 'displayName' };
  const tokens = { integer: true, min: 1, max: 10_000_000 };
  const price = { integer: false, min: 0, max: 10_000 };
  const contextWindow = optionalNumber(values.contextWindow, tokens);
  if (!contextWindow.ok) return { ok: false, field: 'contextWindow' };
  const maxTokens = optionalNumber(values.maxTokens, tokens);
  if (!maxTokens.ok) return { ok: false, field: 'maxTokens' };
  const input = optionalNumber(values.inputPricePerMTok, price);
  if (!input.ok) return { ok: false, field: 'inputPricePerMTok' };
  const output = optionalNumber(values.outputPricePerMTok, price);
  if (!output.ok) return { ok: false, field: 'outputPricePerMTok' };
  return {
    ok: true,
    id,
    body: {
      upstreamModel,
      displayName,
      enabled: values.enabled !== undefined,
      isDefault: values.isDefault !== undefined,
      contextWindow: contextWindow.value,
      maxTokens: maxTokens.value,
      inputPricePerMTok: input.value ?? 0,
      outputPricePerMTok: output.value ?? 0,
    },
  };
}

/** What the upstream offers that the catalog does not have yet (by id or as an upstream model). */
export function upstreamNotInCatalog(upstream: readonly string[] | null, models: readonly CatalogModel[]): string[] {
  if (!upstream) return [];
  const known = new Set(models.flatMap((m) => [m.id, m.upstreamModel]));
  return [...new Set(upstream)].filter((id) => !known.has(id)).sort((a, b) => a.localeCompare(b));
}
