/**
 * Raw HTTP against a listening server with any Host header: workspaces are routed by host name,
 * and fetch cannot override Host. Shared by the workspace tests and the benchmarks.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Socket } from 'node:net';

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

/** Signs in through the platform's API and returns the `clawloops_session=…` cookie pair. */
export async function signInCookie(port: number, platformHost: string, username: string, password: string): Promise<string> {
  const res = await rawRequest(port, {
    method: 'POST',
    host: platformHost,
    path: '/api/v1/auth/login',
    headers: { 'content-type': 'application/json', origin: `http://${platformHost}` },
    body: JSON.stringify({ username, password }),
  });
  const cookie = setCookie(res.headers, 'clawloops_session');
  if (res.status !== 200 || !cookie) throw new Error(`sign-in failed: ${res.status} ${res.body}`);
  return `clawloops_session=${cookie.value}`;
}

/**
 * The whole "Open workspace" hand-off as a browser does it: the platform's open endpoint issues
 * a ticket, the workspace host redeems it. Returns the `clawloops_ws=…` cookie pair.
 */
export async function workspaceSessionCookie(
  port: number,
  options: { platformHost: string; platformCookie: string; workspace: string; workspaceHost: string },
): Promise<string> {
  const open = await rawRequest(port, {
    host: options.platformHost,
    path: `/_clawloops/open?workspace=${options.workspace}`,
    headers: { cookie: options.platformCookie, accept: 'text/html' },
  });
  if (open.status !== 302) throw new Error(`open failed: ${open.status} ${open.body}`);
  const redeem = new URL(open.headers.location ?? '');
  const res = await rawRequest(port, { host: options.workspaceHost, path: `${redeem.pathname}${redeem.search}`, headers: { accept: 'text/html' } });
  const cookie = setCookie(res.headers, 'clawloops_ws');
  if (res.status !== 302 || !cookie) throw new Error(`redeem failed: ${res.status} ${res.body}`);
  return `clawloops_ws=${cookie.value}`;
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
