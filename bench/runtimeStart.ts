/**
 * Start → ready of a runtime through the ClawLoops API versus raw dockerode, same image
 * (the stand-in), same engine, same run, interleaved.
 *
 *   part "start":
 *     raw        dockerode createContainer + start + first HTTP 200 from /readyz on the bridge IP
 *                (Init, CapDrop ALL, no-new-privileges, same memory/CPU/pids limits): THE baseline
 *     API cold   a NEW user (signed in over HTTP), once the background preparation of its account
 *                (network, volume) is done: POST /api/v1/runtime/start until the runtime's
 *                SSE stream reports the operation succeeded (network, volume, config, container,
 *                start, readiness probe)
 *     API warm   the same user's stopped runtime started again (container reused, config rewritten)
 *     context:   raw with its own new network + volume (what the cold path must also create),
 *                raw start of an existing stopped container (what the warm path does)
 *     then a breakdown of where an API start spends its time (engine calls and probes, timed
 *     by a wrapper around the production backend on a second platform).
 *   part "concurrent": 20 new users starting at once through the API (default parallel limit),
 *     against 20 × the single cold start p50 of the same run; three bursts, as one is noisy.
 *
 * Usage: npx tsx bench/runtimeStart.ts [start] [concurrent]   (both when none is named)
 * Env: BENCH_ITERATIONS (15), BENCH_CONCURRENT (20), BENCH_BURSTS (3), BENCH_PROFILE_ITERATIONS (8), BENCH_INSTANCE,
 *      CLAWLOOPS_RUNTIME_MAX_PARALLEL (passed through; the product default is 4).
 */
import http from 'node:http';
import type Docker from 'dockerode';
import { LABELS } from '../src/docker/runtimeBackend';
import { DEFAULT_RUNTIME_COMMAND, OPENCLAW_HOME, OPENCLAW_PORT } from '../src/runtime/runtimeSettings';
import { instrumented, type Span } from './instrument';
import {
  benchInstance,
  docker,
  fmt,
  machineNote,
  p50,
  p95,
  ratio,
  startBenchPlatform,
  STANDIN_IMAGE,
  sweep,
  sweepOnSignal,
  table,
  type BenchPlatform,
  type TimedOperation,
} from './support';

const requested = process.argv.slice(2);
const PARTS = new Set(requested.length > 0 ? requested : ['start', 'concurrent']);
for (const part of PARTS) if (part !== 'start' && part !== 'concurrent') throw new Error(`unknown part "${part}" (start, concurrent)`);
const ITERATIONS = Number(process.env.BENCH_ITERATIONS ?? 15);
const CONCURRENT = Number(process.env.BENCH_CONCURRENT ?? 20);
const PROFILE_ITERATIONS = Number(process.env.BENCH_PROFILE_ITERATIONS ?? 8);
/** Single cold starts measured by the concurrent part when it runs without the start part. */
const SOLO_SINGLES = 5;
const BURSTS = Number(process.env.BENCH_BURSTS ?? 3);
const TARGET_RATIO = 1.25;

const SETTINGS = {
  image: STANDIN_IMAGE,
  memoryBytes: 256 * 1024 ** 2,
  nanoCpus: 0.5e9,
  pidsLimit: 128,
  readyTimeoutMs: 60_000,
  stopTimeoutSeconds: 3,
};
const PASS_THROUGH = process.env.CLAWLOOPS_RUNTIME_MAX_PARALLEL ? { CLAWLOOPS_RUNTIME_MAX_PARALLEL: process.env.CLAWLOOPS_RUNTIME_MAX_PARALLEL } : undefined;

const instance = benchInstance();

// ---- the raw dockerode baseline ----

interface RawTiming {
  total: number;
  steps: Record<string, number>;
  probes: number;
}

