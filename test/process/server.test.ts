/**
 * The BUILT server (dist/main.js) as a real process: environment in, JSON log lines on stdout,
 * HTTP on a real port, signals, exit codes. scripts/test.sh builds before running jest and
 * makes sure a Docker engine answers at /var/run/docker.sock.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import Database from 'better-sqlite3';
import { DATABASE_FILE_NAME } from '../../src/db/database';
import { LATEST_SCHEMA_VERSION } from '../../src/db/migrations';
import {
  assertBuilt,
  call,
  cleanUpProcesses,
  DOCKER_SOCKET,
  freePort,
  field,
  isListening,
  login,
  MAIN,
  processTest,
  sessionCookie,
  spawnMain,
  startServer,
  stopServer,
  tempDir,
  type Child,
  type LogLine,
  type Server,
} from '../support/processes';

const ADMIN_PASSWORD = 'correct horse battery staple';
const OTHER_PASSWORD = 'violet kangaroo piano 42';

// ---------------------------------------------------------------------------------------------
// What only these tests need

function setupLines(child: Child): LogLine[] {
  return child.logs().filter((line) => 'setupUrl' in line);
}

function setupToken(child: Child): string {
  const lines = setupLines(child);
  expect(lines).toHaveLength(1);
  const url = new URL(String(lines[0]?.setupUrl));
  const token = url.searchParams.get('token');
  if (!token) throw new Error(`no token in the setup URL ${url.href}`);
  return token;
}

function occurrences(haystack: string, needle: string): number {
  return haystack.split(needle).length - 1;
}

const STACK_FRAME = /^\s+at .+/m;

/** Claims a freshly started instance through the setup URL it logged. */
async function claim(server: Server, username = 'admin', password = ADMIN_PASSWORD): Promise<string> {
  const token = setupToken(server.child);
  const res = await call(server, 'POST', '/api/v1/setup', {
    json: { token, username, password },
    headers: { Origin: server.publicUrl },
  });
  expect(res.status).toBe(201);
  return token;
}

// ---------------------------------------------------------------------------------------------

beforeAll(() => assertBuilt([MAIN]));
afterEach(cleanUpProcesses);

describe('first start', () => {
  processTest('logs the setup URL once; GET /setup says needed; the token creates the admin and then no longer works', async () => {
    const server = await startServer(tempDir());
    const { child } = server;

    const lines = setupLines(child);
    expect(lines).toHaveLength(1);
    expect(lines[0]?.level).toBe(40);
    const url = new URL(String(lines[0]?.setupUrl));
    expect(url.origin).toBe(server.publicUrl);
    expect(url.pathname).toBe('/setup');
    const token = url.searchParams.get('token') ?? '';
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);

    expect(await call(server, 'GET', '/api/v1/setup')).toMatchObject({ status: 200, body: { needed: true } });

    const wrong = await call(server, 'POST', '/api/v1/setup', {
      json: { token: 'x'.repeat(43), username: 'admin', password: ADMIN_PASSWORD },
      headers: { Origin: server.publicUrl },
    });
    expect([wrong.status, field(wrong.body, 'error.code')]).toEqual([403, 'INVALID_SETUP_TOKEN']);

    const created = await call(server, 'POST', '/api/v1/setup', {
      json: { token, username: 'admin', password: ADMIN_PASSWORD, displayName: 'Ada Admin' },
      headers: { Origin: server.publicUrl },
    });
    expect(created.status).toBe(201);
    expect(field(created.body, 'user')).toMatchObject({ username: 'admin', displayName: 'Ada Admin', role: 'admin', status: 'active' });
    const me = await call(server, 'GET', '/api/v1/auth/me', { headers: { Cookie: sessionCookie(created) } });
    expect([me.status, field(me.body, 'user.username')]).toEqual([200, 'admin']);

    const replay = await call(server, 'POST', '/api/v1/setup', {
      json: { token, username: 'mallory', password: OTHER_PASSWORD },
      headers: { Origin: server.publicUrl },
    });
    expect([replay.status, field(replay.body, 'error.code')]).toEqual([409, 'SETUP_ALREADY_DONE']);
    expect(await call(server, 'GET', '/api/v1/setup')).toMatchObject({ status: 200, body: { needed: false } });
    expect((await login(server, 'mallory', OTHER_PASSWORD)).status).toBe(401);

    await stopServer(server);
    // Still exactly one setup URL, the token nowhere else (request paths are masked), no password.
    expect(setupLines(child)).toHaveLength(1);
    expect(occurrences(child.output, token)).toBe(1);
    expect(child.output).not.toContain(ADMIN_PASSWORD);
    expect(child.stderr).toBe('');
  });

  processTest('a restart before setup issues a new token; the previous run\'s token is worthless', async () => {
    const dataDir = tempDir();
    const first = await startServer(dataDir, {}, 'first run');
    const oldToken = setupToken(first.child);
    await stopServer(first);

    const second = await startServer(dataDir, {}, 'second run');
    const newToken = setupToken(second.child);
    expect(newToken).not.toBe(oldToken);

    const stale = await call(second, 'POST', '/api/v1/setup', {
      json: { token: oldToken, username: 'admin', password: ADMIN_PASSWORD },
      headers: { Origin: second.publicUrl },
    });
    expect([stale.status, field(stale.body, 'error.code')]).toEqual([403, 'INVALID_SETUP_TOKEN']);
    await claim(second);
  });

  processTest('a restart with the same data directory keeps the admin and logs no setup URL', async () => {
    const dataDir = tempDir();
    const first = await startServer(dataDir, {}, 'first run');
    expect(first.child.logs().some((l) => l.msg === 'database migrated' && l.to === LATEST_SCHEMA_VERSION)).toBe(true);
    await claim(first);
    await stopServer(first);

    const second = await startServer(dataDir, {}, 'second run');
    expect(await call(second, 'GET', '/api/v1/setup')).toMatchObject({ status: 200, body: { needed: false } });
    const ok = await login(second, 'admin', ADMIN_PASSWORD);
    expect([ok.status, field(ok.body, 'user.role')]).toEqual([200, 'admin']);
    expect((await login(second, 'admin', OTHER_PASSWORD)).status).toBe(401);

    await stopServer(second);
    expect(setupLines(second.child)).toEqual([]);
    expect(second.child.output).not.toMatch(/setup\?token=/);
    // Already at the latest schema: nothing to migrate.
    expect(second.child.logs().some((l) => l.msg === 'database migrated')).toBe(false);
    expect(second.child.output).not.toContain(ADMIN_PASSWORD);
  });
});

