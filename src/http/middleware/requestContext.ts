import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { RequestHandler } from 'express';
import { loggablePath, type Logger } from '../../lib/logger';
import { setRequestState } from '../context';
import { answeredError } from '../jsonError';

/** Gives each request an id and a child logger, and logs one line when it finishes. */
export function requestContext(logger: Logger): RequestHandler {
  return (req, res, next) => {
    const requestId = randomUUID();
    const log = logger.child({ reqId: requestId });
    setRequestState(req, { log, auth: null, token: null });
    res.setHeader('X-Request-Id', requestId);
    const started = process.hrtime.bigint();
    res.on('finish', () => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      const level = res.statusCode >= 500 ? 'error' : 'info';
      log[level]({ method: req.method, path: loggablePath(req.originalUrl), status: res.statusCode, ms: Math.round(ms * 10) / 10, ip: req.ip, ...loggedError(res) }, 'request');
    });
    next();
  };
}

/**
 * What an error answer said, for the operator reading why a request failed: its code, and for a
 * refused input the fields it named (our own words, never the values sent). Other messages stay
 * out: they can carry what a member typed.
 */
function loggedError(res: ServerResponse): { error?: string; invalid?: string } {
  const error = answeredError(res);
  if (!error) return {};
  return error.code === 'VALIDATION_FAILED' ? { error: error.code, invalid: error.message.slice(0, 300) } : { error: error.code };
}

/** Conservative defaults for an API that is never meant to be framed or sniffed. */
export const securityHeaders: RequestHandler = (_req, res, next) => {
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('X-Frame-Options', 'DENY');
  res.setHeader('Referrer-Policy', 'same-origin');
  res.setHeader('Cache-Control', 'no-store');
  next();
};
