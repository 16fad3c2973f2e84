/**
 * The model gateway (/llm/v1): what the control plane adds to a runtime's model call, each figure
 * next to a baseline measured in the same run, interleaved. No Docker: the runtime is a row in the
 * database with a known key (what a container would carry as CLAWLOOPS_MODEL_KEY), the model
 * service a small OpenAI-compatible server written here. The model is in the administrator's
 * catalog with prices (PUT /api/v1/admin/models/bench-model), so each ledger row is priced; the
 * per-user limits are off (0), as a bench needs. Every check the bench makes on the ledger (one
 * row per call, the upstream's usage, the price) must hold or the run fails.
 *
 *   the paths, all POST …/chat/completions with the same body and headers:
 *     direct      the test upstream itself (/v1/chat/completions):                       THE baseline
 *     gateway     the control plane's /llm/v1 with `Authorization: Bearer <runtime key>` (the
 *                 node:http front door, the kept key, the limiter, body parse/re-serialise, the upstream call over a
 *                 keep-alive agent, the streaming usage tap, a ledger row per call)
 *     bare relay  context: a plain node:http server in this process that forwards the body with
 *                 http.request over a keep-alive agent and pipes the answer back (no Express, no
 *                 authentication, no ledger): what any Node hop costs
 *   part 1, non-streamed small completion (~200-byte answer with usage):
 *     - sequential latency: one keep-alive connection per path, requests alternating; p50/p99 and
 *       what the gateway adds to direct (targets: p50 ≤ 2 ms, p99 ≤ 10 ms)
 *     - throughput: BENCH_CONNECTIONS (32) keep-alive connections, BENCH_ROUNDS × BENCH_DURATION s
 *       per path, rounds alternating; req/s and gateway/direct (target ≥ 80 %), with the CPU each
 *       party used (control plane µs per request is where the time goes)
 *   part 2, streamed (`stream: true`, the client not asking for usage, so the gateway turns
 *   include_usage on and strips that chunk again):
 *     - time to first token: request sent → first SSE event with content, requests alternating
 *       (target: p50 added ≤ 3 ms)
 *     - BENCH_CHUNKS (1000) chunks sent by the upstream every BENCH_CHUNK_GAP_MS (2 ms), each
 *       carrying the upstream's send time (CLOCK_MONOTONIC µs, shared by all processes); the
 *       client notes each chunk's arrival: per-chunk delay = arrival − send, p50/p99 per path, and
 *       what the gateway adds. Buffering would show as several chunks per socket read and a delay
 *       of at least one gap; both are reported
 *   part 3, the ledger (one llm_usage row per call; the gateway queues rows and writes the queue in
 *   one transaction at the end of each event-loop turn; WAL, synchronous=NORMAL)
 *   and the rest of the control plane's work per request:
 *     - in-process, main thread, batches of calls: the ledger write exactly as the gateway makes it
 *       (UsageRepository.appendAll of one row: the idle case) and the same INSERT as a prepared
 *       statement, next to the other per-request pieces (key hash, key lookup, limiter, body JSON,
 *       the request log line); its share of the gateway's control-plane CPU per request would be
 *       the throughput it costs when the control plane is the bottleneck, but a hot loop keeps
 *       SQLite in the CPU caches: a lower bound. The limiter is measured at several lengths of its
 *       per-minute list (with a per-minute limit it keeps at most that many start times; with the
 *       limit off it keeps none): empty, as long as in part 1's runs on average (read from the
 *       platform's own limiter), and a minute at part 1's rate
 *     - measured directly, which decides the target (≤ 10 % fewer req/s): gateway throughput with
 *       the ledger vs with UsageRepository.appendAll replaced by a no-op in this process (rounds
 *       alternating; ledger rows per request shown, 0.00 proving the switch), and the
 *       control-plane CPU per request the row adds in the request path
 *
 * The limiter's list: with a per-minute limit, ModelLimiter.admit keeps up to that many start
 * times per user (none with the limit off). To keep each figure
 * independent of the parts before it, the bench empties the platform limiter's list for the
 * member before each measurement (the instance is caught by wrapping ModelLimiter.prototype.admit
 * for one call; nothing in src/ changes) and shows its length at the start and end of each
 * throughput run; part 3 measures what a longer list costs, up to a minute of traffic at the
 * measured rate, i.e. what sustained load would see.
 *
 * Where things run: the control plane (buildPlatform from src/platform.ts, the production
 * composition root, listening on 127.0.0.1) is this process's MAIN thread, and nothing else runs
 * on it while measuring (its CPU is read from /proc/self/task/<pid>/stat); the bare relay runs on
 * the main thread too, while the control plane idles. The upstream is a child process (its CPU from
 * /proc/<pid>/stat); the Node client (sequential requests, streams, the fallback load generator)
 * a worker thread; wrk, when on PATH, a child process with one thread and a Lua script for the
 * POST body.
 *
 * Usage: npx tsx bench/modelGateway.ts
 * Env: BENCH_SAMPLES (2000 sequential requests per path), BENCH_TTFT_SAMPLES (500), BENCH_CONNECTIONS
 *      (32), BENCH_DURATION (4 s per throughput run), BENCH_ROUNDS (3), BENCH_CHUNKS (1000),
 *      BENCH_CHUNK_GAP_MS (2), BENCH_STREAM_ROUNDS (3), BENCH_CLIENT (wrk|node; wrk when on PATH),
 *      BENCH_LOG_LEVEL (info, the product default: one log line per request), BENCH_INSTANCE.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { isMainThread, workerData } from 'node:worker_threads';
import { loadConfig, type LogLevel } from '../src/config';
import { LimitsRepository } from '../src/db/repositories/limitsRepository';
import { RuntimeRepository } from '../src/db/repositories/runtimeRepository';
import { UsageRepository, type UsageRecord } from '../src/db/repositories/usageRepository';
import { ScryptPasswordHasher } from '../src/domain/passwordHasher';
import { systemClock } from '../src/lib/clock';
import { createLogger } from '../src/lib/logger';
import { hashSecret, newSecret } from '../src/lib/secrets';
import { ModelLimiter } from '../src/llm/modelLimits';
import { buildPlatform, type Platform } from '../src/platform';
import { benchInstance, machineCpu, machineCoresBusySince, machineNote, percentile, processCpuMs, table, knob, ClientThread, serveClientTasks, onPath, UNIT_MS, childCpuMs, CLOCK_TICKS, tailLogger, rotateCalls, keepAliveLoad } from './support';

const CLIENT_ROLE = 'model-gateway-client';
const UPSTREAM_ROLE_ENV = 'BENCH_MODEL_GATEWAY_ROLE';

const SAMPLES = Math.round(knob('BENCH_SAMPLES', 2000));
const TTFT_SAMPLES = Math.round(knob('BENCH_TTFT_SAMPLES', 500));
const CONNECTIONS = Math.round(knob('BENCH_CONNECTIONS', 32));
const DURATION_S = knob('BENCH_DURATION', 4);
const ROUNDS = Math.round(knob('BENCH_ROUNDS', 3));
const CHUNKS = Math.round(knob('BENCH_CHUNKS', 1000));
const CHUNK_GAP_MS = knob('BENCH_CHUNK_GAP_MS', 2);
const STREAM_ROUNDS = Math.round(knob('BENCH_STREAM_ROUNDS', 3));
const LOG_LEVEL = (process.env.BENCH_LOG_LEVEL ?? 'info') as LogLevel;
const WARMUP = 300;
const MODEL = 'bench-model';
/** The bench model's catalog prices, US dollars per million tokens: every call prices its ledger row. */
const PRICES = { inputPricePerMTok: 3, outputPricePerMTok: 15 };
/** 0 = no limit: the defaults (60 requests a minute, 4 at once) would stop a benchmark at once. */
/** What the ledger should say a call cost, in millionths of a dollar. */
const costOf = (prompt: number, completion: number) => Math.ceil(prompt * PRICES.inputPricePerMTok + completion * PRICES.outputPricePerMTok);
const NO_LIMITS = { requestsPerMinute: 0, concurrentRequests: 0, monthlyTokens: 0, monthlyCostMicrodollars: 0 };
const MEMBER = 'alice';
const PASSWORD = 'bench member passphrase 2026';

