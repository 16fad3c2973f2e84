/**
 * The node:http front door: what goes where (workspace addresses first, then /llm/v1, then the
 * platform), and the control plane's own relay to runtimes (headers, framing, a client that
 * leaves, a runtime that refuses a WebSocket). Access decisions are covered in
 * workspaceAccess.test.ts and accessCaches.test.ts.
 */
import http from 'node:http';
import type { Socket } from 'node:net';
import { alwaysReadyProbe, FakeProvisioner } from '../support/fakeProvisioner';
import { createHarness, STRONG_PASSWORD, type Harness } from '../support/harness';
import { closeServer, rawRequest, rawUpgrade, servePlatform, signInCookie, standInRuntimeAddress, workspaceSessionCookie } from '../support/hostClient';

const PLATFORM_HOST = 'platform.test:8080';
const ALICE_HOST = 'alice.platform.test:8080';
const ALICE_ORIGIN = 'http://alice.platform.test:8080';
const RUNTIME_ADDRESS = standInRuntimeAddress(53);

let h: Harness;
let server: http.Server;
let port: number;
let runtime: http.Server;
let cookie: string;
const seen: { url: string; headers: http.IncomingHttpHeaders }[] = [];
/** Resolves when the runtime sees a request end before its answer did (the client left). */
let cutSeen: () => void = () => undefined;
const cut = new Promise<void>((resolve) => (cutSeen = resolve));

beforeAll(async () => {
  runtime = http.createServer((req, res) => {
    seen.push({ url: req.url ?? '', headers: req.headers });
    if (req.url === '/chunked') {
      // Hop-by-hop headers of the runtime's own connection, and a chunked body.
      res.writeHead(200, { 'content-type': 'text/plain', connection: 'keep-alive', 'keep-alive': 'timeout=77', 'x-runtime': 'yes' });
      res.write('one,');
      setImmediate(() => res.end('two'));
      return;
    }
    if (req.url === '/hang') {
      res.once('close', () => {
        if (!res.writableFinished) cutSeen();
      });
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: started\n\n');
      return;
    }
    if (req.method === 'POST') {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => res.end(JSON.stringify({ received: Buffer.concat(chunks).length })));
      return;
    }
    res.end(JSON.stringify({ url: req.url }));
  });
  runtime.on('upgrade', (req, socket: Socket) => {
    seen.push({ url: req.url ?? '', headers: req.headers });
    socket.end('HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 7\r\n\r\nno ws!\n');
  });
  await new Promise<void>((resolve) => runtime.listen(18789, RUNTIME_ADDRESS, resolve));

  const backend = new FakeProvisioner();
  backend.runtimeHost = RUNTIME_ADDRESS;
  h = createHarness({ runtimeProvisioner: backend, runtimeProbe: alwaysReadyProbe, runtimeSettings: { image: 'ghcr.io/openclaw/openclaw:2026.9.6' }, env: { CLAWLOOPS_DOMAIN: 'platform.test' } });
  backend.images.add('ghcr.io/openclaw/openclaw:2026.9.6');
  ({ server, port } = await servePlatform(h.platform));
  const admin = (await h.setupAdmin('admin')).client;
  const alice = await h.createMember(admin, 'alice');
  const started = await alice.client.post('/api/v1/runtime/start');
  await h.platform.runtimes.settled(started.body.runtime.id);
  const platformCookie = await signInCookie(port, PLATFORM_HOST, 'alice', STRONG_PASSWORD, h.config.publicOrigin);
  cookie = await workspaceSessionCookie(port, { platformHost: PLATFORM_HOST, platformCookie, workspace: 'alice', workspaceHost: ALICE_HOST });
});

afterAll(async () => {
  h.platform.closeWorkspaceSockets();
  await closeServer(server);
  await h.platform.runtimes.drain(5_000);
  h.close();
  runtime.closeAllConnections();
  await new Promise((resolve) => runtime.close(resolve));
});

test('on a workspace host every path is the runtime\'s, /llm/v1 and /api/v1 included; on the platform they are the platform\'s', async () => {
  for (const path of ['/llm/v1/models', '/api/v1/auth/me', '/healthz']) {
    const res = await rawRequest(port, { host: ALICE_HOST, path, headers: { cookie } });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toEqual({ url: path });
  }
  expect((await rawRequest(port, { host: PLATFORM_HOST, path: '/llm/v1/models' })).status).toBe(401);
  expect((await rawRequest(port, { host: PLATFORM_HOST, path: '/healthz' })).status).toBe(200);
  // Not the gateway's prefix, only its look-alike: the platform's 404.
  const lookalike = await rawRequest(port, { host: PLATFORM_HOST, path: '/llm/v1x' });
  expect(lookalike.status).toBe(404);
  expect(JSON.parse(lookalike.body).error.code).toBe('NOT_FOUND');
});

test('the runtime\'s answer comes back with its own headers, framed by this server (hop-by-hop headers stay behind)', async () => {
  const res = await rawRequest(port, { host: ALICE_HOST, path: '/chunked', headers: { cookie, connection: 'keep-alive', te: 'trailers' } });
  expect(res.status).toBe(200);
  expect(res.body).toBe('one,two');
  expect(res.headers['x-runtime']).toBe('yes');
  expect(res.headers['keep-alive']).not.toBe('timeout=77');
  const asked = seen.at(-1);
  expect(asked?.headers.te).toBeUndefined();
  expect(asked?.headers.cookie).toBeUndefined();
  expect(asked?.headers['x-forwarded-user']).toBe('alice');
});

test('request bodies are streamed to the runtime', async () => {
  const body = 'x'.repeat(3 * 1024 * 1024);
  const res = await rawRequest(port, { method: 'POST', host: ALICE_HOST, path: '/upload', headers: { cookie, origin: ALICE_ORIGIN, 'content-type': 'text/plain' }, body });
  expect(res.status).toBe(200);
  expect(JSON.parse(res.body)).toEqual({ received: body.length });
});

test('a client that leaves cuts its request to the runtime, and is not logged as a proxy error', async () => {
  await new Promise<void>((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/hang', agent: false, headers: { host: ALICE_HOST, cookie } }, (res) => {
      res.once('data', () => {
        req.destroy();
        resolve();
      });
    });
    req.on('error', reject);
  });
  await cut;
  expect(h.logs.text).not.toContain('workspace proxy error');
});

test('a WebSocket handshake the runtime refuses reaches the browser as the runtime answered it', async () => {
  const res = await rawUpgrade(port, { host: ALICE_HOST, path: '/ws', headers: { cookie, origin: ALICE_ORIGIN } });
  expect(res.status).toBe(403);
  expect(res.body).toBe('no ws!\n');
  expect(seen.at(-1)?.headers['x-forwarded-user']).toBe('alice');
});