/** Polls /readyz on the container's address every 5 ms until it answers 200; returns the attempts. */
function firstReady(address: string, deadlineMs = 30_000): Promise<number> {
  const deadline = performance.now() + deadlineMs;
  let attempts = 0;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      attempts++;
      const retry = () => {
        if (performance.now() > deadline) reject(new Error(`${address} never answered /readyz`));
        else setTimeout(attempt, 5);
      };
      const req = http.get({ host: address, port: OPENCLAW_PORT, path: '/readyz', timeout: 1000, agent: false }, (res) => {
        res.resume();
        if (res.statusCode === 200) resolve(attempts);
        else retry();
      });
      req.on('timeout', () => req.destroy());
      req.on('error', retry);
    };
    attempt();
  });
}

function rawOptions(name: string, extra: { network?: string; volume?: string } = {}): Docker.ContainerCreateOptions {
  return {
    name,
    Image: STANDIN_IMAGE,
    Cmd: DEFAULT_RUNTIME_COMMAND,
    WorkingDir: '/app',
    User: '1000:1000',
    Labels: { [LABELS.instance]: instance },
    HostConfig: {
      Init: true,
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges'],
      Memory: SETTINGS.memoryBytes,
      MemorySwap: SETTINGS.memoryBytes,
      NanoCpus: SETTINGS.nanoCpus,
      PidsLimit: SETTINGS.pidsLimit,
      ...(extra.network ? { NetworkMode: extra.network } : {}),
      ...(extra.volume ? { Mounts: [{ Type: 'volume', Source: extra.volume, Target: OPENCLAW_HOME }] } : {}),
    },
  };
}

/** Runs the steps in order, timing each; `ready` must be last. */
async function timeSteps(steps: [string, () => Promise<unknown>][]): Promise<RawTiming> {
  const timing: RawTiming = { total: 0, steps: {}, probes: 0 };
  const started = performance.now();
  let mark = started;
  for (const [name, step] of steps) {
    const result = await step();
    if (name === 'ready') timing.probes = result as number;
    const now = performance.now();
    timing.steps[name] = now - mark;
    mark = now;
  }
  timing.total = mark - started;
  return timing;
}

let rawCounter = 0;

/** The baseline, then (untimed stop) a start of the same stopped container: raw cold and raw warm. */
async function rawOnBridge(): Promise<{ cold: RawTiming; warm: RawTiming }> {
  const name = `${instance}-raw-${rawCounter++}`;
  let container: Docker.Container | null = null;
  let address = '';
  try {
    const cold = await timeSteps([
      ['create', async () => (container = await docker.createContainer(rawOptions(name)))],
      ['start', () => container!.start()],
      ['inspect', async () => (address = (await container!.inspect()).NetworkSettings.Networks.bridge?.IPAddress ?? '')],
      ['ready', () => firstReady(address)],
    ]);
    await container!.stop({ t: SETTINGS.stopTimeoutSeconds });
    const warm = await timeSteps([
      ['start', () => container!.start()],
      ['inspect', async () => (address = (await container!.inspect()).NetworkSettings.Networks.bridge?.IPAddress ?? '')],
      ['ready', () => firstReady(address)],
    ]);
    return { cold, warm };
  } finally {
    await (container as Docker.Container | null)?.remove({ force: true }).catch(() => undefined);
  }
}

/**
 * The baseline plus its own new bridge network and named volume, as a new user needs; then (untimed
 * stop) a start of that stopped container on its network: the raw equivalents of API cold and warm.
 */
