import http from 'node:http';
import https from 'node:https';
import type { RuntimeRepository } from '../db/repositories/runtimeRepository';
import type { UsageRecord, UsageTotals } from '../db/repositories/usageRepository';
import type { Clock } from '../lib/clock';
import { formatDuration } from '../lib/duration';
import { KEPT_ALIVE_IDLE_MS, metClosedConnection } from '../lib/keptAlive';
import { hashSecret } from '../lib/secrets';
import type { LlmSettings, ModelLimits } from './llmSettings';
import { LimitExceeded, type Admission, type ModelLimiter } from './modelLimits';
import type { ModelCatalog } from './modelCatalog';
import type { CallEstimate, Charge } from './metering';
import type { UsageLedger } from './usageLedger';
import type { GatewayCache, GatewayCaller } from './callerCache';
import { CallLimit } from './callLimit';

/**
 * The caller's spending is capped in US dollars and the model has no price: its calls could not be
 * counted against the budget, so they are refused (403) until an administrator prices the model.
 */
export class UnpricedModel extends Error {
  constructor(readonly model: string) {
    super(
      `The model "${model.slice(0, 100)}" has no price, and your model use is limited by a monthly budget in US dollars, so it cannot be counted against it. ` +
        'Ask an administrator to set its prices in the model catalog (or to use a priced model).',
    );
    this.name = 'UnpricedModel';
  }
}

/** Errors of a connection that was never made: the request cannot have reached the upstream. */
const NOT_CONNECTED = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

/**
 * A call that never reached the upstream, so it cannot have cost anything: no connection could be
 * made, or a kept-alive connection turned out closed by the upstream when the request was written
 * on it (the race Node documents for `reusedSocket`).
 */
export class UpstreamNotReached extends Error {
  constructor(cause: Error) {
    super(cause.message, { cause });
    this.name = 'UpstreamNotReached';
  }
}

export type { GatewayCaller };

/** A finished call as the metrics see it: no user, no key, only what a label or a sum may hold. */
export interface SettledCall {
  model: string;
  status: UsageRecord['status'];
  latencyMs: number;
  promptTokens: number;
  completionTokens: number;
  costMicrodollars: number;
}

/** Told of every call the gateway settled or refused under a limit (the metrics implement it). */
export interface ModelCallObserver {
  settled(call: SettledCall): void;
  refused(model: string, reason: 'limited' | 'unpriced'): void;
}

export interface UpstreamRequest {
  method: 'GET' | 'POST';
  /** Below the upstream's base URL, e.g. `/chat/completions`. */
  path: string;
  body: Buffer | null;
  /** Ends the call: its deadline (callTimeout) and its client's departure. */
  limit: CallLimit;
}

/** The upstream's base URL, parsed once rather than per call. */
interface UpstreamTarget {
  url: string;
  client: typeof http | typeof https;
  hostname: string;
  port: string;
  /** The base URL's path without its trailing slash, e.g. `/v1`. */
  basePath: string;
}

export interface OwnUsage {
  month: { from: string; to: string } & UsageTotals;
  limits: ModelLimits;
  /** Null when the month has no token budget. */
  tokensRemaining: number | null;
  spentMicrodollars: number;
  /** Null when the month has no cost budget. */
  budgetRemainingMicrodollars: number | null;
  perDay: (UsageTotals & { day: string })[];
  perModel: (UsageTotals & { model: string })[];
}

/**
 * The model gateway's domain side: which runtime a key belongs to, which models it may use, the
 * call to the upstream, and the ledger. HTTP framing (OpenAI's error shape, streaming) lives in
 * http/llm/gatewayHandler.ts.
 */
export class ModelGateway {
  private readonly agent: http.Agent;
  private target: UpstreamTarget | null = null;

