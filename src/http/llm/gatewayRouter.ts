import type { IncomingMessage } from 'node:http';
import { finished, pipeline } from 'node:stream/promises';
import express, { Router, type ErrorRequestHandler, type Request, type Response } from 'express';
import type { UsageStatus } from '../../db/repositories/usageRepository';
import type { Clock } from '../../lib/clock';
import type { Logger } from '../../lib/logger';
import { UnpricedModel, UpstreamNotReached, type GatewayCaller, type ModelGateway } from '../../llm/modelGateway';
import { fromUpstream, JsonUsageMeter, nothingCharged, partialCharge, reservationCharge, tokensOfBytes, type CallEstimate, type Charge } from '../../llm/metering';
import { SseUsageTap } from '../../llm/sseUsage';
import { LimitExceeded, type Admission } from '../../llm/modelLimits';
import { writeJsonError } from '../jsonError';
import { OPENAI_ENDPOINTS, rebuildRequest, type OpenAiEndpoint } from './openAiRequest';

export const LLM_PREFIX = '/llm/v1';
const POST_ENDPOINTS = Object.keys(OPENAI_ENDPOINTS) as OpenAiEndpoint[];
/**
 * Non-streamed answers up to this size are parsed whole for their usage; larger ones are metered
 * from the usage found in their first and last 64 KiB (JsonUsageMeter), else by their size.
 */
const METERED_BODY_LIMIT = 16 * 1024 ** 2;

/** OpenAI's error shape (ours plus `type` and `param`), which OpenAI clients (and OpenClaw) turn into a readable message. */
function openAiError(res: Response, status: number, type: string, code: string, message: string, param?: string): void {
  writeJsonError(res, status, code, message, { details: { type, ...(param !== undefined ? { param } : {}) } });
}

const CALLERS = new WeakMap<Request, GatewayCaller>();
const callerOf = (req: Request): GatewayCaller => {
  const caller = CALLERS.get(req);
  if (!caller) throw new Error('gateway caller missing: middleware order is wrong');
  return caller;
};

/**
 * `/llm/v1`: the OpenAI-compatible gateway runtimes call with their own key. Request bodies are
 * rebuilt from the OpenAI fields accepted per endpoint (openAiRequest.ts), a streamed chat is asked
 * for its usage (that extra chunk is removed again if the client did not ask for it), and only the
 * gateway's own headers go upstream, to a path the gateway picks. Every call leaves a ledger row
 * and is charged: the upstream's usage, or a conservative estimate marked as such.
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
    if (gateway.allowedModels().length === 0) {
      res.json({ object: 'list', data: [] });
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
      const rebuilt = rebuildRequest(endpoint, body, (model) => gateway.upstreamModel(model));
      if (!rebuilt.ok) {
        openAiError(res, 400, 'invalid_request_error', rebuilt.param === 'model' ? 'missing_model' : 'invalid_value', rebuilt.message, rebuilt.param);
        return;
      }
      const { model, stream, clientWantsUsage, body: forwarded, estimate } = rebuilt.request;
      if (!gateway.allows(model)) {
        const available = gateway.allowedModels();
        const message =
          available.length > 0
            ? `The model "${model.slice(0, 100)}" is not available here. Available: ${available.join(', ')}.`
            : 'No models are offered on this ClawLoops yet: an administrator adds them to the model catalog (Admin → Models) or lists them in CLAWLOOPS_RUNTIME_MODELS.';
        openAiError(res, 404, 'invalid_request_error', 'model_not_found', message);
        return;
      }
      let admission: Admission;
      try {
        admission = gateway.admit(caller, model, estimate);
      } catch (err) {
        if (err instanceof UnpricedModel) {
          openAiError(res, 403, 'invalid_request_error', 'model_unpriced', err.message);
          return;
        }
        if (!(err instanceof LimitExceeded)) throw err;
        res.setHeader('Retry-After', String(err.retryAfterSeconds));
        openAiError(res, 429, err.type, err.code, err.message);
        return;
      }
      await relay({ gateway, clock, logger, req, res, caller, endpoint, model, streamed: stream, stripUsageChunk: stream && !clientWantsUsage, body: forwarded, estimate, admission });
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
  estimate: CallEstimate;
  admission: Admission;
}

/**
 * What a call that brought no usage is charged, after the upstream answered with `httpStatus`: a
 * refusal (4xx) was never run, so it costs nothing; a failure (5xx) may have been, so its prompt
 * is charged; an answer is charged its prompt and the completion tokens counted from what came.
 */
function withoutUsage(r: Relay, httpStatus: number, completionTokens: number): Charge {
  if (httpStatus >= 500) return partialCharge(r.estimate, 0);
  if (httpStatus >= 400) return nothingCharged;
  return partialCharge(r.estimate, completionTokens);
}

/**
 * Forwards one model call and streams the answer back, then settles it whatever happened: the
 * upstream's usage when it came, else a conservative estimate (withoutUsage; the whole
 * reservation when the call ended before any answer, or during a non-streamed one, since the
 * upstream may have produced all of it by then).
 */
async function relay(r: Relay): Promise<void> {
  const started = r.clock.now();
  const controller = abortOnClose(r.res);
  const deadline = r.gateway.deadline();
  const timeoutMessage = `The model service did not finish answering within ${deadline.describe} (CLAWLOOPS_LLM_TIMEOUT).`;
  let status: UsageStatus = 'ok';
  let httpStatus: number | null = null;
  let charge: Charge = reservationCharge(r.estimate);
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
        if (err instanceof UpstreamNotReached) charge = nothingCharged;
        openAiError(r.res, 502, 'api_error', 'upstream_unreachable', `The model service could not be reached: ${(err as Error).message}`);
      }
      return;
    }
    const answered = upstream.statusCode ?? 502;
    httpStatus = answered;
    if (answered >= 400) status = 'upstream_error';
    const contentType = upstream.headers['content-type'] ?? 'application/json';
    r.res.status(answered);
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
      } finally {
        charge = tap.usage ? fromUpstream(tap.usage) : withoutUsage(r, answered, tap.streamedTokens);
      }
      return;
    }
    // A known length spares the client the chunked framing (and the response a second write).
    const length = upstream.headers['content-length'];
    if (length !== undefined) r.res.setHeader('Content-Length', length);
    const meter = new JsonUsageMeter(METERED_BODY_LIMIT);
    upstream.on('data', (chunk: Buffer) => meter.push(chunk));
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
      // A non-streamed answer is produced before it is sent: the part that came says nothing of the rest.
      charge = withoutUsage(r, answered, Math.max(r.estimate.completionTokens, tokensOfBytes(meter.size)));
      return;
    }
    const usage = meter.usage();
    // Embeddings generate no text: their vectors are not completion tokens, and the input is the prompt.
    charge = usage ? fromUpstream(usage) : withoutUsage(r, answered, r.endpoint === '/embeddings' ? 0 : tokensOfBytes(meter.size));
  } finally {
    r.gateway.settle(
      r.admission,
      {
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
      },
      charge,
    );
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

