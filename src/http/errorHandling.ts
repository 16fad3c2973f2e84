import type { ErrorRequestHandler, RequestHandler, Response } from 'express';
import { AppError } from '../lib/errors';
import { isInfraError } from '../lib/infraErrors';
import { requestState } from './context';
import { writeJsonError } from './jsonError';

const sendError = (res: Response, status: number, code: string, message: string, details?: Record<string, unknown>): void =>
  writeJsonError(res, status, code, message, { details });

export const notFoundHandler: RequestHandler = (req, res) => {
  sendError(res, 404, 'NOT_FOUND', `No route for ${req.method} ${req.path.slice(0, 200)}.`);
};

interface BodyParserError {
  type?: string;
  status?: number;
  limit?: number;
}

function bodyParserError(err: unknown): BodyParserError | null {
  return typeof err === 'object' && err !== null && 'type' in err ? (err as BodyParserError) : null;
}

/** Last middleware: every failure leaves as `{"error":{"code","message"}}`, never a stack trace. */
export const errorHandler: ErrorRequestHandler = (err: unknown, req, res, _next) => {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (err instanceof AppError) {
    for (const [name, value] of Object.entries(err.headers)) res.setHeader(name, value);
    sendError(res, err.status, err.code, err.message, err.details);
    return;
  }
  // One rule for every route that needs the engine: unreachable is a 503 that names it.
  if (isInfraError(err, 'unavailable')) {
    res.setHeader('Retry-After', '5');
    sendError(res, 503, 'ENGINE_UNAVAILABLE', `The container engine is not reachable: ${err.message}`);
    return;
  }
  const parser = bodyParserError(err);
  switch (parser?.type) {
    case 'entity.parse.failed':
      sendError(res, 400, 'MALFORMED_JSON', 'The request body is not valid JSON.');
      return;
    case 'entity.too.large':
      sendError(res, 413, 'PAYLOAD_TOO_LARGE', `The request body is larger than the limit of ${parser.limit ?? 'the server'} bytes.`);
      return;
    case 'encoding.unsupported':
    case 'charset.unsupported':
      sendError(res, 415, 'UNSUPPORTED_ENCODING', 'The request body encoding is not supported; send UTF-8 JSON.');
      return;
    case 'request.aborted':
      res.destroy();
      return;
  }
  requestState(req).log.error({ err }, 'unhandled error');
  sendError(res, 500, 'INTERNAL_ERROR', 'Something went wrong on the server. The error was logged.');
};