describe('shutdown', () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    processTest(`${signal} exits with code 0 after logging the shutdown, even with an idle keep-alive connection open`, async () => {
      const server = await startServer(tempDir());
      const agent = new http.Agent({ keepAlive: true });
      try {
        expect((await call(server, 'GET', '/healthz', { agent })).status).toBe(200);
        server.child.proc.kill(signal);
        expect(await server.child.waitForExit()).toEqual({ code: 0, signal: null });
      } finally {
        agent.destroy();
      }
      const logs = server.child.logs();
      const shuttingDown = logs.find((l) => l.msg.startsWith('shutting down') && l.reason === signal);
      const complete = logs.find((l) => l.msg === 'shutdown complete');
      expect(shuttingDown).toBeDefined();
      expect(complete).toBeDefined();
      // By time, not by line: under load the pipe has been seen to deliver these two lines swapped.
      expect(Date.parse(String(complete?.time))).toBeGreaterThanOrEqual(Date.parse(String(shuttingDown?.time)));
      expect(server.child.stderr).toBe('');
    });
  }
});

describe('shutdown with a progress stream open', () => {
  processTest('SIGTERM ends open event streams with a shutdown event instead of waiting for the timeout', async () => {
    const server = await startServer(tempDir(), { CLAWLOOPS_ADMIN_USERNAME: 'admin', CLAWLOOPS_ADMIN_PASSWORD: ADMIN_PASSWORD, CLAWLOOPS_SHUTDOWN_TIMEOUT: '60s' });
    const cookie = sessionCookie(await login(server, 'admin', ADMIN_PASSWORD));
    let received = '';
    let signalled = false;
    const ended = new Promise<void>((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port: server.port, path: '/api/v1/runtime/events', headers: { cookie } }, (res) => {
        expect(res.headers['content-type']).toMatch(/^text\/event-stream/);
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          received += chunk;
          if (!signalled && received.includes('event: state')) {
            signalled = true;
            server.child.proc.kill('SIGTERM');
          }
        });
        res.on('end', resolve);
      });
      req.on('error', reject);
    });
    await ended;
    expect(received).toMatch(/event: state\ndata: \{.*"state":"absent"/);
    expect(received).toMatch(/event: shutdown\ndata: \{"reason":"The server is shutting down."\}/);
    expect(await server.child.waitForExit()).toEqual({ code: 0, signal: null });
    expect(server.child.logs().some((l) => l.msg.startsWith('shutdown timeout reached'))).toBe(false);
  });
});

