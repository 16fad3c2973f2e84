/**
 * Helpers for tests that run the BUILT code (dist/) as real processes: spawning with a clean
 * environment, reading their JSON log lines, waiting for lines and exits, a server on a free
 * port, plain HTTP calls, and cleanup after each test. Each test file gets its own copy of the
 * module state (jest isolates modules per file); call `cleanUpProcesses` in its afterEach.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { sweep } from './engine';

export const ROOT = path.resolve(__dirname, '..', '..');
export const MAIN = path.join(ROOT, 'dist', 'main.js');
export const CLI = path.join(ROOT, 'dist', 'cli', 'admin.js');
export const DOCKER_SOCKET = process.env.CLAWLOOPS_DOCKER_SOCKET ?? '/var/run/docker.sock';
/** How long to wait for a log line, an HTTP answer or an exit. Generous: CI machines are slow. */
export const WAIT_MS = 15_000;
export const TEST_TIMEOUT_MS = 90_000;

// ---------------------------------------------------------------------------------------------
// Child processes

export interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

function isLogLine(value: unknown): value is LogLine {
  if (typeof value !== 'object' || value === null) return false;
  const record = value as Record<string, unknown>;
  return typeof record.level === 'number' && typeof record.msg === 'string';
}

export class Child {
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

export function tempDir(prefix = 'clawloops-process-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

/** The instance name every process these helpers start runs under (data made in-process must use it too). */
export const TEST_INSTANCE = `test-proc-${process.pid}`;

/** The test runner's environment minus every CLAWLOOPS_ variable, plus the given ones. */
export function childEnv(vars: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('CLAWLOOPS_')) env[key] = value;
  }
  // Its own instance label: the server's runtime watcher must never adopt or sweep containers of
  // a real installation on the same engine.
  return { ...env, CLAWLOOPS_INSTANCE: TEST_INSTANCE, ...vars };
}

export function spawnNode(label: string, script: string, args: string[], vars: Record<string, string>): Child {
  const child = new Child(label, script, args, childEnv(vars));
  children.push(child);
  return child;
}

export const spawnMain = (label: string, vars: Record<string, string>): Child => spawnNode(label, MAIN, [], vars);

export async function freePort(): Promise<number> {
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

export interface Server {
  child: Child;
  port: number;
  publicUrl: string;
}

export const isListening = (line: LogLine): boolean => line.msg === 'ClawLoops control plane listening';

/**
 * Starts dist/main.js on a free port (CLAWLOOPS_PORT=0 is refused by the configuration) and
 * waits for its "listening" line. Retries with another port if the probe port was taken meanwhile.
 */
export async function startServer(dataDir: string, vars: Record<string, string> = {}, label = 'server'): Promise<Server> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const egressPort = await freePort();
    const publicUrl = `http://127.0.0.1:${port}`;
    const child = spawnMain(`${label} (attempt ${attempt})`, {
      CLAWLOOPS_PORT: String(port),
      CLAWLOOPS_EGRESS_PORT: String(egressPort),
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

export async function stopServer(server: Server, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  server.child.proc.kill(signal);
  expect(await server.child.waitForExit()).toEqual({ code: 0, signal: null });
}

/** Wraps a test body so that a failure prints every child's captured output. */
export function reporting<A extends unknown[]>(body: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args) => {
    try {
      await body(...args);
    } catch (err) {
      for (const child of children) console.error(child.report());
      throw err;
    }
  };
}

export function processTest(name: string, body: () => Promise<void>): void {
  test(name, reporting(body), TEST_TIMEOUT_MS);
}

/** Kills what a test left running and removes its temporary directories. */
export async function cleanUpProcesses(): Promise<void> {
  for (const child of children.splice(0)) {
    if (!child.exit) {
      child.proc.kill('SIGKILL');
      await child.closed;
    }
  }
  for (const dir of tempDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
  // A server prepares each account's network and volume in the background: what it made goes
  // with it (nothing when the test's engine was unreachable).
  await sweep(TEST_INSTANCE).catch(() => undefined);
}

// ---------------------------------------------------------------------------------------------
// HTTP

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  body: unknown;
}

export function call(
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
export function field(body: unknown, dotted: string): unknown {
  let current: unknown = body;
  for (const key of dotted.split('.')) {
    if (typeof current !== 'object' || current === null) return undefined;
    current = (current as Record<string, unknown>)[key];
  }
  return current;
}

export function sessionCookie(reply: Reply): string {
  const cookie = (reply.headers['set-cookie'] ?? []).find((c) => c.startsWith('clawloops_session='));
  if (!cookie) throw new Error(`no session cookie in ${JSON.stringify(reply.headers)}`);
  return cookie.split(';')[0] as string;
}

export function login(server: Server, username: string, password: string): Promise<Reply> {
  return call(server, 'POST', '/api/v1/auth/login', { json: { username, password }, headers: { Origin: server.publicUrl } });
}

/** Fails when the built files are missing; warns when src/ changed after the build. */
export function assertBuilt(files: string[]): void {
  for (const file of files) {
    if (!fs.existsSync(file)) {
      throw new Error(`${path.relative(ROOT, file)} is missing. These tests run the built code: run \`npm run build\` first (scripts/test.sh does).`);
    }
  }
  const built = Math.min(...files.map((file) => fs.statSync(file).mtimeMs));
  const stale = fs
    .readdirSync(path.join(ROOT, 'src'), { recursive: true, encoding: 'utf8' })
    .filter((file) => file.endsWith('.ts'))
    .filter((file) => fs.statSync(path.join(ROOT, 'src', file)).mtimeMs > built);
  if (stale.length > 0) {
    // A warning, not a failure: src/ may be mid-edit. These tests exercise whatever dist/ holds.
    console.warn(`dist/ is older than src/ (${stale.slice(0, 3).join(', ')} changed since the build): these tests run dist/; run \`npm run build\` to test the current source.`);
  }
}
