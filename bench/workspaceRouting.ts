/**
 * Workspace routing: what the control plane's two front doors cost per request, each figure next
 * to a baseline measured in the same run, interleaved.
 *
 *   part "proxy": the built-in router (CLAWLOOPS_ROUTER=builtin, host routing), one member with a
 *   running stand-in runtime (clawloops/runtime-standin:1, 256 MiB, the product's default 2 CPUs),
 *   GET /__standin/bytes?n=300 (a small answer) and ?n=1048576 (1 MiB):
 *     direct      the runtime's bridge address :18789, no Host trickery:             THE baseline
 *     router      the control plane at 127.0.0.1:<port> with Host alice.localhost:<port> and the
 *                 `clawloops_ws` cookie (the node:http front door, the kept access decision and
 *                 route, the control plane's relay; Express is not on this path)
 *     bare proxy  context: http-proxy (a general-purpose proxy library) on a plain
 *                 node:http server in this process, no Express, no access decision, same agent
 *     - sequential latency: one keep-alive connection per path, requests alternating between
 *       the paths; p50/p95/p99 and the p50 added to direct (target: ≤ 2 ms)
 *     - throughput: BENCH_CONNECTIONS keep-alive connections for BENCH_DURATION s, BENCH_ROUNDS
 *       rounds alternating between the paths; req/s (median of the rounds) and router/direct
 *       (target: ≥ 80 %), with the CPU each party used
 *     - WebSocket (/__standin/echo, a plain RFC 6455 echo in the stand-in): round trip of a
 *       128-byte message, messages alternating between the paths, and the handshake
 *   part "forwardauth": requests shaped like Traefik's ForwardAuth (GET /_clawloops/forward-auth
 *   with X-Forwarded-Method/Proto/Host/Uri/For, the browser's Accept and workspace cookie),
 *   against GET /healthz with the very same headers (the cheapest route through the same Express
 *   stack): sequential p50/p99 and req/s with concurrency, then the decision alone in-process (a
 *   WorkspaceGatekeeper over the platform's own workspace sessions and database).
 *
 * Where things run: the control plane is this process's MAIN thread and nothing else runs on it
 * while measuring (its CPU is read from /proc/self/task/<pid>/stat); the Node client (sequential
 * requests, WebSockets, the fallback load generator) is a worker thread; wrk, when on PATH, is a
 * child process with one thread (C, epoll: a few µs of CPU per request, where a Node client
 * spends tens, so on 2 CPUs more of the machine goes to the servers being measured). The
 * runtime's CPU is read from its cgroup.
 *
 * Usage: npx tsx bench/workspaceRouting.ts [proxy] [forwardauth]   (both when none is named)
 * Env: BENCH_SAMPLES (2000 sequential requests per path), BENCH_CONNECTIONS (16), BENCH_DURATION
 *      (4 s per throughput run), BENCH_ROUNDS (3), BENCH_WS_MESSAGES (2000), BENCH_CLIENT (wrk|node;
 *      wrk when on PATH), BENCH_LOG_LEVEL (info, the product default: one log line per request),
 *      BENCH_INSTANCE.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import type { Duplex } from 'node:stream';
import { isMainThread, workerData } from 'node:worker_threads';
import httpProxy from 'http-proxy';
import WebSocket from 'ws';
import { LABELS } from '../src/docker/runtimeBackend';
import { WorkspaceAddresses } from '../src/domain/workspaceAddresses';
import { WorkspaceGatekeeper } from '../src/domain/workspaceGatekeeper';
import { OPENCLAW_PORT } from '../src/runtime/runtimeSettings';
import { workspaceSessionCookie } from '../test/support/hostClient';
import { benchInstance, docker, machineNote, machineCpu, machineCoresBusySince, percentile, processCpuMs, startBenchPlatform, STANDIN_IMAGE, sweep, sweepOnSignal, table, knob, ClientThread, serveClientTasks, onPath, UNIT_MS, childCpuMs, CLOCK_TICKS, rotateCalls, keepAliveLoad, type BenchPlatform, type Member } from './support';

const CLIENT_ROLE = 'workspace-routing-client';

const SAMPLES = knob('BENCH_SAMPLES', 2000);
const CONNECTIONS = Math.round(knob('BENCH_CONNECTIONS', 16));
const DURATION_S = knob('BENCH_DURATION', 4);
const ROUNDS = Math.round(knob('BENCH_ROUNDS', 3));
const WS_MESSAGES = knob('BENCH_WS_MESSAGES', 2000);
const LOG_LEVEL = process.env.BENCH_LOG_LEVEL ?? 'info';
const WARMUP = 300;
const WS_HANDSHAKES = 200;
const WS_BYTES = 128;
const SMALL = 300;
const LARGE = 1024 * 1024;
const MEMBER = 'alice';

// ---- what the client thread does ----

interface HttpTarget {
  name: string;
  /** Where to connect (an IP address). */
  address: string;
  port: number;
  path: string;
  /** Sent as given; `Host` capitalised (wrk only replaces a header spelled `Host`). */
  headers: Record<string, string>;
  status: number;
  /** Expected body length, checked on every answer (null: not checked). */
  bytes: number | null;
}