describe('start-up failures', () => {
  processTest('a bad variable exits with code 78 and a message naming it, without a stack trace', async () => {
    const dataDir = path.join(tempDir(), 'data');
    const child = spawnMain('bad port', { CLAWLOOPS_PORT: 'abc', CLAWLOOPS_DATA_DIR: dataDir });
    expect(await child.waitForExit()).toEqual({ code: 78, signal: null });
    expect(child.stderr).toContain('CLAWLOOPS_PORT');
    expect(child.stderr).toContain('"abc"');
    expect(child.stderr).toMatch(/cannot start/);
    expect(child.output).not.toMatch(STACK_FRAME);
    expect(child.output).not.toMatch(/\.js:\d+/);
    expect(child.stdout).toBe('');
    // Refused before touching the disk.
    expect(fs.existsSync(dataDir)).toBe(false);
  });

  processTest('every bad variable is named at once; a refused admin password is not echoed', async () => {
    const weakPassword = 'Sh0rt!pw';
    const child = spawnMain('bad config', {
      CLAWLOOPS_DATA_DIR: path.join(tempDir(), 'data'),
      CLAWLOOPS_PUBLIC_URL: 'https://claw.example.com/some/path',
      CLAWLOOPS_ADMIN_USERNAME: 'admin',
      CLAWLOOPS_ADMIN_PASSWORD: weakPassword,
    });
    expect(await child.waitForExit()).toEqual({ code: 78, signal: null });
    expect(child.stderr).toContain('CLAWLOOPS_PUBLIC_URL');
    expect(child.stderr).toContain('CLAWLOOPS_ADMIN_PASSWORD');
    expect(child.output).not.toContain(weakPassword);
    expect(child.output).not.toMatch(STACK_FRAME);
  });

  processTest('a database written by a newer ClawLoops stops the server with a clear message and is left untouched', async () => {
    const dataDir = tempDir();
    const tooNew = LATEST_SCHEMA_VERSION + 98;
    const file = path.join(dataDir, DATABASE_FILE_NAME);
    const raw = new Database(file);
    raw.pragma(`user_version = ${tooNew}`);
    raw.close();

    const port = await freePort();
    const child = spawnMain('too-new database', {
      CLAWLOOPS_PORT: String(port),
      CLAWLOOPS_HOST: '127.0.0.1',
      CLAWLOOPS_DATA_DIR: dataDir,
      CLAWLOOPS_DOCKER_SOCKET: DOCKER_SOCKET,
    });
    const exit = await child.waitForExit();
    expect(exit.signal).toBeNull();
    expect(exit.code).not.toBe(0);
    expect(exit.code).not.toBeNull();

    const fatal = child.logs().find((l) => l.level === 60);
    expect(fatal).toMatchObject({ found: tooNew, supported: LATEST_SCHEMA_VERSION });
    expect(fatal?.msg).toContain(`schema version ${tooNew}`);
    expect(fatal?.msg).toContain(`only knows up to version ${LATEST_SCHEMA_VERSION}`);
    expect(child.output).not.toMatch(STACK_FRAME);
    expect(child.logs().some(isListening)).toBe(false);
    expect(setupLines(child)).toEqual([]);

    const check = new Database(file, { readonly: true });
    try {
      expect(check.pragma('user_version', { simple: true })).toBe(tooNew);
    } finally {
      check.close();
    }
  });
});

describe('initial administrator from the environment', () => {
  processTest('is created without a setup URL, can sign in, and its password never reaches the output', async () => {
    const dataDir = tempDir();
    const env = { CLAWLOOPS_ADMIN_USERNAME: 'Ops-Admin', CLAWLOOPS_ADMIN_PASSWORD: ADMIN_PASSWORD };
    const first = await startServer(dataDir, env, 'first run');
    expect(first.child.logs().find((l) => l.msg === 'initial administrator created from environment')).toMatchObject({
      username: 'ops-admin',
    });
    expect(setupLines(first.child)).toEqual([]);
    expect(await call(first, 'GET', '/api/v1/setup')).toMatchObject({ status: 200, body: { needed: false } });

    const ok = await login(first, 'ops-admin', ADMIN_PASSWORD);
    expect(ok.status).toBe(200);
    expect(field(ok.body, 'user')).toMatchObject({ username: 'ops-admin', role: 'admin', status: 'active', mustChangePassword: false });
    expect((await login(first, 'ops-admin', 'not the password at all')).status).toBe(401);
    await stopServer(first);

    // Once an admin exists the variables are ignored, even with another password in them.
    const second = await startServer(dataDir, { ...env, CLAWLOOPS_ADMIN_PASSWORD: OTHER_PASSWORD }, 'second run');
    expect(second.child.logs().some((l) => l.msg === 'initial administrator created from environment')).toBe(false);
    expect(setupLines(second.child)).toEqual([]);
    expect((await login(second, 'ops-admin', ADMIN_PASSWORD)).status).toBe(200);
    expect((await login(second, 'ops-admin', OTHER_PASSWORD)).status).toBe(401);
    await stopServer(second);

    for (const child of [first.child, second.child]) {
      expect(child.output).not.toContain(ADMIN_PASSWORD);
      expect(child.output).not.toContain(OTHER_PASSWORD);
      expect(child.stderr).toBe('');
    }
  });
});