/** CLOCK_MONOTONIC in µs: the same clock in every process of the machine. */
const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);

// ---- the test upstream (a child process) ----

interface ChatBody {
  model?: string;
  stream?: boolean;
  stream_options?: { include_usage?: boolean };
  /**
   * Streams: how many chunks (one token each), and (bench-only meaning of a standard field, since
   * the gateway forwards only OpenAI's fields) the milliseconds between two chunks.
   */
  max_tokens?: number;
  temperature?: number;
}

const PROMPT_TOKENS = 9;

/** An OpenAI-compatible /v1/chat/completions: a small JSON answer, or `max_tokens` SSE chunks `temperature` ms apart, stamped with their send time. */
function upstreamProcess(): void {
  const server = http.createServer({ keepAliveTimeout: 120_000 }, (req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (chunk: Buffer) => parts.push(chunk));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
        res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":{"message":"not found","type":"invalid_request_error","code":"not_found"}}');
        return;
      }
      let body: ChatBody;
      try {
        body = JSON.parse(Buffer.concat(parts).toString('utf8')) as ChatBody;
      } catch {
        res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":{"message":"bad json","type":"invalid_request_error","code":"invalid_json"}}');
        return;
      }
      const model = body.model ?? MODEL;
      const created = Math.floor(Date.now() / 1000);
      if (body.stream !== true) {
        const text = JSON.stringify({
          id: 'chatcmpl-bench',
          object: 'chat.completion',
          created,
          model,
          choices: [{ index: 0, message: { role: 'assistant', content: 'Hello from the bench upstream.' }, finish_reason: 'stop' }],
          usage: { prompt_tokens: PROMPT_TOKENS, completion_tokens: 7, total_tokens: PROMPT_TOKENS + 7 },
        });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
        return;
      }
      const chunks = Math.max(1, Math.floor(body.max_tokens ?? 3));
      const gap = Math.max(0, body.temperature ?? 0);
      const event = (delta: Record<string, unknown>, finish: string | null) =>
        `data: ${JSON.stringify({ id: 'chatcmpl-bench', object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      let i = 0;
      const finish = () => {
        res.write(event({}, 'stop'));
        if (body.stream_options?.include_usage === true) {
          res.write(`data: ${JSON.stringify({ id: 'chatcmpl-bench', object: 'chat.completion.chunk', created, model, choices: [], usage: { prompt_tokens: PROMPT_TOKENS, completion_tokens: chunks, total_tokens: PROMPT_TOKENS + chunks } })}\n\n`);
        }
        res.end('data: [DONE]\n\n');
      };
      // The content is `<index>@<send time in µs> `: the client reads the stamp back.
      const one = () => res.write(event(i === 0 ? { role: 'assistant', content: `${i}@${nowUs()} ` } : { content: `${i}@${nowUs()} ` }, null));
      if (gap === 0) {
        for (; i < chunks; i++) one();
        finish();
        return;
      }
      const next = () => {
        if (res.destroyed) return;
        one();
        i++;
        if (i < chunks) setTimeout(next, gap);
        else finish();
      };
      next();
    });
  });
  server.listen(0, '127.0.0.1', () => process.send?.({ port: (server.address() as AddressInfo).port }));
  process.on('disconnect', () => process.exit(0));
}

// ---- what the client thread does ----

interface HttpTarget {
  name: string;
  port: number;
  path: string;
  /** Sent as given (wrk gets them with -H). */
  headers: Record<string, string>;
  body: string;
}

interface StreamResult {
  /** Request sent → first event with content, ms. */
  ttftMs: number;
  totalMs: number;
  /** Per content chunk: arrival − upstream send time, µs. */
  delays: number[];
  /** Upstream send time of each content chunk minus the previous one's, µs. */
  gaps: number[];
  contentEvents: number;
  events: number;
  /** Socket reads ('data' events) that carried at least one content event. */
  contentReads: number;
  usageChunkSeen: boolean;
  done: boolean;
}

type Task =
  | { kind: 'sequential'; targets: HttpTarget[]; warmup: number; samples: number }
  | { kind: 'ttft'; targets: HttpTarget[]; warmup: number; samples: number }
  | { kind: 'streams'; targets: HttpTarget[]; rounds: number }
  | { kind: 'load'; target: HttpTarget; connections: number; seconds: number };

interface LoadResult {
  requests: number;
  seconds: number;
  /** Latency under load, ms. */
  p50: number;
  p99: number;
  /** CPU ms of the load generator when it is a child process (wrk); null when it is the worker thread. */
  clientCpuMs: number | null;
}

function post(agent: http.Agent, t: HttpTarget): http.ClientRequest {
  return http.request({ host: '127.0.0.1', port: t.port, path: t.path, method: 'POST', headers: { ...t.headers, 'content-length': String(Buffer.byteLength(t.body)) }, agent });
}

function oneCompletion(agent: http.Agent, t: HttpTarget): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = post(agent, t);
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('error', reject);
      res.on('end', () => {
        const ms = performance.now() - started;
        if (res.statusCode !== 200 || !text.includes('"usage"')) reject(new Error(`${t.name}: answered ${res.statusCode}: ${text.slice(0, 300)}`));
        else resolve(ms);
      });
    });
    req.on('error', reject);
    req.end(t.body);
  });
}

function oneStream(agent: http.Agent, t: HttpTarget): Promise<StreamResult> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const result: StreamResult = { ttftMs: NaN, totalMs: NaN, delays: [], gaps: [], contentEvents: 0, events: 0, contentReads: 0, usageChunkSeen: false, done: false };
    let lastSent = NaN;
    const req = post(agent, t);
    req.on('response', (res) => {
      if (res.statusCode !== 200 || !/text\/event-stream/.test(res.headers['content-type'] ?? '')) {
        res.resume();
        reject(new Error(`${t.name}: answered ${res.statusCode} ${res.headers['content-type']}`));
        return;
      }
      let pending = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        const arrival = nowUs(); // first, before any parsing
        pending += chunk;
        let contentHere = false;
        for (let end = pending.indexOf('\n\n'); end >= 0; end = pending.indexOf('\n\n')) {
          const event = pending.slice(0, end);
          pending = pending.slice(end + 2);
          const data = event.startsWith('data: ') ? event.slice(6) : '';
          result.events++;
          if (data === '[DONE]') {
            result.done = true;
            continue;
          }
          const parsed = JSON.parse(data) as { choices?: { delta?: { content?: string } }[]; usage?: unknown };
          if (parsed.usage) result.usageChunkSeen = true;
          const stamp = /^(\d+)@(\d+) $/.exec(parsed.choices?.[0]?.delta?.content ?? '');
          if (!stamp) continue;
          const sent = Number(stamp[2]);
          if (result.contentEvents === 0) result.ttftMs = performance.now() - started;
          result.contentEvents++;
          contentHere = true;
          result.delays.push(arrival - sent);
          if (!Number.isNaN(lastSent)) result.gaps.push(sent - lastSent);
          lastSent = sent;
        }
        if (contentHere) result.contentReads++;
      });
      res.on('error', reject);
      res.on('end', () => {
        result.totalMs = performance.now() - started;
        if (!result.done) reject(new Error(`${t.name}: the stream ended without [DONE]`));
        else resolve(result);
      });
    });
    req.on('error', reject);
    req.end(t.body);
  });
}

/** The Node load generator: `connections` loops of keep-alive requests for `seconds`. */
async function nodeLoad(t: HttpTarget, connections: number, seconds: number): Promise<LoadResult> {
  return { ...(await keepAliveLoad(connections, seconds, (agent) => oneCompletion(agent, t))), clientCpuMs: null };
}

async function runTask(task: Task): Promise<unknown> {
  switch (task.kind) {
    case 'sequential':
      return rotateCalls(task.targets, task.warmup, task.samples, oneCompletion);
    case 'ttft': {
      const streams = await rotateCalls(task.targets, task.warmup, task.samples, oneStream);
      return streams.map((list) => list.map((s) => s.ttftMs));
    }
    case 'streams':
      // One warm-up stream per target is in the rotation's first round.
      return rotateCalls(task.targets, 1, task.rounds, oneStream);
    case 'load':
      return nodeLoad(task.target, task.connections, task.seconds);
  }
}

// ---- wrk ----


function parseWrk(out: string, t: HttpTarget, clientCpuMs: number | null): LoadResult {
  const summary = /(\d+) requests in ([\d.]+)(us|ms|s|m), /.exec(out);
  if (!summary) throw new Error(`${t.name}: unreadable wrk output:\n${out}`);
  const requests = Number(summary[1]);
  const seconds = (Number(summary[2]) * (UNIT_MS[summary[3] ?? 's'] ?? NaN)) / 1000;
  const latency = (p: number) => {
    const m = new RegExp(`^\\s*${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(out);
    return m ? Number(m[1]) * (UNIT_MS[m[2] ?? 'ms'] ?? NaN) : NaN;
  };
  const bad = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  if (bad) throw new Error(`${t.name}: ${bad[1]} of ${requests} answers were not 2xx/3xx`);
  const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  if (errors && (Number(errors[1]) > 0 || Number(errors[3]) > 0 || Number(errors[4]) > 0)) throw new Error(`${t.name}: wrk socket errors: ${errors[0]}`);
  return { requests, seconds, p50: latency(50), p99: latency(99), clientCpuMs };
}