interface WsTarget {
  name: string;
  url: string;
  headers: Record<string, string>;
}

type Task =
  | { kind: 'sequential'; targets: HttpTarget[]; warmup: number; samples: number }
  | { kind: 'load'; target: HttpTarget; connections: number; seconds: number }
  | { kind: 'ws-echo'; targets: WsTarget[]; warmup: number; samples: number; size: number }
  | { kind: 'ws-handshake'; targets: WsTarget[]; warmup: number; samples: number };

interface LoadResult {
  requests: number;
  seconds: number;
  /** Latency under load, ms. */
  p50: number;
  p99: number;
  /** Bytes read per request, headers included (wrk) or body only (node). */
  bytesPerRequest: number;
  /** CPU ms of the load generator when it is a child process (wrk); null when it is the worker thread. */
  clientCpuMs: number | null;
}

function oneRequest(agent: http.Agent, t: HttpTarget): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = http.request({ host: t.address, port: t.port, path: t.path, headers: t.headers, agent }, (res) => {
      let bytes = 0;
      res.on('data', (chunk: Buffer) => (bytes += chunk.length));
      res.on('error', reject);
      res.on('end', () => {
        const ms = performance.now() - started;
        if (res.statusCode !== t.status || (t.bytes !== null && bytes !== t.bytes)) {
          reject(new Error(`${t.name}: answered ${res.statusCode} with ${bytes} bytes (expected ${t.status}${t.bytes === null ? '' : ` with ${t.bytes} bytes`})`));
        } else resolve(ms);
      });
    });
    req.on('error', reject);
    req.end();
  });
}

/** The Node load generator: `connections` loops of keep-alive requests for `seconds`. */
async function nodeLoad(t: HttpTarget, connections: number, seconds: number): Promise<LoadResult> {
  return { ...(await keepAliveLoad(connections, seconds, (agent) => oneRequest(agent, t))), bytesPerRequest: t.bytes ?? NaN, clientCpuMs: null };
}

function openSocket(t: WsTarget): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(t.url, { headers: t.headers, perMessageDeflate: false });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`${t.name}: the upgrade was answered ${res.statusCode}`)));
  });
}

function closeSocket(ws: WebSocket): Promise<void> {
  return new Promise((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) return resolve();
    ws.once('close', () => resolve());
    ws.close(1000);
  });
}

function roundTrip(ws: WebSocket, payload: Buffer, name: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const closed = () => reject(new Error(`${name}: the WebSocket closed mid-echo`));
    ws.once('close', closed);
    ws.once('message', (data: Buffer) => {
      const ms = performance.now() - started;
      ws.off('close', closed);
      if (data.length !== payload.length) reject(new Error(`${name}: echo of ${payload.length} bytes came back as ${data.length}`));
      else resolve(ms);
    });
    ws.send(payload, { binary: false });
  });
}

async function wsEcho(targets: WsTarget[], warmup: number, samples: number, size: number): Promise<number[][]> {
  const sockets = await Promise.all(targets.map(openSocket));
  const payload = Buffer.alloc(size, 'x');
  const out = targets.map(() => [] as number[]);
  try {
    for (let i = 0; i < warmup + samples; i++) {
      for (let j = 0; j < targets.length; j++) {
        const k = (i + j) % targets.length;
        const ms = await roundTrip(sockets[k]!, payload, targets[k]!.name);
        if (i >= warmup) out[k]!.push(ms);
      }
    }
  } finally {
    await Promise.all(sockets.map(closeSocket));
  }
  return out;
}

/** Connect → open (101 received and checked), then a clean close before the next one. */
async function wsHandshakes(targets: WsTarget[], warmup: number, samples: number): Promise<number[][]> {
  const out = targets.map(() => [] as number[]);
  for (let i = 0; i < warmup + samples; i++) {
    for (let j = 0; j < targets.length; j++) {
      const k = (i + j) % targets.length;
      const started = performance.now();
      const ws = await openSocket(targets[k]!);
      const ms = performance.now() - started;
      await closeSocket(ws);
      if (i >= warmup) out[k]!.push(ms);
    }
  }
  return out;
}

