/**
 * Workspaces end to end with the REAL OpenClaw image behind the built-in router, at the HTTP
 * and WebSocket level, in host mode and in path mode: the owner gets through the ticket hand-off
 * to the Control UI, its config and the gateway WebSocket; another user and an anonymous client
 * are refused at every step. The browser itself is driven in test/browser.
 */
import type http from 'node:http';
import WebSocket from 'ws';
import { engineHarness, newInstanceId, sweep, withDiagnostics, type EngineHarness, OPENCLAW_SETTINGS } from '../support/engine';
import { STRONG_PASSWORD } from '../support/harness';
import { closeServer, freePort, portOf, rawRequest, rawUpgrade, servePlatform, signInCookie, workspaceSessionCookie } from '../support/hostClient';

jest.setTimeout(240_000);

interface Mode {
  name: 'host' | 'path';
  workspaceHost: (port: number) => string;
  /** Where the workspace's pages live, relative to its origin. */
  base: string;
}

const MODES: Mode[] = [
  { name: 'host', workspaceHost: (port) => `alice.localhost:${port}`, base: '' },
  { name: 'path', workspaceHost: (port) => `localhost:${port}`, base: '/w/alice' },
];

interface GatewayFrame {
  type: string;
  event?: string;
  id?: string;
  ok?: boolean;
  payload?: Record<string, unknown>;
  error?: { code?: string; message?: string };
}

/** Opens the gateway WebSocket through the router and collects frames until `until` matches (or a timeout). */
function gatewaySocket(port: number, host: string, path: string, headers: Record<string, string>) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, { headers: { host, ...headers } });
  const frames: GatewayFrame[] = [];
  ws.on('message', (data) => frames.push(JSON.parse(data.toString()) as GatewayFrame));
  const opened = new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`refused with HTTP ${res.statusCode}`)));
  });
  const waitFor = async (match: (f: GatewayFrame) => boolean, timeoutMs = 15_000): Promise<GatewayFrame> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = frames.find(match);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no matching frame; got ${JSON.stringify(frames).slice(0, 500)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  return { ws, frames, opened, waitFor };
}

