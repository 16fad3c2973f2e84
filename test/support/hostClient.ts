/**
 * Raw HTTP against a listening server with any Host header: workspaces are routed by host name,
 * and fetch cannot override Host. Shared by the workspace tests and the benchmarks.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Socket } from 'node:net';
import type { Platform } from '../../src/platform';

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface RawRequest {
  method?: string;
  host: string;
  path: string;
  headers?: Record<string, string>;
  body?: string;
}

export function portOf(server: http.Server): number {
  return (server.address() as AddressInfo).port;
}

/** The platform's front door, requests and WebSocket upgrades, on 127.0.0.1 (`port` 0: a free one). */
export async function servePlatform(platform: Pick<Platform, 'app' | 'upgrade'>, port = 0): Promise<{ server: http.Server; port: number }> {
  const server = http.createServer(platform.app);
  server.on('upgrade', platform.upgrade);
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { server, port: portOf(server) };
}

/** Stops listening and cuts every connection still open. */
export function closeServer(server: http.Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

export function rawRequest(port: number, request: RawRequest, address = '127.0.0.1'): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: address,
        port,
        method: request.method ?? 'GET',
        path: request.path,
        headers: { host: request.host, ...request.headers },
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(request.body);
  });
}

export interface UpgradeResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** The upgraded socket (101 only); the caller ends it. */
  socket: Socket | null;
  body: string;
}

/** Sends an HTTP/1.1 upgrade request and reports the answer: 101 with the open socket, or the refusal. */
export function rawUpgrade(port: number, request: RawRequest, address = '127.0.0.1'): Promise<UpgradeResult> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: address,
      port,
      method: 'GET',
      path: request.path,
      agent: false,
      headers: {
        host: request.host,
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-version': '13',
        'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
        ...request.headers,
      },
    });
    req.on('upgrade', (res, socket) => resolve({ status: res.statusCode ?? 0, headers: res.headers, socket, body: '' }));
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, socket: null, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** The value of one cookie from Set-Cookie headers, with its attributes. */
export function setCookie(headers: http.IncomingHttpHeaders, name: string): { value: string; attributes: string[] } | null {
  for (const line of headers['set-cookie'] ?? []) {
    const [pair = '', ...attributes] = line.split(';').map((p) => p.trim());
    const eq = pair.indexOf('=');
    if (pair.slice(0, eq) === name) return { value: pair.slice(eq + 1), attributes };
  }
  return null;
}

/**
 * Signs in through the platform's API and returns the session cookie pair (`clawloops_session=…`,
 * or `__Host-clawloops_session=…` over https).
 */
export async function signInCookie(port: number, platformHost: string, username: string, password: string, origin = `http://${platformHost}`): Promise<string> {
  const res = await rawRequest(port, {
    method: 'POST',
    host: platformHost,
    path: '/api/v1/auth/login',
    headers: { 'content-type': 'application/json', origin },
    body: JSON.stringify({ username, password }),
  });
  const name = origin.startsWith('https:') ? '__Host-clawloops_session' : 'clawloops_session';
  const cookie = setCookie(res.headers, name);
  if (res.status !== 200 || !cookie) throw new Error(`sign-in failed: ${res.status} ${res.body}`);
  return `${name}=${cookie.value}`;
}

/**
 * The whole "Open workspace" hand-off as a browser does it: the platform's open endpoint sends
 * the browser to the workspace host's sign-in start, which gives it a binding cookie and sends it
 * back for a ticket bound to that cookie; the workspace host redeems the ticket for this browser
 * only. Returns the `clawloops_ws=…` cookie pair (the name as the platform sets it).
 */
export async function workspaceSessionCookie(
  port: number,
  options: { platformHost: string; platformCookie: string; workspace: string; workspaceHost: string; next?: string },
): Promise<string> {
  const redeem = await ticketRedeemUrl(port, options);
  const res = await rawRequest(port, { host: options.workspaceHost, path: `${redeem.url.pathname}${redeem.url.search}`, headers: { accept: 'text/html', cookie: redeem.bindCookie } });
  const name = (res.headers['set-cookie'] ?? []).map((l) => l.split('=')[0] ?? '').find((n) => /^(__Host-)?clawloops_ws$/.test(n));
  const cookie = name ? setCookie(res.headers, name) : null;
  if (res.status !== 302 || !cookie || !name) throw new Error(`redeem failed: ${res.status} ${res.body}`);
  return `${name}=${cookie.value}`;
}

/**
 * Walks the hand-off up to the ticket: the redeem URL, and the binding cookie the workspace host
 * gave this "browser" (only a request carrying it can redeem the ticket).
 */
export async function ticketRedeemUrl(
  port: number,
  options: { platformHost: string; platformCookie: string; workspace: string; workspaceHost: string; next?: string },
): Promise<{ url: URL; bindCookie: string }> {
  const next = options.next ? `&next=${encodeURIComponent(options.next)}` : '';
  const open = await rawRequest(port, { host: options.platformHost, path: `/_clawloops/open?workspace=${options.workspace}${next}`, headers: { cookie: options.platformCookie, accept: 'text/html' } });
  if (open.status !== 302) throw new Error(`open failed: ${open.status} ${open.body}`);
  const login = new URL(open.headers.location ?? '');
  const started = await rawRequest(port, { host: options.workspaceHost, path: `${login.pathname}${login.search}`, headers: { accept: 'text/html' } });
  const bindName = (started.headers['set-cookie'] ?? []).map((l) => l.split('=')[0] ?? '').find((n) => /^(__Host-)?clawloops_ws_bind$/.test(n));
  const bind = bindName ? setCookie(started.headers, bindName) : null;
  if (started.status !== 302 || !bind || !bindName) throw new Error(`sign-in start failed: ${started.status} ${started.body}`);
  const back = new URL(started.headers.location ?? '');
  const ticket = await rawRequest(port, { host: options.platformHost, path: `${back.pathname}${back.search}`, headers: { cookie: options.platformCookie, accept: 'text/html' } });
  if (ticket.status !== 302) throw new Error(`ticket failed: ${ticket.status} ${ticket.body}`);
  return { url: new URL(ticket.headers.location ?? ''), bindCookie: `${bindName}=${bind.value}` };
}

/** A TCP port free at the moment of asking (the platform's public URL must name its port before it listens). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = http.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const port = portOf(probe);
      probe.close(() => resolve(port));
    });
  });
}

/**
 * A loopback address of its own for a test's stand-in runtime (the whole of 127/8 answers on
 * Linux): suites running side by side, each with a different `salt`, never share one.
 */
export function standInRuntimeAddress(salt: number): string {
  const octet = () => Math.floor(Math.random() * 250) + 1;
  return `127.${10 + ((process.pid + salt) % 200)}.${octet()}.${octet()}`;
}