function runTask(task: Task): Promise<unknown> {
  switch (task.kind) {
    case 'sequential':
      return rotateCalls(task.targets, task.warmup, task.samples, oneRequest);
    case 'load':
      return nodeLoad(task.target, task.connections, task.seconds);
    case 'ws-echo':
      return wsEcho(task.targets, task.warmup, task.samples, task.size);
    case 'ws-handshake':
      return wsHandshakes(task.targets, task.warmup, task.samples);
  }
}

// ---- wrk ----

const UNIT_BYTES: Record<string, number> = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 };

function parseWrk(out: string, t: HttpTarget, clientCpuMs: number | null): LoadResult {
  const summary = /(\d+) requests in ([\d.]+)(us|ms|s|m), ([\d.]+)(B|KB|MB|GB|TB) read/.exec(out);
  if (!summary) throw new Error(`${t.name}: unreadable wrk output:\n${out}`);
  const requests = Number(summary[1]);
  const seconds = (Number(summary[2]) * (UNIT_MS[summary[3] ?? 's'] ?? NaN)) / 1000;
  const bytes = Number(summary[4]) * (UNIT_BYTES[summary[5] ?? 'B'] ?? NaN);
  const latency = (p: number) => {
    const m = new RegExp(`^\\s*${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(out);
    return m ? Number(m[1]) * (UNIT_MS[m[2] ?? 'ms'] ?? NaN) : NaN;
  };
  const bad = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  if (bad) throw new Error(`${t.name}: ${bad[1]} of ${requests} answers were not 2xx/3xx`);
  const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  if (errors && (Number(errors[1]) > 0 || Number(errors[3]) > 0 || Number(errors[4]) > 0)) throw new Error(`${t.name}: wrk socket errors: ${errors[0]}`);
  const bytesPerRequest = bytes / Math.max(1, requests);
  // wrk rounds "read" to two decimals of its unit: allow 2 % below the body size.
  if (t.bytes !== null && bytesPerRequest < t.bytes * 0.98) throw new Error(`${t.name}: ${bytesPerRequest.toFixed(0)} bytes read per request, the body alone is ${t.bytes}`);
  return { requests, seconds, p50: latency(50), p99: latency(99), bytesPerRequest, clientCpuMs };
}

function wrkLoad(t: HttpTarget, connections: number, seconds: number): Promise<LoadResult> {
  const args = ['-t1', `-c${connections}`, `-d${seconds}s`, '--latency', '--timeout', '10s'];
  for (const [name, value] of Object.entries(t.headers)) args.push('-H', `${name}: ${value}`);
  args.push(`http://${t.address}:${t.port}${t.path}`);
  return new Promise((resolve, reject) => {
    // Through bash, whose `times` then reports wrk's own CPU time on stderr.
    const child = spawn('bash', ['-c', 'wrk "$@"; status=$?; times >&2; exit $status', 'wrk', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`wrk exited ${code}:\n${out}${err}`));
      try {
        resolve(parseWrk(out, t, childCpuMs(err)));
      } catch (err) {
        reject(err as Error);
      }
    });
  });
}

// ---- CPU accounting ----


/** CPU ms of one thread of this process (the main thread: tid = pid). */
function threadCpuMs(tid: number): number {
  const stat = fs.readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After "pid (comm) ", field 3 (state) is index 0: utime is field 14, stime field 15.
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
}

/** The container's CPU ms from its cgroup (v1 cgroupfs or systemd, or v2), or null when not readable. */
function containerCpuReader(id: string): () => number | null {
  const candidates: [string, (text: string) => number][] = [
    [`/sys/fs/cgroup/cpuacct/docker/${id}/cpuacct.usage`, (t) => Number(t) / 1e6],
    [`/sys/fs/cgroup/cpuacct/system.slice/docker-${id}.scope/cpuacct.usage`, (t) => Number(t) / 1e6],
    [`/sys/fs/cgroup/system.slice/docker-${id}.scope/cpu.stat`, (t) => Number(/usage_usec (\d+)/.exec(t)?.[1]) / 1000],
    [`/sys/fs/cgroup/docker/${id}/cpu.stat`, (t) => Number(/usage_usec (\d+)/.exec(t)?.[1]) / 1000],
  ];
  const found = candidates.find(([file]) => fs.existsSync(file));
  if (!found) return () => null;
  const [file, parse] = found;
  return () => {
    try {
      return parse(fs.readFileSync(file, 'utf8'));
    } catch {
      return null;
    }
  };
}