describe.each(MODES)('$name mode, built-in router, real OpenClaw', (mode) => {
  const instance = newInstanceId();
  let h: EngineHarness;
  let server: http.Server;
  let port: number;
  let aliceCookie: string;
  let bobCookie: string;
  let workspaceHost: string;
  const platformHost = () => `localhost:${port}`;
  const it = (name: string, body: () => Promise<void>) => test(name, withDiagnostics(() => instance, () => h.logs.text, body));

  beforeAll(async () => {
    port = await freePort();
    workspaceHost = mode.workspaceHost(port);
    h = engineHarness({
      instance,
      env: { CLAWLOOPS_PUBLIC_URL: `http://localhost:${port}`, CLAWLOOPS_DOMAIN: 'localhost', CLAWLOOPS_WORKSPACE_ROUTING: mode.name },
      runtimeSettings: OPENCLAW_SETTINGS,
    });
    ({ server } = await servePlatform(h.platform, port));
    expect(portOf(server)).toBe(port);
    const { client: admin } = await h.setupAdmin();
    const { client: alice } = await h.createMember(admin, 'alice');
    await h.createMember(admin, 'bob');
    aliceCookie = await signInCookie(port, platformHost(), 'alice', STRONG_PASSWORD);
    bobCookie = await signInCookie(port, platformHost(), 'bob', STRONG_PASSWORD);
    const start = await alice.post('/api/v1/runtime/start');
    await h.platform.runtimes.settled(start.body.runtime.id);
    expect((await alice.get('/api/v1/runtime')).body.state).toBe('running');
  });

  afterAll(async () => {
    await closeServer(server);
    await h.platform.runtimes.drain(30_000);
    h.close();
    await sweep(instance);
  });

  it('the owner opens the workspace through the ticket hand-off and loads the Control UI and its config', async () => {
    const cookie = await workspaceSessionCookie(port, { platformHost: platformHost(), platformCookie: aliceCookie, workspace: 'alice', workspaceHost });
    const page = await rawRequest(port, { host: workspaceHost, path: `${mode.base}/`, headers: { cookie, accept: 'text/html' } });
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toMatch(/text\/html/);
    expect(page.body).toMatch(/openclaw/i);
    const config = await rawRequest(port, { host: workspaceHost, path: `${mode.base}/control-ui-config.json`, headers: { cookie } });
    expect(config.status).toBe(200);
    expect(JSON.parse(config.body)).toHaveProperty('serverBuildId');
  });

  it('the owner opens the gateway WebSocket, receives the challenge and completes a device-less connect as themselves', async () => {
    const cookie = await workspaceSessionCookie(port, { platformHost: platformHost(), platformCookie: aliceCookie, workspace: 'alice', workspaceHost });
    const origin = `http://${workspaceHost}`;
    const socket = gatewaySocket(port, workspaceHost, `${mode.base}/`, { cookie, origin });
    await socket.opened;
    const challenge = await socket.waitFor((f) => f.event === 'connect.challenge');
    expect(typeof challenge.payload?.nonce).toBe('string');
    socket.ws.send(
      JSON.stringify({
        type: 'req',
        id: 'c1',
        method: 'connect',
        params: {
          minProtocol: 4,
          maxProtocol: 4,
          client: { id: 'cli', version: '1.0.0', platform: 'linux', mode: 'cli' },
          role: 'operator',
          scopes: ['operator.read', 'operator.write'],
          caps: [],
          commands: [],
          permissions: {},
          locale: 'en-US',
          userAgent: 'clawloops-test',
        },
      }),
    );
    const hello = await socket.waitFor((f) => f.type === 'res' && f.id === 'c1');
    process.stdout.write(`[${mode.name}] device-less connect: ${JSON.stringify(hello).slice(0, 300)}\n`);
    // Trusted-proxy auth with identityScopes for the owner: connected with read/write scopes, no device needed.
    expect(hello.ok).toBe(true);
    expect(hello.payload?.auth).toMatchObject({ role: 'operator', scopes: expect.arrayContaining(['operator.read', 'operator.write']) });
    socket.ws.close();
  });

  it('another user and an anonymous client are refused at every step, HTTP and WebSocket', async () => {
    const bobsOwn = mode.name === 'host' ? `bob.localhost:${port}` : workspaceHost;
    const bob = await workspaceSessionCookie(port, { platformHost: platformHost(), platformCookie: bobCookie, workspace: 'bob', workspaceHost: bobsOwn });
    // The platform will not hand bob a ticket for alice's workspace.
    const open = await rawRequest(port, { host: platformHost(), path: '/_clawloops/open?workspace=alice', headers: { cookie: bobCookie, accept: 'text/html' } });
    expect(open.status).toBe(403);
    for (const path of [`${mode.base}/`, `${mode.base}/control-ui-config.json`]) {
      const asBob = await rawRequest(port, { host: workspaceHost, path, headers: { cookie: bob, accept: 'text/html' } });
      // Path mode: bob's cookie is scoped to /w/bob and never sent for /w/alice; the browser is sent to sign in.
      expect(mode.name === 'host' ? [403] : [302, 403]).toContain(asBob.status);
      const anonymous = await rawRequest(port, { host: workspaceHost, path, headers: { accept: 'application/json' } });
      expect(anonymous.status).toBe(401);
      // Even claiming to be alice.
      const forged = await rawRequest(port, { host: workspaceHost, path, headers: { accept: 'application/json', 'x-forwarded-user': 'alice' } });
      expect(forged.status).toBe(401);
    }
    const origin = `http://${workspaceHost}`;
    expect((await rawUpgrade(port, { host: workspaceHost, path: `${mode.base}/`, headers: { origin, 'x-forwarded-user': 'alice' } })).status).toBe(401);
    if (mode.name === 'host') expect((await rawUpgrade(port, { host: workspaceHost, path: '/', headers: { origin, cookie: bob } })).status).toBe(403);
  });
});
