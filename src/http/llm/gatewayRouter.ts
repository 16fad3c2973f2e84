import type { IncomingMessage } from 'node:http';
import { finished, pipeline } from 'node:stream/promises';
import express, { Router, type ErrorRequestHandler, type Request, type Response } from 'express';
import type { UsageStatus } from '../../db/repositories/usageRepository';
import type { Clock } from '../../lib/clock';
import type { Logger } from '../../lib/logger';
import type { GatewayCaller, ModelGateway } from '../../llm/modelGateway';
import { SseUsageTap, usageOf, type TokenUsage } from '../../llm/sseUsage';
import { LimitExceeded, type Admission } from '../../llm/modelLimits';

export const LLM_PREFIX = '/llm/v1';
const POST_ENDPOINTS = ['/chat/completions', '/completions', '/embeddings', '/responses'] as const;
/** Non-streamed answers are read for their usage up to this size; larger ones pass unmetered. */
const METERED_BODY_LIMIT = 16 * 1024 ** 2;

/** OpenAI's error shape, which OpenAI clients (and OpenClaw) turn into a readable message. */
function openAiError(res: Response, status: number, type: string, code: string, message: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.status(status).json({ error: { message, type, code } });
}

const CALLERS = new WeakMap<Request, GatewayCaller>();
const callerOf = (req: Request): GatewayCaller => {
  const caller = CALLERS.get(req);
  if (!caller) throw new Error('gateway caller missing: middleware order is wrong');
  return caller;
};

/**
 * `/llm/v1`: the OpenAI-compatible gateway runtimes call with their own key. Bodies pass through
 * unchanged, except that a streamed chat request is asked for its usage (and that extra chunk is
 * removed again if the client did not ask for it). Every call leaves a ledger row.
 */
