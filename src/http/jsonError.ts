import type { ServerResponse } from 'node:http';
import type { ApiErrorBody } from './apiTypes';

/**
 * The one writer of the API's error shape, `{"error":{"code","message",…}}` (ApiErrorBody). It
 * takes node's own ServerResponse, which Express's Response extends, so the error handler, the
 * workspace router's plain-node paths (refusals, proxy failures), the forward-auth endpoint and
 * the model gateway (whose OpenAI-style errors add `type` and `param`) all write it the same way.
 * A refused WebSocket upgrade has no response object: writeUpgradeRefusal writes the same body
 * on the socket.
 */

export interface JsonErrorOptions {
  /** Extra fields inside `error` (a conflict's names, the current ETag, a limit). */
  details?: Record<string, unknown>;
  /** Fields beside `error` at the top level (e.g. readiness checks). */
  alongside?: Record<string, unknown>;
}

export function errorBody(code: string, message: string, options: JsonErrorOptions = {}): ApiErrorBody & Record<string, unknown> {
  return { ...options.alongside, error: { code, message, ...options.details } };
}

/** The error each response answered with, for its request's log line (a 400 says which field). */
const ANSWERED = new WeakMap<ServerResponse, { code: string; message: string }>();

export function answeredError(res: ServerResponse): { code: string; message: string } | undefined {
  return ANSWERED.get(res);
}

/**
 * Answers `status` with the error as JSON. A response whose head already left cannot say it in
 * words any more: it is cut, so the client sees a failure rather than a truncated success.
 */
export function writeJsonError(res: ServerResponse, status: number, code: string, message: string, options: JsonErrorOptions = {}): void {
  ANSWERED.set(res, { code, message });
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = Buffer.from(JSON.stringify(errorBody(code, message, options)));
  // A download or a compressed asset may have set its own headers before it failed.
  for (const name of ['Content-Disposition', 'Content-Encoding', 'ETag', 'Last-Modified']) res.removeHeader(name);
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', body.length);
  res.setHeader('Cache-Control', 'no-store');
  res.end(body);
}

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  429: 'Too Many Requests',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
};

/** The same error as a whole HTTP answer on the socket of a WebSocket upgrade that will not happen; the socket is closed. */
export function writeUpgradeRefusal(socket: { write(data: string): unknown; destroy(): void }, status: number, code: string, message: string): void {
  const body = JSON.stringify(errorBody(code, message));
  socket.write(
    `HTTP/1.1 ${status} ${REASONS[status] ?? 'Error'}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n${body}`,
  );
  socket.destroy();
}