interface CpuUse {
  /** In cores (1 = one CPU fully busy) over the run. */
  main: number;
  /** The load generator: wrk's own CPU, or this process's other threads (the client worker). */
  client: number;
  runtime: number | null;
  machine: number;
  /** The machine minus this process, wrk and the runtime: the kernel's share not charged to them, and any other work. */
  rest: number;
  /** The control plane's main-thread CPU per request, µs. */
  mainPerRequest: number;
}

async function withCpu(runtimeCpu: () => number | null, run: () => Promise<LoadResult>): Promise<LoadResult & { cpu: CpuUse }> {
  const before = { at: performance.now(), main: threadCpuMs(process.pid), process: processCpuMs(), runtime: runtimeCpu(), machine: machineCpu() };
  const result = await run();
  const wall = performance.now() - before.at;
  const main = threadCpuMs(process.pid) - before.main;
  const processCpu = processCpuMs() - before.process;
  const runtimeAfter = runtimeCpu();
  const runtime = runtimeAfter !== null && before.runtime !== null ? (runtimeAfter - before.runtime) / wall : null;
  const machine = machineCoresBusySince(before.machine);
  const client = result.clientCpuMs !== null ? result.clientCpuMs / wall : Math.max(0, processCpu - main) / wall;
  return {
    ...result,
    cpu: {
      main: main / wall,
      client,
      runtime,
      machine,
      rest: machine - processCpu / wall - (result.clientCpuMs ?? 0) / wall - (runtime ?? 0),
      mainPerRequest: (main * 1000) / Math.max(1, result.requests),
    },
  };
}

// ---- formatting ----

const ms = (v: number) => (Number.isNaN(v) ? '-' : v < 10 ? `${v.toFixed(3)} ms` : `${v.toFixed(1)} ms`);
const plus = (v: number) => (Number.isNaN(v) ? '-' : `${v >= 0 ? '+' : '−'}${Math.abs(v).toFixed(3)} ms`);
const pct = (a: number, b: number) => (b > 0 ? `${((a / b) * 100).toFixed(0)} %` : '-');
const cores = (v: number | null) => (v === null || Number.isNaN(v) ? '-' : v.toFixed(2));
const median = (values: number[]) => percentile(values, 50);
const rps = (v: number) => (Number.isNaN(v) ? '-' : v.toFixed(0));

function latencyTable(names: string[], samples: number[][]): string {
  const base = samples[0] ?? [];
  return table([
    ['path', 'n', 'p50', 'p95', 'p99', 'added p50', 'added p99'],
    ...names.map((name, i) => {
      const s = samples[i] ?? [];
      const first = i === 0;
      return [name, s.length, ms(percentile(s, 50)), ms(percentile(s, 95)), ms(percentile(s, 99)), first ? '' : plus(percentile(s, 50) - percentile(base, 50)), first ? '' : plus(percentile(s, 99) - percentile(base, 99))];
    }),
  ]);
}

type Measured = LoadResult & { cpu: CpuUse };

interface LoadRow {
  name: string;
  target: HttpTarget;
  runs: Measured[];
}

/** Each row's runs, rounds alternating between the rows; one unmeasured second first for each. */
async function throughput(rows: LoadRow[], load: (t: HttpTarget, connections: number, seconds: number) => Promise<LoadResult>, runtimeCpu: () => number | null): Promise<void> {
  for (const row of rows) await load(row.target, CONNECTIONS, 1);
  for (let round = 0; round < ROUNDS; round++) {
    for (let j = 0; j < rows.length; j++) {
      const row = rows[(round + j) % rows.length]!;
      row.runs.push(await withCpu(runtimeCpu, () => load(row.target, CONNECTIONS, DURATION_S)));
    }
  }
}

