/**
 * The front door keeps its access decisions and routes between requests (workspace cookie → allow,
 * user → runtime address, model key → caller). These tests pin that a kept "allow" never outlives
 * what ended it: each event that ends access is followed at once by a refusal, including a change
 * made by the admin CLI in another process (caught through the database's change counter).
 */
import { execFile } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import Database from 'better-sqlite3';
import type TestAgent from 'supertest/lib/agent';
import { DATABASE_FILE_NAME } from '../../src/db/database';
import { ACCESS_REVALIDATE_MS } from '../../src/domain/workspaceAccessCache';
import { alwaysReadyProbe, FakeProvisioner } from '../support/fakeProvisioner';
import { createHarness, STRONG_PASSWORD, type Harness } from '../support/harness';
import { closeServer, rawRequest, servePlatform, signInCookie, standInRuntimeAddress, type RawResponse, workspaceSessionCookie } from '../support/hostClient';
import { startTestModelUpstream, type TestModelUpstream } from '../support/testModelUpstream';

const PLATFORM_HOST = 'platform.test:8080';
const ALICE_HOST = 'alice.platform.test:8080';
const MODEL = 'test-model';
const RUNTIME_ADDRESS = standInRuntimeAddress(131);

let h: Harness;
let backend: FakeProvisioner;
let server: http.Server;
let port: number;
let runtime: http.Server;
let upstream: TestModelUpstream;
let proxied = 0;
let admin: TestAgent;
let alice: { client: TestAgent; userId: string; cookie: string };

/** A script's request (not a page load): refused with a status, never redirected to sign in. */
const workspaceGet = (cookie: string): Promise<RawResponse> => rawRequest(port, { host: ALICE_HOST, path: '/app.js', headers: { cookie, accept: '*/*' } });

const modelList = (key: string) => fetch(`http://127.0.0.1:${port}/llm/v1/models`, { headers: { authorization: `Bearer ${key}` } });

/** Runs the admin CLI in its own process on the platform's data directory. */
function adminCli(...args: string[]): Promise<string> {
  const root = path.resolve(__dirname, '..', '..');
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [require.resolve('tsx/cli'), path.join(root, 'src', 'cli', 'admin.ts'), ...args],
      { cwd: root, env: { ...process.env, CLAWLOOPS_DATA_DIR: h.dataDir, CLAWLOOPS_PUBLIC_URL: h.config.publicUrl }, timeout: 60_000 },
      (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)),
    );
  });
}

beforeAll(async () => {
  runtime = http.createServer((_req, res) => {
    proxied++;
    res.end('from the runtime');
  });
  await new Promise<void>((resolve) => runtime.listen(18789, RUNTIME_ADDRESS, resolve));
});

afterAll(async () => {
  runtime.closeAllConnections();
  await new Promise((resolve) => runtime.close(resolve));
});

beforeEach(async () => {
  upstream = await startTestModelUpstream('Hello', MODEL);
  backend = new FakeProvisioner();
  backend.runtimeHost = RUNTIME_ADDRESS;
  h = createHarness({
    runtimeProvisioner: backend,
    runtimeProbe: alwaysReadyProbe,
    runtimeSettings: { image: 'ghcr.io/openclaw/openclaw:2026.9.6', models: [MODEL] },
    env: { CLAWLOOPS_DOMAIN: 'platform.test' },
    llm: { upstreamUrl: `http://127.0.0.1:${upstream.port}/v1`, upstreamKey: 'sk-upstream', timeoutMs: 5_000 },
  });
  backend.images.add('ghcr.io/openclaw/openclaw:2026.9.6');
  ({ server, port } = await servePlatform(h.platform));
  admin = (await h.setupAdmin('admin')).client;
  const member = await h.createMember(admin, 'alice');
  alice = { ...member, cookie: await signInCookie(port, PLATFORM_HOST, 'alice', STRONG_PASSWORD, h.config.publicOrigin) };
  const started = await member.client.post('/api/v1/runtime/start');
  await h.platform.runtimes.settled(started.body.runtime.id);
  proxied = 0;
});

afterEach(async () => {
  h.platform.closeWorkspaceSockets();
  await closeServer(server);
  await upstream.close();
  await h.platform.runtimes.drain(5_000);
  h.close();
});

const aliceWorkspaceCookie = () => workspaceSessionCookie(port, { platformHost: PLATFORM_HOST, platformCookie: alice.cookie, workspace: 'alice', workspaceHost: ALICE_HOST });

/** The model key rendered into Alice's running container. */
function aliceModelKey(): string {
  const container = [...backend.instances.values()].find((c) => c.phase === 'running');
  const key = container?.spec.secretEnv.CLAWLOOPS_MODEL_KEY;
  if (!key) throw new Error('no running container with a model key');
  return key;
}