export function gatewayRouter(deps: { gateway: ModelGateway; clock: Clock; logger: Logger; bodyLimitBytes: number }): Router {
  const { gateway, clock, logger } = deps;
  const router = Router();

  router.use((req, res, next) => {
    const caller = gateway.authenticate(req.get('authorization'));
    if (!caller) {
      openAiError(res, 401, 'invalid_request_error', 'invalid_api_key', 'The API key is missing, unknown or no longer valid. Runtimes get a new key each time they are re-created; restart the runtime.');
      return;
    }
    if (!gateway.configured) {
      openAiError(res, 503, 'api_error', 'no_upstream', 'No model service is configured on this ClawLoops (CLAWLOOPS_LLM_UPSTREAM_URL). Ask your administrator.');
      return;
    }
    CALLERS.set(req, caller);
    next();
  });

  router.get('/models', async (req, res) => {
    const catalog = gateway.catalogModels();
    if (catalog) {
      res.json({ object: 'list', data: catalog.map((m) => ({ id: m.id, object: 'model', created: 0, owned_by: 'clawloops' })) });
      return;
    }
    const controller = abortOnClose(res);
    let upstream: IncomingMessage;
    try {
      upstream = await gateway.forward({ method: 'GET', path: '/models', body: null, signal: controller.signal });
    } catch (err) {
      openAiError(res, 502, 'api_error', 'upstream_unreachable', `The model service could not be reached: ${(err as Error).message}`);
      return;
    }
    const text = await readAll(upstream, METERED_BODY_LIMIT);
    if ((upstream.statusCode ?? 502) >= 400 || text === null) {
      res.status(upstream.statusCode ?? 502).type('application/json').send(text ?? '');
      return;
    }
    try {
      const list = JSON.parse(text) as { object?: string; data?: { id?: string }[] };
      const data = (list.data ?? []).filter((m) => typeof m.id === 'string' && gateway.allows(m.id));
      res.json({ ...list, object: 'list', data });
    } catch {
      openAiError(res, 502, 'api_error', 'upstream_invalid', 'The model service answered the model list with something that is not JSON.');
    }
  });

  const json = express.json({ limit: deps.bodyLimitBytes, strict: true, type: () => true });
  for (const endpoint of POST_ENDPOINTS) {
    router.post(endpoint, json, async (req, res) => {
      const caller = callerOf(req);
      const body = req.body as Record<string, unknown> | undefined;
      if (!body || typeof body !== 'object' || Array.isArray(body)) {
        openAiError(res, 400, 'invalid_request_error', 'invalid_body', 'The request body must be a JSON object.');
        return;
      }
      const model = body.model;
      if (typeof model !== 'string' || model === '') {
        openAiError(res, 400, 'invalid_request_error', 'missing_model', 'The request must name a model.');
        return;
      }
      if (!gateway.allows(model)) {
        openAiError(res, 404, 'invalid_request_error', 'model_not_found', `The model "${model.slice(0, 100)}" is not available here. Available: ${gateway.allowedModels().join(', ')}.`);
        return;
      }
      const streamed = body.stream === true;
      const clientWantsUsage = (body.stream_options as { include_usage?: unknown } | undefined)?.include_usage === true;
      // Metering needs the usage chunk; the Responses API sends usage in its final event anyway.
      if (streamed && endpoint !== '/responses' && endpoint !== '/embeddings') {
        body.stream_options = { ...(body.stream_options as object | undefined), include_usage: true };
      }
      const forwarded = Buffer.from(JSON.stringify({ ...body, model: gateway.upstreamModel(model) }));
      let admission: Admission;
      try {
        admission = gateway.admit(caller, model, estimateTokens(forwarded, body));
      } catch (err) {
        if (!(err instanceof LimitExceeded)) throw err;
        res.setHeader('Retry-After', String(err.retryAfterSeconds));
        openAiError(res, 429, err.type, err.code, err.message);
        return;
      }
      await relay({ gateway, clock, logger, req, res, caller, endpoint, model, streamed, stripUsageChunk: streamed && !clientWantsUsage, body: forwarded, admission });
    });
  }

  router.use((req, res) => {
    openAiError(res, 404, 'invalid_request_error', 'unknown_endpoint', `No endpoint ${req.method} ${LLM_PREFIX}${req.path.slice(0, 100)}.`);
  });

  const errors: ErrorRequestHandler = (err: { type?: string; limit?: number }, req, res, _next) => {
    if (err.type === 'entity.parse.failed') return openAiError(res, 400, 'invalid_request_error', 'invalid_json', 'The request body is not valid JSON.');
    if (err.type === 'entity.too.large') return openAiError(res, 413, 'invalid_request_error', 'body_too_large', `The request body is larger than ${err.limit ?? deps.bodyLimitBytes} bytes.`);
    if (err.type === 'request.aborted') return res.destroy();
    logger.error({ err, path: req.path }, 'model gateway error');
    openAiError(res, 500, 'api_error', 'internal_error', 'The model gateway failed; the error was logged.');
  };
  router.use(errors);
  return router;
}

interface Relay {
  gateway: ModelGateway;
  clock: Clock;
  logger: Logger;
  req: Request;
  res: Response;
  caller: GatewayCaller;
  endpoint: string;
  model: string;
  streamed: boolean;
  stripUsageChunk: boolean;
  body: Buffer;
  admission: Admission;
}

/** A request's tokens before it runs: ~4 bytes per prompt token, plus the completion it may ask for. */
function estimateTokens(body: Buffer, parsed: Record<string, unknown>): number {
  const cap = parsed.max_completion_tokens ?? parsed.max_tokens ?? parsed.max_output_tokens;
  return Math.ceil(body.length / 4) + (typeof cap === 'number' && cap > 0 ? cap : 256);
}