function throughputTable(rows: LoadRow[], bodyBytes: number | null): string {
  const rate = (row: LoadRow) => median(row.runs.map((r) => r.requests / r.seconds));
  const base = rate(rows[0]!);
  const pick = (row: LoadRow, f: (r: Measured) => number | null) => {
    const values = row.runs.map(f).filter((v): v is number => v !== null && !Number.isNaN(v));
    return values.length === 0 ? NaN : median(values);
  };
  return table([
    [
      'path',
      'req/s (median)',
      ...(bodyBytes !== null && bodyBytes >= 1024 * 1024 ? ['MiB/s'] : []),
      'each round',
      'vs baseline',
      'latency p50 / p99 under load',
      'CPU in cores: control plane',
      'client',
      'runtime',
      'rest',
      `machine (of ${os.cpus().length})`,
      'control plane CPU µs/req',
    ],
    ...rows.map((row) => [
      row.name,
      rps(rate(row)),
      ...(bodyBytes !== null && bodyBytes >= 1024 * 1024 ? [((rate(row) * bodyBytes) / 1024 ** 2).toFixed(0)] : []),
      row.runs.map((r) => rps(r.requests / r.seconds)).join(' / '),
      row === rows[0] ? '' : pct(rate(row), base),
      `${ms(pick(row, (r) => r.p50))} / ${ms(pick(row, (r) => r.p99))}`,
      cores(pick(row, (r) => r.cpu.main)),
      cores(pick(row, (r) => r.cpu.client)),
      cores(pick(row, (r) => r.cpu.runtime)),
      cores(pick(row, (r) => r.cpu.rest)),
      cores(pick(row, (r) => r.cpu.machine)),
      pick(row, (r) => r.cpu.mainPerRequest).toFixed(0),
    ]),
  ]);
}

const rateOf = (row: LoadRow) => median(row.runs.map((r) => r.requests / r.seconds));
const cpuPerRequest = (row: LoadRow) => median(row.runs.map((r) => r.cpu.mainPerRequest));

const CPU_LEGEND = [
  'CPU columns, in cores, medians of the rounds: control plane = this process\'s main thread; client = wrk\'s own CPU (or the',
  'client worker thread); runtime = the container\'s cgroup; rest = the machine minus this process, the client and the runtime',
  '(network stack work charged to no one of them, and anything else running). 1e6 / "control plane CPU µs/req" is the',
  'ceiling of that path in req/s on one core, whatever the client.',
].join('\n');

// ---- the setup ----

interface Setup {
  bench: BenchPlatform;
  member: Member;
  /** `clawloops_ws=…` */
  workspaceCookie: string;
  workspaceHost: string;
  runtimeAddress: string;
  runtimeCpu: () => number | null;
  client: ClientThread<Task>;
  load: (t: HttpTarget, connections: number, seconds: number) => Promise<LoadResult>;
}

const instance = benchInstance();

async function setUp(client: ClientThread<Task>, load: Setup['load']): Promise<Setup> {
  const bench = await startBenchPlatform({
    instance,
    publicHost: 'localhost',
    env: { CLAWLOOPS_DOMAIN: 'localhost', CLAWLOOPS_ROUTER: 'builtin', CLAWLOOPS_WORKSPACE_ROUTING: 'host', CLAWLOOPS_LOG_LEVEL: LOG_LEVEL },
    runtimeSettings: { image: STANDIN_IMAGE, memoryBytes: 256 * 1024 ** 2, readyTimeoutMs: 60_000, stopTimeoutSeconds: 3 },
  });
  try {
    const member = await bench.newMember(MEMBER);
    const started = await bench.operate(member, 'start');
    if (started.status !== 'succeeded') throw new Error(`the runtime did not start: ${started.status} ${started.error}`);
    const route = bench.platform.runtimes.routeForUser(member.userId);
    if (!route.url) throw new Error('the running runtime has no address');
    const workspaceHost = `${MEMBER}.localhost:${bench.port}`;
    const workspaceCookie = await workspaceSessionCookie(bench.port, { platformHost: `localhost:${bench.port}`, platformCookie: member.cookie, workspace: MEMBER, workspaceHost });
    const [container] = await docker.listContainers({ filters: JSON.stringify({ label: [`${LABELS.instance}=${instance}`], status: ['running'] }) });
    const runtimeCpu = container ? containerCpuReader(container.Id) : () => null;
    return { bench, member, workspaceCookie, workspaceHost, runtimeAddress: new URL(route.url).hostname, runtimeCpu, client, load };
  } catch (err) {
    await bench.close();
    throw err;
  }
}

// ---- part "proxy" ----

/** http-proxy alone on a plain server, same keep-alive agent settings as the router: the library's floor. */
async function bareProxy(runtimeAddress: string): Promise<{ port: number; close: () => Promise<void> }> {
  const proxy = httpProxy.createProxyServer({ target: `http://${runtimeAddress}:${OPENCLAW_PORT}`, xfwd: false, agent: new http.Agent({ keepAlive: true, maxSockets: 256 }) });
  proxy.on('error', (_err, _req, res) => {
    if (res instanceof http.ServerResponse && !res.headersSent) {
      res.statusCode = 502;
      res.end();
    } else (res as Duplex).destroy();
  });
  const server = http.createServer((req, res) => proxy.web(req, res));
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => proxy.ws(req, socket, head));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      proxy.close();
    },
  };
}