function wrkLoader(scriptDir: string): (t: HttpTarget, connections: number, seconds: number) => Promise<LoadResult> {
  return (t, connections, seconds) => {
    // The POST body through a Lua script (a long bracket string: the JSON holds no "]]").
    const script = path.join(scriptDir, `wrk-${t.name.replace(/\W+/g, '-')}.lua`);
    fs.writeFileSync(script, `wrk.method = "POST"\nwrk.body = [[${t.body}]]\n`);
    const args = ['-t1', `-c${connections}`, `-d${seconds}s`, '--latency', '--timeout', '10s', '-s', script];
    for (const [name, value] of Object.entries(t.headers)) args.push('-H', `${name}: ${value}`);
    args.push(`http://127.0.0.1:${t.port}${t.path}`);
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
        } catch (e) {
          reject(e as Error);
        }
      });
    });
  };
}

// ---- CPU accounting ----


/** utime + stime of a /proc stat file, in ms. */
function statCpuMs(file: string): number {
  const stat = fs.readFileSync(file, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After "pid (comm) ", field 3 (state) is index 0: utime is field 14, stime field 15.
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
}

/** This process's main thread (the control plane). */
const mainThreadCpuMs = () => statCpuMs(`/proc/self/task/${process.pid}/stat`);

interface CpuUse {
  /** In cores (1 = one CPU fully busy) over the run. */
  main: number;
  upstream: number;
  /** The load generator: wrk's own CPU, or this process's other threads (the client worker). */
  client: number;
  machine: number;
  /** The machine minus this process, wrk and the upstream: network stack work charged to none of them, and any other work. */
  rest: number;
  /** The main thread's CPU per request, µs. */
  mainPerRequest: number;
  upstreamPerRequest: number;
}

type Measured = LoadResult & { cpu: CpuUse; ledgerRows: number; window: [number | null, number | null] | null };

async function withCpu(upstreamPid: number, run: () => Promise<LoadResult>): Promise<LoadResult & { cpu: CpuUse }> {
  const upstreamCpu = () => statCpuMs(`/proc/${upstreamPid}/stat`);
  const before = { at: performance.now(), main: mainThreadCpuMs(), process: processCpuMs(), upstream: upstreamCpu(), machine: machineCpu() };
  const result = await run();
  const wall = performance.now() - before.at;
  const main = mainThreadCpuMs() - before.main;
  const processCpu = processCpuMs() - before.process;
  const upstream = upstreamCpu() - before.upstream;
  const machine = machineCoresBusySince(before.machine);
  const client = result.clientCpuMs !== null ? result.clientCpuMs / wall : Math.max(0, processCpu - main) / wall;
  const requests = Math.max(1, result.requests);
  return {
    ...result,
    cpu: {
      main: main / wall,
      upstream: upstream / wall,
      client,
      machine,
      rest: machine - processCpu / wall - (result.clientCpuMs ?? 0) / wall - upstream / wall,
      mainPerRequest: (main * 1000) / requests,
      upstreamPerRequest: (upstream * 1000) / requests,
    },
  };
}

// ---- formatting ----

const ms = (v: number) => (Number.isNaN(v) ? '-' : v < 10 ? `${v.toFixed(3)} ms` : `${v.toFixed(1)} ms`);
const plus = (v: number) => (Number.isNaN(v) ? '-' : `${v >= 0 ? '+' : '−'}${Math.abs(v).toFixed(3)} ms`);
const usFmt = (v: number) => (Number.isNaN(v) ? '-' : v < 100 ? `${v.toFixed(1)} µs` : `${v.toFixed(0)} µs`);
const usPlus = (v: number) => (Number.isNaN(v) ? '-' : `${v >= 0 ? '+' : '−'}${Math.abs(v).toFixed(0)} µs`);
const pct = (a: number, b: number) => (b > 0 ? `${((a / b) * 100).toFixed(0)} %` : '-');
const cores = (v: number | null) => (v === null || Number.isNaN(v) ? '-' : v.toFixed(2));
const median = (values: number[]) => percentile(values, 50);
const rps = (v: number) => (Number.isNaN(v) ? '-' : v.toFixed(0));
const verdict = (ok: boolean) => (ok ? 'MET' : 'MISSED');

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

interface LoadRow {
  name: string;
  target: HttpTarget;
  runs: Measured[];
  /** Called before each of the row's runs (the ledger on/off switch). */
  before?: () => void;
  /** Through the gateway: its limiter window is noted at the start and end of each run. */
  gateway?: boolean;
}

const rateOf = (row: LoadRow) => median(row.runs.map((r) => r.requests / r.seconds));
const pick = (row: LoadRow, f: (r: Measured) => number | null) => {
  const values = row.runs.map(f).filter((v): v is number => v !== null && !Number.isNaN(v));
  return values.length === 0 ? NaN : median(values);
};
const cpuPerRequest = (row: LoadRow) => pick(row, (r) => r.cpu.mainPerRequest);

function throughputTable(rows: LoadRow[]): string {
  const base = rateOf(rows[0]!);
  return table([
    [
      'path',
      'req/s (median)',
      'each round',
      'vs baseline',
      'latency p50 / p99 under load',
      'CPU in cores: control plane',
      'upstream',
      'client',
      'rest',
      `machine (of ${os.cpus().length})`,
      'control plane CPU µs/req',
      'upstream µs/req',
      'ledger rows/req',
      'limiter list start → end',
    ],
    ...rows.map((row) => [
      row.name,
      rps(rateOf(row)),
      row.runs.map((r) => rps(r.requests / r.seconds)).join(' / '),
      row === rows[0] ? '' : pct(rateOf(row), base),
      `${ms(pick(row, (r) => r.p50))} / ${ms(pick(row, (r) => r.p99))}`,
      cores(pick(row, (r) => r.cpu.main)),
      cores(pick(row, (r) => r.cpu.upstream)),
      cores(pick(row, (r) => r.cpu.client)),
      cores(pick(row, (r) => r.cpu.rest)),
      cores(pick(row, (r) => r.cpu.machine)),
      pick(row, (r) => r.cpu.mainPerRequest).toFixed(0),
      pick(row, (r) => r.cpu.upstreamPerRequest).toFixed(0),
      pick(row, (r) => r.ledgerRows / Math.max(1, r.requests)).toFixed(2),
      row.gateway ? row.runs.map((r) => (r.window ? `${r.window[0] ?? '?'} → ${r.window[1] ?? '?'}` : '-')).join(' / ') : '',
    ]),
  ]);
}

const CPU_LEGEND = [
  'CPU columns, in cores, medians of the rounds: control plane = this process\'s main thread (the gateway, or the bare relay);',
  'upstream = the test upstream\'s process; client = wrk\'s own CPU (or the client worker thread); rest = the machine minus',
  'those (network stack work charged to none of them, and anything else running). 1e6 / "control plane CPU µs/req" is the',
  'ceiling of that path in req/s on one core, whatever the client. Ledger rows/req: rows added to llm_usage per completed',
  'request (a little above 1: requests in flight when wrk stops are cut, and recorded as aborted). Limiter list: entries in',
  'the gateway limiter\'s per-minute list for the member at the start and end of each run, emptied before it (see part 3).',
].join('\n');

// ---- the setup ----

interface Upstream {
  port: number;
  pid: number;
  close(): void;
}

function startUpstream(): Promise<Upstream> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(process.execPath, ['-e', `require('tsx/cjs/api').register(); require(${JSON.stringify(__filename)});`], {
      cwd: path.resolve(__dirname, '..'),
      env: { ...process.env, [UPSTREAM_ROLE_ENV]: 'upstream' },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const timer = setTimeout(() => {
      child.kill();
      reject(new Error('the test upstream did not start within 30 s'));
    }, 30_000);
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`the test upstream exited (${code}) before listening`)));
    child.once('message', (message: { port: number }) => {
      clearTimeout(timer);
      child.removeAllListeners('exit');
      resolve({
        port: message.port,
        pid: child.pid ?? 0,
        close: () => {
          if (child.exitCode === null) child.kill();
        },
      });
    });
  });
}

