/**
 * The figures kept for the admin's runtime list: what is kept and for how long, how an engine
 * error or a hung engine shows, and that the work stays bounded. Driven through the fake
 * provisioner, a manual clock and a scheduler the test runs by hand (no real timers).
 */
import { createLogger } from '../../src/lib/logger';
import type { RuntimeSpec, RuntimeStats } from '../../src/runtime/provisioner';
import { RuntimeFigures, type FigureTargets, type Schedule } from '../../src/runtime/runtimeFigures';
import { listWithFigures } from '../../src/runtime/runtimeList';
import type { RuntimeView } from '../../src/runtime/runtimeViews';
import { FakeProvisioner } from '../support/fakeProvisioner';
import { LogCapture, ManualClock } from '../support/harness';

/** A provisioner whose stats calls can be held, failed and counted. */
class MeasuredProvisioner extends FakeProvisioner {
  calls = 0;
  active = 0;
  maxActive = 0;
  /** While set, stats calls wait for it. */
  gate: Promise<void> | null = null;
  failWith: Error | null = null;
  memoryBytes = 50 * 1024 ** 2;

  override async stats(instanceId: string): Promise<RuntimeStats | null> {
    this.calls++;
    this.active++;
    this.maxActive = Math.max(this.maxActive, this.active);
    try {
      await this.gate;
      if (this.failWith) throw this.failWith;
      const stats = await super.stats(instanceId);
      return stats && { ...stats, memoryBytes: this.memoryBytes };
    } finally {
      this.active--;
    }
  }
}

/** Tasks scheduled by the figures (the next cycle, sample timeouts), run when the test says so. */
class ManualSchedule {
  tasks: { task: () => void; ms: number; done: boolean }[] = [];
  readonly schedule: Schedule = (task, ms) => {
    const entry = { task, ms, done: false };
    this.tasks.push(entry);
    return () => (entry.done = true);
  };
  pending(ms?: number) {
    return this.tasks.filter((t) => !t.done && (ms === undefined || t.ms === ms));
  }
  run(ms: number): number {
    const due = this.pending(ms);
    for (const t of due) {
      t.done = true;
      t.task();
    }
    return due.length;
  }
}