interface Summary {
  lines: string[];
}

async function proxyPart(s: Setup, summary: Summary): Promise<void> {
  const bare = await bareProxy(s.runtimeAddress);
  try {
    const targets = (bytes: number): HttpTarget[] => {
      const path = `/__standin/bytes?n=${bytes}`;
      return [
        { name: 'direct', address: s.runtimeAddress, port: OPENCLAW_PORT, path, headers: {}, status: 200, bytes },
        { name: 'router', address: '127.0.0.1', port: s.bench.port, path, headers: { Host: s.workspaceHost, Cookie: s.workspaceCookie }, status: 200, bytes },
        { name: 'bare proxy', address: '127.0.0.1', port: bare.port, path, headers: {}, status: 200, bytes },
      ];
    };
    const names = [
      `direct: runtime ${s.runtimeAddress}:${OPENCLAW_PORT}  [baseline]`,
      'router: control plane, Host + workspace cookie',
      'context: bare http-proxy in this process (no Express, no access check)',
    ];
    console.log(`\n## Proxy: the built-in router vs the runtime directly (${await machineNote()})`);

    const small = targets(SMALL);
    const seq = await s.client.run<number[][]>({ kind: 'sequential', targets: small, warmup: WARMUP, samples: SAMPLES });
    console.log(`\n### Sequential latency, ${SMALL}-byte body, one keep-alive connection per path, requests alternating\n`);
    console.log(latencyTable(names, seq));
    const added = percentile(seq[1]!, 50) - percentile(seq[0]!, 50);

    const rows = (bytes: number): LoadRow[] => targets(bytes).map((target, i) => ({ name: names[i]!, target, runs: [] }));
    const smallRows = rows(SMALL);
    await throughput(smallRows, s.load, s.runtimeCpu);
    console.log(`\n### Throughput, ${SMALL}-byte body, ${CONNECTIONS} keep-alive connections, ${ROUNDS} × ${DURATION_S} s per path, rounds alternating\n`);
    console.log(throughputTable(smallRows, SMALL));
    console.log(CPU_LEGEND);

    const largeRows = rows(LARGE);
    await throughput(largeRows, s.load, s.runtimeCpu);
    console.log(`\n### Throughput, 1 MiB body, ${CONNECTIONS} keep-alive connections, ${ROUNDS} × ${DURATION_S} s per path\n`);
    console.log(throughputTable(largeRows, LARGE));

    const wsTargets: WsTarget[] = [
      { name: 'direct', url: `ws://${s.runtimeAddress}:${OPENCLAW_PORT}/__standin/echo`, headers: {} },
      { name: 'router', url: `ws://127.0.0.1:${s.bench.port}/__standin/echo`, headers: { host: s.workspaceHost, cookie: s.workspaceCookie } },
      { name: 'bare proxy', url: `ws://127.0.0.1:${bare.port}/__standin/echo`, headers: {} },
    ];
    const echo = await s.client.run<number[][]>({ kind: 'ws-echo', targets: wsTargets, warmup: WARMUP, samples: WS_MESSAGES, size: WS_BYTES });
    console.log(`\n### WebSocket echo round trip, ${WS_BYTES}-byte text message, one connection per path, messages alternating\n`);
    console.log(latencyTable(names, echo));
    const handshakes = await s.client.run<number[][]>({ kind: 'ws-handshake', targets: wsTargets, warmup: 20, samples: WS_HANDSHAKES });
    console.log(`\n### WebSocket handshake (connect → 101 checked), a new connection each time\n`);
    console.log(latencyTable(names, handshakes));

    const [direct, router, bareRow] = smallRows;
    const [directLarge, routerLarge] = largeRows;
    const share = rateOf(router!) / rateOf(direct!);
    summary.lines.push(
      `proxy latency (${SMALL} B): router p50 ${ms(percentile(seq[1]!, 50))} vs direct ${ms(percentile(seq[0]!, 50))}: ${plus(added)} added (target ≤ 2 ms: ${added <= 2 ? 'met' : 'MISSED'}); p99 ${plus(percentile(seq[1]!, 99) - percentile(seq[0]!, 99))}`,
      `proxy throughput (${SMALL} B, ${CONNECTIONS} connections): router ${rps(rateOf(router!))} req/s vs direct ${rps(rateOf(direct!))} = ${pct(rateOf(router!), rateOf(direct!))} (target ≥ 80 %: ${share >= 0.8 ? 'met' : 'MISSED'}); bare http-proxy ${pct(rateOf(bareRow!), rateOf(direct!))}; control-plane CPU per request: router ${cpuPerRequest(router!).toFixed(0)} µs, bare http-proxy ${cpuPerRequest(bareRow!).toFixed(0)} µs`,
      `proxy throughput (1 MiB): router ${((rateOf(routerLarge!) * LARGE) / 1024 ** 2).toFixed(0)} MiB/s vs direct ${((rateOf(directLarge!) * LARGE) / 1024 ** 2).toFixed(0)} MiB/s = ${pct(rateOf(routerLarge!), rateOf(directLarge!))}`,
      `WebSocket echo RTT: router p50 ${ms(percentile(echo[1]!, 50))} vs direct ${ms(percentile(echo[0]!, 50))}: ${plus(percentile(echo[1]!, 50) - percentile(echo[0]!, 50))} added; p99 ${plus(percentile(echo[1]!, 99) - percentile(echo[0]!, 99))}`,
      `WebSocket handshake: router p50 ${ms(percentile(handshakes[1]!, 50))} vs direct ${ms(percentile(handshakes[0]!, 50))}: ${plus(percentile(handshakes[1]!, 50) - percentile(handshakes[0]!, 50))}`,
    );
  } finally {
    await bare.close();
  }
}