/** The limiter's private per-user list of call times (bench-only peek; undefined if the field is renamed). */
function recentOf(limiter: ModelLimiter): Map<string, number[]> | undefined {
  const recent = (limiter as unknown as { recent?: unknown }).recent;
  return recent instanceof Map ? (recent as Map<string, number[]>) : undefined;
}

interface Gateway {
  platform: Platform;
  port: number;
  key: string;
  userId: string;
  runtimeId: string;
  dataDir: string;
  /**
   * Entries in the platform limiter's per-minute list for the member (null: not found), read from
   * the limiter instance the gateway uses, caught by wrapping ModelLimiter.prototype.admit for its
   * first call. admit() copies the whole list (Array.filter) on every call, whatever the limits.
   */
  limiterWindow(): number | null;
  /** Empties that list, so a measurement does not inherit the traffic of the one before it (the list only drains after a minute). */
  resetLimiterWindow(): void;
  logText(): string;
  close(): Promise<void>;
}

/**
 * The production composition root (buildPlatform) with the gateway pointed at the test upstream
 * and its per-user limits off (0 = unlimited: 60 requests/min would stop a benchmark at once),
 * listening on a loopback port. Its runtime is a database row with a known key: the gateway path
 * never touches Docker.
 */
async function startGateway(upstreamPort: number, instance: string): Promise<Gateway> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'clawloops-bench-gateway-'));
  const upstreamUrl = `http://127.0.0.1:${upstreamPort}/v1`;
  const config = loadConfig({
    CLAWLOOPS_DATA_DIR: dataDir,
    CLAWLOOPS_HOST: '127.0.0.1',
    CLAWLOOPS_PORT: '8080',
    CLAWLOOPS_PUBLIC_URL: 'http://127.0.0.1:8080',
    CLAWLOOPS_INSTANCE: instance,
    CLAWLOOPS_LOG_LEVEL: LOG_LEVEL,
    CLAWLOOPS_LLM_UPSTREAM_URL: upstreamUrl,
  });
  const { logger, lines: logLines } = tailLogger(config.logLevel);
  const platform = buildPlatform(config, logger, {
    hasher: new ScryptPasswordHasher({ N: 1024, r: 8, p: 1 }),
    webRoot: null,
    llm: { upstreamUrl, limits: NO_LIMITS },
  });
  try {
    await platform.setup.ensureInitialAdmin({ username: MEMBER, password: PASSWORD });
    const userId = platform.users.findByUsername(MEMBER).id;
    const key = newSecret();
    const now = Date.now();
    // The account came with its runtime record: give it a container and a model key.
    const { id: runtimeId } = platform.db
      .prepare("UPDATE runtimes SET desired_state = 'running', container_id = 'bench-container', model_key_hash = ?, updated_at = ? WHERE user_id = ? RETURNING id")
      .get(hashSecret(key), now, userId) as { id: string };
    // Catch the platform's own limiter at the first gateway call, then put admit() back.
    let limiter: ModelLimiter | null = null;
    const catchLimiter = (caught: ModelLimiter) => (limiter = caught);
    const admit = Object.getOwnPropertyDescriptor(ModelLimiter.prototype, 'admit')!;
    Object.defineProperty(ModelLimiter.prototype, 'admit', {
      ...admit,
      value(this: ModelLimiter, ...args: Parameters<ModelLimiter['admit']>) {
        catchLimiter(this);
        Object.defineProperty(ModelLimiter.prototype, 'admit', admit);
        return (admit.value as ModelLimiter['admit']).apply(this, args);
      },
    });
    const server = http.createServer(platform.app).listen(0, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      server.once('listening', resolve);
      server.once('error', reject);
    });
    // The bench model in the administrator's catalog, priced, as an operator would set it up.
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1`;
    const json = { 'content-type': 'application/json', origin: config.publicUrl };
    const login = await fetch(`${base}/auth/login`, { method: 'POST', headers: json, body: JSON.stringify({ username: MEMBER, password: PASSWORD }) });
    const cookie = login.headers.get('set-cookie')?.split(';')[0];
    if (login.status !== 200 || !cookie) throw new Error(`signing in failed: ${login.status} ${await login.text()}`);
    const saved = await fetch(`${base}/admin/models/${MODEL}`, { method: 'PUT', headers: { ...json, cookie }, body: JSON.stringify({ ...PRICES, isDefault: true }) });
    if (saved.status !== 200) throw new Error(`adding ${MODEL} to the catalog failed: ${saved.status} ${await saved.text()}`);
    return {
      platform,
      port: (server.address() as AddressInfo).port,
      key,
      userId,
      runtimeId,
      dataDir,
      limiterWindow: () => {
        const recent = limiter ? recentOf(limiter) : undefined;
        return recent ? (recent.get(userId)?.length ?? 0) : null;
      },
      resetLimiterWindow: () => {
        if (limiter) recentOf(limiter)?.delete(userId);
      },
      logText: () => logLines.join('\n'),
      close: async () => {
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
        platform.close();
        fs.rmSync(dataDir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    platform.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
}

/** The floor of any Node hop: read the body, forward it over a keep-alive agent, pipe the answer back. */
async function bareRelay(upstreamPort: number): Promise<{ port: number; close: () => Promise<void> }> {
  const agent = new http.Agent({ keepAlive: true });
  const server = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (chunk: Buffer) => parts.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(parts);
      const up = http.request(
        { host: '127.0.0.1', port: upstreamPort, path: '/v1/chat/completions', method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': String(body.length) } },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, { 'content-type': answer.headers['content-type'] ?? 'application/json' });
          answer.pipe(res);
        },
      );
      up.on('error', () => res.destroy());
      up.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      agent.destroy();
    },
  };
}

interface Setup {
  gateway: Gateway;
  upstream: Upstream;
  relayPort: number;
  client: ClientThread<Task>;
  load: (t: HttpTarget, connections: number, seconds: number) => Promise<LoadResult>;
  /** Rows in llm_usage now. */
  ledgerRows(): number;
  summary: string[];
}

const NAMES = ['direct: the test upstream  [baseline]', 'gateway: /llm/v1, runtime key', 'context: bare Node relay (no Express, no auth, no ledger)'];

function targets(s: Setup, body: Record<string, unknown>): HttpTarget[] {
  const text = JSON.stringify(body);
  const headers = { 'Content-Type': 'application/json', Authorization: `Bearer ${s.gateway.key}` };
  return [
    { name: 'direct', port: s.upstream.port, path: '/v1/chat/completions', headers, body: text },
    { name: 'gateway', port: s.gateway.port, path: '/llm/v1/chat/completions', headers, body: text },
    { name: 'bare relay', port: s.relayPort, path: '/v1/chat/completions', headers, body: text },
  ];
}

const COMPLETION_BODY = { model: MODEL, messages: [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Say hi.' }], max_tokens: 16 };

/** Each row's runs, rounds alternating between the rows; one unmeasured second first for each. */
async function throughput(s: Setup, rows: LoadRow[]): Promise<void> {
  const prepare = (row: LoadRow) => {
    row.before?.();
    if (row.gateway) s.gateway.resetLimiterWindow();
  };
  for (const row of rows) {
    prepare(row);
    await s.load(row.target, CONNECTIONS, 1);
  }
  for (let round = 0; round < ROUNDS; round++) {
    for (let j = 0; j < rows.length; j++) {
      const row = rows[(round + j) % rows.length]!;
      prepare(row);
      const rowsBefore = s.ledgerRows();
      const windowBefore = s.gateway.limiterWindow();
      const measured = await withCpu(s.upstream.pid, () => s.load(row.target, CONNECTIONS, DURATION_S));
      await new Promise((resolve) => setTimeout(resolve, 100)); // requests cut at the end finish their ledger rows
      row.runs.push({ ...measured, ledgerRows: s.ledgerRows() - rowsBefore, window: row.gateway ? [windowBefore, s.gateway.limiterWindow()] : null });
    }
  }
}

// ---- part 1: non-streamed ----

interface Part1 {
  gatewayCpuUs: number;
  relayCpuUs: number;
  gatewayRate: number;
  /** The limiter list's mean length over the gateway's throughput runs (start and end of each). */
  meanWindow: number;
}

async function completionPart(s: Setup): Promise<Part1> {
  console.log(`\n## Non-streamed chat completion: the gateway vs the upstream directly (${await machineNote()})`);
  const t = targets(s, COMPLETION_BODY);
  const rowsBefore = s.ledgerRows();
  s.gateway.resetLimiterWindow();
  const seq = await s.client.run<number[][]>({ kind: 'sequential', targets: t, warmup: WARMUP, samples: SAMPLES });
  const written = s.ledgerRows() - rowsBefore;
  if (written !== WARMUP + SAMPLES) throw new Error(`the gateway answered ${WARMUP + SAMPLES} calls but wrote ${written} ledger rows`);
  const tokens = s.gateway.platform.db
    .prepare("SELECT COUNT(*) AS n FROM llm_usage WHERE streamed = 0 AND status = 'ok' AND prompt_tokens = ? AND completion_tokens = 7 AND cost_microdollars = ?")
    .get(PROMPT_TOKENS, costOf(PROMPT_TOKENS, 7)) as { n: number };
  if (tokens.n < written) throw new Error(`only ${tokens.n} of ${written} ledger rows carry the upstream's usage, priced`);
  console.log(`\n### Sequential latency, ${Buffer.byteLength(t[0]!.body)}-byte request, one keep-alive connection per path, requests alternating (ledger: ${written} rows, one per gateway call, usage read)\n`);
  console.log(latencyTable(NAMES, seq));

  const rows: LoadRow[] = t.map((target, i) => ({ name: NAMES[i]!, target, runs: [], gateway: i === 1 }));
  await throughput(s, rows);
  console.log(`\n### Throughput, ${CONNECTIONS} keep-alive connections, ${ROUNDS} × ${DURATION_S} s per path, rounds alternating\n`);
  console.log(throughputTable(rows));
  console.log(CPU_LEGEND);

  const [direct, gateway, relay] = rows as [LoadRow, LoadRow, LoadRow];
  const addedP50 = percentile(seq[1]!, 50) - percentile(seq[0]!, 50);
  const addedP99 = percentile(seq[1]!, 99) - percentile(seq[0]!, 99);
  const share = rateOf(gateway) / rateOf(direct);
  s.summary.push(
    `non-streamed latency: gateway p50 ${ms(percentile(seq[1]!, 50))} vs direct ${ms(percentile(seq[0]!, 50))}: ${plus(addedP50)} added (target ≤ 2 ms: ${verdict(addedP50 <= 2)}); p99 ${ms(percentile(seq[1]!, 99))} vs ${ms(percentile(seq[0]!, 99))}: ${plus(addedP99)} (target ≤ 10 ms: ${verdict(addedP99 <= 10)}); bare relay p50 ${plus(percentile(seq[2]!, 50) - percentile(seq[0]!, 50))}`,
    `non-streamed throughput (${CONNECTIONS} connections): gateway ${rps(rateOf(gateway))} req/s vs direct ${rps(rateOf(direct))} = ${pct(rateOf(gateway), rateOf(direct))} (target ≥ 80 %: ${verdict(share >= 0.8)}); bare relay ${rps(rateOf(relay))} = ${pct(rateOf(relay), rateOf(direct))}; control-plane CPU per request: gateway ${cpuPerRequest(gateway).toFixed(0)} µs, bare relay ${cpuPerRequest(relay).toFixed(0)} µs; upstream ${pick(direct, (r) => r.cpu.upstreamPerRequest).toFixed(0)} µs/request`,
  );
  const windows = gateway.runs.flatMap((r) => r.window ?? []).filter((w): w is number => w !== null);
  return { gatewayCpuUs: cpuPerRequest(gateway), relayCpuUs: cpuPerRequest(relay), gatewayRate: rateOf(gateway), meanWindow: windows.length > 0 ? mean(windows) : NaN };
}

