/**
 * Who gets into a workspace, through both front doors: the built-in router (the control plane
 * proxies to the runtime itself) and the forward-auth endpoint Traefik asks. The runtime is an
 * in-memory provisioner whose "container" answers on a loopback address, so these tests see exactly
 * what reaches the runtime. The real OpenClaw image is exercised in test/integration.
 */
import http from 'node:http';
import type { Socket } from 'node:net';
import type TestAgent from 'supertest/lib/agent';
import { alwaysReadyProbe, FakeProvisioner } from '../support/fakeProvisioner';
import { createHarness, OTHER_STRONG_PASSWORD, STRONG_PASSWORD, type Harness } from '../support/harness';
import { closeServer, rawRequest, rawUpgrade, servePlatform, setCookie, signInCookie, standInRuntimeAddress, ticketRedeemUrl, type RawResponse, workspaceSessionCookie } from '../support/hostClient';

const PLATFORM_HOST = 'platform.test:8080';
const ALICE_HOST = 'alice.platform.test:8080';
const BOB_HOST = 'bob.platform.test:8080';
const HTML = { accept: 'text/html,application/xhtml+xml' };
// A loopback address of its own, so OpenClaw's fixed port 18789 is free for this file's fake runtime.
const RUNTIME_ADDRESS = standInRuntimeAddress(0);

interface Seen {
  url: string;
  headers: http.IncomingHttpHeaders;
}

let h: Harness;
let backend: FakeProvisioner;
let server: http.Server;
let port: number;
let runtime: http.Server;
const seen: Seen[] = [];
const upgraded = new Set<Socket>();
let admin: TestAgent;
const users: Record<string, { client: TestAgent; userId: string; cookie: string }> = {};

const signIn = (username: string) => signInCookie(port, PLATFORM_HOST, username, STRONG_PASSWORD, h.config.publicOrigin);

function platformGet(path: string, cookie: string | null): Promise<RawResponse> {
  return rawRequest(port, { host: PLATFORM_HOST, path, headers: { ...HTML, ...(cookie ? { cookie } : {}) } });
}

/**
 * The platform's "Open workspace", walked up to the ticket: the redeem URL the browser is sent to,
 * and the binding cookie its workspace host gave it (the ticket redeems only with it).
 */
async function openWorkspace(cookie: string, workspace: string, next = '/', workspaceHost = `${workspace}.platform.test:8080`): Promise<URL & { bind: string }> {
  const { url, bindCookie } = await ticketRedeemUrl(port, { platformHost: PLATFORM_HOST, platformCookie: cookie, workspace, workspaceHost, next });
  return Object.assign(url, { bind: bindCookie });
}

function workspaceGet(host: string, path: string, headers: Record<string, string> = {}): Promise<RawResponse> {
  return rawRequest(port, { host, path, headers: { ...HTML, ...headers } });
}

/** The whole hand-off: platform session → ticket → workspace cookie (`clawloops_ws=…`). */
const workspaceCookie = (username: string, host = ALICE_HOST) =>
  workspaceSessionCookie(port, { platformHost: PLATFORM_HOST, platformCookie: users[username]?.cookie ?? '', workspace: username, workspaceHost: host });

async function startRuntime(username: string): Promise<void> {
  const user = users[username];
  if (!user) throw new Error(`no user ${username}`);
  const res = await user.client.post('/api/v1/runtime/start');
  expect([200, 202]).toContain(res.status);
  await h.platform.runtimes.settled(res.body.runtime.id);
}

async function stopRuntime(username: string): Promise<void> {
  const user = users[username];
  if (!user) throw new Error(`no user ${username}`);
  const res = await user.client.post('/api/v1/runtime/stop');
  expect([200, 202]).toContain(res.status);
  if (res.body.runtime.id) await h.platform.runtimes.settled(res.body.runtime.id);
}

beforeAll(async () => {
  runtime = http.createServer((req, res) => {
    seen.push({ url: req.url ?? '', headers: req.headers });
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ url: req.url }));
  });
  // A stand-in for OpenClaw's WebSocket: accepts the upgrade and echoes what it receives.
  runtime.on('upgrade', (req, socket: Socket) => {
    upgraded.add(socket);
    socket.once('close', () => upgraded.delete(socket));
    seen.push({ url: req.url ?? '', headers: req.headers });
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
    socket.on('data', (data) => socket.write(data));
  });
  await new Promise<void>((resolve) => runtime.listen(18789, RUNTIME_ADDRESS, resolve));
});

afterAll(async () => {
  for (const socket of upgraded) socket.destroy();
  runtime.closeAllConnections();
  await new Promise((resolve) => runtime.close(resolve));
});