  constructor(
    private readonly deps: {
      runtimes: RuntimeRepository;
      usage: UsageLedger;
      clock: Clock;
      settings: LlmSettings;
      onActivity: (runtimeId: string) => void;
      limiter: ModelLimiter;
      catalog: ModelCatalog;
      /** Keys already checked; without one, every call reads its runtime's row. */
      callers?: GatewayCache;
      /** After each call is charged to its user (budget warnings); must not throw. */
      onCharged?: (userId: string) => void;
      observer?: ModelCallObserver;
    },
  ) {
    const upstream = deps.settings.upstreamUrl;
    // Keep-alive: a model call should not pay a TCP (or TLS) handshake each time.
    const pooling = { keepAlive: true, timeout: KEPT_ALIVE_IDLE_MS };
    this.agent = upstream?.startsWith('https:') ? new https.Agent(pooling) : new http.Agent(pooling);
  }

  get configured(): boolean {
    return this.deps.settings.upstreamUrl !== null;
  }

  /**
   * The caller a model key (a call's bearer credential) belongs to; null for a missing, malformed,
   * unknown, rotated or revoked key, or a disabled user.
   */
  authenticate(key: string | null): GatewayCaller | null {
    if (key === null || key.length < 16 || key.length > 512) return null;
    const keyHash = hashSecret(key);
    const known = this.deps.callers?.get(keyHash);
    if (known) {
      this.deps.onActivity(known.runtimeId);
      return known;
    }
    const runtime = this.deps.runtimes.findByModelKeyHash(keyHash);
    if (!runtime || runtime.userStatus !== 'active' || runtime.containerId === null) return null;
    this.deps.onActivity(runtime.id);
    const caller: GatewayCaller = { userId: runtime.userId, username: runtime.username, runtimeId: runtime.id };
    this.deps.callers?.remember(keyHash, caller);
    return caller;
  }

  allows(model: string): boolean {
    return this.deps.catalog.allows(model);
  }

  allowedModels(): string[] {
    return this.deps.catalog.available().map((m) => m.id);
  }

  /** With an administrator's catalog, the model list runtimes see is the catalog's own (aliases, not upstream ids). */
  catalogModels(): { id: string; name: string }[] | null {
    return this.deps.catalog.managed ? this.deps.catalog.available() : null;
  }

  /**
   * Admits a call under the caller's limits (throws LimitExceeded, or UnpricedModel under a USD
   * budget) and reserves its estimate: the forwarded prompt at the input price and every
   * completion token it may produce at the output price.
   */
  admit(caller: GatewayCaller, model: string, estimate: CallEstimate): Admission {
    if (this.deps.limiter.effective(caller.userId).monthlyCostMicrodollars > 0 && !this.deps.catalog.priced(model)) {
      this.deps.observer?.refused(model, 'unpriced');
      throw new UnpricedModel(model);
    }
    try {
      return this.deps.limiter.admit(caller.userId, estimate.promptTokens + estimate.completionTokens, this.deps.catalog.costOf(model, estimate));
    } catch (err) {
      if (err instanceof LimitExceeded) this.deps.observer?.refused(model, 'limited');
      throw err;
    }
  }

  /**
   * A call's time limit (CLAWLOOPS_LLM_TIMEOUT), covering the whole answer, streamed or not. The
   * caller runs one timer per call on it, cleared when the call ends.
   */
  callTimeout(): { ms: number; describe: string } {
    const { timeoutMs } = this.deps.settings;
    return { ms: timeoutMs, describe: formatDuration(timeoutMs) };
  }

  private upstreamTarget(): UpstreamTarget | null {
    const { upstreamUrl } = this.deps.settings;
    if (!upstreamUrl) return null;
    if (this.target?.url !== upstreamUrl) {
      const url = new URL(upstreamUrl);
      this.target = {
        url: upstreamUrl,
        client: url.protocol === 'https:' ? https : http,
        hostname: url.hostname.replace(/^\[|\]$/g, ''),
        port: url.port,
        basePath: url.pathname.replace(/\/$/, ''),
      };
    }
    return this.target;
  }