async function rawWithNetwork(): Promise<{ cold: RawTiming; warm: RawTiming }> {
  const n = rawCounter++;
  const name = `${instance}-rawnet-${n}`;
  let container: Docker.Container | null = null;
  let address = '';
  try {
    const cold = await timeSteps([
      [
        'network',
        () =>
          docker.createNetwork({
            Name: name,
            Driver: 'bridge',
            Labels: { [LABELS.instance]: instance },
            IPAM: { Driver: 'default', Config: [{ Subnet: `10.214.${n % 256}.0/27`, Gateway: `10.214.${n % 256}.1` }] },
          }),
      ],
      ['volume', () => docker.createVolume({ Name: name, Labels: { [LABELS.instance]: instance } })],
      ['create', async () => (container = await docker.createContainer(rawOptions(name, { network: name, volume: name })))],
      ['start', () => container!.start()],
      ['inspect', async () => (address = (await container!.inspect()).NetworkSettings.Networks[name]?.IPAddress ?? '')],
      ['ready', () => firstReady(address)],
    ]);
    await container!.stop({ t: SETTINGS.stopTimeoutSeconds });
    const warm = await timeSteps([
      ['start', () => container!.start()],
      ['inspect', async () => (address = (await container!.inspect()).NetworkSettings.Networks[name]?.IPAddress ?? '')],
      ['ready', () => firstReady(address)],
    ]);
    return { cold, warm };
  } finally {
    await (container as Docker.Container | null)?.remove({ force: true }).catch(() => undefined);
    await docker.getNetwork(name).remove().catch(() => undefined);
    await docker.getVolume(name).remove().catch(() => undefined);
  }
}

// ---- the API path ----

let userCounter = 0;

function expectSucceeded(op: TimedOperation, what: string): TimedOperation {
  if (op.status !== 'succeeded') throw new Error(`${what} ended ${op.status}: ${op.error}`);
  return op;
}

/** One new user: cold start, stop, warm start, stop. */
async function apiColdAndWarm(bench: BenchPlatform): Promise<{ cold: TimedOperation; warm: TimedOperation }> {
  const member = await bench.newMember(`u${userCounter++}`);
  // As a real newcomer presses Start some seconds after accepting the invitation: the network and
  // volume the platform prepares in the background when the account is created are done by then.
  await bench.platform.runtimes.settledForUser(member.userId);
  const stream = await bench.follow(member);
  try {
    const cold = expectSucceeded(await stream.run('start'), 'a cold start');
    expectSucceeded(await stream.run('stop'), 'a stop');
    const warm = expectSucceeded(await stream.run('start'), 'a warm start');
    expectSucceeded(await stream.run('stop'), 'a stop');
    return { cold, warm };
  } finally {
    stream.close();
  }
}

function stepTable(columns: [string, TimedOperation[]][]): string {
  const order: string[] = [];
  for (const [, ops] of columns) for (const op of ops) for (const s of op.steps) if (!order.includes(s.step)) order.push(s.step);
  const arrival = (ops: TimedOperation[], step: string) => {
    const seen = ops.map((op) => op.steps.find((s) => s.step === step)?.at).filter((v): v is number => v !== undefined);
    return seen.length === 0 ? '-' : `${fmt(p50(seen))}${seen.length < ops.length ? ` (${seen.length}/${ops.length})` : ''}`;
  };
  const rows: (string | number)[][] = [['event seen by the client (median, ms after the POST)', ...columns.map(([name]) => name)]];
  rows.push(['POST answered 202', ...columns.map(([, ops]) => fmt(p50(ops.map((o) => o.answeredAt))))]);
  for (const step of order) rows.push([`progress: ${step}`, ...columns.map(([, ops]) => arrival(ops, step))]);
  return table(rows);
}

// ---- the breakdown ----

interface Profiled {
  op: TimedOperation;
  spans: Span[];
}

