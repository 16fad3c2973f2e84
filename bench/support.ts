/**
 * Shared pieces of the benchmarks: a real ClawLoops control plane (the production `startServer`,
 * listening on a loopback port, talking to the local Docker engine under a unique instance
 * label), members signed in over HTTP, a timed start/stop through the public API that follows the
 * runtime's Server-Sent Events, the sweep that removes everything the run created, and small
 * statistics/table helpers. Nothing here depends on jest.
 */
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Writable } from 'node:stream';
import { parentPort, Worker } from 'node:worker_threads';
import Docker from 'dockerode';
import { loadConfig } from '../src/config';
import { LABELS, type RuntimeBackend } from '../src/docker/runtimeBackend';
import { ScryptPasswordHasher } from '../src/domain/passwordHasher';
import { createLogger, type Logger } from '../src/lib/logger';
import type { LogLevel } from '../src/config';
import { newSecret } from '../src/lib/secrets';
import type { Platform } from '../src/platform';
import type { HttpProbe } from '../src/runtime/readinessProbe';
import type { RuntimeSettings } from '../src/runtime/runtimeSettings';
import { startServer } from '../src/server';
import { SseParser } from '../test/support/sseParser';

export const SOCKET = process.env.CLAWLOOPS_DOCKER_SOCKET ?? '/var/run/docker.sock';
export const docker = new Docker({ socketPath: SOCKET });
export const STANDIN_IMAGE = process.env.STANDIN_IMAGE ?? 'clawloops/runtime-standin:1';
const ADMIN_PASSWORD = 'bench admin passphrase 2026';
const MEMBER_PASSWORD = 'bench member passphrase 2026';

/** The run's instance label: from bench/run.sh (so its trap can sweep too), else a fresh one. */
export function benchInstance(): string {
  const fromEnv = process.env.BENCH_INSTANCE;
  if (fromEnv && /^[a-z0-9][a-z0-9-]{0,39}$/.test(fromEnv)) return fromEnv;
  return `bench-${newSecret().replace(/[^a-z0-9]/gi, '').slice(0, 8).toLowerCase()}`;
}

// ---- statistics and output ----

/** Nearest-rank percentile. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index] ?? NaN;
}

export const p50 = (values: number[]) => percentile(values, 50);
export const p95 = (values: number[]) => percentile(values, 95);

export const fmt = (ms: number) => (Number.isNaN(ms) ? '-' : ms >= 10_000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`);
export const ratio = (a: number, b: number) => (b > 0 ? (a / b).toFixed(2) : '-');
export const mib = (bytes: number) => `${Math.round(bytes / 1024 ** 2)} MiB`;

export function table(rows: (string | number)[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => String(r[i] ?? '').length))) ?? [];
  const line = (r: (string | number)[]) => r.map((c, i) => String(c).padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  const [head, ...body] = rows;
  return head ? [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n') : '';
}

function cpuTimes(): { busy: number; total: number } {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const fields = line.trim().split(/\s+/).slice(1).map(Number);
  const total = fields.reduce((a, b) => a + b, 0);
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0); // idle + iowait
  return { busy: total - idle, total };
}

/**
 * How busy the machine is BEFORE a part starts (a second's sample of /proc/stat): other work
 * (a test suite next door) skews every figure, so it is said next to them.
 */
