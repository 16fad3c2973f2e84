import type { NodeReading, NodeStatsAnswer } from '../../src/swarm/nodeStats/protocol';
import { SwarmFigures, type NodeStatsSource } from '../../src/swarm/swarmFigures';
import type { TaskSnapshot } from '../../src/swarm/swarmEngine';

/**
 * The runtimes' figures on a swarm (src/swarm/swarmFigures.ts): a round of samples costs one
 * listing of the swarm's tasks and one request per node, and the CPU figure comes from two
 * readings of the same container.
 */

const cid = (n: number) => n.toString(16).padStart(64, '0');
const RUNTIME = { 'io.clawloops.role': 'runtime' };

function task(serviceId: string, nodeId: string, container: number, state: TaskSnapshot['state'] = 'running', labels: Record<string, string> = RUNTIME): TaskSnapshot {
  return { id: `t-${serviceId}`, serviceId, nodeId, state, desiredState: 'running', message: '', error: null, exitCode: null, containerId: cid(container), createdAt: 0, stateSince: 0, addresses: {}, labels };
}

/** A node-stats source whose containers' CPU time and memory the test moves, on a clock the test moves. */
class FakeNodes implements NodeStatsSource {
  readonly requests: { node: string; containers: string[] }[] = [];
  readonly cpuNs = new Map<string, number>();
  readonly memory = new Map<string, number>();
  clock = 'run-1';
  nowUs = 10_000_000;
  failing = new Set<string>();

  async read(node: string, containerIds: string[]): Promise<NodeStatsAnswer> {
    this.requests.push({ node, containers: containerIds });
    if (this.failing.has(node)) throw new Error(`node ${node} does not answer`);
    const containers: Record<string, NodeReading | null> = {};
    for (const id of containerIds) {
      const memory = this.memory.get(id);
      containers[id] = memory === undefined ? null : { memoryBytes: memory, memoryLimitBytes: 256 * 1024 ** 2, cpuNs: this.cpuNs.get(id) ?? 0, atUs: this.nowUs };
    }
    return { clock: this.clock, containers };
  }

  run(container: number, memory: number, cpuNs = 0): void {
    this.memory.set(cid(container), memory);
    this.cpuNs.set(cid(container), cpuNs);
  }

  /** `seconds` pass, in which the container used `cpuSeconds` of CPU time. */
  pass(seconds: number, busy: Record<number, number> = {}): void {
    this.nowUs += seconds * 1e6;
    for (const [container, cpuSeconds] of Object.entries(busy)) this.cpuNs.set(cid(Number(container)), (this.cpuNs.get(cid(Number(container))) ?? 0) + cpuSeconds * 1e9);
  }
}

function setup(tasks: TaskSnapshot[]) {
  const nodes = new FakeNodes();
  let now = 0;
  let listings = 0;
  const slept: number[] = [];
  const figures = new SwarmFigures({
    listTasks: async () => {
      listings++;
      return tasks;
    },
    isRuntime: (t) => t.labels['io.clawloops.role'] === 'runtime',
    source: nodes,
    now: () => now,
    // The wait for a first CPU figure: the node's clock moves by as much, nothing else does.
    sleep: async (ms) => {
      slept.push(ms);
      nodes.pass(ms / 1000);
    },
    maxAgeMs: 2_000,
    firstWindowMs: 1_000,
  });
  return { figures, nodes, slept, listings: () => listings, advance: (ms: number) => (now += ms) };
}

test('a round of samples costs one listing and one request per node, however many runtimes run there', async () => {
  const tasks = [task('s1', 'n1', 1), task('s2', 'n1', 2), task('s3', 'n2', 3), task('s4', 'n2', 4), task('agent', 'n1', 9, 'running', { 'io.clawloops.role': 'files' })];
  const t = setup(tasks);
  for (const n of [1, 2, 3, 4, 9]) t.nodes.run(n, n * 1_000_000);
  // A first round: everything is new, so each node is read twice (the second for the CPU figures).
  await Promise.all(['s1', 's2', 's3', 's4'].map((s) => t.figures.stats(s)));
  expect(t.listings()).toBe(1);
  expect(t.nodes.requests.map((r) => r.node).sort()).toEqual(['n1', 'n1', 'n2', 'n2']);
  // Only runtimes are asked about (not the file agent beside them).
  expect(t.nodes.requests.find((r) => r.node === 'n1')?.containers.sort()).toEqual([cid(1), cid(2)]);

  t.nodes.requests.length = 0;
  t.advance(5_000);
  t.nodes.pass(5);
  const round = await Promise.all(['s1', 's2', 's3', 's4'].map((s) => t.figures.stats(s)));
  expect(round.map((f) => f?.memoryBytes)).toEqual([1_000_000, 2_000_000, 3_000_000, 4_000_000]);
  expect(t.listings()).toBe(2);
  expect(t.nodes.requests.map((r) => r.node).sort()).toEqual(['n1', 'n2']);
  // Within the round's age, a sample asks nobody.
  t.advance(1_500);
  await t.figures.stats('s1');
  expect(t.listings()).toBe(2);
  expect(t.nodes.requests).toHaveLength(2);
});