function spanTable(title: string, runs: Profiled[]): string {
  // Key each manager call by name and occurrence; probes collapse into one line per path.
  const rows = new Map<string, { start: number[]; end: number[]; count: number[] }>();
  const add = (key: string, start: number, end: number, count = 1) => {
    const row = rows.get(key) ?? { start: [], end: [], count: [] };
    row.start.push(start);
    row.end.push(end);
    row.count.push(count);
    rows.set(key, row);
  };
  for (const { op, spans } of runs) {
    const seen = new Map<string, number>();
    const inOp = spans.filter((s) => s.start <= op.ms);
    for (const span of inOp.filter((s) => !s.name.startsWith('probe '))) {
      const n = (seen.get(span.name) ?? 0) + 1;
      seen.set(span.name, n);
      add(n > 1 ? `${span.name} #${n}` : span.name, span.start, span.end);
    }
    for (const path of ['/healthz', '/readyz']) {
      const probes = inOp.filter((s) => s.name === `probe ${path}`);
      if (probes.length === 0) continue;
      const ok = probes.find((p) => p.result === 200);
      add(`probe ${path} (attempts; to first 200)`, probes[0]!.start, ok?.end ?? probes[probes.length - 1]!.end, probes.length);
    }
    const readyAt = inOp.filter((s) => s.name === 'probe /readyz' && s.result === 200).pop()?.end;
    if (readyAt !== undefined) add('→ SSE "succeeded" received by the client', readyAt, op.ms);
  }
  const body = [...rows.entries()]
    .map(([key, r]) => ({ key, start: p50(r.start), end: p50(r.end), dur: p50(r.end.map((e, i) => e - (r.start[i] ?? 0))), count: p50(r.count), n: r.start.length }))
    .sort((a, b) => a.start - b.start || a.end - b.end);
  return [
    `${title}: median over ${runs.length} starts, total ${fmt(p50(runs.map((r) => r.op.ms)))} (ms after the POST was sent)`,
    table([
      ['call', 'from', 'to', 'took', 'calls/attempts', 'seen in'],
      ...body.map((r) => [r.key, fmt(r.start), fmt(r.end), fmt(r.dur), r.count, `${r.n}/${runs.length}`]),
    ]),
  ].join('\n');
}

async function profile(): Promise<void> {
  const inst = instrumented(instance);
  const bench = await startBenchPlatform({ instance, runtimeSettings: SETTINGS, runtimeBackend: inst.backend, runtimeProbe: inst.probe, ...(PASS_THROUGH ? { env: PASS_THROUGH } : {}) });
  try {
    const cold: Profiled[] = [];
    const warm: Profiled[] = [];
    for (let i = -1; i < PROFILE_ITERATIONS; i++) {
      const member = await bench.newMember(`p${i + 1}`);
      const stream = await bench.follow(member);
      try {
        inst.reset(performance.now());
        const c = expectSucceeded(await stream.run('start'), 'a profiled cold start');
        const coldSpans = inst.spans();
        expectSucceeded(await stream.run('stop'), 'a stop');
        inst.reset(performance.now());
        const w = expectSucceeded(await stream.run('start'), 'a profiled warm start');
        const warmSpans = inst.spans();
        expectSucceeded(await stream.run('stop'), 'a stop');
        if (i >= 0) {
          cold.push({ op: c, spans: coldSpans });
          warm.push({ op: w, spans: warmSpans });
        }
      } finally {
        stream.close();
      }
    }
    console.log(`\n## Breakdown of an API start (engine calls and probes timed by a wrapper around the production backend)\n`);
    console.log(spanTable('API start, new user', cold));
    console.log('');
    console.log(spanTable('API start, stopped runtime', warm));
  } finally {
    await bench.close();
  }
}

// ---- the parts ----

