import { LocalTaskContainers } from '../../src/swarm/localTaskContainers';
import type { TaskSnapshot } from '../../src/swarm/swarmEngine';

const task = (serviceId: string, nodeId: string, state: TaskSnapshot['state'], containerId: string | null): TaskSnapshot => ({
  id: `task-${serviceId}-${nodeId}-${state}`,
  serviceId,
  nodeId,
  state,
  desiredState: 'running',
  message: '',
  error: null,
  exitCode: null,
  containerId,
  createdAt: 0,
  stateSince: 0,
  addresses: {},
});

function setup(tasks: () => Promise<TaskSnapshot[]>) {
  let now = 1_000;
  let listings = 0;
  const containers = new LocalTaskContainers(
    () => {
      listings++;
      return tasks();
    },
    async () => 'here',
    () => now,
    2_000,
  );
  return { containers, listings: () => listings, advance: (ms: number) => (now += ms) };
}

test('the samples of a round share one listing of the swarm, however many runtimes ask', async () => {
  const t = setup(async () => [task('a', 'here', 'running', 'ca'), task('b', 'here', 'running', 'cb')]);
  const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => t.containers.containerOf(i % 2 === 0 ? 'a' : 'b')));
  expect(new Set(answers)).toEqual(new Set(['ca', 'cb']));
  t.advance(1_500);
  await t.containers.containerOf('a');
  expect(t.listings()).toBe(1);
  t.advance(600);
  await t.containers.containerOf('a');
  expect(t.listings()).toBe(2);
});

test('only a running task on this node has a container here', async () => {
  const t = setup(async () => [task('elsewhere', 'other', 'running', 'c1'), task('starting', 'here', 'starting', 'c2'), task('ended', 'here', 'complete', 'c3'), task('mine', 'here', 'running', 'c4')]);
  expect(await Promise.all(['elsewhere', 'starting', 'ended', 'mine', 'unknown'].map((s) => t.containers.containerOf(s)))).toEqual([null, null, null, 'c4', null]);
});

test('a failed listing is not kept: the next caller asks the swarm again', async () => {
  let fail = true;
  const t = setup(async () => {
    if (fail) throw new Error('engine away');
    return [task('a', 'here', 'running', 'ca')];
  });
  await expect(t.containers.containerOf('a')).rejects.toThrow('engine away');
  fail = false;
  expect(await t.containers.containerOf('a')).toBe('ca');
  expect(t.listings()).toBe(2);
});