describe('readiness', () => {
  processTest('/readyz is 200 against the real Docker engine', async () => {
    const server = await startServer(tempDir());
    const ready = await call(server, 'GET', '/readyz');
    expect(ready.status).toBe(200);
    expect(ready.body).toMatchObject({ status: 'ready', checks: { database: { ok: true }, docker: { ok: true } } });
    expect(String(field(ready.body, 'checks.docker.message'))).toMatch(/engine .* API 1\.\d+/);
    expect((await call(server, 'GET', '/healthz')).status).toBe(200);
  });

  processTest('/readyz is 503 naming docker when the engine socket does not exist; /healthz stays 200', async () => {
    const server = await startServer(tempDir(), { CLAWLOOPS_DOCKER_SOCKET: '/nonexistent.sock' });
    const ready = await call(server, 'GET', '/readyz');
    expect(ready.status).toBe(503);
    expect(field(ready.body, 'error.code')).toBe('NOT_READY');
    expect(String(field(ready.body, 'error.message'))).toMatch(/docker unreachable/);
    expect(ready.body).toMatchObject({ checks: { database: { ok: true }, docker: { ok: false } } });
    expect((await call(server, 'GET', '/healthz')).status).toBe(200);
  });
});

describe('a login flood against the real server (real scrypt)', () => {
  processTest('is answered 401 or 503 SERVER_BUSY at once, never starves /healthz or a signed-in password change, and leaves a bounded audit log written at shutdown', async () => {
    const dataDir = tempDir();
    const server = await startServer(dataDir, { CLAWLOOPS_ADMIN_USERNAME: 'admin', CLAWLOOPS_ADMIN_PASSWORD: ADMIN_PASSWORD, CLAWLOOPS_TRUST_PROXY: 'true' });
    const cookie = sessionCookie(await login(server, 'admin', ADMIN_PASSWORD));

    let unanswered = 80;
    const flood = Array.from({ length: 80 }, (_, i) =>
      call(server, 'POST', '/api/v1/auth/login', {
        json: { username: `ghost-${i}`, password: 'wrong password 123' },
        headers: { Origin: server.publicUrl, 'X-Forwarded-For': `198.51.100.${i + 1}` },
      }).finally(() => (unanswered -= 1)),
    );
    expect((await call(server, 'GET', '/healthz')).status).toBe(200);
    const change = await call(server, 'POST', '/api/v1/account/password', {
      json: { currentPassword: ADMIN_PASSWORD, newPassword: OTHER_PASSWORD },
      headers: { Origin: server.publicUrl, Cookie: cookie },
    });
    expect(change.status).toBe(204);
    // Both came back while the flood was still being checked.
    expect(unanswered).toBeGreaterThan(0);

    const answers = await Promise.all(flood);
    expect(answers.filter((r) => r.status === 401).length).toBeGreaterThan(0);
    const busy = answers.filter((r) => r.status === 503);
    expect(busy.length).toBeGreaterThan(0);
    expect(busy.every((r) => field(r.body, 'error.code') === 'SERVER_BUSY' && r.headers['retry-after'] !== undefined)).toBe(true);
    expect(answers.every((r) => [401, 503].includes(r.status))).toBe(true);

    // One address hammering one account: two rows of failures and two of throttled attempts, counts in them.
    for (let i = 0; i < 30; i++) await login(server, 'admin', 'still not the password');
    await stopServer(server);
    expect(server.child.stderr).toBe('');
    const db = new Database(path.join(dataDir, DATABASE_FILE_NAME), { readonly: true });
    try {
      const rows = db
        .prepare("SELECT action, detail FROM audit_log WHERE action IN ('login.failure', 'login.throttled') AND target_label = 'admin'")
        .all() as { action: string; detail: string }[];
      const total = (action: string) =>
        rows.filter((r) => r.action === action).reduce((sum, r) => sum + Number((JSON.parse(r.detail) as { count: number }).count), 0);
      expect(rows.length).toBeLessThanOrEqual(4);
      expect(total('login.failure')).toBe(5);
      expect(total('login.throttled')).toBe(25);
    } finally {
      db.close();
    }
  });
});
