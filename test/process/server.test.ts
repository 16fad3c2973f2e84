/**
 * The BUILT server (dist/main.js) as a real process: environment in, JSON log lines on stdout,
 * HTTP on a real port, signals, exit codes. scripts/test.sh builds before running jest and
 * makes sure a Docker engine answers at /var/run/docker.sock.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import Database from 'better-sqlite3';
import { DATABASE_FILE_NAME } from '../../src/db/database';
import { LATEST_SCHEMA_VERSION } from '../../src/db/migrations';

const ROOT = path.resolve(__dirname, '..', '..');
const MAIN = path.join(ROOT, 'dist', 'main.js');
const DOCKER_SOCKET = process.env.CLAWLOOPS_DOCKER_SOCKET ?? '/var/run/docker.sock';
/** How long to wait for a log line, an HTTP answer or an exit. Generous: CI machines are slow. */
const WAIT_MS = 15_000;
const TEST_TIMEOUT_MS = 90_000;

const ADMIN_PASSWORD = 'correct horse battery staple';
const OTHER_PASSWORD = 'violet kangaroo piano 42';

// ---------------------------------------------------------------------------------------------
// Child processes

interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

function isLogLine(value: unknown): value is LogLine {
  if (typeof value !== 'object' || value === null) return false;
  const record = value as Record<string, unknown>;
  return typeof record.level === 'number' && typeof record.msg === 'string';
}

class Child {
  readonly proc: ChildProcessByStdio<null, Readable, Readable>;
  stdout = '';
  stderr = '';
  exit: Exit | null = null;
  readonly closed: Promise<Exit>;

  constructor(
    readonly label: string,
    script: string,
    args: string[],
    env: NodeJS.ProcessEnv,
  ) {
    this.proc = spawn(process.execPath, [script, ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stdout.setEncoding('utf8').on('data', (chunk: string) => (this.stdout += chunk));
    this.proc.stderr.setEncoding('utf8').on('data', (chunk: string) => (this.stderr += chunk));
    // 'close' (not 'exit'): fires once the output pipes are drained too.
    this.closed = new Promise((resolve) => {
      this.proc.once('close', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
    });
  }

  get output(): string {
    return this.stdout + this.stderr;
  }

  logs(): LogLine[] {
    const lines: LogLine[] = [];
    for (const text of this.stdout.split('\n')) {
      if (!text.trim()) continue;
      try {
        const parsed: unknown = JSON.parse(text);
        if (isLogLine(parsed)) lines.push(parsed);
      } catch {
        // Not a log line; kept in stdout for the failure report.
      }
    }
    return lines;
  }

  /** Resolves with the first log line matching; rejects if the process ends or WAIT_MS passes first. */
  async waitForLog(matches: (line: LogLine) => boolean, what: string): Promise<LogLine> {
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      const found = this.logs().find(matches);
      if (found) return found;
      if (this.exit) throw new Error(`${this.label} exited (${JSON.stringify(this.exit)}) before logging ${what}`);
      if (Date.now() > deadline) throw new Error(`${this.label} did not log ${what} within ${WAIT_MS} ms`);
      await sleep(25);
    }
  }

  async waitForExit(): Promise<Exit> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`${this.label} did not exit within ${WAIT_MS} ms`)), WAIT_MS);
    });
    try {
      return await Promise.race([this.closed, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  report(): string {
    return [
      `----- ${this.label} (pid ${this.proc.pid ?? '?'}, exit ${JSON.stringify(this.exit)}) -----`,
      '--- stdout ---',
      this.stdout || '(empty)',
      '--- stderr ---',
      this.stderr || '(empty)',
    ].join('\n');
  }
}

const children: Child[] = [];
const tempDirs: string[] = [];

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'clawloops-process-'));
  tempDirs.push(dir);
  return dir;
}

const TEST_INSTANCE = `test-proc-${process.pid}`;

/** The test runner's environment minus every CLAWLOOPS_ variable, plus the given ones. */
function childEnv(vars: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('CLAWLOOPS_')) env[key] = value;
  }
  // Its own instance label: the server's runtime watcher must never adopt or sweep containers of
  // a real installation on the same engine.
  return { ...env, CLAWLOOPS_INSTANCE: TEST_INSTANCE, ...vars };
}

function spawnMain(label: string, vars: Record<string, string>): Child {
  const child = new Child(label, MAIN, [], childEnv(vars));
  children.push(child);
  return child;
}

async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', resolve);
  });
  const address = probe.address();
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  if (typeof address !== 'object' || address === null) throw new Error('could not find a free port');
  return address.port;
}

interface Server {
  child: Child;
  port: number;
  publicUrl: string;
}

const isListening = (line: LogLine): boolean => line.msg === 'ClawLoops control plane listening';