describe('kept workspace decisions', () => {
  test('an allow is kept: a session row removed behind the platform\'s back still lets in until the answer is re-read', async () => {
    const cookie = await aliceWorkspaceCookie();
    expect((await workspaceGet(cookie)).status).toBe(200);
    // The same connection as the platform's: no event, no change counter. Only the kept answer lets this in.
    h.platform.db.prepare('DELETE FROM workspace_sessions').run();
    expect((await workspaceGet(cookie)).status).toBe(200);
    h.clock.advance(ACCESS_REVALIDATE_MS);
    expect((await workspaceGet(cookie)).status).toBe(401);
    expect(proxied).toBe(2);
  });

  test('signing out of the platform refuses the next request at once', async () => {
    const cookie = await aliceWorkspaceCookie();
    expect((await workspaceGet(cookie)).status).toBe(200);
    const out = await rawRequest(port, { method: 'POST', host: PLATFORM_HOST, path: '/api/v1/auth/logout', headers: { cookie: alice.cookie, origin: h.config.publicOrigin } });
    expect(out.status).toBe(204);
    expect((await workspaceGet(cookie)).status).toBe(401);
    expect(proxied).toBe(1);
  });

  test('an administrator resetting the password (which ends the sessions) refuses the next request at once', async () => {
    const cookie = await aliceWorkspaceCookie();
    expect((await workspaceGet(cookie)).status).toBe(200);
    expect((await admin.post(`/api/v1/admin/users/${alice.userId}/password-reset`)).status).toBe(200);
    expect((await workspaceGet(cookie)).status).toBe(401);
  });

  test('revoking the workspace sessions (the runtime stops) refuses the next request at once', async () => {
    const cookie = await aliceWorkspaceCookie();
    expect((await workspaceGet(cookie)).status).toBe(200);
    h.platform.workspaceSessions.revokeForUser(alice.userId);
    expect((await workspaceGet(cookie)).status).toBe(401);
  });

  test('disabling the user refuses the next request at once', async () => {
    const cookie = await aliceWorkspaceCookie();
    expect((await workspaceGet(cookie)).status).toBe(200);
    expect((await admin.patch(`/api/v1/admin/users/${alice.userId}`).send({ status: 'disabled' })).status).toBe(200);
    expect((await workspaceGet(cookie)).status).toBe(401);
  });

  test('deleting the user refuses the next request at once', async () => {
    const cookie = await aliceWorkspaceCookie();
    expect((await workspaceGet(cookie)).status).toBe(200);
    expect((await admin.delete(`/api/v1/admin/users/${alice.userId}`)).status).toBeLessThan(300);
    expect((await workspaceGet(cookie)).status).toBe(401);
  });

  test('an expiring platform session is not outlived: the kept answer ends with the idle timeout', async () => {
    const cookie = await aliceWorkspaceCookie();
    expect((await workspaceGet(cookie)).status).toBe(200);
    h.clock.advance(h.config.sessionIdleTimeoutMs);
    expect((await workspaceGet(cookie)).status).toBe(401);
  });

  test('the admin CLI (another process) resetting the password refuses the next request at once', async () => {
    const cookie = await aliceWorkspaceCookie();
    expect((await workspaceGet(cookie)).status).toBe(200);
    expect(await adminCli('reset-password', 'alice')).toContain('Temporary password for alice');
    expect((await workspaceGet(cookie)).status).toBe(401);
    expect(proxied).toBe(1);
  }, 60_000);
});

describe('kept routes', () => {
  test('the runtime going down (as the engine reports it) stops routing at once, without its sessions being revoked', async () => {
    const cookie = await aliceWorkspaceCookie();
    expect((await workspaceGet(cookie)).status).toBe(200);
    const runtimeId = h.platform.runtimes.runtimeIdForUser(alice.userId) ?? '';
    const container = [...backend.instances.values()].find((c) => c.phase === 'running');
    if (!container) throw new Error('no running container');
    backend.crash(container.id, { exitCode: 137 });
    await h.platform.runtimes.refresh(runtimeId, container.id);
    const after = await workspaceGet(cookie);
    expect(after.status).toBe(503);
    expect(JSON.parse(after.body).error.code).toBe('WORKSPACE_NOT_RUNNING');
    expect(proxied).toBe(1);
  });

  test('a stop launched for the runtime stops routing at once', async () => {
    const cookie = await aliceWorkspaceCookie();
    expect((await workspaceGet(cookie)).status).toBe(200);
    const stop = await alice.client.post('/api/v1/runtime/stop');
    expect((await workspaceGet(cookie)).status).not.toBe(200);
    await h.platform.runtimes.settled(stop.body.runtime.id);
    expect(proxied).toBe(1);
  });
});

describe('kept model keys', () => {
  test('a key is refused once its container is removed (the key dies with it), and at once when its owner is disabled', async () => {
    let key = aliceModelKey();
    expect((await modelList(key)).status).toBe(200);
    const removed = await alice.client.delete('/api/v1/runtime');
    await h.platform.runtimes.settled(removed.body.runtime.id);
    expect((await modelList(key)).status).toBe(401);
    const started = await alice.client.post('/api/v1/runtime/start');
    await h.platform.runtimes.settled(started.body.runtime.id);
    expect(aliceModelKey()).not.toBe(key);
    key = aliceModelKey();
    expect((await modelList(key)).status).toBe(200);
    expect((await admin.patch(`/api/v1/admin/users/${alice.userId}`).send({ status: 'disabled' })).status).toBe(200);
    expect((await modelList(key)).status).toBe(401);
  });

  test('a write by another process (a second connection to the database) drops the kept keys', async () => {
    const key = aliceModelKey();
    expect((await modelList(key)).status).toBe(200);
    const other = new Database(path.join(h.dataDir, DATABASE_FILE_NAME));
    try {
      other.prepare("UPDATE users SET status = 'disabled' WHERE id = ?").run(alice.userId);
    } finally {
      other.close();
    }
    expect((await modelList(key)).status).toBe(401);
  });
});
