/**
 * Ending a platform session ends everything opened under it, at once: the workspace sessions
 * derived from it, their open WebSockets (full control of the agent) and proxied requests in
 * flight, and the event and log streams opened with it. Whatever was opened under a session that
 * did NOT end stays open. The runtime is an in-memory provisioner whose "container" answers on a
 * loopback address: a WebSocket echo and an answer that never finishes.
 */
import http from 'node:http';
import type { Socket } from 'node:net';
import type TestAgent from 'supertest/lib/agent';
import { alwaysReadyProbe, FakeProvisioner } from '../support/fakeProvisioner';
import { eventually } from '../support/eventually';
import { createHarness, OTHER_STRONG_PASSWORD, STRONG_PASSWORD, type Harness } from '../support/harness';
import { closeServer, rawRequest, rawUpgrade, servePlatform, signInCookie, standInRuntimeAddress, workspaceSessionCookie } from '../support/hostClient';

const PLATFORM_HOST = 'platform.test:8080';
const PLATFORM_ORIGIN = 'http://platform.test:8080';
const ALICE_HOST = 'alice.platform.test:8080';
const ALICE_ORIGIN = 'http://alice.platform.test:8080';
const RUNTIME_ADDRESS = standInRuntimeAddress(77);

let h: Harness;
let server: http.Server;
let port: number;
let runtime: http.Server;
const runtimeSockets = new Set<Socket>();
let admin: TestAgent;
let aliceId: string;

/** Something open on the control plane; `closed` resolves when the control plane ends it. */
interface Open {
  what: string;
  closed: Promise<void>;
  isClosed(): boolean;
}

function track(what: string, emitter: { once(event: 'close', cb: () => void): unknown }): Open {
  let done = false;
  const closed = new Promise<void>((resolve) => emitter.once('close', () => ((done = true), resolve())));
  return { what, closed, isClosed: () => done };
}

/** A streamed GET (SSE, or the runtime's never-ending answer) held open by the client. */
function openGet(what: string, host: string, path: string, cookie: string): Promise<Open> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false, headers: { host, cookie, accept: 'text/event-stream' } }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`${what}: ${res.statusCode}`));
      res.resume();
      resolve(track(what, res));
    });
    req.on('error', () => undefined);
  });
}

interface SessionHandles {
  cookie: string;
  sessionId: string;
  opened: Open[];
  /** The workspace WebSocket (the runtime echoes what it is sent). */
  socket: Socket;
}

/** Signs Alice in and opens, under that one session, everything a session can hold open. */
async function openEverything(): Promise<SessionHandles> {
  const cookie = await signInCookie(port, PLATFORM_HOST, 'alice', currentPassword);
  const me = await rawRequest(port, { host: PLATFORM_HOST, path: '/api/v1/auth/me', headers: { cookie } });
  const sessionId = (JSON.parse(me.body) as { session: { id: string } }).session.id;
  const wsCookie = await workspaceSessionCookie(port, { platformHost: PLATFORM_HOST, platformCookie: cookie, workspace: 'alice', workspaceHost: ALICE_HOST });
  const ws = await rawUpgrade(port, { host: ALICE_HOST, path: '/ws', headers: { cookie: wsCookie, origin: ALICE_ORIGIN } });
  expect(ws.status).toBe(101);
  const socket = ws.socket as Socket;
  socket.on('error', () => undefined);
  const opened: Open[] = [
    track('the workspace WebSocket', socket),
    await openGet('a proxied request in flight', ALICE_HOST, '/never-ending', wsCookie),
    await openGet("the wake page's event stream", ALICE_HOST, '/_clawloops/events', wsCookie),
    await openGet('the runtime event stream', PLATFORM_HOST, '/api/v1/runtime/events', cookie),
    await openGet('the followed log stream', PLATFORM_HOST, '/api/v1/runtime/logs?follow=1', cookie),
  ];
  return { cookie, sessionId, opened, socket };
}

async function expectAllClosed(handles: SessionHandles): Promise<void> {
  await Promise.all(handles.opened.map((o) => Promise.race([o.closed, new Promise((_r, reject) => setTimeout(() => reject(new Error(`${o.what} is still open`)), 5_000))])));
}