/** Forwards one model call and streams the answer back, then writes its ledger row whatever happened. */
async function relay(r: Relay): Promise<void> {
  const started = r.clock.now();
  const controller = abortOnClose(r.res);
  const deadline = r.gateway.deadline();
  const timeoutMessage = `The model service did not finish answering within ${deadline.describe} (CLAWLOOPS_LLM_TIMEOUT).`;
  let status: UsageStatus = 'ok';
  let httpStatus: number | null = null;
  let usage: TokenUsage | null = null;
  try {
    let upstream: IncomingMessage;
    try {
      upstream = await r.gateway.forward({ method: 'POST', path: r.endpoint, body: r.body, signal: controller.signal, deadline: deadline.signal });
    } catch (err) {
      if (controller.signal.aborted) status = 'aborted';
      else if (deadline.signal.aborted) {
        status = 'timeout';
        openAiError(r.res, 504, 'api_error', 'upstream_timeout', timeoutMessage);
      } else {
        status = 'unreachable';
        openAiError(r.res, 502, 'api_error', 'upstream_unreachable', `The model service could not be reached: ${(err as Error).message}`);
      }
      return;
    }
    httpStatus = upstream.statusCode ?? 502;
    if (httpStatus >= 400) status = 'upstream_error';
    const contentType = upstream.headers['content-type'] ?? 'application/json';
    r.res.status(httpStatus);
    r.res.setHeader('Content-Type', contentType);
    if (/text\/event-stream/.test(contentType)) {
      r.res.setHeader('Cache-Control', 'no-cache');
      r.res.setHeader('X-Accel-Buffering', 'no');
      r.res.flushHeaders();
      const tap = new SseUsageTap(r.stripUsageChunk);
      // The client's response stays out of the pipeline: an upstream failure must not destroy it
      // before it carries the error event.
      tap.pipe(r.res, { end: false });
      const drained = new Promise<void>((resolve) => tap.once('end', resolve));
      try {
        await pipeline(upstream, tap);
        await drained; // every event handed to the client before its stream ends
        r.res.end();
      } catch (err) {
        if (controller.signal.aborted || r.res.destroyed) status = 'aborted';
        else {
          status = deadline.signal.aborted ? 'timeout' : 'upstream_error';
          const error = deadline.signal.aborted
            ? { message: timeoutMessage, type: 'api_error', code: 'upstream_timeout' }
            : { message: `The model service failed mid-answer: ${(err as Error).message}`, type: 'api_error', code: 'upstream_failed' };
          // The client's stream ends with an error event it can show, not a silent cut.
          if (!r.res.writableEnded) r.res.end(`data: ${JSON.stringify({ error })}\n\n`);
        }
      }
      usage = tap.usage;
      return;
    }
    // A known length spares the client the chunked framing (and the response a second write).
    const length = upstream.headers['content-length'];
    if (length !== undefined) r.res.setHeader('Content-Length', length);
    const chunks: Buffer[] = [];
    let size = 0;
    upstream.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= METERED_BODY_LIMIT) chunks.push(chunk);
    });
    // Not a pipeline: an upstream failure must be told apart from a client that left, and a
    // pipeline would destroy the client's response (and so look like the client left).
    upstream.pipe(r.res);
    try {
      await finished(upstream);
    } catch {
      if (controller.signal.aborted) status = 'aborted';
      else status = deadline.signal.aborted ? 'timeout' : 'upstream_error';
      // Headers went out with the upstream's status: all that is left is to cut the answer short.
      r.res.destroy();
      return;
    }
    if (size <= METERED_BODY_LIMIT) {
      try {
        usage = usageOf(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch {
        // Not JSON: nothing to meter.
      }
    }
  } finally {
    r.admission.settle((usage?.promptTokens ?? 0) + (usage?.completionTokens ?? 0), r.gateway.costOf(r.model, usage));
    r.gateway.record({
      at: started,
      userId: r.caller.userId,
      username: r.caller.username,
      runtimeId: r.caller.runtimeId,
      endpoint: r.endpoint.slice(1),
      model: r.model,
      streamed: r.streamed,
      status,
      httpStatus,
      latencyMs: r.clock.now() - started,
    }, usage);
  }
}

/** A client that goes away aborts the upstream call with it. */
function abortOnClose(res: Response): AbortController {
  const controller = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) controller.abort(new Error('the client disconnected'));
  });
  return controller;
}

async function readAll(stream: IncomingMessage, limit: number): Promise<string | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) return null;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

