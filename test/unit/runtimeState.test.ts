import { Semaphore } from '../../src/lib/semaphore';
import { formatBytes, observe, OOM_KILLED, type ObservedInput } from '../../src/runtime/observedState';
import { Operation } from '../../src/runtime/operations';
import type { RuntimeInstance } from '../../src/runtime/provisioner';

const instance = (change: Partial<RuntimeInstance> = {}): RuntimeInstance => ({
  id: 'c1',
  name: 'clawloops-alice-1',
  owner: { runtimeId: 'r1', userId: 'u1', username: 'alice' },
  image: 'img:1',
  specHash: null,
  phase: 'running',
  exitCode: null,
  reason: null,
  createdAt: 1,
  startedAt: 2,
  finishedAt: null,
  url: null,
  memoryLimitBytes: 2 * 1024 ** 3,
  ...change,
});

const input = (change: Partial<ObservedInput> = {}): ObservedInput => ({
  instance: instance(),
  readyConfirmed: false,
  operation: null,
  desiredState: 'running',
  lastErrorCode: null,
  ...change,
});

describe('observed state', () => {
  test.each<[string, Partial<ObservedInput>, string, string | null]>([
    ['no container', { instance: null }, 'absent', null],
    ['running and probed ready', { readyConfirmed: true }, 'running', null],
    ['running and healthy by its own health check', { instance: instance({ phase: 'healthy' }) }, 'running', null],
    ['running, not yet ready', {}, 'starting', null],
    ['running, its health check still deciding', { instance: instance({ phase: 'starting' }) }, 'starting', null],
    ['crashed while meant to run', { instance: instance({ phase: 'crashed', exitCode: 139 }) }, 'stopped', 'exited with code 139'],
    ['running but failing its health check', { instance: instance({ phase: 'unhealthy' }), readyConfirmed: true }, 'unhealthy', 'the runtime stopped answering its health check'],
    ['restarting after a crash', { instance: instance({ phase: 'restarting', exitCode: 1 }) }, 'starting', 'restarting after it exited with code 1'],
    ['exited while meant to stop', { instance: instance({ phase: 'exited', exitCode: 0 }), desiredState: 'stopped' }, 'stopped', null],
    ['exited while meant to run', { instance: instance({ phase: 'exited', exitCode: 137 }) }, 'stopped', 'exited with code 137'],
    ['OOM-killed', { instance: instance({ phase: 'oom', exitCode: 137 }) }, 'stopped', 'out of memory (limit 2 GiB)'],
    ['stopped by the watcher after OOM', { instance: instance({ phase: 'exited' }), lastErrorCode: OOM_KILLED, lastErrorMessage: 'out of memory (limit 2 GiB)' }, 'stopped', 'out of memory (limit 2 GiB)'],
    ['exited after a failed start', { instance: instance({ phase: 'exited' }), lastErrorCode: 'READY_TIMEOUT' }, 'failed', null],
    ['created, never started', { instance: instance({ phase: 'created' }) }, 'stopped', null],
    ['paused by someone else', { instance: instance({ phase: 'paused' }) }, 'stopped', 'paused outside ClawLoops'],
  ])('%s', (_name, change, state, reason) => {
    expect(observe(input(change))).toEqual({ state, reason });
  });

  test('an operation in flight decides the state until it ends', () => {
    const op = new Operation('r1', 'u1', 'start', () => {}, 0);
    op.update({ step: 'pulling', percent: 10, message: 'Downloading img:1' });
    expect(observe(input({ instance: null, operation: op }))).toEqual({ state: 'creating', reason: 'Downloading img:1' });
    op.update({ step: 'waiting-for-health', percent: 80, message: 'Waiting for OpenClaw to answer' });
    expect(observe(input({ operation: op })).state).toBe('starting');
    op.succeed('Ready', 1);
    expect(observe(input({ operation: op, readyConfirmed: true })).state).toBe('running');
    const stop = new Operation('r1', 'u1', 'stop', () => {}, 0);
    expect(observe(input({ operation: stop })).state).toBe('stopping');
  });

  test('memory limits read as people write them', () => {
    expect(formatBytes(2 * 1024 ** 3)).toBe('2 GiB');
    expect(formatBytes(1.5 * 1024 ** 3)).toBe('1.5 GiB');
    expect(formatBytes(256 * 1024 ** 2)).toBe('256 MiB');
  });
});

describe('operation progress', () => {
  test('percent is clamped and rounded; nothing changes after the end', () => {
    const seen: number[] = [];
    const op = new Operation('r1', 'u1', 'start', (v) => seen.push(v.percent), 0);
    op.update({ step: 'starting', percent: 66.6, message: 'x' });
    op.update({ step: 'starting', percent: 250, message: 'x' });
    op.fail({ code: 'X', message: 'failed' }, 1);
    op.update({ step: 'starting', percent: 10, message: 'late' });
    expect(seen).toEqual([67, 100, 100]);
    expect(op.snapshot).toMatchObject({ status: 'failed', step: 'failed', error: { code: 'X', message: 'failed' } });
  });
});

describe('semaphore', () => {
  test('runs at most `limit` at once, in arrival order, and tells waiters their place', async () => {
    const slots = new Semaphore(2);
    const positions: Record<string, number[]> = { c: [], d: [] };
    const a = await slots.acquire();
    const b = await slots.acquire();
    const order: string[] = [];
    const c = slots.acquire((n) => positions.c?.push(n)).then((release) => (order.push('c'), release));
    const d = slots.acquire((n) => positions.d?.push(n)).then((release) => (order.push('d'), release));
    expect(slots.queued).toBe(2);
    a();
    a(); // releasing twice frees one slot only
    const releaseC = await c;
    expect(order).toEqual(['c']);
    expect(positions).toEqual({ c: [0], d: [1, 0] });
    b();
    (await d)();
    releaseC();
    expect(slots.queued).toBe(0);
  });

  test('refuses a limit below 1', () => {
    expect(() => new Semaphore(0)).toThrow(/positive integer/);
  });
});
