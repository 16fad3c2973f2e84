import type { IncomingMessage, ServerResponse } from 'node:http';
import { finished, pipeline } from 'node:stream/promises';
import type { UsageStatus } from '../../db/repositories/usageRepository';
import type { Clock } from '../../lib/clock';
import { loggablePath, type Logger } from '../../lib/logger';
import { UnpricedModel, UpstreamNotReached, type GatewayCaller, type ModelGateway } from '../../llm/modelGateway';
import { fromUpstream, JsonUsageMeter, nothingCharged, partialCharge, reservationCharge, tokensOfBytes, type CallEstimate, type Charge } from '../../llm/metering';
import { SseUsageTap } from '../../llm/sseUsage';
import { CallLimit } from '../../llm/callLimit';
import { LimitExceeded, type Admission } from '../../llm/modelLimits';
import { bearerCredential } from '../bearer';
import { readJsonBody } from './jsonBody';
import { OPENAI_ENDPOINTS, rebuildRequest, type OpenAiEndpoint } from './openAiRequest';

export const LLM_PREFIX = '/llm/v1';
const POST_ENDPOINTS = new Set<string>(Object.keys(OPENAI_ENDPOINTS));
/**
 * Non-streamed answers up to this size are parsed whole for their usage; larger ones are metered
 * from the usage found in their first and last 64 KiB (JsonUsageMeter), else by their size.
 */
const METERED_BODY_LIMIT = 16 * 1024 ** 2;

/** Whether a request path (with its query) is the gateway's: `/llm/v1` itself or below it. */
export function isGatewayPath(url: string): boolean {
  if (!url.startsWith(LLM_PREFIX)) return false;
  const next = url.charCodeAt(LLM_PREFIX.length);
  return Number.isNaN(next) || next === 0x2f /* / */ || next === 0x3f /* ? */;
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(body);
}

/** OpenAI's error shape, which OpenAI clients (and OpenClaw) turn into a readable message. */
function openAiError(res: ServerResponse, status: number, type: string, code: string, message: string, param?: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, status, { error: { message, type, code, ...(param !== undefined ? { param } : {}) } });
}

/** A call's limit, told when its client leaves before the answer was sent. */
function limitFor(res: ServerResponse, timeoutMs: number): CallLimit {
  const limit = new CallLimit(timeoutMs);
  res.once('close', () => {
    if (!res.writableFinished) limit.clientLeft();
  });
  return limit;
}

export interface GatewayHandlerDeps {
  gateway: ModelGateway;
  clock: Clock;
  logger: Logger;
  bodyLimitBytes: number;
}

/**
 * `/llm/v1`: the OpenAI-compatible gateway runtimes call with their own key, on node:http alone
 * (no Express: a model call is the platform's hottest path after workspace traffic). Request bodies
 * are rebuilt from the OpenAI fields accepted per endpoint (openAiRequest.ts), a streamed chat is
 * asked for its usage (that extra chunk is removed again if the client did not ask for it), and only
 * the gateway's own headers go upstream, to a path the gateway picks. Every call leaves a ledger row
 * and is charged: the upstream's usage, or a conservative estimate marked as such.
 */
export function gatewayHandler(deps: GatewayHandlerDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const { logger } = deps;
  return (req, res) => {
    // Every call leaves a ledger row; the request line itself is logged at debug, failures louder.
    const started = process.hrtime.bigint();
    res.once('finish', () => {
      const level = res.statusCode >= 500 ? 'warn' : 'debug';
      if (!logger.isLevelEnabled(level)) return;
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      logger[level]({ method: req.method, path: loggablePath(req.url ?? '/'), status: res.statusCode, ms: Math.round(ms * 10) / 10 }, 'model gateway request');
    });
    serve(deps, req, res).catch((err: unknown) => {
      logger.error({ err, path: loggablePath(req.url ?? '/') }, 'model gateway error');
      openAiError(res, 500, 'api_error', 'internal_error', 'The model gateway failed; the error was logged.');
    });
  };
}

async function serve(deps: GatewayHandlerDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const { gateway } = deps;
  const url = req.url ?? LLM_PREFIX;
  const queryAt = url.indexOf('?');
  const fullPath = queryAt === -1 ? url : url.slice(0, queryAt);
  // Like the platform's routes: a trailing slash names the same endpoint.
  const path = fullPath.slice(LLM_PREFIX.length).replace(/(.)\/$/, '$1');

  const caller = gateway.authenticate(bearerCredential(req.headers.authorization));
  if (!caller) {
    openAiError(res, 401, 'invalid_request_error', 'invalid_api_key', 'The API key is missing, unknown or no longer valid. Runtimes get a new key each time they are re-created; restart the runtime.');
    return;
  }
  if (!gateway.configured) {
    openAiError(res, 503, 'api_error', 'no_upstream', 'No model service is configured on this ClawLoops (CLAWLOOPS_LLM_UPSTREAM_URL). Ask your administrator.');
    return;
  }
  if ((req.method === 'GET' || req.method === 'HEAD') && path === '/models') return listModels(deps, res);
  if (req.method === 'POST' && POST_ENDPOINTS.has(path)) return call(deps, req, res, caller, path as OpenAiEndpoint);
  openAiError(res, 404, 'invalid_request_error', 'unknown_endpoint', `No endpoint ${req.method} ${LLM_PREFIX}${path.slice(0, 100)}.`);
}