// ---- part 2: streamed ----

function mean(values: number[]): number {
  return values.length === 0 ? NaN : values.reduce((a, b) => a + b, 0) / values.length;
}

async function streamingPart(s: Setup): Promise<void> {
  console.log(`\n## Streamed chat completion (stream: true, usage not asked for by the client) (${await machineNote()})`);
  const ttftBody = { ...COMPLETION_BODY, stream: true, max_tokens: 4, temperature: 0 };
  const rowsBefore = s.ledgerRows();
  s.gateway.resetLimiterWindow();
  const ttft = await s.client.run<number[][]>({ kind: 'ttft', targets: targets(s, ttftBody), warmup: 50, samples: TTFT_SAMPLES });
  const written = s.ledgerRows() - rowsBefore;
  if (written !== 50 + TTFT_SAMPLES) throw new Error(`the gateway streamed ${50 + TTFT_SAMPLES} answers but wrote ${written} ledger rows`);
  const metered = s.gateway.platform.db
    .prepare("SELECT COUNT(*) AS n FROM llm_usage WHERE streamed = 1 AND status = 'ok' AND completion_tokens = 4 AND cost_microdollars = ?")
    .get(costOf(PROMPT_TOKENS, 4)) as { n: number };
  if (metered.n !== written) throw new Error(`only ${metered.n} of ${written} streamed ledger rows carry the usage chunk's tokens, priced`);
  console.log(`\n### Time to first token: request sent → first SSE event with content (4 chunks, sent at once), requests alternating (ledger: ${written} rows with the usage of the stripped chunk)\n`);
  console.log(latencyTable(NAMES, ttft));

  const streamBody = { ...COMPLETION_BODY, stream: true, max_tokens: CHUNKS, temperature: CHUNK_GAP_MS };
  s.gateway.resetLimiterWindow();
  const streams = await s.client.run<StreamResult[][]>({ kind: 'streams', targets: targets(s, streamBody), rounds: STREAM_ROUNDS });
  for (const [i, list] of streams.entries()) {
    for (const r of list) {
      if (r.contentEvents !== CHUNKS) throw new Error(`${NAMES[i]}: ${r.contentEvents} of ${CHUNKS} chunks arrived`);
      if (r.usageChunkSeen) throw new Error(`${NAMES[i]}: the client got a usage chunk it did not ask for`);
    }
  }
  const delays = streams.map((list) => list.flatMap((r) => r.delays));
  const gaps = streams.flatMap((list) => list.flatMap((r) => r.gaps));
  const readsPerChunk = (list: StreamResult[]) => list.reduce((a, r) => a + r.contentReads, 0) / Math.max(1, list.reduce((a, r) => a + r.contentEvents, 0));
  const base = delays[0]!;
  console.log(
    `\n### ${CHUNKS} chunks every ${CHUNK_GAP_MS} ms (actual gap p50 ${usFmt(median(gaps))}, p99 ${usFmt(percentile(gaps, 99))}), ${STREAM_ROUNDS} streams per path, streams alternating: per-chunk delay = client arrival − upstream send\n`,
  );
  console.log(
    table([
      ['path', 'chunks', 'delay p50', 'p95', 'p99', 'max', 'mean', 'added p50', 'added p99', 'socket reads per chunk', 'stream total (median)'],
      ...NAMES.map((name, i) => {
        const d = delays[i]!;
        const first = i === 0;
        return [
          name,
          d.length,
          usFmt(percentile(d, 50)),
          usFmt(percentile(d, 95)),
          usFmt(percentile(d, 99)),
          usFmt(Math.max(...d)),
          usFmt(mean(d)),
          first ? '' : usPlus(percentile(d, 50) - percentile(base, 50)),
          first ? '' : usPlus(percentile(d, 99) - percentile(base, 99)),
          readsPerChunk(streams[i]!).toFixed(3),
          ms(median(streams[i]!.map((r) => r.totalMs))),
        ];
      }),
    ]),
  );
  console.log('Socket reads per chunk: 1.000 = every chunk arrived in a read of its own (nothing held back and sent together); a buffering');
  console.log(`hop would show fewer reads than chunks and delays of at least one gap (${CHUNK_GAP_MS} ms).`);

  const ttftAdded = percentile(ttft[1]!, 50) - percentile(ttft[0]!, 50);
  const gw = delays[1]!;
  const addedP50 = percentile(gw, 50) - percentile(base, 50);
  const addedP99 = percentile(gw, 99) - percentile(base, 99);
  const unbuffered = readsPerChunk(streams[1]!) >= 0.95 * readsPerChunk(streams[0]!) && percentile(gw, 99) < CHUNK_GAP_MS * 1000;
  s.summary.push(
    `time to first token: gateway p50 ${ms(percentile(ttft[1]!, 50))} vs direct ${ms(percentile(ttft[0]!, 50))}: ${plus(ttftAdded)} added (target ≤ 3 ms: ${verdict(ttftAdded <= 3)}); p99 ${plus(percentile(ttft[1]!, 99) - percentile(ttft[0]!, 99))}`,
    `streaming, ${CHUNKS} chunks every ${CHUNK_GAP_MS} ms: per-chunk delay gateway p50 ${usFmt(percentile(gw, 50))} / p99 ${usFmt(percentile(gw, 99))} vs direct ${usFmt(percentile(base, 50))} / ${usFmt(percentile(base, 99))}: ${usPlus(addedP50)} / ${usPlus(addedP99)} added; socket reads per chunk ${readsPerChunk(streams[1]!).toFixed(3)} vs ${readsPerChunk(streams[0]!).toFixed(3)} direct (no extra buffering: ${verdict(unbuffered)})`,
  );
}