// ---- part "forwardauth" ----

async function forwardAuthPart(s: Setup, summary: Summary): Promise<void> {
  const platformHost = `127.0.0.1:${s.bench.port}`;
  // What Traefik sends: the browser's headers (here an XHR's), its cookie for the workspace host,
  // and the original request in X-Forwarded-*; Host is the auth server's own address.
  const traefikHeaders = {
    Host: platformHost,
    'User-Agent': 'Mozilla/5.0 (X11; Linux x86_64) bench',
    Accept: '*/*',
    'Accept-Encoding': 'gzip',
    Cookie: s.workspaceCookie,
    'X-Forwarded-Method': 'GET',
    'X-Forwarded-Proto': 'http',
    'X-Forwarded-Host': s.workspaceHost,
    'X-Forwarded-Uri': '/assets/index-3f9a1c.js',
    'X-Forwarded-For': '203.0.113.7',
  };
  const targets: HttpTarget[] = [
    { name: '/healthz', address: '127.0.0.1', port: s.bench.port, path: '/healthz', headers: traefikHeaders, status: 200, bytes: null },
    { name: 'forward-auth', address: '127.0.0.1', port: s.bench.port, path: '/_clawloops/forward-auth', headers: traefikHeaders, status: 200, bytes: 0 },
  ];
  const names = ['GET /healthz, same headers  [baseline]', 'GET /_clawloops/forward-auth (allowed)'];
  console.log(`\n## Forward-auth: the access decision Traefik asks for, vs /healthz on the same Express stack (${await machineNote()})`);

  const seq = await s.client.run<number[][]>({ kind: 'sequential', targets, warmup: WARMUP, samples: SAMPLES });
  console.log(`\n### Sequential latency, one keep-alive connection per path, requests alternating\n`);
  console.log(latencyTable(names, seq));

  const rows: LoadRow[] = targets.map((target, i) => ({ name: names[i]!, target, runs: [] }));
  await throughput(rows, s.load, s.runtimeCpu);
  console.log(`\n### Throughput, ${CONNECTIONS} keep-alive connections, ${ROUNDS} × ${DURATION_S} s per path; one Node process, so at most one core for the server\n`);
  console.log(throughputTable(rows, null));
  console.log(CPU_LEGEND);

  // The decision alone: the same class over the platform's own workspace sessions and database.
  const gatekeeper = new WorkspaceGatekeeper(new WorkspaceAddresses({ mode: 'host', domain: 'localhost', platformOrigin: s.bench.origin }), s.bench.platform.workspaceSessions, false);
  const request = { host: s.workspaceHost, uri: '/assets/index-3f9a1c.js', method: 'GET', cookieHeader: s.workspaceCookie, origin: undefined, upgrade: false, navigation: false };
  const first = gatekeeper.decide(request);
  if (first.kind !== 'allow') throw new Error(`the in-process decision is ${first.kind}, not allow`);
  const manager = s.bench.platform.runtimes;
  const perOp = (op: () => void): number[] => {
    const batch = 1000;
    const out: number[] = [];
    for (let i = 0; i < 5; i++) op(); // warm
    for (let b = 0; b < 30; b++) {
      const started = performance.now();
      for (let i = 0; i < batch; i++) op();
      out.push(((performance.now() - started) * 1000) / batch);
    }
    return out;
  };
  const decideOnly = perOp(() => gatekeeper.decide(request));
  const asForwardAuth = perOp(() => {
    const decision = gatekeeper.decide(request);
    if (decision.kind === 'allow') {
      const id = manager.routeForUser(decision.user.id).runtimeId;
      if (id) manager.touch(id);
    }
  });
  const us = (v: number) => `${v.toFixed(1)} µs`;
  console.log(`\n### The decision alone, in-process (main thread, 30 batches of 1000 calls)\n`);
  console.log(
    table([
      ['call', 'per call p50', 'p95 of batches', 'calls/s (p50)'],
      ['gatekeeper.decide (cookie → workspace session → platform session → user)', us(median(decideOnly)), us(percentile(decideOnly, 95)), (1e6 / median(decideOnly)).toFixed(0)],
      ['decide + routeForUser + touch (what forward-auth does around it)', us(median(asForwardAuth)), us(percentile(asForwardAuth, 95)), (1e6 / median(asForwardAuth)).toFixed(0)],
    ]),
  );

  const [health, auth] = rows;
  summary.lines.push(
    `forward-auth latency: p50 ${ms(percentile(seq[1]!, 50))} vs /healthz ${ms(percentile(seq[0]!, 50))}: ${plus(percentile(seq[1]!, 50) - percentile(seq[0]!, 50))}; p99 ${ms(percentile(seq[1]!, 99))} vs ${ms(percentile(seq[0]!, 99))}`,
    `forward-auth throughput (${CONNECTIONS} connections, one Node process): ${rps(rateOf(auth!))} req/s vs /healthz ${rps(rateOf(health!))} = ${pct(rateOf(auth!), rateOf(health!))}; control-plane CPU ${cpuPerRequest(auth!).toFixed(0)} vs ${cpuPerRequest(health!).toFixed(0)} µs/request`,
    `forward-auth decision in-process: ${us(median(decideOnly))} per gatekeeper.decide, ${us(median(asForwardAuth))} with routeForUser + touch`,
  );
}