export async function machineNote(): Promise<string> {
  const a = cpuTimes();
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const b = cpuTimes();
  const busy = b.total > a.total ? ((b.busy - a.busy) / (b.total - a.total)) * 100 : 0;
  return `CPU busy before the run: ${busy.toFixed(0)} % of ${os.cpus().length} CPUs${busy > 20 ? '  ← other work is running: figures are skewed' : ''}`;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The machine's CPU time since boot from /proc/stat, in clock ticks: busy (not idle or iowait) and total. */
export function machineCpu(): { busy: number; total: number } {
  const fields = (fs.readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
  const total = fields.reduce((a, b) => a + b, 0);
  return { busy: total - (fields[3] ?? 0) - (fields[4] ?? 0), total };
}

/** How many of the machine's CPUs were busy on average since `before` (a machineCpu() reading); NaN when no tick passed. */
export function machineCoresBusySince(before: { busy: number; total: number }): number {
  const now = machineCpu();
  return now.total > before.total ? ((now.busy - before.busy) / (now.total - before.total)) * os.cpus().length : Number.NaN;
}

/** CPU this process has used so far (all threads), in milliseconds. */
export const processCpuMs = (): number => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
};

// ---- cleanup ----

/** Removes every container, network and volume carrying the instance label. */
export async function sweep(instance: string): Promise<{ containers: number; networks: number; volumes: number }> {
  const filters = JSON.stringify({ label: [`${LABELS.instance}=${instance}`] });
  const containers = await docker.listContainers({ all: true, filters });
  await Promise.all(containers.map((c) => docker.getContainer(c.Id).remove({ force: true, v: true }).catch(() => undefined)));
  const networks = await docker.listNetworks({ filters });
  for (const n of networks) {
    const info = (await docker.getNetwork(n.Id).inspect().catch(() => null)) as Docker.NetworkInspectInfo | null;
    for (const id of Object.keys(info?.Containers ?? {})) await docker.getNetwork(n.Id).disconnect({ Container: id, Force: true }).catch(() => undefined);
    await docker.getNetwork(n.Id).remove().catch(() => undefined);
  }
  const { Volumes } = await docker.listVolumes({ filters });
  await Promise.all((Volumes ?? []).map((v) => docker.getVolume(v.Name).remove({ force: true }).catch(() => undefined)));
  return { containers: containers.length, networks: networks.length, volumes: (Volumes ?? []).length };
}

/** Ctrl-C / kill during a run: sweep before leaving. */
export function sweepOnSignal(instance: string): void {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      console.error(`\n${signal}: sweeping ${instance}`);
      void sweep(instance).finally(() => process.exit(130));
    });
  }
}

// ---- HTTP ----

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

interface Answer {
  status: number;
  body: unknown;
  headers: http.IncomingHttpHeaders;
}

export interface ProgressEvent {
  /** performance.now() when the client received it. */
  at: number;
  id: string;
  kind: string;
  status: 'queued' | 'running' | 'succeeded' | 'failed';
  step: string;
  message: string;
  error: { code: string; message: string } | null;
  startedAt: string;
  finishedAt: string | null;
}

export interface TimedOperation {
  /** From sending the POST to receiving the progress event that ends the operation. */
  ms: number;
  status: 'succeeded' | 'failed' | 'noop';
  error: string | null;
  /** Client-side arrival of each first-seen step, in ms after the POST was sent. */
  steps: { step: string; at: number }[];
  /** When the POST's answer arrived, ms after it was sent. */
  answeredAt: number;
  runtimeId: string | null;
}

export interface Member {
  username: string;
  userId: string;
  cookie: string;
}

export interface BenchPlatform {
  platform: Platform;
  instance: string;
  /** http://127.0.0.1:<port>, where the server listens (whatever publicHost says). */
  baseUrl: string;
  port: number;
  origin: string;
  adminCookie: string;
  /** An account created by invitation, then signed in through POST /api/v1/auth/login. */
  newMember(username: string): Promise<Member>;
  /** Opens the member's event stream and waits until it is following. */
  follow(member: Member): Promise<EventFollower>;
  /** POST /api/v1/runtime/<action> as the member, timed until the SSE stream reports the end. */
  operate(member: Member, action: 'start' | 'stop' | 'restart'): Promise<TimedOperation>;
  request(method: string, path: string, cookie: string | null, body?: unknown): Promise<Answer>;
  close(): Promise<void>;
  /** The platform's log (warnings and worse), for a failure report. */
  logText(): string;
}

export interface EventFollower {
  /** Sends the POST and resolves when the operation it started (or joined) ends. */
  run(action: 'start' | 'stop' | 'restart'): Promise<TimedOperation>;
  close(): void;
}

export interface BenchPlatformOptions {
  instance: string;
  runtimeSettings?: Partial<RuntimeSettings>;
  runtimeBackend?: RuntimeBackend;
  runtimeProbe?: HttpProbe;
  /** Extra CLAWLOOPS_* variables. */
  env?: Record<string, string>;
  /**
   * Host name of CLAWLOOPS_PUBLIC_URL (default 127.0.0.1). Workspace hosts (`<user>.<domain>`)
   * need a name: with `localhost` (the default CLAWLOOPS_DOMAIN) alice's workspace is
   * `alice.localhost:<port>`. The server listens on 127.0.0.1 either way.
   */
  publicHost?: string;
  /** The built web console to serve (web/dist); none by default. */
  webRoot?: string;
}