// ---- part 3: the ledger ----

/** µs per call: 30 batches of `batch` calls after a few warm-up calls. */
/** Per call, µs: wall time of each batch, and this process's CPU time over all batches (nothing else runs in it meanwhile). */
interface PerCall {
  wall: number[];
  cpu: number;
}

function perCall(op: () => void, batch = 1000, batches = 30): PerCall {
  for (let i = 0; i < 50; i++) op();
  const wall: number[] = [];
  const cpuBefore = processCpuMs();
  for (let b = 0; b < batches; b++) {
    const started = performance.now();
    for (let i = 0; i < batch; i++) op();
    wall.push(((performance.now() - started) * 1000) / batch);
  }
  return { wall, cpu: ((processCpuMs() - cpuBefore) * 1000) / (batch * batches) };
}

/** admit + settle on a fresh limiter whose per-minute list holds `entries` recent calls, reset before each batch of 100. */
function limiterAt(limiter: ModelLimiter, userId: string, entries: number): PerCall {
  const recent = recentOf(limiter);
  if (!recent) return { wall: [], cpu: NaN };
  const wall: number[] = [];
  let cpu = 0;
  for (let b = 0; b < 20; b++) {
    recent.set(userId, new Array<number>(entries).fill(Date.now()));
    const cpuBefore = processCpuMs();
    const started = performance.now();
    for (let i = 0; i < 100; i++) limiter.admit(userId, 100, 1000).settle(16, 132);
    wall.push(((performance.now() - started) * 1000) / 100);
    cpu += processCpuMs() - cpuBefore;
  }
  recent.delete(userId);
  return { wall, cpu: (cpu * 1000) / 2000 };
}