function gate(): { promise: Promise<void>; open: () => void } {
  let open = () => {};
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

/** Lets every promise chain that can move on do so (no time passes: the figures' timers are the manual ones). */
const flush = async () => {
  for (let i = 0; i < 3; i++) await new Promise<void>((resolve) => setImmediate(resolve));
};

const spec = (runtimeId: string): RuntimeSpec => ({
  owner: { runtimeId, userId: `u-${runtimeId}`, username: runtimeId },
  image: 'openclaw:test',
  command: [],
  workingDir: '/app',
  env: {},
  secretEnv: {},
  uid: 1000,
  dataPath: '/data',
  port: 18789,
  readinessPath: '/',
  limits: { memoryBytes: 2 * 1024 ** 3, nanoCpus: 1e9, pidsLimit: 256 },
  specHash: 'h',
});

const INTERVAL = 5_000;
const TIMEOUT = 15_000;

function setup(options: { concurrency?: number } = {}) {
  const provisioner = new MeasuredProvisioner();
  const clock = new ManualClock();
  const timers = new ManualSchedule();
  const logs = new LogCapture();
  const listeners = new Set<(runtimeId: string) => void>();
  // What the registry would say: the fake's running incarnation of each runtime.
  const targets: FigureTargets = {
    up: () => [...provisioner.instances.values()].filter((i) => i.phase === 'running').map((i) => ({ runtimeId: i.owner.runtimeId, instanceId: i.id })),
    upInstance: (runtimeId) => provisioner.running(runtimeId)?.id ?? null,
  };
  void provisioner.watch((change) => listeners.forEach((l) => l(change.runtimeId)));
  const figures = new RuntimeFigures({
    provisioner,
    targets,
    subscribeStates: (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    clock,
    logger: createLogger('info', logs),
    intervalMs: INTERVAL,
    sampleTimeoutMs: TIMEOUT,
    concurrency: options.concurrency ?? 4,
    schedule: timers.schedule,
  });
  const run = async (runtimeId: string) => {
    const id = await provisioner.create(spec(runtimeId));
    await provisioner.start(id);
    return id;
  };
  return { provisioner, clock, timers, logs, figures, run, listeners };
}

let current: ReturnType<typeof setup> | null = null;
afterEach(() => current?.figures.close());
const make = (options?: { concurrency?: number }) => (current = setup(options));

test('a cycle measures every running runtime; the figures age with the clock; nothing is kept for what does not run', async () => {
  const { provisioner, clock, figures, run } = make();
  await run('a');
  await run('b');
  const stopped = await run('c');
  await provisioner.stop(stopped);
  await figures.cycle();
  expect(provisioner.calls).toBe(2);
  expect(figures.size).toBe(2);
  expect(figures.figureOf('a')).toEqual({ stats: { memoryBytes: 50 * 1024 ** 2, memoryLimitBytes: 2 * 1024 ** 3, cpuPercent: 1 }, ageMs: 0, stale: false });
  expect(figures.figureOf('c')).toBeNull();
  clock.advance(7_000);
  expect(figures.figureOf('a')?.ageMs).toBe(7_000);

  // A runtime that stops (or is removed) between cycles no longer shows figures, and the next cycle forgets them.
  await provisioner.stop(provisioner.running('b')!.id);
  expect(figures.figureOf('b')).toBeNull();
  await figures.cycle();
  expect(figures.size).toBe(1);
  await provisioner.removeInstance(provisioner.running('a')!.id);
  await figures.cycle();
  expect(figures.size).toBe(0);
});

test('once started, a runtime that starts is measured at once and one that stops is forgotten at once', async () => {
  const { provisioner, figures, run, timers } = make();
  figures.start();
  await flush();
  expect(timers.pending(INTERVAL)).toHaveLength(1); // the first (empty) cycle ran; the next is scheduled
  const id = await run('a');
  await flush();
  expect(provisioner.calls).toBe(1);
  expect(figures.figureOf('a')?.stale).toBe(false);
  await provisioner.stop(id);
  expect(figures.size).toBe(0);

  // A new incarnation is measured afresh, never shown with the old one's figures.
  await run('a');
  await flush();
  expect(provisioner.calls).toBe(2);
  expect(figures.size).toBe(1);

  figures.close();
  expect(figures.size).toBe(0);
  expect(timers.pending(INTERVAL)).toHaveLength(0);
  await run('b');
  await flush();
  expect(provisioner.calls).toBe(2); // closed: no longer following
});

test('an engine error never throws: the last figures stay, marked stale and ageing, until the engine answers again', async () => {
  const { provisioner, clock, figures, run, logs } = make();
  await run('a');
  await figures.cycle();
  clock.advance(10_000);
  provisioner.failWith = new Error('connect ENOENT /var/run/docker.sock');
  await expect(figures.cycle()).resolves.toBeUndefined();
  await figures.cycle();
  expect(figures.figureOf('a')).toMatchObject({ ageMs: 10_000, stale: true });
  expect(logs.lines.filter((l) => l.includes('could not be renewed'))).toHaveLength(1); // once, not once per cycle

  provisioner.failWith = null;
  provisioner.memoryBytes = 80 * 1024 ** 2;
  await figures.cycle();
  expect(figures.figureOf('a')).toMatchObject({ ageMs: 0, stale: false, stats: { memoryBytes: 80 * 1024 ** 2 } });
  expect(logs.text).toContain('renewed again');
});

test('cycles never overlap: a call during a cycle joins it, and the next cycle is scheduled only after the slow one ends', async () => {
  const { provisioner, figures, run, timers } = make();
  await run('a');
  await run('b');
  const held = gate();
  provisioner.gate = held.promise;
  figures.start();
  await flush();
  expect(provisioner.calls).toBe(2);
  expect(figures.cycle()).toBe(figures.cycle());
  expect(timers.pending(INTERVAL)).toHaveLength(0);
  held.open();
  await flush();
  expect(timers.pending(INTERVAL)).toHaveLength(1);
  provisioner.gate = null;
  timers.run(INTERVAL);
  await flush();
  expect(provisioner.calls).toBe(4);
});

test('at most `concurrency` stats calls are outstanding, cycle and state changes together', async () => {
  const { provisioner, figures, run } = make({ concurrency: 3 });
  for (let i = 0; i < 12; i++) await run(`r${i}`);
  const held = gate();
  provisioner.gate = held.promise;
  figures.start();
  await run('late'); // measured at once, but through the same bound
  await flush();
  expect(provisioner.active).toBe(3);
  held.open();
  await figures.cycle();
  await flush();
  expect(provisioner.maxActive).toBe(3);
  expect(provisioner.calls).toBe(13);
  expect(figures.size).toBe(13);
});

test('a hung engine: an unanswered call makes the figures stale, and no second call for that runtime is made while it hangs', async () => {
  const { provisioner, clock, figures, run, timers } = make();
  await run('a');
  await figures.cycle();
  const held = gate();
  provisioner.gate = held.promise;
  clock.advance(5_000);
  const cycle = figures.cycle();
  await flush();
  expect(timers.run(TIMEOUT)).toBe(1); // the sample's time is up
  await cycle;
  expect(figures.figureOf('a')).toMatchObject({ stale: true, ageMs: 5_000 });
  await figures.cycle();
  await figures.cycle();
  expect(provisioner.calls).toBe(2);
  provisioner.gate = null;
  held.open();
  await flush();
  await figures.cycle();
  expect(provisioner.calls).toBe(3);
  expect(figures.figureOf('a')).toMatchObject({ stale: false, ageMs: 0 });
});

test('an answer that arrives after the runtime stopped is dropped', async () => {
  const { provisioner, figures, run } = make();
  const id = await run('a');
  const held = gate();
  provisioner.gate = held.promise;
  const cycle = figures.cycle();
  await provisioner.stop(id);
  held.open();
  await cycle;
  expect(figures.size).toBe(0);
});

test('the list answers from the figures, with their age in seconds and whether they are stale', async () => {
  const { provisioner, clock, figures, run } = make();
  await run('a');
  await figures.cycle();
  clock.advance(12_400);
  const view = (id: string | null, startedAt: string | null) => ({ id, startedAt }) as RuntimeView;
  const started = new Date(clock.now() - 60_000).toISOString();
  const calls = provisioner.calls;
  const items = listWithFigures([view('a', started), view('b', null), view(null, null)], figures, clock);
  expect(provisioner.calls).toBe(calls);
  expect(items.map((i) => [i.uptimeSeconds, i.stats?.memoryBytes ?? null, i.statsAgeSeconds, i.statsStale])).toEqual([
    [60, 50 * 1024 ** 2, 12, false],
    [null, null, null, false],
    [null, null, null, false],
  ]);
});