async function listModels(deps: GatewayHandlerDeps, res: ServerResponse): Promise<void> {
  const { gateway } = deps;
  const catalog = gateway.catalogModels();
  if (catalog) {
    sendJson(res, 200, { object: 'list', data: catalog.map((m) => ({ id: m.id, object: 'model', created: 0, owned_by: 'clawloops' })) });
    return;
  }
  if (gateway.allowedModels().length === 0) {
    sendJson(res, 200, { object: 'list', data: [] });
    return;
  }
  const limit = limitFor(res, gateway.callTimeout().ms);
  try {
    let upstream: IncomingMessage;
    try {
      upstream = await gateway.forward({ method: 'GET', path: '/models', body: null, limit });
    } catch (err) {
      openAiError(res, 502, 'api_error', 'upstream_unreachable', `The model service could not be reached: ${(err as Error).message}`);
      return;
    }
    const text = await readAll(upstream, METERED_BODY_LIMIT);
    if ((upstream.statusCode ?? 502) >= 400 || text === null) {
      res.statusCode = upstream.statusCode ?? 502;
      res.setHeader('Content-Type', 'application/json; charset=utf-8');
      res.end(text ?? '');
      return;
    }
    try {
      const list = JSON.parse(text) as { object?: string; data?: { id?: string }[] };
      const data = (list.data ?? []).filter((m) => typeof m.id === 'string' && gateway.allows(m.id));
      sendJson(res, 200, { ...list, object: 'list', data });
    } catch {
      openAiError(res, 502, 'api_error', 'upstream_invalid', 'The model service answered the model list with something that is not JSON.');
    }
  } finally {
    limit.clear();
  }
}

async function call(deps: GatewayHandlerDeps, req: IncomingMessage, res: ServerResponse, caller: GatewayCaller, endpoint: OpenAiEndpoint): Promise<void> {
  const { gateway, clock, logger } = deps;
  const read = await readJsonBody(req, deps.bodyLimitBytes);
  if (!read.ok) {
    switch (read.error) {
      case 'aborted':
        res.destroy();
        return;
      case 'too_large':
        openAiError(res, 413, 'invalid_request_error', 'body_too_large', `The request body is larger than ${deps.bodyLimitBytes} bytes.`);
        return;
      case 'unsupported_encoding':
        openAiError(res, 415, 'invalid_request_error', 'unsupported_encoding', 'The request body encoding is not supported; send UTF-8 JSON (optionally gzip or deflate).');
        return;
      case 'invalid_json':
        openAiError(res, 400, 'invalid_request_error', 'invalid_json', 'The request body is not valid JSON.');
        return;
    }
  }
  const body = read.value;
  if (!body || typeof body !== 'object' || Array.isArray(body)) {
    openAiError(res, 400, 'invalid_request_error', 'invalid_body', 'The request body must be a JSON object.');
    return;
  }
  const rebuilt = rebuildRequest(endpoint, body as Record<string, unknown>, (model) => gateway.upstreamModel(model));
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
  await relay({ gateway, clock, logger, res, caller, endpoint, model, streamed: stream, stripUsageChunk: stream && !clientWantsUsage, body: forwarded, estimate, admission });
}

interface Relay {
  gateway: ModelGateway;
  clock: Clock;
  logger: Logger;
  res: ServerResponse;
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
  const timeout = r.gateway.callTimeout();
  const limit = limitFor(r.res, timeout.ms);
  const timeoutMessage = `The model service did not finish answering within ${timeout.describe} (CLAWLOOPS_LLM_TIMEOUT).`;
  let status: UsageStatus = 'ok';
  let httpStatus: number | null = null;
  let charge: Charge = reservationCharge(r.estimate);
  try {
    let upstream: IncomingMessage;
    try {
      upstream = await r.gateway.forward({ method: 'POST', path: r.endpoint, body: r.body, limit });
    } catch (err) {
      if (limit.ended === 'client') status = 'aborted';
      else if (limit.ended === 'timeout') {
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
    r.res.statusCode = answered;
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
        if (limit.ended === 'client' || r.res.destroyed) status = 'aborted';
        else {
          status = limit.ended === 'timeout' ? 'timeout' : 'upstream_error';
          const error = limit.ended === 'timeout'
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
      if (limit.ended === 'client') status = 'aborted';
      else status = limit.ended === 'timeout' ? 'timeout' : 'upstream_error';
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
    limit.clear();
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