const MICRO_MODEL = 'bench-ledger-micro';

async function ledgerPart(s: Setup, part1: Part1): Promise<void> {
  console.log(`\n## The ledger: one llm_usage row per call (${await machineNote()})`);
  const db = s.gateway.platform.db;
  const { userId, runtimeId, key } = s.gateway;
  const usage = new UsageRepository(db);
  const record: UsageRecord = {
    at: Date.now(),
    userId,
    username: MEMBER,
    runtimeId,
    endpoint: 'chat/completions',
    model: MICRO_MODEL,
    streamed: false,
    status: 'ok',
    httpStatus: 200,
    promptTokens: PROMPT_TOKENS,
    completionTokens: 7,
    costMicrodollars: costOf(PROMPT_TOKENS, 7),
    latencyMs: 1,
    estimated: false,
  };
  const rawInsert = db.prepare(
    `INSERT INTO llm_usage (at, user_id, username, runtime_id, endpoint, model, streamed, status, http_status, prompt_tokens, completion_tokens, cost_microdollars, latency_ms)
     VALUES (?, ?, ?, ?, 'chat/completions', ?, 0, 'ok', 200, ?, 7, 132, 1)`,
  );
  const runtimes = new RuntimeRepository(db);
  const limiter = new ModelLimiter({ defaults: NO_LIMITS, overrides: new LimitsRepository(db), usage, clock: systemClock });
  const keyHash = hashSecret(key);
  const body = JSON.stringify(COMPLETION_BODY);
  const sink = createLogger(LOG_LEVEL, new Writable({ write: (_chunk, _enc, done) => done() }));
  const rowsBefore = s.ledgerRows();
  const partWindow = Number.isNaN(part1.meanWindow) ? 0 : Math.round(part1.meanWindow);
  const minuteWindow = Math.round(part1.gatewayRate * 60);
  const ledgerRow = perCall(() => usage.appendAll([{ ...record, at: Date.now() }]));
  const preparedRow = perCall(() => rawInsert.run(Date.now(), userId, MEMBER, runtimeId, MICRO_MODEL, PROMPT_TOKENS));
  const limiterEmpty = limiterAt(limiter, userId, 0);
  const limiterPart1 = limiterAt(limiter, userId, partWindow);
  const limiterMinute = limiterAt(limiter, userId, minuteWindow);
  // [name, µs per call, counted in the sum of what part 1's gateway requests did]
  const pieces: [string, PerCall, boolean][] = [
    ['ledger row: UsageRepository.appendAll of one row (a transaction per row: the most an idle gateway pays)', ledgerRow, true],
    ['ledger row: the same INSERT, a prepared statement run directly', preparedRow, false],
    ['key: hashSecret (SHA-256 of the bearer key)', perCall(() => hashSecret(key)), true],
    ['key: RuntimeRepository.findByModelKeyHash (indexed SELECT, join users)', perCall(() => runtimes.findByModelKeyHash(keyHash)), true],
    ['limits: ModelLimiter.admit + settle, limits 0, per-minute list empty', limiterEmpty, false],
    [`limits: the same, list of ${partWindow} entries (part 1 gateway runs, mean)`, limiterPart1, true],
    [`limits: the same, list of ${minuteWindow} entries (one minute at part 1's gateway rate)`, limiterMinute, false],
    ['body: JSON.parse + JSON.stringify of the request', perCall(() => JSON.stringify(JSON.parse(body))), true],
    [`request log line (pino child + ${LOG_LEVEL}, to a null stream)`, perCall(() => sink.child({ reqId: 'x' }).info({ method: 'POST', path: '/llm/v1/chat/completions', status: 200, ms: 1.2, ip: '127.0.0.1' }, 'request')), true],
  ];
  const inserted = s.ledgerRows() - rowsBefore;
  const tableRows = s.ledgerRows();
  db.prepare('DELETE FROM llm_usage WHERE model = ?').run(MICRO_MODEL);
  console.log(
    `\n### Per-request pieces in-process (main thread; 30 batches of 1000 calls after 50 warm-up calls, the limiter 20 batches of 100 with its list reset before each; ${inserted} rows inserted, the table then held ${tableRows}, since deleted)\n`,
  );
  console.log(
    table([
      ['piece', 'CPU per call', 'wall per call p50', 'p95 of batches', 'CPU share of the gateway\'s CPU/request'],
      ...pieces.map(([name, v]) => [name, usFmt(v.cpu), usFmt(median(v.wall)), usFmt(percentile(v.wall, 95)), pct(v.cpu, part1.gatewayCpuUs)]),
      ['the gateway\'s control-plane CPU per request (part 1 throughput, median)', usFmt(part1.gatewayCpuUs), '', '', '100 %'],
      ['bare Node relay\'s CPU per request (part 1): the floor of a Node hop', usFmt(part1.relayCpuUs), '', '', pct(part1.relayCpuUs, part1.gatewayCpuUs)],
    ]),
  );
  const measuredPieces = pieces.filter(([, , counted]) => counted).reduce((a, [, v]) => a + v.cpu, 0);
  const rest = part1.gatewayCpuUs - part1.relayCpuUs - measuredPieces;
  console.log(
    [
      `Where the gateway's ${usFmt(part1.gatewayCpuUs)} per request went in part 1: ${usFmt(part1.relayCpuUs)} any Node hop (HTTP parse, upstream request, pipe back), ${usFmt(measuredPieces)} the pieces`,
      `marked above (ledger in a hot loop, key, limiter at part 1's mean list length, body JSON, log line), ${usFmt(rest)} the rest (the front door's dispatch, the`,
      'body reader, response headers, the call\'s timer and abort controller, the stream pipeline, garbage collection).',
    ].join('\n'),
  );

  // Measured directly: the same gateway with the ledger write replaced by a no-op in this process.
  const original = Object.getOwnPropertyDescriptor(UsageRepository.prototype, 'appendAll')!;
  const on = () => Object.defineProperty(UsageRepository.prototype, 'appendAll', original);
  const off = () => Object.defineProperty(UsageRepository.prototype, 'appendAll', { ...original, value: () => undefined });
  const t = targets(s, COMPLETION_BODY)[1]!;
  const rows: LoadRow[] = [
    { name: 'gateway, ledger off (UsageRepository.appendAll a no-op here)  [baseline]', target: t, runs: [], before: off, gateway: true },
    { name: 'gateway, ledger on (the product)', target: t, runs: [], before: on, gateway: true },
  ];
  try {
    await throughput(s, rows);
  } finally {
    on();
  }
  const [without, withLedger] = rows as [LoadRow, LoadRow];
  if (pick(without, (r) => r.ledgerRows) !== 0) throw new Error('the ledger-off runs still wrote rows: the switch did not work');
  console.log(`\n### Gateway throughput with and without the ledger write, ${CONNECTIONS} connections, ${ROUNDS} × ${DURATION_S} s, rounds alternating\n`);
  console.log(throughputTable(rows));
  const appendUs = ledgerRow.cpu;
  const share = appendUs / part1.gatewayCpuUs;
  const cut = 1 - rateOf(withLedger) / rateOf(without);
  const inSitu = cpuPerRequest(withLedger) - cpuPerRequest(without);
  console.log(
    [
      `In the request path the ledger row costs ${usFmt(inSitu)} of control-plane CPU per request (ledger on − off), ${(inSitu / appendUs).toFixed(1)}× the INSERT in a hot`,
      'loop above: between two rows a whole request runs, and SQLite\'s pages and code are no longer in the CPU caches. The off runs',
      'serve more requests, so their limiter lists grow longer (last column): if anything, the difference is understated.',
    ].join('\n'),
  );
  s.summary.push(
    `ledger (target: ≤ 10 % fewer req/s): measured directly ${rps(rateOf(withLedger))} req/s with the ledger vs ${rps(rateOf(without))} with UsageRepository.appendAll a no-op = ${(cut * 100).toFixed(1)} % fewer (${verdict(cut <= 0.1)}; rounds ${withLedger.runs.map((r) => rps(r.requests / r.seconds)).join('/')} vs ${without.runs.map((r) => rps(r.requests / r.seconds)).join('/')}); in the request path the row costs ${usFmt(inSitu)} of control-plane CPU (${cpuPerRequest(withLedger).toFixed(0)} vs ${cpuPerRequest(without).toFixed(0)} µs/request = ${pct(inSitu, cpuPerRequest(withLedger))}); the INSERT alone in a hot loop ${usFmt(appendUs)} CPU (wall p50 ${usFmt(median(ledgerRow.wall))}; ${usFmt(preparedRow.cpu)} as a bare prepared statement) = ${(share * 100).toFixed(1)} % of part 1's ${usFmt(part1.gatewayCpuUs)}/request (${verdict(share <= 0.1)} by that lower bound)`,
    `limiter: admit + settle ${usFmt(median(limiterEmpty.wall))} (wall p50) with an empty per-minute list, ${usFmt(median(limiterPart1.wall))} at ${partWindow} entries (part 1's runs, mean), ${usFmt(median(limiterMinute.wall))} at ${minuteWindow} (a minute at ${rps(part1.gatewayRate)} req/s)`,
  );
}

