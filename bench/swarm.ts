/**
 * The swarm backend against the single-host Docker backend, in the same run, with the control
 * plane in a container as in production and the stand-in runtime image:
 *
 * 1. start → ready of one runtime, one after another: the Docker backend, then a single-node
 *    swarm on this engine (initialised here and left at the end);
 * 2. 20 new users starting at once: the Docker backend, the single-node swarm, and a swarm of
 *    three engines on this machine (scripts/swarm-lab/lab.sh), where the starts spread over the
 *    nodes;
 * 3. the control plane's footprint with those 20 runtimes running: its memory, and the CPU it
 *    spends per minute watching them (the swarm backend reads tasks and nodes every second; the
 *    Docker backend follows the engine's events).
 *
 * Ratios are swarm / Docker, measured in this run. Knobs: BENCH_ITERATIONS (8), BENCH_CONCURRENT (20),
 * BENCH_IDLE_SECONDS (30), BENCH_CLUSTER (1: include the three-engine swarm; 0 skips it).
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import Docker from 'dockerode';
import type TestAgent from 'supertest/lib/agent';
import { ensureSwarm, leaveSwarm, NODE_BASE_IMAGE, startControlPlane, sweepSwarm, type ControlPlane } from '../test/support/controlPlaneContainer';
import { docker, eventually, STANDIN_IMAGE, sweep } from '../test/support/engine';
import { benchInstance, fmt, knob, mib, p50, p95, ratio, table } from './support';

const ITERATIONS = knob('BENCH_ITERATIONS', 8);
const CONCURRENT = knob('BENCH_CONCURRENT', 20);
const IDLE_SECONDS = knob('BENCH_IDLE_SECONDS', 30);
const WITH_CLUSTER = process.env.BENCH_CLUSTER !== '0';
const ROOT = path.resolve(__dirname, '..');
const LAB = path.join(ROOT, 'scripts', 'swarm-lab', 'lab.sh');
const PASSWORD = 'Correct-Horse-Battery-9';

const SETTINGS = {
  CLAWLOOPS_RUNTIME_IMAGE: STANDIN_IMAGE,
  CLAWLOOPS_RUNTIME_MEMORY: '256mb',
  CLAWLOOPS_RUNTIME_CPUS: '0.25',
  CLAWLOOPS_RUNTIME_READY_TIMEOUT: '120s',
  CLAWLOOPS_RUNTIME_STOP_TIMEOUT: '3s',
  CLAWLOOPS_RUNTIME_MODELS: 'test-model',
  CLAWLOOPS_LOG_LEVEL: 'warn',
  // The product's default of 4 starts at once, whatever the backend.
};

function lab(args: string[], env: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('bash', [LAB, ...args], { env: { ...process.env, ...env }, timeout: 15 * 60_000, maxBuffer: 64 * 1024 ** 2 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`lab.sh ${args.join(' ')} failed: ${err.message}\n${stderr.slice(-2000)}`));
      else resolve(stdout.trim());
    });
  });
}

let users = 0;
async function member(admin: TestAgent, plane: ControlPlane): Promise<TestAgent> {
  const inv = await admin.post('/api/v1/admin/invitations').send({ role: 'member' });
  const secret = (inv.body as { link: string }).link.split('/invite/')[1];
  const agent = plane.client();
  const res = await agent.post(`/api/v1/invitations/${secret}/accept`).send({ username: `u${++users}`, password: PASSWORD });
  if (res.status !== 201) throw new Error(`accept failed: ${res.status}`);
  return agent;
}

/** POST start → the runtime view says running (readiness confirmed by the control plane). */
async function timedStart(agent: TestAgent): Promise<number> {
  const t0 = performance.now();
  const res = await agent.post('/api/v1/runtime/start');
  if (res.status !== 202 && res.status !== 200) throw new Error(`start answered ${res.status}`);
  await eventually(
    async () => {
      const view = (await agent.get('/api/v1/runtime')).body as { state: string; stateReason: string | null };
      if (view.state === 'failed') throw new Error(`start failed: ${view.stateReason}`);
      return view.state === 'running' ? true : undefined;
    },
    'a running runtime',
    180_000,
    50,
  );
  return performance.now() - t0;
}

/** The control plane's resident memory and CPU time (from its container's cgroup, as the engine reports them). */
async function footprint(engine: Docker, containerId: string): Promise<{ rssBytes: number; cpuNs: number }> {
  const stats = await engine.getContainer(containerId).stats({ stream: false });
  const cache = (stats.memory_stats.stats as Record<string, number> | undefined)?.total_inactive_file ?? 0;
  return { rssBytes: Math.max(0, (stats.memory_stats.usage ?? 0) - cache), cpuNs: stats.cpu_stats.cpu_usage.total_usage };
}

interface Result {
  label: string;
  sequential: number[];
  concurrent: { wallMs: number; each: number[] } | null;
  idle: { rssBytes: number; rssLoadedBytes: number; cpuMsPerMinute: number } | null;
  spread: string;
}