test('CPU: the time used between two readings over the time between them, 100% for one CPU busy', async () => {
  const t = setup([task('s1', 'n1', 1)]);
  t.nodes.run(1, 50_000_000, 7e9);
  // The first sample waits for a second reading a second later: its figure covers that second.
  const first = await t.figures.stats('s1');
  expect(t.slept).toEqual([1_000]);
  expect(first).toEqual({ memoryBytes: 50_000_000, memoryLimitBytes: 256 * 1024 ** 2, cpuPercent: 0 });

  // Five seconds later, 2.5 s of CPU time used: 50%.
  t.advance(5_000);
  t.nodes.pass(5, { 1: 2.5 });
  expect((await t.figures.stats('s1'))?.cpuPercent).toBeCloseTo(50, 6);
  // Two CPUs busy for the next five seconds: 200%, as Docker counts it. No more waits.
  t.advance(5_000);
  t.nodes.pass(5, { 1: 10 });
  expect((await t.figures.stats('s1'))?.cpuPercent).toBeCloseTo(200, 6);
  expect(t.slept).toEqual([1_000]);
});

test('a reading too soon after the last keeps the last figure rather than a figure of noise', async () => {
  const t = setup([task('s1', 'n1', 1)]);
  t.nodes.run(1, 1_000);
  await t.figures.stats('s1');
  t.advance(5_000);
  t.nodes.pass(5, { 1: 1 });
  expect((await t.figures.stats('s1'))?.cpuPercent).toBeCloseTo(20, 6);
  // 0.1 s later (a new round: its listing is older than the round's age), a burst: not a figure of its own.
  t.advance(2_100);
  t.nodes.pass(0.1, { 1: 0.1 });
  expect((await t.figures.stats('s1'))?.cpuPercent).toBeCloseTo(20, 6);
  // The older reading stayed the base: the next figure covers the burst too.
  t.advance(5_000);
  t.nodes.pass(4.9, { 1: 0.9 });
  expect((await t.figures.stats('s1'))?.cpuPercent).toBeCloseTo(20, 6);
});

test('readings of another run of the node-stats server are on another clock: measured afresh', async () => {
  const t = setup([task('s1', 'n1', 1)]);
  t.nodes.run(1, 1_000);
  await t.figures.stats('s1');
  expect(t.slept).toHaveLength(1);
  t.advance(5_000);
  t.nodes.clock = 'run-2';
  t.nodes.nowUs = 5;
  t.nodes.pass(5, { 1: 5 });
  expect((await t.figures.stats('s1'))?.cpuPercent).toBe(0);
  expect(t.slept).toHaveLength(2);
});

test('a task whose container runs has figures, before its first health check too; none for what does not run', async () => {
  const t = setup([task('starting', 'n1', 1, 'starting'), task('pending', 'n1', 5, 'pending'), task('ended', 'n1', 6, 'shutdown'), task('gone', 'n1', 2), task('s3', 'n1', 3)]);
  t.nodes.run(1, 4_000);
  t.nodes.run(3, 1_000);
  t.nodes.run(5, 5_000);
  t.nodes.run(6, 6_000);
  // The swarm says "starting" until the runtime's health check passes: its container runs already.
  expect(await t.figures.stats('starting')).toMatchObject({ memoryBytes: 4_000 });
  expect(await t.figures.stats('pending')).toBeNull();
  expect(await t.figures.stats('ended')).toBeNull();
  // Listed as running, but the node no longer has its container.
  expect(await t.figures.stats('gone')).toBeNull();
  expect(await t.figures.stats('unknown')).toBeNull();
  expect(await t.figures.stats('s3')).toMatchObject({ memoryBytes: 1_000 });
  // Only what runs on the node was asked about.
  expect(new Set(t.nodes.requests.flatMap((r) => r.containers))).toEqual(new Set([cid(1), cid(2), cid(3)]));
});

test('a node that does not answer fails the samples of its runtimes only, and is asked again next round', async () => {
  const t = setup([task('s1', 'n1', 1), task('s2', 'n2', 2)]);
  t.nodes.run(1, 1_000);
  t.nodes.run(2, 2_000);
  t.nodes.failing.add('n2');
  await expect(t.figures.stats('s2')).rejects.toThrow('node n2 does not answer');
  expect(await t.figures.stats('s1')).toMatchObject({ memoryBytes: 1_000 });
  t.nodes.failing.clear();
  t.advance(2_100);
  expect(await t.figures.stats('s2')).toMatchObject({ memoryBytes: 2_000 });
});

test('a failed listing is not kept: the next sample lists again', async () => {
  let fail = true;
  const nodes = new FakeNodes();
  nodes.run(1, 1_000);
  const figures = new SwarmFigures({
    listTasks: async () => {
      if (fail) throw new Error('the manager is away');
      return [task('s1', 'n1', 1)];
    },
    isRuntime: () => true,
    source: nodes,
    sleep: async () => nodes.pass(1),
  });
  await expect(figures.stats('s1')).rejects.toThrow('the manager is away');
  fail = false;
  expect(await figures.stats('s1')).toMatchObject({ memoryBytes: 1_000 });
});

test('many runtimes on one node: a request holds at most MAX_CONTAINERS of them', async () => {
  const tasks = Array.from({ length: 150 }, (_, i) => task(`s${i}`, 'n1', i + 1));
  const t = setup(tasks);
  for (let i = 1; i <= 150; i++) t.nodes.run(i, i);
  const all = await Promise.all(tasks.map((x) => t.figures.stats(x.serviceId)));
  expect(all.every((f) => f !== null)).toBe(true);
  expect(t.nodes.requests.map((r) => r.containers.length)).toEqual([100, 50, 100, 50]);
});