/**
 * The production server (`startServer`: composition root, initial admin from the environment,
 * the runtime watcher, app.listen) on 127.0.0.1 with CLAWLOOPS_PUBLIC_URL set to its own address,
 * so the browser-origin check is the real one. Only the password hasher's cost is lowered (sign-in
 * is not what is measured) and the runtime settings are overridden as the caller asks.
 */
export async function startBenchPlatform(options: BenchPlatformOptions): Promise<BenchPlatform> {
  const { instance } = options;
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'clawloops-bench-'));
  const port = await freePort();
  const origin = `http://${options.publicHost ?? '127.0.0.1'}:${port}`;
  const config = loadConfig({
    CLAWLOOPS_DATA_DIR: dataDir,
    CLAWLOOPS_HOST: '127.0.0.1',
    CLAWLOOPS_PORT: String(port),
    CLAWLOOPS_PUBLIC_URL: origin,
    CLAWLOOPS_INSTANCE: instance,
    CLAWLOOPS_LOG_LEVEL: 'warn',
    CLAWLOOPS_ADMIN_USERNAME: 'admin',
    CLAWLOOPS_ADMIN_PASSWORD: ADMIN_PASSWORD,
    ...options.env,
  });
  const { logger, lines: logLines } = tailLogger(config.logLevel);
  const running = await startServer(config, logger, {
    hasher: new ScryptPasswordHasher({ N: 1024, r: 8, p: 1 }),
    // The built console (web/dist) only where a bench measures it.
    webRoot: options.webRoot ?? null,
    ...(options.runtimeSettings ? { runtimeSettings: options.runtimeSettings } : {}),
    ...(options.runtimeBackend ? { runtimeBackend: options.runtimeBackend } : {}),
    ...(options.runtimeProbe ? { runtimeProbe: options.runtimeProbe } : {}),
  });
  const baseUrl = `http://127.0.0.1:${port}`;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 512 });

  const request = (method: string, urlPath: string, cookie: string | null, body?: unknown): Promise<Answer> =>
    new Promise((resolve, reject) => {
      const payload = body === undefined ? null : Buffer.from(JSON.stringify(body));
      const headers: Record<string, string> = { origin };
      if (cookie) headers.cookie = cookie;
      if (payload) {
        headers['content-type'] = 'application/json';
        headers['content-length'] = String(payload.length);
      }
      const req = http.request(`${baseUrl}${urlPath}`, { method, headers, agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = text;
          try {
            parsed = text ? JSON.parse(text) : null;
          } catch {
            // not JSON: keep the text
          }
          resolve({ status: res.statusCode ?? 0, body: parsed, headers: res.headers });
        });
      });
      req.on('error', reject);
      req.end(payload ?? undefined);
    });

  const login = async (username: string, password: string): Promise<string> => {
    const res = await request('POST', '/api/v1/auth/login', null, { username, password });
    if (res.status !== 200) throw new Error(`sign-in of ${username} failed: ${res.status} ${JSON.stringify(res.body)}`);
    const cookie = [res.headers['set-cookie'] ?? []].flat()[0]?.split(';')[0];
    if (!cookie) throw new Error(`sign-in of ${username} set no cookie`);
    return cookie;
  };

  const adminCookie = await login('admin', ADMIN_PASSWORD);
  const openStreams = new Set<http.ClientRequest>();

  const follow = (member: Member): Promise<EventFollower> =>
    new Promise((resolveFollower, rejectFollower) => {
      let pending: { action: string; started: number; answeredAt: number; steps: { step: string; at: number }[]; opId: string | null; runtimeId: string | null; done: (r: TimedOperation) => void; fail: (e: Error) => void } | null = null;
      let following = false;
      const sse = http.get(`${baseUrl}/api/v1/runtime/events`, { headers: { cookie: member.cookie, accept: 'text/event-stream' }, agent: false }, (res) => {
        if (res.statusCode !== 200) {
          rejectFollower(new Error(`event stream answered ${res.statusCode}`));
          res.resume();
          return;
        }
        const parser = new SseParser();
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          const at = performance.now();
          for (const { event, data } of parser.push(chunk)) {
            if (event === 'state' && !following) {
              // The route subscribes right after this first event: the stream now follows the runtime.
              following = true;
              resolveFollower(follower);
              continue;
            }
            if (event !== 'progress') continue;
            const progress = { ...(JSON.parse(data) as Omit<ProgressEvent, 'at'>), at };
            handle(progress);
          }
        });
      });
      openStreams.add(sse);
      sse.on('close', () => openStreams.delete(sse));
      sse.on('error', (err) => {
        if (!following) rejectFollower(err);
        else pending?.fail(err);
      });

      function handle(progress: ProgressEvent): void {
        const p = pending;
        if (!p || progress.kind !== p.action) return;
        if (p.opId && progress.id !== p.opId) return;
        const at = progress.at - p.started;
        // The probe loop says when /healthz answered (live) but /readyz not yet: worth its own line.
        const live = progress.step === 'waiting-for-health' && /finish starting/i.test(progress.message);
        const label = progress.status === 'queued' ? 'queued' : live ? 'waiting-for-health, /healthz answered' : progress.step;
        if (!p.steps.some((s) => s.step === label)) p.steps.push({ step: label, at });
        if (progress.status === 'succeeded' || progress.status === 'failed') {
          pending = null;
          p.done({ ms: at, status: progress.status, error: progress.error?.message ?? null, steps: p.steps, answeredAt: p.answeredAt, runtimeId: p.runtimeId });
        }
      }

      const follower: EventFollower = {
        run(action) {
          return new Promise<TimedOperation>((done, fail) => {
            const started = performance.now();
            pending = { action, started, answeredAt: NaN, steps: [], opId: null, runtimeId: null, done, fail };
            const current = pending;
            const req = http.request(
              `${baseUrl}/api/v1/runtime/${action}`,
              { method: 'POST', headers: { cookie: member.cookie, origin }, agent },
              (res) => {
                const chunks: Buffer[] = [];
                res.on('data', (c: Buffer) => chunks.push(c));
                res.on('end', () => {
                  current.answeredAt = performance.now() - started;
                  const text = Buffer.concat(chunks).toString('utf8');
                  if (res.statusCode === 200) {
                    pending = null;
                    done({ ms: current.answeredAt, status: 'noop', error: null, steps: [], answeredAt: current.answeredAt, runtimeId: null });
                    return;
                  }
                  if (res.statusCode !== 202) {
                    pending = null;
                    fail(new Error(`${action} answered ${res.statusCode}: ${text}`));
                    return;
                  }
                  const answer = JSON.parse(text) as { operation: { id: string }; runtime: { id: string } };
                  current.runtimeId = answer.runtime.id;
                  // From here on only this operation's events count.
                  current.opId = answer.operation.id;
                });
              },
            );
            req.on('error', (err) => {
              pending = null;
              fail(err);
            });
            req.end();
          });
        },
        close() {
          sse.destroy();
        },
      };
    });

  return {
    platform: running.platform,
    instance,
    baseUrl,
    port,
    origin,
    adminCookie,
    request,
    follow,
    async newMember(username) {
      const invitation = await request('POST', '/api/v1/admin/invitations', adminCookie, { role: 'member' });
      if (invitation.status !== 201) throw new Error(`invitation failed: ${invitation.status} ${JSON.stringify(invitation.body)}`);
      const secret = (invitation.body as { link: string }).link.split('/invite/')[1] ?? '';
      const accepted = await request('POST', `/api/v1/invitations/${secret}/accept`, null, { username, password: MEMBER_PASSWORD });
      if (accepted.status !== 201) throw new Error(`accepting the invitation failed: ${accepted.status} ${JSON.stringify(accepted.body)}`);
      const userId = (accepted.body as { user: { id: string } }).user.id;
      return { username, userId, cookie: await login(username, MEMBER_PASSWORD) };
    },
    async operate(member, action) {
      const follower = await follow(member);
      try {
        return await follower.run(action);
      } finally {
        follower.close();
      }
    },
    logText: () => logLines.join('\n'),
    async close() {
      for (const stream of openStreams) stream.destroy();
      agent.destroy();
      await running.shutdown('benchmark finished');
      await sweep(instance);
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** A numeric knob from the environment, or its default. */
export function knob(name: string, fallback: number): number {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number`);
  return value;
}

/** On PATH? (wrk is optional: the benches fall back to a Node client.) */
export function onPath(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

export const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000 };

/** bash's `times` after wrk: its second line is the children's user and system time ("0m1.234s 0m0.567s"). */
export function childCpuMs(times: string): number | null {
  const line = times.trim().split('\n').pop() ?? '';
  const parts = [...line.matchAll(/(\d+)m([\d.]+)s/g)].map((m) => (Number(m[1]) * 60 + Number(m[2])) * 1000);
  return parts.length === 2 ? (parts[0] ?? 0) + (parts[1] ?? 0) : null;
}

/** Clock ticks per second of /proc's CPU figures. */
export const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** In the client worker thread: runs each task the main thread posts and answers with its result. */
export function serveClientTasks<Task>(runTask: (task: Task) => Promise<unknown>): void {
  const port = parentPort;
  if (!port) return;
  port.on('message', (message: { id: number; task: Task }) => {
    runTask(message.task).then(
      (result) => port.postMessage({ id: message.id, result }),
      (err: unknown) => port.postMessage({ id: message.id, error: err instanceof Error ? err.message : String(err) }),
    );
  });
}

/**
 * The client as seen from the main thread: tasks posted to a worker thread running `file` (which
 * sees `workerData.role === role` and calls serveClientTasks), answers awaited.
 */
export class ClientThread<Task> {
  private readonly worker: Worker;
  private nextId = 0;
  private readonly waiting = new Map<number, { resolve: (value: unknown) => void; reject: (err: Error) => void }>();

  constructor(file: string, role: string) {
    // tsx's require hook in the worker too, then the bench file itself.
    this.worker = new Worker(`require('tsx/cjs/api').register(); require(${JSON.stringify(file)});`, { eval: true, workerData: { role } });
    this.worker.on('message', (message: { id: number; result?: unknown; error?: string }) => {
      const waiter = this.waiting.get(message.id);
      this.waiting.delete(message.id);
      if (message.error !== undefined) waiter?.reject(new Error(message.error));
      else waiter?.resolve(message.result);
    });
    this.worker.on('error', (err) => {
      for (const waiter of this.waiting.values()) waiter.reject(err);
      this.waiting.clear();
    });
  }

  run<T>(task: Task): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const id = this.nextId++;
      this.waiting.set(id, { resolve: resolve as (value: unknown) => void, reject });
      this.worker.postMessage({ id, task });
    });
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}

/** A logger keeping its last 200 lines in memory, to print when a run fails. */
export function tailLogger(level: LogLevel): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const logger = createLogger(
    level,
    new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
        if (lines.length > 200) lines.splice(0, lines.length - 200);
        done();
      },
    }),
  );
  return { logger, lines };
}

/**
 * Calls one at a time, rotating through the targets (who goes first rotates too), each target on
 * its own keep-alive connection; the first `warmup` rounds are not kept.
 */
export async function rotateCalls<Target, T>(targets: Target[], warmup: number, samples: number, call: (agent: http.Agent, target: Target) => Promise<T>): Promise<T[][]> {
  const agents = targets.map(() => new http.Agent({ keepAlive: true, maxSockets: 1 }));
  const out = targets.map(() => [] as T[]);
  try {
    for (let i = 0; i < warmup + samples; i++) {
      for (let j = 0; j < targets.length; j++) {
        const k = (i + j) % targets.length;
        const value = await call(agents[k]!, targets[k]!);
        if (i >= warmup) out[k]!.push(value);
      }
    }
  } finally {
    for (const agent of agents) agent.destroy();
  }
  return out;
}

/** The Node load generator: `connections` loops of keep-alive calls for `seconds`; each call returns its latency in ms. */
export async function keepAliveLoad(
  connections: number,
  seconds: number,
  call: (agent: http.Agent) => Promise<number>,
): Promise<{ requests: number; seconds: number; p50: number; p99: number }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const latencies: number[] = [];
  const started = performance.now();
  const deadline = started + seconds * 1000;
  const loop = async () => {
    while (performance.now() < deadline) latencies.push(await call(agent));
  };
  try {
    await Promise.all(Array.from({ length: connections }, loop));
  } finally {
    agent.destroy();
  }
  return { requests: latencies.length, seconds: (performance.now() - started) / 1000, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}