async function startPart(bench: BenchPlatform): Promise<number> {
  const raw: RawTiming[] = [];
  const rawWarm: RawTiming[] = [];
  const rawNet: RawTiming[] = [];
  const rawNetWarm: RawTiming[] = [];
  const cold: TimedOperation[] = [];
  const warm: TimedOperation[] = [];

  // One unmeasured round of every path warms the engine's, the kernel's and Node's caches alike.
  await rawOnBridge();
  await rawWithNetwork();
  await apiColdAndWarm(bench);

  for (let i = 0; i < ITERATIONS; i++) {
    const r = await rawOnBridge();
    raw.push(r.cold);
    rawWarm.push(r.warm);
    const rn = await rawWithNetwork();
    rawNet.push(rn.cold);
    rawNetWarm.push(rn.warm);
    const api = await apiColdAndWarm(bench);
    cold.push(api.cold);
    warm.push(api.warm);
    process.stderr.write(`  iteration ${i + 1}/${ITERATIONS}: raw ${fmt(r.cold.total)}, API cold ${fmt(api.cold.ms)}, API warm ${fmt(api.warm.ms)}\n`);
  }

  const t = (v: RawTiming[]) => v.map((x) => x.total);
  const m = (v: TimedOperation[]) => v.map((x) => x.ms);
  const baseline = t(raw);
  const row = (name: string, values: number[], base: number[]) => [name, values.length, fmt(p50(values)), fmt(p95(values)), ratio(p50(values), p50(base)), ratio(p95(values), p95(base))];

  console.log(`\n## 1. Start → ready, ${ITERATIONS} iterations each, interleaved, image ${STANDIN_IMAGE} (256 MiB, 0.5 CPU)\n`);
  console.log(
    table([
      ['path', 'n', 'p50', 'p95', 'API/raw p50', 'API/raw p95'],
      row('raw dockerode: create + start + first 200 from /readyz  [baseline]', baseline, baseline),
      row('API first-ever start, new user (background preparation done)', m(cold), baseline),
      row('API start, stopped runtime (warm: container reused)', m(warm), baseline),
    ]),
  );
  const coldRatio = p50(m(cold)) / p50(baseline);
  const warmRatio = p50(m(warm)) / p50(baseline);
  const verdict = (r: number) => (r <= TARGET_RATIO ? `MET (${r.toFixed(2)} ≤ ${TARGET_RATIO})` : `NOT MET (${r.toFixed(2)} > ${TARGET_RATIO})`);
  console.log(`\ntarget API/raw ≤ ${TARGET_RATIO} at p50:  cold start ${verdict(coldRatio)};  warm start ${verdict(warmRatio)}`);

  const versus = (name: string, base: number[], api: number[]) => [name, base.length, fmt(p50(base)), fmt(p95(base)), ratio(p50(api), p50(base)), ratio(p95(api), p95(base))];
  console.log(`\nContext: raw baselines doing the same engine work as each API path (each runtime has its own bridge network)\n`);
  console.log(
    table([
      ['raw path', 'n', 'p50', 'p95', 'API/this p50', 'API/this p95'],
      versus('new network + volume + create + start + first 200   (vs API cold)', t(rawNet), m(cold)),
      versus('start of a stopped container on its own network + 200  (vs API warm)', t(rawNetWarm), m(warm)),
      versus('start of a stopped container on the default bridge + 200  (vs API warm)', t(rawWarm), m(warm)),
    ]),
  );

  const stepRows = (name: string, v: RawTiming[]) => {
    const keys = Object.keys(v[0]?.steps ?? {});
    return [name, keys.map((k) => `${k} ${fmt(p50(v.map((x) => x.steps[k] ?? 0)))}`).join(', '), String(p50(v.map((x) => x.probes)))];
  };
  console.log(`\nRaw steps (median duration of each)\n`);
  console.log(
    table([
      ['raw path', 'steps', '/readyz attempts'],
      stepRows('create + start + 200 (baseline)', raw),
      stepRows('new network + volume + create + start + 200', rawNet),
      stepRows('start stopped, own network + 200', rawNetWarm),
      stepRows('start stopped, default bridge + 200', rawWarm),
    ]),
  );
  console.log(`\nAPI progress as the client saw it on GET /api/v1/runtime/events\n`);
  console.log(stepTable([['cold', cold], ['warm', warm]]));
  return p50(m(cold));
}

/** Context for a burst: the engine alone, the same number of raw create + start + 200 at once, no limit. */
async function rawBurst(burst: number): Promise<{ total: number; each: number[] }> {
  const started = performance.now();
  const containers: Docker.Container[] = [];
  try {
    const each = await Promise.all(
      Array.from({ length: CONCURRENT }, async (_, i) => {
        const container = await docker.createContainer(rawOptions(`${instance}-crowd-${burst}-${i}`));
        containers.push(container);
        await container.start();
        await firstReady((await container.inspect()).NetworkSettings.Networks.bridge?.IPAddress ?? '');
        return performance.now() - started;
      }),
    );
    return { total: performance.now() - started, each };
  } finally {
    await Promise.all(containers.map((c) => c.remove({ force: true }).catch(() => undefined)));
  }
}

