import http, { type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { WORKSPACE_BIND_COOKIE, WORKSPACE_COOKIE } from '../../domain/workspaceGatekeeper';
import { HOP_BY_HOP_HEADERS } from '../../lib/hopByHop';
import { metClosedConnection } from '../../lib/keptAlive';
import { PROBE_CLIENT_ADDRESS } from '../../runtime/readinessProbe';
import { SECURE_SESSION_COOKIE, SESSION_COOKIE } from '../sessionCookie';
import { writeJsonError } from '../jsonError';

/** Where a runtime answers, parsed once per route (not per request). */
export interface RuntimeTarget {
  host: string;
  port: number;
}

/** The control plane's own cookies, under every name they take: none of them is the runtime's business. */
const OWN_COOKIES = new Set([SESSION_COOKIE, SECURE_SESSION_COOKIE, WORKSPACE_COOKIE, WORKSPACE_BIND_COOKIE, `__Host-${WORKSPACE_COOKIE}`, `__Host-${WORKSPACE_BIND_COOKIE}`]);

/**
 * The connection's own headers plus the client's `Expect` (this server already answered it):
 * never relayed in either direction. Keep-alive to the runtime is the agent's business, whatever
 * the browser asked of its own connection.
 */
const HOP_BY_HOP = new Set([...HOP_BY_HOP_HEADERS, 'expect']);

/** OpenClaw refuses loopback clients arriving through a trusted proxy; a local browser is reported as a stand-in address. */
export function reportedClientAddress(remote: string | undefined): string {
  if (!remote) return PROBE_CLIENT_ADDRESS;
  const address = remote.startsWith('::ffff:') ? remote.slice(7) : remote;
  return address === '::1' || address.startsWith('127.') ? PROBE_CLIENT_ADDRESS : address;
}

function withoutOwnCookies(cookie: string): string | null {
  // Most requests carry only the workspace cookie: one scan, no allocation when nothing stays.
  const kept = cookie
    .split(';')
    .filter((part) => !OWN_COOKIES.has(part.slice(0, Math.max(0, part.indexOf('='))).trim()))
    .join(';')
    .trim();
  return kept || null;
}

/**
 * The headers a runtime sees, in a fresh object (the client's are never mutated): the identity
 * and forwarded headers are written here, never passed through, since OpenClaw trusts this
 * proxy's X-Forwarded-User and a client-sent copy must not survive. The platform's own cookies
 * stay behind too; OpenClaw's cookies pass. `upgrade` keeps the WebSocket handshake headers.
 */
export function runtimeRequestHeaders(req: IncomingMessage, username: string, scheme: string, upgrade: boolean): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  const source = req.headers;
  for (const name in source) {
    if (name.startsWith('x-forwarded-') || name === 'forwarded' || name === 'x-real-ip' || name === 'cookie') continue;
    if (HOP_BY_HOP.has(name)) continue;
    out[name] = source[name];
  }
  if (source.cookie) {
    const kept = withoutOwnCookies(source.cookie);
    if (kept) out.cookie = kept;
  }
  if (upgrade) {
    out.connection = 'Upgrade';
    out.upgrade = source.upgrade;
  }
  out['x-forwarded-user'] = username;
  out['x-forwarded-for'] = reportedClientAddress(req.socket.remoteAddress);
  out['x-forwarded-proto'] = scheme;
  if (source.host) out['x-forwarded-host'] = source.host;
  return out;
}

/** The runtime's response headers as a flat [name, value, …] list, hop-by-hop ones left out (Node frames the answer itself). */
function responseHeaders(raw: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || lower === 'transfer-encoding') continue;
    out.push(name, raw[i + 1] as string);
  }
  return out;
}

export interface RelayOptions {
  agent: http.Agent;
  onError(err: Error): void;
}

const UNREACHABLE_MESSAGE = 'The workspace did not answer; it may be restarting. Try again in a moment.';

/** Methods whose request the runtime may receive twice without harm, when they carry no body to replay. */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

function replayable(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return SAFE_METHODS.has(req.method ?? '') && (length === undefined || length === '0') && req.headers['transfer-encoding'] === undefined;
}