async function measure(label: string, plane: ControlPlane, engine: Docker, options: { sequential: boolean }): Promise<Result> {
  const admin = await plane.admin();
  const result: Result = { label, sequential: [], concurrent: null, idle: null, spread: '' };
  const before = await footprint(engine, plane.containerId);
  if (options.sequential) {
    // One warm-up start: the first pays for the image's first container on this engine.
    await timedStart(await member(admin, plane));
    for (let i = 0; i < ITERATIONS; i++) result.sequential.push(await timedStart(await member(admin, plane)));
  }
  const agents = await Promise.all(Array.from({ length: CONCURRENT }, () => member(admin, plane)));
  const t0 = performance.now();
  const each = await Promise.all(agents.map((agent) => timedStart(agent)));
  result.concurrent = { wallMs: performance.now() - t0, each };
  const nodes = (await admin.get('/api/v1/admin/nodes')).body as { nodes: { hostname: string; running: number }[] };
  result.spread = nodes.nodes.map((n) => `${n.hostname.replace('clawloops-swarmlab-', 'node ')}: ${n.running}`).join(', ');
  const loadedStart = await footprint(engine, plane.containerId);
  await new Promise((resolve) => setTimeout(resolve, IDLE_SECONDS * 1000));
  const loadedEnd = await footprint(engine, plane.containerId);
  result.idle = { rssBytes: before.rssBytes, rssLoadedBytes: loadedEnd.rssBytes, cpuMsPerMinute: ((loadedEnd.cpuNs - loadedStart.cpuNs) / 1e6) * (60 / IDLE_SECONDS) };
  return result;
}

async function main(): Promise<void> {
  const results: Result[] = [];
  const instance = benchInstance();

  process.stdout.write('single-host Docker backend …\n');
  const dockerPlane = await startControlPlane({ ...SETTINGS, CLAWLOOPS_RUNTIME_BACKEND: 'docker' }, `${instance}-d`);
  try {
    results.push(await measure('Docker (one engine)', dockerPlane, docker, { sequential: true }));
  } finally {
    await dockerPlane.remove();
    await sweep(`${instance}-d`);
  }

  process.stdout.write('single-node swarm …\n');
  const initialised = await ensureSwarm();
  try {
    const swarmPlane = await startControlPlane({ ...SETTINGS, CLAWLOOPS_RUNTIME_BACKEND: 'swarm' }, `${instance}-s`);
    try {
      results.push(await measure('swarm, 1 node', swarmPlane, docker, { sequential: true }));
    } finally {
      await swarmPlane.remove();
      await sweepSwarm(`${instance}-s`);
      await sweep(`${instance}-s`);
    }
  } finally {
    if (initialised) await leaveSwarm();
  }

  if (WITH_CLUSTER) {
    process.stdout.write('swarm of three engines (scripts/swarm-lab) …\n');
    await lab(['up', '3'], { LAB_IMAGES: STANDIN_IMAGE, LAB_MOUNTS: `${ROOT}:/repo` });
    try {
      await lab(['load', '1'], { LAB_IMAGES: NODE_BASE_IMAGE });
      const manager = new Docker({ socketPath: await lab(['socket', '1']) });
      const managerIp = (await docker.getContainer('clawloops-swarmlab-1').inspect()).NetworkSettings.Networks['clawloops-swarmlab']?.IPAddress ?? '';
      const clusterPlane = await startControlPlane({ ...SETTINGS, CLAWLOOPS_RUNTIME_BACKEND: 'swarm' }, `${instance}-c`, { engine: manager, checkout: '/repo', address: managerIp, port: 18081, name: 'clawloops-bench' });
      results.push(await measure('swarm, 3 nodes', clusterPlane, manager, { sequential: false }));
    } finally {
      await lab(['down']);
    }
  }

  const base = results[0];
  process.stdout.write(`\n1. start → ready, one at a time (${ITERATIONS} starts after a warm-up)\n`);
  process.stdout.write(
    table([
      ['backend', 'p50', 'p95', 'p50 ratio to Docker'],
      ...results.filter((r) => r.sequential.length > 0).map((r) => [r.label, fmt(p50(r.sequential)), fmt(p95(r.sequential)), ratio(p50(r.sequential), p50(base?.sequential ?? []))]),
    ]) + '\n',
  );
  process.stdout.write(`\n2. ${CONCURRENT} new users starting at once (the product's 4 lifecycle operations at a time)\n`);
  process.stdout.write(
    table([
      ['backend', 'all running after', 'one start p50', 'p95', 'wall ratio to Docker', 'running per node'],
      ...results.map((r) => [r.label, fmt(r.concurrent?.wallMs ?? NaN), fmt(p50(r.concurrent?.each ?? [])), fmt(p95(r.concurrent?.each ?? [])), ratio(r.concurrent?.wallMs ?? NaN, base?.concurrent?.wallMs ?? NaN), r.spread || '-']),
    ]) + '\n',
  );
  process.stdout.write(`\n3. the control plane with ${CONCURRENT} runtimes running (memory, and CPU over ${IDLE_SECONDS} s of nothing happening)\n`);
  process.stdout.write(
    table([
      ['backend', 'memory before', `memory with ${CONCURRENT}`, 'CPU ms per minute', 'CPU ratio to Docker'],
      ...results.map((r) => [r.label, mib(r.idle?.rssBytes ?? 0), mib(r.idle?.rssLoadedBytes ?? 0), Math.round(r.idle?.cpuMsPerMinute ?? 0), ratio(r.idle?.cpuMsPerMinute ?? NaN, base?.idle?.cpuMsPerMinute ?? NaN)]),
    ]) + '\n',
  );
}

// Waits on the engine and the control plane go through sockets Node may not count as keeping it
// alive (undici unreferences its own): the bench holds the process open until it is done.
const alive = setInterval(() => undefined, 60_000);
main()
  .catch((err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  })
  .finally(() => clearInterval(alive));