/**
 * Starts dist/main.js on a free port (CLAWLOOPS_PORT=0 is refused by the configuration) and
 * waits for its "listening" line. Retries with another port if the probe port was taken meanwhile.
 */
async function startServer(dataDir: string, vars: Record<string, string> = {}, label = 'server'): Promise<Server> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const publicUrl = `http://127.0.0.1:${port}`;
    const child = spawnMain(`${label} (attempt ${attempt})`, {
      CLAWLOOPS_PORT: String(port),
      CLAWLOOPS_HOST: '127.0.0.1',
      CLAWLOOPS_PUBLIC_URL: publicUrl,
      CLAWLOOPS_DATA_DIR: dataDir,
      CLAWLOOPS_LOG_LEVEL: 'info',
      CLAWLOOPS_DOCKER_SOCKET: DOCKER_SOCKET,
      ...vars,
    });
    try {
      const listening = await child.waitForLog(isListening, 'that it is listening');
      expect(listening.address).toMatchObject({ port });
      return { child, port, publicUrl };
    } catch (err) {
      if (attempt < 3 && child.output.includes('EADDRINUSE')) continue;
      throw err;
    }
  }
}

async function stopServer(server: Server, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  server.child.proc.kill(signal);
  expect(await server.child.waitForExit()).toEqual({ code: 0, signal: null });
}

/** A test that prints every child's captured output when it fails. */
function processTest(name: string, body: () => Promise<void>): void {
  test(
    name,
    async () => {
      try {
        await body();
      } catch (err) {
        for (const child of children) console.error(child.report());
        throw err;
      }
    },
    TEST_TIMEOUT_MS,
  );
}

afterEach(async () => {
  for (const child of children.splice(0)) {
    if (!child.exit) {
      child.proc.kill('SIGKILL');
      await child.closed;
    }
  }
  for (const dir of tempDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// HTTP

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  body: unknown;
}

function call(
  server: Server,
  method: string,
  urlPath: string,
  options: { json?: unknown; headers?: Record<string, string>; agent?: http.Agent } = {},
): Promise<Reply> {
  const payload = options.json === undefined ? undefined : JSON.stringify(options.json);
  const headers: Record<string, string> = { ...options.headers };
  if (payload !== undefined) {
    headers['Content-Type'] = 'application/json';
    headers['Content-Length'] = String(Buffer.byteLength(payload));
  }
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port: server.port, method, path: urlPath, headers, agent: options.agent ?? false, timeout: WAIT_MS },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => {
          let body: unknown = null;
          try {
            body = text ? JSON.parse(text) : null;
          } catch {
            body = null;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, body });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${urlPath}: no answer within ${WAIT_MS} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/** The field at a dotted path of a JSON body, or undefined. */
function field(body: unknown, dotted: string): unknown {
  let current: unknown = body;
  for (const key of dotted.split('.')) {
    if (typeof current !== 'object' || current === null) return undefined;
    current = (current as Record<string, unknown>)[key];
  }
  return current;
}

function sessionCookie(reply: Reply): string {
  const cookie = (reply.headers['set-cookie'] ?? []).find((c) => c.startsWith('clawloops_session='));
  if (!cookie) throw new Error(`no session cookie in ${JSON.stringify(reply.headers)}`);
  return cookie.split(';')[0] as string;
}

function login(server: Server, username: string, password: string): Promise<Reply> {
  return call(server, 'POST', '/api/v1/auth/login', { json: { username, password }, headers: { Origin: server.publicUrl } });
}

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

beforeAll(() => {
  if (!fs.existsSync(MAIN)) {
    throw new Error(`${path.relative(ROOT, MAIN)} is missing. These tests run the built server: run \`npm run build\` first (scripts/test.sh does).`);
  }
  const built = fs.statSync(MAIN).mtimeMs;
  const stale = fs
    .readdirSync(path.join(ROOT, 'src'), { recursive: true, encoding: 'utf8' })
    .filter((file) => file.endsWith('.ts'))
    .filter((file) => fs.statSync(path.join(ROOT, 'src', file)).mtimeMs > built);
  if (stale.length > 0) {
    // A warning, not a failure: src/ may be mid-edit. These tests exercise whatever dist/ holds.
    console.warn(`dist/ is older than src/ (${stale.slice(0, 3).join(', ')} changed since the build): these tests run dist/; run \`npm run build\` to test the current source.`);
  }
});

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
      const shuttingDown = logs.findIndex((l) => l.msg.startsWith('shutting down') && l.reason === signal);
      const complete = logs.findIndex((l) => l.msg === 'shutdown complete');
      expect(shuttingDown).toBeGreaterThan(-1);
      expect(complete).toBeGreaterThan(shuttingDown);
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