async function concurrentPart(bench: BenchPlatform, singleP50: number | null): Promise<void> {
  let single = singleP50;
  let singleNote = 'from part 1 of this run';
  if (single === null) {
    const singles: number[] = [];
    for (let i = -1; i < SOLO_SINGLES; i++) {
      const ms = (await apiColdAndWarm(bench)).cold.ms;
      if (i >= 0) singles.push(ms);
    }
    single = p50(singles);
    singleNote = `p50 of ${SOLO_SINGLES} single cold starts in this run`;
  }
  const limit = bench.platform.runtimes.settings.maxParallelOperations;
  const serial = CONCURRENT * single;
  const rows: (string | number)[][] = [];
  const walls: number[] = [];
  const rawWalls: number[] = [];
  let failures = 0;
  for (let burst = 0; burst < BURSTS; burst++) {
    const members = [];
    for (let i = 0; i < CONCURRENT; i++) members.push(await bench.newMember(`crowd${burst}-${i}`));
    const streams = await Promise.all(members.map((m) => bench.follow(m)));
    let results: TimedOperation[];
    let total: number;
    try {
      const started = performance.now();
      results = await Promise.all(streams.map((s) => s.run('start')));
      total = performance.now() - started;
      // Stopped again (untimed), so every burst meets the same engine: no extra running containers.
      await Promise.all(streams.map((s) => s.run('stop')));
    } finally {
      for (const s of streams) s.close();
    }
    const ok = results.filter((r) => r.status === 'succeeded').length;
    failures += CONCURRENT - ok;
    for (const failed of results.filter((r) => r.status !== 'succeeded')) console.error(`a concurrent start ended ${failed.status}: ${failed.error}`);
    const raw = await rawBurst(burst);
    walls.push(total);
    rawWalls.push(raw.total);
    const ms = results.map((r) => r.ms);
    rows.push([
      `burst ${burst + 1}`,
      `${ok}/${CONCURRENT}`,
      fmt(total),
      ratio(total, serial),
      fmt(p50(ms)),
      fmt(p95(ms)),
      `${results.filter((r) => r.steps.some((s) => s.step === 'queued')).length}/${CONCURRENT}`,
      fmt(raw.total),
    ]);
  }
  console.log(
    `\n## 2. ${CONCURRENT} new users starting at once through the API, ${BURSTS} bursts (CLAWLOOPS_RUNTIME_MAX_PARALLEL=${limit}${PASS_THROUGH ? ', set in the environment' : ', the product default'})\n`,
  );
  console.log(
    table([
      ['', 'ready', 'wall (first POST → last ready)', `ratio wall / (${CONCURRENT} × single)`, 'per-user p50', 'per-user p95', 'were queued', `context: ${CONCURRENT} raw at once, no limit`],
      ...rows,
      ['median', '', fmt(p50(walls)), ratio(p50(walls), serial), '', '', '', fmt(p50(rawWalls))],
    ]),
  );
  console.log(`${CONCURRENT} × single cold start p50 = ${CONCURRENT} × ${fmt(single)} = ${fmt(serial)} (${singleNote}).`);
  console.log(`context column: dockerode create + start + first 200 of ${CONCURRENT} containers on the default bridge at once, no network creation, no limit.`);
  if (failures > 0) process.exitCode = 1;
}

async function main(): Promise<void> {
  sweepOnSignal(instance);
  console.log(`instance label ${instance}; engine ${(await docker.version()).Version}; ${new Date().toISOString()}; ${await machineNote()}`);
  let singleP50: number | null = null;
  const bench = await startBenchPlatform({ instance, runtimeSettings: SETTINGS, ...(PASS_THROUGH ? { env: PASS_THROUGH } : {}) });
  try {
    if (PARTS.has('start')) singleP50 = await startPart(bench);
    if (PARTS.has('concurrent')) await concurrentPart(bench, singleP50);
  } catch (err) {
    console.error(`--- platform log (last lines)\n${bench.logText().split('\n').slice(-30).join('\n')}`);
    throw err;
  } finally {
    await bench.close();
  }
  if (PARTS.has('start')) await profile();
}

main()
  .catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(() => sweep(instance).catch(() => undefined));