  /** Sends a request upstream with the upstream's credentials; resolves with its response head. */
  forward(request: UpstreamRequest): Promise<http.IncomingMessage> {
    const { upstreamKey } = this.deps.settings;
    const target = this.upstreamTarget();
    if (!target) return Promise.reject(new Error('no upstream is configured (CLAWLOOPS_LLM_UPSTREAM_URL)'));
    return new Promise((resolve, reject) => {
      const req = target.client.request({
        hostname: target.hostname,
        ...(target.port ? { port: target.port } : {}),
        path: `${target.basePath}${request.path}`,
        method: request.method,
        agent: this.agent,
        // A fresh object per call: nothing of the caller's request is in it.
        headers: {
          accept: 'application/json, text/event-stream',
          ...(upstreamKey ? { authorization: `Bearer ${upstreamKey}` } : {}),
          ...(request.body ? { 'content-type': 'application/json', 'content-length': String(request.body.length) } : {}),
        },
      });
      request.limit.bind((reason) => req.destroy(reason));
      req.on('response', resolve);
      req.on('error', (err: NodeJS.ErrnoException) => {
        reject(NOT_CONNECTED.has(err.code ?? '') || metClosedConnection(req, err) ? new UpstreamNotReached(err) : err);
      });
      req.end(request.body ?? undefined);
    });
  }

  /** The model ids the upstream offers (its /models), for the admin's catalog. */
  async upstreamModels(): Promise<string[]> {
    const limit = new CallLimit(10_000);
    const chunks: Buffer[] = [];
    let res: http.IncomingMessage;
    try {
      res = await this.forward({ method: 'GET', path: '/models', body: null, limit });
      for await (const chunk of res as AsyncIterable<Buffer>) chunks.push(chunk);
    } finally {
      limit.clear();
    }
    if ((res.statusCode ?? 500) >= 400) throw new Error(`the model service answered ${res.statusCode}`);
    const list = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { data?: { id?: unknown }[] };
    return (list.data ?? []).map((m) => m.id).filter((id): id is string => typeof id === 'string');
  }

  /** The model the upstream knows for an alias runtimes use. */
  upstreamModel(model: string): string {
    return this.deps.catalog.upstreamOf(model);
  }

  /** Ends a call: its reservation is settled with what it is charged, and its ledger row written. */
  settle(admission: Admission, record: Omit<UsageRecord, 'costMicrodollars' | 'promptTokens' | 'completionTokens' | 'estimated'>, charge: Charge): void {
    const costMicrodollars = this.deps.catalog.costOf(record.model, charge);
    admission.settle(charge.promptTokens + charge.completionTokens, costMicrodollars);
    this.deps.usage.append({ ...record, promptTokens: charge.promptTokens, completionTokens: charge.completionTokens, estimated: charge.estimated, costMicrodollars });
    this.deps.onCharged?.(record.userId);
    this.deps.observer?.settled({ model: record.model, status: record.status, latencyMs: record.latencyMs, promptTokens: charge.promptTokens, completionTokens: charge.completionTokens, costMicrodollars });
  }

  /** Everyone's usage in [from, to), per user and per model. */
  report(from: number, to: number) {
    return { from: new Date(from).toISOString(), to: new Date(to).toISOString(), ...this.deps.usage.report(from, to) };
  }

  ownUsage(userId: string): OwnUsage {
    const now = new Date(this.deps.clock.now());
    const from = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1);
    const to = Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1);
    const limits = this.deps.limiter.effective(userId);
    const used = this.deps.limiter.tokensThisMonth(userId);
    return {
      limits,
      spentMicrodollars: this.deps.limiter.costThisMonth(userId),
      budgetRemainingMicrodollars: limits.monthlyCostMicrodollars > 0 ? Math.max(0, limits.monthlyCostMicrodollars - this.deps.limiter.costThisMonth(userId)) : null,
      tokensRemaining: limits.monthlyTokens > 0 ? Math.max(0, limits.monthlyTokens - used) : null,
      month: { from: new Date(from).toISOString(), to: new Date(to).toISOString(), ...this.deps.usage.totals(userId, from, to) },
      perDay: this.deps.usage.perDay(userId, from, to),
      perModel: this.deps.usage.perModel(userId, from, to),
    };
  }
}