/**
 * Checks that nothing of `handles` was closed. Called once the other session's things are all
 * closed: the control plane ends a session's connections in one synchronous pass, so a wrong
 * close of these was sent by then too. One more round trip to the server orders the check after
 * anything that pass sent, without a fixed wait; the WebSocket must still echo.
 */
async function expectAllOpen(handles: SessionHandles): Promise<void> {
  expect((await rawRequest(port, { host: PLATFORM_HOST, path: '/healthz' })).status).toBe(200);
  expect(handles.opened.filter((o) => o.isClosed()).map((o) => o.what)).toEqual([]);
  const echoed = new Promise<string>((resolve) => handles.socket.once('data', (d: Buffer) => resolve(d.toString())));
  handles.socket.write('still there?');
  await expect(echoed).resolves.toBe('still there?');
}

const platformPost = (path: string, cookie: string, body: unknown = {}, method = 'POST') =>
  rawRequest(port, { method, host: PLATFORM_HOST, path, headers: { cookie, origin: PLATFORM_ORIGIN, 'content-type': 'application/json' }, body: JSON.stringify(body) });

let currentPassword = STRONG_PASSWORD;

beforeAll(async () => {
  runtime = http.createServer((req, res) => {
    // An answer that never finishes (a long stream from the agent): only a cut ends it.
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write('data: started\n\n');
  });
  runtime.on('upgrade', (_req, socket: Socket) => {
    runtimeSockets.add(socket);
    socket.once('close', () => runtimeSockets.delete(socket));
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
    socket.on('data', (d) => socket.write(d));
  });
  await new Promise<void>((resolve) => runtime.listen(18789, RUNTIME_ADDRESS, resolve));
});

afterAll(async () => {
  for (const socket of runtimeSockets) socket.destroy();
  runtime.closeAllConnections();
  await new Promise((resolve) => runtime.close(resolve));
});

beforeEach(async () => {
  const backend = new FakeProvisioner();
  backend.runtimeHost = RUNTIME_ADDRESS;
  h = createHarness({ runtimeProvisioner: backend, runtimeProbe: alwaysReadyProbe, runtimeSettings: { image: 'ghcr.io/openclaw/openclaw:2026.9.6' }, env: { CLAWLOOPS_DOMAIN: 'platform.test' } });
  backend.images.add('ghcr.io/openclaw/openclaw:2026.9.6');
  ({ server, port } = await servePlatform(h.platform));
  admin = (await h.setupAdmin('admin')).client;
  const alice = await h.createMember(admin, 'alice');
  aliceId = alice.userId;
  currentPassword = STRONG_PASSWORD;
  const started = await alice.client.post('/api/v1/runtime/start');
  await h.platform.runtimes.settled(started.body.runtime.id);
});

afterEach(async () => {
  // Upgraded sockets and event streams are not the HTTP server's to close.
  h.platform.closeWorkspaceSockets();
  h.platform.streams.endAll('test over');
  await closeServer(server);
  await h.platform.runtimes.drain(5_000);
  h.close();
});