async function boot(env: Record<string, string> = {}, withUsers = true): Promise<void> {
  backend = new FakeProvisioner();
  backend.runtimeHost = RUNTIME_ADDRESS;
  h = createHarness({
    runtimeProvisioner: backend,
    runtimeProbe: alwaysReadyProbe,
    runtimeSettings: { image: 'ghcr.io/openclaw/openclaw:2026.9.6' },
    env: { CLAWLOOPS_DOMAIN: 'platform.test', ...env },
  });
  backend.images.add('ghcr.io/openclaw/openclaw:2026.9.6');
  ({ server, port } = await servePlatform(h.platform));
  if (!withUsers) return;
  admin = (await h.setupAdmin('admin')).client;
  users.admin = { client: admin, userId: '', cookie: await signIn('admin') };
  for (const name of ['alice', 'bob']) {
    const member = await h.createMember(admin, name);
    users[name] = { ...member, cookie: await signIn(name) };
  }
  seen.length = 0;
}

afterEach(async () => {
  h.platform.closeWorkspaceSockets();
  await closeServer(server);
  await h.platform.runtimes.drain(5_000);
  h.close();
});

describe('host mode, built-in router', () => {
  beforeEach(() => boot());

  test('a browser without a workspace session is sent to the platform to sign in, and comes back to the page it asked for', async () => {
    const res = await workspaceGet(ALICE_HOST, '/chat?session=main');
    expect(res.status).toBe(302);
    const location = new URL(res.headers.location ?? '');
    expect(`${location.origin}${location.pathname}`).toBe('http://platform.test:8080/_clawloops/open');
    expect(location.searchParams.get('workspace')).toBe('alice');
    expect(location.searchParams.get('next')).toBe('/chat?session=main');
    // The browser gets a random cookie on the workspace host first; the ticket will be bound to its hash.
    const bind = setCookie(res.headers, 'clawloops_ws_bind');
    expect(bind?.attributes).toEqual(expect.arrayContaining(['Path=/', 'HttpOnly', 'SameSite=Lax']));
    expect(bind?.attributes.some((a) => /^domain=/i.test(a))).toBe(false);
    expect(location.searchParams.get('bind')).toMatch(/^[0-9a-f]{64}$/);

    // Not signed in on the platform either: the platform's login, which returns to the hand-off.
    const open = await platformGet(`${location.pathname}${location.search}`, null);
    expect(open.status).toBe(302);
    expect(open.headers.location).toBe(`/login?next=${encodeURIComponent(`${location.pathname}${location.search}`)}`);

    // Signed in: a ticket for alice's host that lands on the page asked for.
    const redeem = await openWorkspace(users.alice?.cookie ?? '', 'alice', '/chat?session=main');
    expect(redeem.origin).toBe('http://alice.platform.test:8080');
    expect(redeem.pathname).toBe('/_clawloops/redeem');
    const redeemed = await workspaceGet(ALICE_HOST, `${redeem.pathname}${redeem.search}`, { cookie: redeem.bind });
    expect(redeemed.status).toBe(302);
    expect(redeemed.headers.location).toBe('/chat?session=main');
    const cookie = setCookie(redeemed.headers, 'clawloops_ws');
    expect(cookie?.attributes).toEqual(expect.arrayContaining(['Path=/', 'HttpOnly', 'SameSite=Lax']));
    // Host-only: no Domain attribute, so no other host (the platform, bob's workspace) ever receives it.
    expect(cookie?.attributes.some((a) => /^domain=/i.test(a))).toBe(false);
  });

  test('scripts and assets without a session get 401, not a redirect', async () => {
    const res = await rawRequest(port, { host: ALICE_HOST, path: '/assets/app.js', headers: { accept: '*/*' } });
    expect(res.status).toBe(401);
    expect(JSON.parse(res.body).error.code).toBe('WORKSPACE_SIGN_IN_REQUIRED');
  });

  test('the owner reaches the runtime; it sees only identity and forwarded headers the router wrote', async () => {
    await startRuntime('alice');
    const cookie = await workspaceCookie('alice');
    const res = await workspaceGet(ALICE_HOST, '/chat?x=1', {
      cookie: `${cookie}; ${users.alice?.cookie}; theme=dark`,
      'x-forwarded-user': 'admin',
      'x-forwarded-for': '10.0.0.66',
      forwarded: 'for=10.0.0.66',
      'x-real-ip': '10.0.0.66',
    });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toEqual({ url: '/chat?x=1' });
    const headers = seen.at(-1)?.headers ?? {};
    expect(headers['x-forwarded-user']).toBe('alice');
    // A loopback browser is reported as a non-loopback address: OpenClaw refuses loopback clients behind a proxy.
    expect(headers['x-forwarded-for']).toBe('198.18.0.1');
    expect(headers['x-forwarded-proto']).toBe('http');
    expect(headers['x-forwarded-host']).toBe(ALICE_HOST);
    expect(headers.forwarded).toBeUndefined();
    expect(headers['x-real-ip']).toBeUndefined();
    // The platform's cookies stay behind; the runtime's own pass.
    expect(headers.cookie).toBe('theme=dark');
  });

  test('another signed-in user, and an administrator, are refused with a page that says why', async () => {
    await startRuntime('alice');
    const bobCookie = await workspaceCookie('bob', BOB_HOST);
    const res = await workspaceGet(ALICE_HOST, '/', { cookie: bobCookie });
    expect(res.status).toBe(403);
    expect(res.headers['content-type']).toMatch(/text\/html/);
    expect(res.body).toContain('belongs to another account');
    expect(res.body).toContain('signed in as bob');

    // The platform hands out tickets only for one's own workspace.
    for (const who of ['bob', 'admin']) {
      const open = await platformGet('/_clawloops/open?workspace=alice', users[who]?.cookie ?? '');
      expect(open.status).toBe(403);
      expect(open.body).toContain('belongs to another account');
    }
    expect(seen).toHaveLength(0);
    const audit = await admin.get('/api/v1/admin/audit?action=workspace.open_refused');
    expect(audit.body.items.map((e: { actor: { username: string } }) => e.actor.username).sort()).toEqual(['admin', 'bob']);
  });

  test('a ticket works once, for a minute, on its own workspace host only', async () => {
    const replayed = await openWorkspace(users.alice?.cookie ?? '', 'alice');
    const path = `${replayed.pathname}${replayed.search}`;
    expect((await workspaceGet(ALICE_HOST, path, { cookie: replayed.bind })).status).toBe(302);
    const replay = await workspaceGet(ALICE_HOST, path, { cookie: replayed.bind });
    expect(replay.status).toBe(403);
    expect(replay.body).toContain('already used');
    expect(setCookie(replay.headers, 'clawloops_ws')).toBeNull();

    const expired = await openWorkspace(users.alice?.cookie ?? '', 'alice');
    h.clock.advance(61_000);
    const late = await workspaceGet(ALICE_HOST, `${expired.pathname}${expired.search}`, { cookie: expired.bind });
    expect(late.status).toBe(403);
    expect(late.body).toContain('expired');

    const alicesTicket = await openWorkspace(users.alice?.cookie ?? '', 'alice');
    const elsewhere = await workspaceGet(BOB_HOST, `${alicesTicket.pathname}${alicesTicket.search}`, { cookie: alicesTicket.bind });
    expect(elsewhere.status).toBe(403);
    expect(elsewhere.body).toContain('belongs to another workspace');
    // Presenting it on the wrong host burnt it.
    expect((await workspaceGet(ALICE_HOST, `${alicesTicket.pathname}${alicesTicket.search}`, { cookie: alicesTicket.bind })).status).toBe(403);

    for (const garbage of ['', 'x', 'A'.repeat(43), '../../etc/passwd']) {
      const res = await workspaceGet(ALICE_HOST, `/_clawloops/redeem?ticket=${encodeURIComponent(garbage)}`);
      expect(res.status).toBe(403);
    }
  });

  test('unknown and malformed workspace hosts, and oversized headers, never reach a runtime', async () => {
    await startRuntime('alice');
    // A well-formed name nobody has: treated like any workspace without a session (no user enumeration).
    expect((await workspaceGet('nobody.platform.test:8080', '/')).status).toBe(302);
    for (const host of ['bad_name.platform.test', '-x.platform.test', 'a.b.platform.test', `${'a'.repeat(40)}.platform.test`, 'alice.platform.test:99999999']) {
      const res = await workspaceGet(host, '/');
      expect([400, 404]).toContain(res.status);
    }
    const huge = await workspaceGet(ALICE_HOST, '/', { cookie: `clawloops_ws=${'a'.repeat(20_000)}` }).catch(() => ({ status: 431 }) as RawResponse);
    expect(huge.status).toBe(431);
    expect(seen).toHaveLength(0);
  });

  test('WebSockets: the owner is connected to the runtime both ways; others get an HTTP refusal', async () => {
    await startRuntime('alice');
    const cookie = await workspaceCookie('alice');
    const ws = await rawUpgrade(port, { host: ALICE_HOST, path: '/ws', headers: { cookie, origin: 'http://alice.platform.test:8080', 'x-forwarded-user': 'admin' } });
    expect(ws.status).toBe(101);
    expect(seen.at(-1)?.headers['x-forwarded-user']).toBe('alice');
    const echoed = await new Promise<string>((resolve) => {
      ws.socket?.once('data', (d: Buffer) => resolve(d.toString()));
      ws.socket?.write('ping-frame');
    });
    expect(echoed).toBe('ping-frame');

    // Stopping the runtime ends the workspace session, and the open socket with it.
    const closed = new Promise<void>((resolve) => ws.socket?.once('close', () => resolve()));
    await stopRuntime('alice');
    await closed;

    await startRuntime('alice');
    const anonymous = await rawUpgrade(port, { host: ALICE_HOST, path: '/ws' });
    expect(anonymous.status).toBe(401);
    const bob = await rawUpgrade(port, { host: ALICE_HOST, path: '/ws', headers: { cookie: await workspaceCookie('bob', BOB_HOST) } });
    expect(bob.status).toBe(403);
    const platform = await rawUpgrade(port, { host: PLATFORM_HOST, path: '/api/v1/runtime/events' });
    expect(platform.status).toBe(404);
  });

  test('a stopped workspace shows the wake page, which starts it from its own origin only', async () => {
    const cookie = await workspaceCookie('alice');
    const page = await workspaceGet(ALICE_HOST, '/', { cookie });
    expect(page.status).toBe(503);
    expect(page.body).toContain('Start workspace');
    expect(page.headers['content-security-policy']).toMatch(/script-src 'nonce-/);

    const status = await rawRequest(port, { host: ALICE_HOST, path: '/_clawloops/status', headers: { cookie } });
    expect(JSON.parse(status.body).state).toBe('absent');

    const foreign = await rawRequest(port, { method: 'POST', host: ALICE_HOST, path: '/_clawloops/start', headers: { cookie, origin: 'http://bob.platform.test:8080' } });
    expect(foreign.status).toBe(403);
    const start = await rawRequest(port, { method: 'POST', host: ALICE_HOST, path: '/_clawloops/start', headers: { cookie, origin: 'http://alice.platform.test:8080' } });
    expect(start.status).toBe(202);
    await h.platform.runtimes.settled(JSON.parse(start.body).runtime.id);
    const after = await workspaceGet(ALICE_HOST, '/', { cookie });
    expect(after.status).toBe(200);
    expect(seen.at(-1)?.headers['x-forwarded-user']).toBe('alice');
  });

  test('the wake page of a workspace an administrator stopped says so, and when, without naming them', async () => {
    await startRuntime('alice');
    const stop = await admin.post(`/api/v1/admin/users/${users.alice?.userId ?? ''}/runtime/stop`);
    expect(stop.status).toBe(202);
    await h.platform.runtimes.settled(stop.body.runtime.id);
    const cookie = await workspaceCookie('alice');
    const page = await workspaceGet(ALICE_HOST, '/', { cookie });
    expect(page.status).toBe(503);
    const when = new Date(h.clock.now()).toISOString().slice(0, 16).replace('T', ' ');
    expect(page.body).toContain(`<p id="reason" class="muted">Stopped by an administrator at ${when} UTC</p>`);
    const status = JSON.parse((await rawRequest(port, { host: ALICE_HOST, path: '/_clawloops/status', headers: { cookie } })).body);
    expect(status).toMatchObject({ state: 'stopped', stoppedBy: { cause: 'admin' } });
  });

  test('signing out of the platform, disabling the user, or stopping the runtime ends workspace sessions', async () => {
    await startRuntime('alice');
    let cookie = await workspaceCookie('alice');
    expect((await workspaceGet(ALICE_HOST, '/', { cookie })).status).toBe(200);
    await stopRuntime('alice');
    expect((await workspaceGet(ALICE_HOST, '/', { cookie })).status).toBe(302);

    await startRuntime('alice');
    cookie = await workspaceCookie('alice');
    await users.alice?.client.post('/api/v1/auth/logout');
    // The supertest agent's session is not the one the cookie came from: sign that one out too.
    await rawRequest(port, { method: 'POST', host: PLATFORM_HOST, path: '/api/v1/auth/logout', headers: { cookie: users.alice?.cookie ?? '', origin: 'http://platform.test:8080' } });
    expect((await workspaceGet(ALICE_HOST, '/', { cookie })).status).toBe(302);

    users.alice = { ...(users.alice as { client: TestAgent; userId: string }), cookie: await signIn('alice') };
    cookie = await workspaceCookie('alice');
    expect((await workspaceGet(ALICE_HOST, '/', { cookie })).status).toBe(200);
    const disabled = await admin.patch(`/api/v1/admin/users/${users.alice.userId}`).send({ status: 'disabled' });
    expect(disabled.status).toBe(200);
    const after = await workspaceGet(ALICE_HOST, '/', { cookie });
    expect(after.status).toBe(302);
  });

  test('platform state-changing endpoints refuse requests from a workspace origin', async () => {
    const res = await rawRequest(port, {
      method: 'POST',
      host: PLATFORM_HOST,
      path: '/api/v1/runtime/start',
      headers: { cookie: users.alice?.cookie ?? '', origin: 'http://alice.platform.test:8080', 'content-type': 'application/json' },
      body: '{}',
    });
    expect(res.status).toBe(403);
    expect(JSON.parse(res.body).error.code).toBe('ORIGIN_NOT_ALLOWED');
  });

  test('proxied requests count as activity for idle stop', async () => {
    await startRuntime('alice');
    const cookie = await workspaceCookie('alice');
    await h.platform.runtimes.settled(h.platform.runtimes.runtimeIdForUser(users.alice?.userId ?? '') ?? '');
    await admin.patch('/api/v1/admin/settings').send({ idleStopMinutes: 5 });
    h.clock.advance(4 * 60_000);
    expect((await workspaceGet(ALICE_HOST, '/', { cookie })).status).toBe(200);
    h.clock.advance(2 * 60_000);
    expect(h.platform.runtimes.stopIdle()).toBe(0);
    h.clock.advance(6 * 60_000);
    expect(h.platform.runtimes.stopIdle()).toBe(1);
  });
});

describe('sibling hosts: cookies, tickets and origins (a workspace page is run by its owner\'s agent)', () => {
  beforeEach(() => boot());

  test('a ticket redeems only in the browser that started the sign-in: pushed into another browser it is refused and burnt', async () => {
    // Bob asks for a sign-in link to his own workspace and tries to make Alice's browser use it.
    const bobs = await openWorkspace(users.bob?.cookie ?? '', 'bob');
    const path = `${bobs.pathname}${bobs.search}`;
    const withoutBinding = await workspaceGet(BOB_HOST, path);
    expect(withoutBinding.status).toBe(403);
    expect(withoutBinding.body).toContain('another browser');
    expect(setCookie(withoutBinding.headers, 'clawloops_ws')).toBeNull();
    // Burnt: not even Bob's own browser can use it now.
    expect((await workspaceGet(BOB_HOST, path, { cookie: bobs.bind })).status).toBe(403);

    // A victim browser with a binding of its own (it started a sign-in there) is refused too.
    const another = await openWorkspace(users.bob?.cookie ?? '', 'bob');
    const victimStart = await workspaceGet(BOB_HOST, '/_clawloops/login?next=/');
    const victimBinding = setCookie(victimStart.headers, 'clawloops_ws_bind');
    const pushed = await workspaceGet(BOB_HOST, `${another.pathname}${another.search}`, { cookie: `clawloops_ws_bind=${victimBinding?.value}` });
    expect(pushed.status).toBe(403);
    expect(setCookie(pushed.headers, 'clawloops_ws')).toBeNull();
    const audit = await rawRequest(port, { host: PLATFORM_HOST, path: '/api/v1/auth/me', headers: { cookie: users.alice?.cookie ?? '' } });
    expect(audit.status).toBe(200);
  });

  test('a platform request with two session cookies (one planted for the whole domain) is refused and both are cleared', async () => {
    const twice = `${users.alice?.cookie}; ${users.bob?.cookie}`;
    const me = await rawRequest(port, { host: PLATFORM_HOST, path: '/api/v1/auth/me', headers: { cookie: twice } });
    expect(me.status).toBe(400);
    expect(JSON.parse(me.body).error.code).toBe('SESSION_COOKIE_CONFLICT');
    const cleared = me.headers['set-cookie'] ?? [];
    expect(cleared).toEqual(expect.arrayContaining(['clawloops_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax', 'clawloops_session=; Path=/; Domain=platform.test; Max-Age=0; HttpOnly; SameSite=Lax']));
    // State-changing requests and the workspace hand-off refuse it as well: neither session is used.
    const start = await rawRequest(port, { method: 'POST', host: PLATFORM_HOST, path: '/api/v1/runtime/start', headers: { cookie: twice, origin: 'http://platform.test:8080', 'content-type': 'application/json' }, body: '{}' });
    expect(start.status).toBe(400);
    const open = await platformGet('/_clawloops/open?workspace=bob&bind=' + 'a'.repeat(64), twice);
    expect(open.status).toBe(302);
    expect(open.headers.location).toMatch(/^\/login\?next=/);
  });

  test('WebSockets and state-changing requests to a workspace are refused from another origin; reads are not', async () => {
    await startRuntime('alice');
    const cookie = await workspaceCookie('alice');
    seen.length = 0;
    for (const origin of ['http://bob.platform.test:8080', 'http://platform.test:8080', 'null', 'https://evil.example']) {
      const ws = await rawUpgrade(port, { host: ALICE_HOST, path: '/ws', headers: { cookie, origin } });
      expect([origin, ws.status]).toEqual([origin, 403]);
      expect(JSON.parse(ws.body).error.code).toBe('ORIGIN_NOT_ALLOWED');
      const post = await rawRequest(port, { method: 'POST', host: ALICE_HOST, path: '/api/anything', headers: { cookie, origin, 'content-type': 'application/json' }, body: '{}' });
      expect([origin, post.status]).toEqual([origin, 403]);
    }
    expect(seen).toHaveLength(0);
    const read = await rawRequest(port, { host: ALICE_HOST, path: '/avatar.png', headers: { cookie, origin: 'http://bob.platform.test:8080' } });
    expect(read.status).toBe(200);
    const own = await rawUpgrade(port, { host: ALICE_HOST, path: '/ws', headers: { cookie, origin: 'http://alice.platform.test:8080' } });
    expect(own.status).toBe(101);
    own.socket?.destroy();
  });
});

describe('over https', () => {
  const HTTPS_ORIGIN = 'https://platform.test:8080';
  /** Raw requests with their own cookies: a test HTTP client will not send Secure cookies over plain HTTP. */
  const post = (path: string, body: unknown, cookie = '') =>
    rawRequest(port, { method: 'POST', host: PLATFORM_HOST, path, headers: { 'content-type': 'application/json', origin: HTTPS_ORIGIN, ...(cookie ? { cookie } : {}) }, body: JSON.stringify(body) });
  const sessionOf = (res: RawResponse) => `__Host-clawloops_session=${setCookie(res.headers, '__Host-clawloops_session')?.value}`;

  beforeEach(async () => {
    await boot({ CLAWLOOPS_PUBLIC_URL: HTTPS_ORIGIN }, false);
    const setup = await post('/api/v1/setup', { token: h.platform.setup.issueToken(), username: 'admin', password: STRONG_PASSWORD });
    expect(setup.status).toBe(201);
    for (const name of ['alice', 'bob']) {
      const invitation = await post('/api/v1/admin/invitations', { role: 'member' }, sessionOf(setup));
      const secret = (JSON.parse(invitation.body) as { link: string }).link.split('/invite/')[1];
      const accepted = await post(`/api/v1/invitations/${secret}/accept`, { username: name, password: STRONG_PASSWORD });
      expect(accepted.status).toBe(201);
    }
  });

  test('the session and workspace cookies carry the __Host- prefix, so no sibling host can set or shadow them', async () => {
    const login = await post('/api/v1/auth/login', { username: 'alice', password: STRONG_PASSWORD });
    expect(login.status).toBe(200);
    const session = setCookie(login.headers, '__Host-clawloops_session');
    expect(session?.attributes).toEqual(expect.arrayContaining(['Path=/', 'HttpOnly', 'Secure']));
    expect(session?.attributes.some((a) => /^domain=/i.test(a))).toBe(false);
    const platformCookie = sessionOf(login);
    const bobs = sessionOf(await post('/api/v1/auth/login', { username: 'bob', password: STRONG_PASSWORD }));
    // A plain-named copy (what a workspace page could plant for the whole domain) is not a session here.
    const plantedCookie = bobs.replace('__Host-', '');
    const planted = await rawRequest(port, { host: PLATFORM_HOST, path: '/api/v1/auth/me', headers: { cookie: plantedCookie } });
    expect(planted.status).toBe(401);
    const both = await rawRequest(port, { host: PLATFORM_HOST, path: '/api/v1/auth/me', headers: { cookie: `${plantedCookie}; ${platformCookie}` } });
    expect(JSON.parse(both.body).user.username).toBe('alice');

    const ws = await workspaceSessionCookie(port, { platformHost: PLATFORM_HOST, platformCookie, workspace: 'alice', workspaceHost: ALICE_HOST });
    expect(ws.startsWith('__Host-clawloops_ws=')).toBe(true);
  });
});

describe('forward-auth endpoint (requests shaped like Traefik ForwardAuth)', () => {
  beforeEach(() => boot({ CLAWLOOPS_ROUTER: 'traefik' }));

  /** What Traefik sends: the browser's method, headers and cookies, and X-Forwarded-* describing the original request. */
  function forwardAuth(original: { host: string; uri: string; method?: string; cookie?: string; headers?: Record<string, string> }): Promise<RawResponse> {
    return rawRequest(port, {
      method: original.method ?? 'GET',
      host: 'clawloops:8080',
      path: '/_clawloops/forward-auth',
      headers: {
        ...HTML,
        'x-forwarded-method': original.method ?? 'GET',
        'x-forwarded-proto': 'http',
        'x-forwarded-host': original.host,
        'x-forwarded-uri': original.uri,
        'x-forwarded-for': '172.20.0.1',
        ...(original.cookie ? { cookie: original.cookie } : {}),
        ...original.headers,
      },
    });
  }

  test('ticket redemption answers with the host-only cookie and a redirect, then the owner is let through as themselves', async () => {
    await startRuntime('alice');
    const redeem = await openWorkspace(users.alice?.cookie ?? '', 'alice', '/chat');
    const redeemed = await forwardAuth({ host: ALICE_HOST, uri: `${redeem.pathname}${redeem.search}`, cookie: redeem.bind });
    expect(redeemed.status).toBe(302);
    expect(redeemed.headers.location).toBe('/chat');
    const cookie = setCookie(redeemed.headers, 'clawloops_ws');
    expect(cookie).not.toBeNull();

    const allowed = await forwardAuth({ host: ALICE_HOST, uri: '/chat', cookie: `clawloops_ws=${cookie?.value}`, headers: { 'x-forwarded-user': 'admin' } });
    expect(allowed.status).toBe(200);
    expect(allowed.headers['x-forwarded-user']).toBe('alice');
    // WebSocket upgrades are checked the same way.
    const upgrade = await forwardAuth({ host: ALICE_HOST, uri: '/ws', cookie: `clawloops_ws=${cookie?.value}`, headers: { upgrade: 'websocket', accept: '*/*' } });
    expect(upgrade.status).toBe(200);
  });

  test('anonymous, non-owner, forged identity, stopped runtime and bad input: never a 2xx', async () => {
    await startRuntime('alice');
    const anonymousPage = await forwardAuth({ host: ALICE_HOST, uri: '/' });
    expect(anonymousPage.status).toBe(302);
    expect(anonymousPage.headers.location).toMatch(/^http:\/\/platform\.test:8080\/_clawloops\/open\?workspace=alice/);
    expect((await forwardAuth({ host: ALICE_HOST, uri: '/api', headers: { accept: 'application/json' } })).status).toBe(401);

    const forged = await forwardAuth({ host: ALICE_HOST, uri: '/', headers: { 'x-forwarded-user': 'alice' } });
    expect(forged.status).toBe(302);
    expect(forged.headers['x-forwarded-user']).toBeUndefined();

    const bob = await forwardAuth({ host: ALICE_HOST, uri: '/', cookie: await workspaceCookie('bob', BOB_HOST) });
    expect(bob.status).toBe(403);
    expect(bob.body).toContain('belongs to another account');

    const cookie = await workspaceCookie('alice');
    await stopRuntime('alice');
    expect((await forwardAuth({ host: ALICE_HOST, uri: '/', cookie })).status).toBe(302);

    expect((await forwardAuth({ host: 'bad_name.platform.test', uri: '/' })).status).toBe(404);
    expect((await forwardAuth({ host: PLATFORM_HOST, uri: '/' })).status).toBe(403);
    const missing = await rawRequest(port, { host: 'clawloops:8080', path: '/_clawloops/forward-auth' });
    expect(missing.status).toBe(400);
  });

  /**
   * Behind Traefik the proxied WebSocket is not ours to close: what ends access is the next
   * forward-auth check. It must refuse as soon as the platform session the workspace cookie came
   * from has ended, though the same cookie was let through (and its answer kept) a moment before.
   */
  const platformCall = (path: string, cookie: string, body: unknown = {}) =>
    rawRequest(port, { method: 'POST', host: PLATFORM_HOST, path, headers: { cookie, origin: 'http://platform.test:8080', 'content-type': 'application/json' }, body: JSON.stringify(body) });

  test.each([
    ['signing out', async () => expect((await platformCall('/api/v1/auth/logout', users.alice?.cookie ?? '')).status).toBe(204)],
    [
      'a password change from another session',
      async () => {
        const other = await signIn('alice');
        expect((await platformCall('/api/v1/account/password', other, { currentPassword: STRONG_PASSWORD, newPassword: OTHER_STRONG_PASSWORD })).status).toBe(204);
      },
    ],
    ['an admin password reset', async () => expect((await admin.post(`/api/v1/admin/users/${users.alice?.userId}/password-reset`).send({})).status).toBe(200)],
    ['disabling the user', async () => expect((await admin.patch(`/api/v1/admin/users/${users.alice?.userId}`).send({ status: 'disabled' })).status).toBe(200)],
  ])('after %s, the next forward-auth check of a workspace cookie from the ended session is refused (never a 2xx)', async (_what, endSession) => {
    await startRuntime('alice');
    const cookie = await workspaceCookie('alice');
    const check = () => forwardAuth({ host: ALICE_HOST, uri: '/chat', cookie });
    const upgradeCheck = () => forwardAuth({ host: ALICE_HOST, uri: '/ws', cookie, headers: { upgrade: 'websocket', accept: '*/*' } });
    expect((await check()).status).toBe(200);
    expect((await upgradeCheck()).status).toBe(200);

    await endSession();

    for (const refused of [await check(), await upgradeCheck()]) {
      expect(refused.status).toBeGreaterThanOrEqual(300);
      expect(refused.headers['x-forwarded-user']).toBeUndefined();
    }
    // A page load is sent back to the platform to sign in again.
    expect((await check()).headers.location).toMatch(/^http:\/\/platform\.test:8080\/_clawloops\/open\?workspace=alice/);
  });

  test('a password change ends the other sessions only: a workspace cookie from the session that changed it still passes forward-auth', async () => {
    await startRuntime('alice');
    const changer = await signIn('alice');
    const kept = await workspaceSessionCookie(port, { platformHost: PLATFORM_HOST, platformCookie: changer, workspace: 'alice', workspaceHost: ALICE_HOST });
    const ended = await workspaceCookie('alice');
    expect((await forwardAuth({ host: ALICE_HOST, uri: '/', cookie: ended })).status).toBe(200);
    expect((await platformCall('/api/v1/account/password', changer, { currentPassword: STRONG_PASSWORD, newPassword: OTHER_STRONG_PASSWORD })).status).toBe(204);
    expect((await forwardAuth({ host: ALICE_HOST, uri: '/', cookie: ended })).status).toBe(302);
    const allowed = await forwardAuth({ host: ALICE_HOST, uri: '/', cookie: kept });
    expect(allowed.status).toBe(200);
    expect(allowed.headers['x-forwarded-user']).toBe('alice');
  });

  test("behind Traefik, WebSocket upgrades (routed to the control plane by the runtime's labels) are checked, proxied, and closed when the session ends", async () => {
    await startRuntime('alice');
    const cookie = await workspaceCookie('alice');
    const anonymous = await rawUpgrade(port, { host: ALICE_HOST, path: '/ws', headers: { origin: 'http://alice.platform.test:8080' } });
    expect(anonymous.status).toBe(401);
    const ws = await rawUpgrade(port, { host: ALICE_HOST, path: '/ws', headers: { cookie, origin: 'http://alice.platform.test:8080' } });
    expect(ws.status).toBe(101);
    expect(seen.at(-1)?.headers['x-forwarded-user']).toBe('alice');
    const closed = new Promise<void>((resolve) => ws.socket?.once('close', () => resolve()));
    const logout = await rawRequest(port, { method: 'POST', host: PLATFORM_HOST, path: '/api/v1/auth/logout', headers: { cookie: users.alice?.cookie ?? '', origin: 'http://platform.test:8080' } });
    expect(logout.status).toBe(204);
    await closed;
  });

  test('with Traefik routing, the control plane answers a workspace host only with the wake page (the catch-all route)', async () => {
    await startRuntime('alice');
    const cookie = await workspaceCookie('alice');
    const page = await workspaceGet(ALICE_HOST, '/', { cookie });
    expect(page.status).toBe(503);
    expect(page.body).toContain('Workspace of alice');
    expect(seen).toHaveLength(0);
  });
});

describe('path mode', () => {
  beforeEach(() => boot({ CLAWLOOPS_WORKSPACE_ROUTING: 'path' }));

  test('the workspace lives under /w/<user>/ with a cookie for that path, and the path reaches the runtime unchanged', async () => {
    await startRuntime('alice');
    const anonymous = await workspaceGet(PLATFORM_HOST, '/w/alice/chat');
    expect(anonymous.status).toBe(302);
    expect(new URL(anonymous.headers.location ?? '').searchParams.get('next')).toBe('/chat');

    const redeem = await openWorkspace(users.alice?.cookie ?? '', 'alice', '/chat', PLATFORM_HOST);
    expect(`${redeem.origin}${redeem.pathname}`).toBe('http://platform.test:8080/w/alice/_clawloops/redeem');
    const redeemed = await workspaceGet(PLATFORM_HOST, `${redeem.pathname}${redeem.search}`, { cookie: redeem.bind });
    expect(redeemed.status).toBe(302);
    expect(redeemed.headers.location).toBe('/w/alice/chat');
    const cookie = setCookie(redeemed.headers, 'clawloops_ws');
    expect(cookie?.attributes).toContain('Path=/w/alice');

    const res = await workspaceGet(PLATFORM_HOST, '/w/alice/chat', { cookie: `clawloops_ws=${cookie?.value}; ${users.alice?.cookie}` });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toEqual({ url: '/w/alice/chat' });
    expect(seen.at(-1)?.headers.cookie).toBeUndefined();

    const bob = await workspaceGet(PLATFORM_HOST, '/w/alice/', { cookie: `clawloops_ws=${cookie?.value}`.replace(/.$/, 'x') });
    expect(bob.status).toBe(302);
    // The platform itself is untouched by the workspace prefix.
    expect((await rawRequest(port, { host: PLATFORM_HOST, path: '/healthz' })).status).toBe(200);
  });
});