// ---- main ----

async function main(): Promise<void> {
  const requested = process.argv.slice(2);
  const parts = new Set(requested.length > 0 ? requested : ['proxy', 'forwardauth']);
  for (const part of parts) if (part !== 'proxy' && part !== 'forwardauth') throw new Error(`unknown part "${part}" (proxy, forwardauth)`);
  const clientKind = process.env.BENCH_CLIENT ?? (onPath('wrk') ? 'wrk' : 'node');
  if (clientKind !== 'wrk' && clientKind !== 'node') throw new Error('BENCH_CLIENT must be wrk or node');

  sweepOnSignal(instance);
  console.log(`instance label ${instance}; engine ${(await docker.version()).Version}; ${new Date().toISOString()}; ${await machineNote()}`);
  const client = new ClientThread<Task>(__filename, CLIENT_ROLE);
  const load: Setup['load'] =
    clientKind === 'wrk' ? wrkLoad : (target, connections, seconds) => client.run<LoadResult>({ kind: 'load', target, connections, seconds });
  const s = await setUp(client, load).catch(async (err: unknown) => {
    await client.close();
    throw err;
  });
  const summary: Summary = { lines: [] };
  try {
    console.log(
      [
        `control plane: this process's main thread (log level ${LOG_LEVEL}${LOG_LEVEL === 'info' ? ', the product default: one line per request' : ''}); runtime: ${STANDIN_IMAGE} at ${s.runtimeAddress}, 256 MiB, ${(s.bench.platform.runtimes.settings.nanoCpus / 1e9).toFixed(1)} CPUs (product default)`,
        `sequential requests and WebSockets: a Node worker thread; throughput: ${clientKind === 'wrk' ? 'wrk -t1 (child process)' : 'a Node worker thread (BENCH_CLIENT=node, or wrk not on PATH)'}; ${os.cpus().length} CPUs shared by client, control plane and runtime`,
      ].join('\n'),
    );
    if (parts.has('proxy')) await proxyPart(s, summary);
    if (parts.has('forwardauth')) await forwardAuthPart(s, summary);
    console.log(`\n## Summary\n\n${summary.lines.join('\n')}`);
  } catch (err) {
    console.error(`--- platform log (last lines)\n${s.bench.logText().split('\n').slice(-30).join('\n')}`);
    throw err;
  } finally {
    await client.close();
    await s.bench.close();
  }
}

if (isMainThread) {
  main()
    .catch((err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    })
    .finally(() => sweep(instance).catch(() => undefined));
} else if ((workerData as { role?: string } | null)?.role === CLIENT_ROLE) {
  serveClientTasks(runTask);
}