describe('ending a session ends everything it opened, at once', () => {
  test('signing out', async () => {
    const a = await openEverything();
    const b = await openEverything();
    expect((await platformPost('/api/v1/auth/logout', a.cookie)).status).toBe(204);
    await expectAllClosed(a);
    await expectAllOpen(b);
  });

  test('changing the password (from another session): the other sessions end, the one that changed it stays', async () => {
    const a = await openEverything();
    const b = await openEverything();
    const changed = await platformPost('/api/v1/account/password', b.cookie, { currentPassword, newPassword: OTHER_STRONG_PASSWORD });
    expect(changed.status).toBe(204);
    currentPassword = OTHER_STRONG_PASSWORD;
    await expectAllClosed(a);
    await expectAllOpen(b);
  });

  test('"sign out everywhere else"', async () => {
    const a = await openEverything();
    const b = await openEverything();
    expect((await platformPost('/api/v1/account/sessions/revoke-others', b.cookie)).status).toBe(200);
    await expectAllClosed(a);
    await expectAllOpen(b);
  });

  test('revoking one session', async () => {
    const a = await openEverything();
    const b = await openEverything();
    expect((await platformPost(`/api/v1/account/sessions/${a.sessionId}`, b.cookie, undefined, 'DELETE')).status).toBe(204);
    await expectAllClosed(a);
    await expectAllOpen(b);
  });

  test.each([
    ['an admin password reset', () => admin.post(`/api/v1/admin/users/${aliceId}/password-reset`).send({})],
    ['a role change', () => admin.patch(`/api/v1/admin/users/${aliceId}`).send({ role: 'admin' })],
    ['disabling the user', () => admin.patch(`/api/v1/admin/users/${aliceId}`).send({ status: 'disabled' })],
  ])('%s ends every session of the user', async (_what, act) => {
    const a = await openEverything();
    const b = await openEverything();
    const res = await act();
    expect(res.status).toBe(200);
    await expectAllClosed(a);
    await expectAllClosed(b);
    // And nothing of theirs is let back in with the old cookies.
    expect((await rawRequest(port, { host: PLATFORM_HOST, path: '/api/v1/auth/me', headers: { cookie: a.cookie } })).status).toBe(401);
  });

  test('deleting the user ends every session of the user, and everything they opened, at once', async () => {
    const a = await openEverything();
    const b = await openEverything();
    // The sessions' rows would go with the user by a foreign-key cascade, silently: the delete must
    // report them as ended (not leave their connections to the runtime's removal or the sweep).
    const reported: string[] = [];
    const unsubscribe = h.platform.sessions.onEnded((ended) => reported.push(...ended.sessionIds));
    const res = await admin.delete(`/api/v1/admin/users/${aliceId}?purge=true`);
    unsubscribe();
    expect(res.status).toBe(204);
    expect(reported).toEqual(expect.arrayContaining([a.sessionId, b.sessionId]));
    await expectAllClosed(a);
    await expectAllClosed(b);
    expect(h.platform.db.prepare('SELECT COUNT(*) AS n FROM sessions WHERE user_id = ?').get(aliceId)).toEqual({ n: 0 });
    expect((await rawRequest(port, { host: PLATFORM_HOST, path: '/api/v1/auth/me', headers: { cookie: a.cookie } })).status).toBe(401);
  });

  test('a session ended outside this process (the admin CLI works on the database) ends what it opened at the next sweep', async () => {
    const a = await openEverything();
    h.platform.db.prepare('DELETE FROM sessions WHERE id = ?').run(a.sessionId);
    expect(h.platform.sweepOpenConnections()).toBe(a.opened.length);
    await expectAllClosed(a);
  });

  test('a session that expires while things are open ends them at the next sweep', async () => {
    const a = await openEverything();
    h.clock.advance(31 * 24 * 3600_000);
    h.platform.sessions.purgeExpired();
    await expectAllClosed(a);
  });
});

describe('open streams are bounded per user', () => {
  test('beyond 16 open event and log streams, one more is refused with 429 TOO_MANY_STREAMS; closing one makes room', async () => {
    const cookie = await signInCookie(port, PLATFORM_HOST, 'alice', currentPassword);
    const open: http.ClientRequest[] = [];
    const opened = async () =>
      new Promise<number>((resolve) => {
        const req = http.get({ host: '127.0.0.1', port, path: '/api/v1/runtime/events', agent: false, headers: { host: PLATFORM_HOST, cookie } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', () => undefined);
        open.push(req);
      });
    const statuses = await Promise.all(Array.from({ length: 20 }, opened));
    expect(statuses.filter((s) => s === 200)).toHaveLength(16);
    expect(statuses.filter((s) => s === 429)).toHaveLength(4);
    const logs = await rawRequest(port, { host: PLATFORM_HOST, path: '/api/v1/runtime/logs', headers: { cookie } });
    expect(logs.status).toBe(429);
    expect(JSON.parse(logs.body).error.code).toBe('TOO_MANY_STREAMS');
    // The admin's streams are the admin's own: Alice's count does not touch them.
    const adminCookie = await signInCookie(port, PLATFORM_HOST, 'admin', STRONG_PASSWORD);
    expect((await openGet('admin events', PLATFORM_HOST, `/api/v1/admin/users/${aliceId}/runtime/events`, adminCookie)).isClosed()).toBe(false);
    open[0]?.destroy();
    // Room again once the control plane has seen that stream close (assertRoom throws until then).
    await eventually(() => (h.platform.streams.assertRoom(aliceId), true), 'the closed stream to free its place', 5_000, 10);
    expect(await opened()).toBe(200);
    for (const req of open) req.destroy();
  });
});