/**
 * Relays one request to a runtime and its answer back, streaming both ways with back-pressure.
 * No timer: long-lived answers (SSE, a chat being written) end when the runtime or the client
 * ends them. A client that leaves cuts the runtime's request, freeing the kept-alive connection.
 */
export function relayRequest(req: IncomingMessage, res: ServerResponse, target: RuntimeTarget, headers: OutgoingHttpHeaders, options: RelayOptions): void {
  const bodyless = replayable(req);
  let clientGone = false;
  let upstream: http.ClientRequest;
  const send = (fresh: boolean) => {
    // A replay goes out on a new connection: another pooled one may be just as stale.
    upstream = http.request({ host: target.host, port: target.port, method: req.method, path: req.url, headers, agent: fresh ? false : options.agent });
    const sent = upstream;
    sent.on('error', (err: NodeJS.ErrnoException) => {
      // Cut because the client left (or its session ended): nothing failed, nobody to tell.
      if (clientGone) return;
      // The runtime closed an idle kept-alive connection as this request went out on it, so it
      // never read the request: one without a body is sent again rather than shown as a 502.
      if (!fresh && bodyless && !res.headersSent && metClosedConnection(sent, err)) {
        send(true);
        return;
      }
      options.onError(err);
      if (!res.headersSent) writeJsonError(res, 502, 'RUNTIME_UNREACHABLE', UNREACHABLE_MESSAGE);
      else res.destroy();
    });
    sent.on('response', (answer) => {
      answer.on('error', (err) => {
        options.onError(err);
        res.destroy();
      });
      res.writeHead(answer.statusCode ?? 502, answer.statusMessage, responseHeaders(answer.rawHeaders));
      answer.pipe(res);
    });
    if (bodyless) sent.end();
    else req.pipe(sent);
  };
  res.on('close', () => {
    if (res.writableFinished) return;
    clientGone = true;
    upstream.destroy();
  });
  // Nothing to relay from a bodyless request, but it is read to its end all the same.
  if (bodyless) req.resume();
  send(false);
}

function headBlock(statusLine: string, raw: string[]): string {
  let head = `${statusLine}\r\n`;
  for (let i = 0; i < raw.length; i += 2) head += `${raw[i]}: ${raw[i + 1]}\r\n`;
  return `${head}\r\n`;
}

/**
 * Relays a WebSocket handshake to a runtime; on 101 the two sockets are joined. A refusal by the
 * runtime goes back to the browser as it came. Upgrades get their own connection (never a pooled one).
 */
export function relayUpgrade(
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  target: RuntimeTarget,
  headers: OutgoingHttpHeaders,
  options: { onError(err: Error): void; /** Each chunk from the browser, once joined. */ onData(): void },
): void {
  const { onError } = options;
  const upstream = http.request({ host: target.host, port: target.port, method: req.method, path: req.url, headers, agent: false });
  upstream.on('error', (err) => {
    // A browser that left first is no proxy error.
    if (!socket.destroyed) onError(err);
    socket.destroy();
  });
  upstream.on('response', (answer) => {
    // The runtime answered the handshake without upgrading: pass its answer on, delimited by
    // the end of the connection (its own framing was undone in reading it), then hang up.
    socket.write(headBlock(`HTTP/1.1 ${answer.statusCode ?? 502} ${answer.statusMessage ?? ''}`, [...responseHeaders(answer.rawHeaders), 'Connection', 'close']));
    answer.pipe(socket);
  });
  upstream.on('upgrade', (answer, runtimeSocket, runtimeHead) => {
    runtimeSocket.on('error', () => socket.destroy());
    socket.on('close', () => runtimeSocket.destroy());
    runtimeSocket.on('close', () => socket.destroy());
    if (socket.destroyed) {
      runtimeSocket.destroy();
      return;
    }
    socket.write(headBlock('HTTP/1.1 101 Switching Protocols', answer.rawHeaders));
    if (runtimeHead.length > 0) socket.write(runtimeHead);
    runtimeSocket.pipe(socket);
    socket.pipe(runtimeSocket);
    // Only now: a listener added earlier would have set the socket flowing with nowhere to go.
    socket.on('data', options.onData);
  });
  socket.on('close', () => upstream.destroy());
  // Bytes the browser sent after its handshake belong to the WebSocket, not to the handshake.
  if (head.length > 0) socket.unshift(head);
  upstream.end();
}
