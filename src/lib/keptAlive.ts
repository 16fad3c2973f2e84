import type { ClientRequest } from 'node:http';

/**
 * How long an idle kept-alive connection to a runtime or a model upstream stays pooled: under the
 * 5 s after which Node's servers (OpenClaw's gateway) and uvicorn (LiteLLM) close one. Without a
 * timeout of its own Node's agent keeps idle connections for ever (and ignores a server's
 * `Keep-Alive: timeout=N`), so a request later sent on one the server is closing fails with
 * ECONNRESET; with one, the agent drops them first, sooner still when the server says so.
 */
export const KEPT_ALIVE_IDLE_MS = 4_000;

/**
 * The request went out on a pooled connection the server had just closed, so the server never
 * read it: the one failure a caller may put down to the pool rather than to the server.
 */
export function metClosedConnection(req: ClientRequest, err: NodeJS.ErrnoException): boolean {
  return req.reusedSocket && (err.code === 'ECONNRESET' || err.code === 'EPIPE');
}