// ---- main ----

async function main(): Promise<void> {
  const clientKind = process.env.BENCH_CLIENT ?? (onPath('wrk') ? 'wrk' : 'node');
  if (clientKind !== 'wrk' && clientKind !== 'node') throw new Error('BENCH_CLIENT must be wrk or node');
  const instance = benchInstance();
  console.log(`model gateway bench ${instance}; ${new Date().toISOString()}; ${await machineNote()}`);

  const upstream = await startUpstream();
  const closers: (() => Promise<void> | void)[] = [() => upstream.close()];
  let gateway: Gateway | null = null;
  try {
    gateway = await startGateway(upstream.port, instance);
    closers.unshift(gateway.close);
    const relay = await bareRelay(upstream.port);
    closers.unshift(relay.close);
    const client = new ClientThread<Task>(__filename, CLIENT_ROLE);
    closers.unshift(() => client.close());
    await client.run({ kind: 'sequential', targets: [], warmup: 0, samples: 0 }); // loaded (tsx compiles it) before anything is measured
    const scriptDir = fs.mkdtempSync(path.join(os.tmpdir(), 'clawloops-bench-wrk-'));
    closers.push(() => fs.rmSync(scriptDir, { recursive: true, force: true }));
    const load: Setup['load'] = clientKind === 'wrk' ? wrkLoader(scriptDir) : (target, connections, seconds) => client.run<LoadResult>({ kind: 'load', target, connections, seconds });
    const { platform } = gateway;
    const count = platform.db.prepare('SELECT COUNT(*) AS n FROM llm_usage');
    // Rows still queued for this event-loop turn's transaction count too.
    const ledgerRows = () => (platform.ledger.flush(), (count.get() as { n: number }).n);
    const s: Setup = { gateway, upstream, relayPort: relay.port, client, load, ledgerRows, summary: [] };
    console.log(
      [
        `control plane: buildPlatform (src/platform.ts) on this process's main thread, log level ${LOG_LEVEL}${LOG_LEVEL === 'info' ? ' (the product default: one line per request)' : ''}, model limits off; upstream: a node:http child process; database: SQLite (WAL) in ${gateway.dataDir}`,
        `sequential requests and streams: a Node worker thread; throughput: ${clientKind === 'wrk' ? 'wrk -t1 with a Lua script for the POST body (child process)' : 'a Node worker thread (BENCH_CLIENT=node, or wrk not on PATH)'}; ${os.cpus().length} CPUs shared by client, control plane and upstream`,
      ].join('\n'),
    );
    const part1 = await completionPart(s);
    await streamingPart(s);
    await ledgerPart(s, part1);
    console.log(`\n## Summary\n\n${s.summary.join('\n')}`);
  } catch (err) {
    if (gateway) console.error(`--- platform log (last lines)\n${gateway.logText().split('\n').slice(-30).join('\n')}`);
    throw err;
  } finally {
    for (const close of closers) await Promise.resolve(close()).catch(() => undefined);
  }
}

if (isMainThread && process.env[UPSTREAM_ROLE_ENV] === 'upstream') {
  upstreamProcess();
} else if (isMainThread) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
} else if ((workerData as { role?: string } | null)?.role === CLIENT_ROLE) {
  serveClientTasks(runTask);
}
