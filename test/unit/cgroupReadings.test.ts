import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CgroupReader, parseKeyed, parseLimit } from '../../src/swarm/nodeStats/cgroupReadings';

/**
 * A node's cgroup files as the node-stats server reads them (src/swarm/nodeStats/cgroupReadings.ts),
 * on fake trees laid out as each engine set-up lays them out: the numbers are what the kernel
 * writes there, the expected figures what `docker stats` shows for them.
 */

const ID = 'd240fe9fbf85daf9d52d5f3f16b02b1fec1c1064bb4496bc6c7f473841c8d402';
const OTHER = 'a'.repeat(64);
const GiB = 1024 ** 3;
const NODE_MEMORY = 24 * GiB;
const V1_UNLIMITED = '9223372036854771712';

let root: string;

beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'cgroups-'));
});

afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

function files(tree: Record<string, string>): void {
  for (const [name, content] of Object.entries(tree)) {
    fs.mkdirSync(path.dirname(path.join(root, name)), { recursive: true });
    fs.writeFileSync(path.join(root, name), content);
  }
}

/** cgroup v1 as the swarm lab's nodes have it: a tree per controller, cpu and cpuacct apart, cgroupfs driver. */
function v1(group: string, cpuTree = 'cpuacct', values = { usage: '7618560', inactive: '1048576', limit: '134217728', cpuNs: '530520971' }): void {
  files({
    [`${cpuTree}/cpuacct.usage`]: '99999999999\n',
    'memory/memory.usage_in_bytes': '1\n',
    [`memory/${group}/memory.usage_in_bytes`]: `${values.usage}\n`,
    [`memory/${group}/memory.stat`]: `cache 2097152\nrss 6316032\ninactive_file 1048576\ntotal_cache 2097152\ntotal_inactive_file ${values.inactive}\n`,
    [`memory/${group}/memory.limit_in_bytes`]: `${values.limit}\n`,
    [`${cpuTree}/${group}/cpuacct.usage`]: `${values.cpuNs}\n`,
  });
}

/** cgroup v2: one tree. */
function v2(group: string, values = { current: '52428800', inactive: '10485760', max: '268435456', usageUsec: '1500000' }): void {
  files({
    'cgroup.controllers': 'cpuset cpu io memory pids\n',
    [`${group}/memory.current`]: `${values.current}\n`,
    [`${group}/memory.stat`]: `anon 41943040\nfile 10485760\ninactive_anon 0\nactive_file 0\ninactive_file ${values.inactive}\n`,
    [`${group}/memory.max`]: `${values.max}\n`,
    [`${group}/cpu.stat`]: `usage_usec ${values.usageUsec}\nuser_usec 1000000\nsystem_usec 500000\nnr_periods 0\n`,
  });
}

describe('cgroup v1', () => {
  test('cgroupfs (docker/<id>), cpuacct mounted on its own: memory less the inactive page cache, CPU time in ns', async () => {
    v1(`docker/${ID}`);
    expect(await new CgroupReader(root, NODE_MEMORY).read(ID)).toEqual({ memoryBytes: 7618560 - 1048576, memoryLimitBytes: 134217728, cpuNs: 530520971 });
  });

  test('systemd (system.slice/docker-<id>.scope), cpu and cpuacct mounted together', async () => {
    v1(`system.slice/docker-${ID}.scope`, 'cpu,cpuacct');
    expect(await new CgroupReader(root, NODE_MEMORY).read(ID)).toMatchObject({ memoryBytes: 6569984, cpuNs: 530520971 });
  });

  test("no memory limit: the node's memory, as the engine reports it", async () => {
    v1(`docker/${ID}`, 'cpuacct', { usage: '1000', inactive: '0', limit: V1_UNLIMITED, cpuNs: '1' });
    expect((await new CgroupReader(root, NODE_MEMORY).read(ID))?.memoryLimitBytes).toBe(NODE_MEMORY);
  });
});

describe('cgroup v2', () => {
  test('systemd (system.slice/docker-<id>.scope): memory.current less inactive_file, usage_usec in ns', async () => {
    v2(`system.slice/docker-${ID}.scope`);
    expect(await new CgroupReader(root, NODE_MEMORY).read(ID)).toEqual({ memoryBytes: 52428800 - 10485760, memoryLimitBytes: 268435456, cpuNs: 1_500_000_000 });
  });

  test('cgroupfs (docker/<id>), no limit (max)', async () => {
    v2(`docker/${ID}`, { current: '4096', inactive: '0', max: 'max', usageUsec: '7' });
    expect(await new CgroupReader(root, NODE_MEMORY).read(ID)).toEqual({ memoryBytes: 4096, memoryLimitBytes: NODE_MEMORY, cpuNs: 7000 });
  });

  test("a group elsewhere (an operator's cgroup parent, a rootless engine) is found once and read from there", async () => {
    const group = `user.slice/user-1000.slice/user@1000.service/docker-${ID}.scope`;
    v2(group);
    const reader = new CgroupReader(root, NODE_MEMORY);
    expect(await reader.read(ID)).toMatchObject({ memoryBytes: 41943040 });
    // Found where it is, the search is not repeated: the figures follow the files.
    fs.writeFileSync(path.join(root, group, 'memory.current'), '20971520\n');
    expect(await reader.read(ID)).toMatchObject({ memoryBytes: 20971520 - 10485760 });
  });

  test('page cache larger than the usage counted (the kernel updates them apart) is no negative memory', async () => {
    v2(`docker/${ID}`, { current: '1000', inactive: '5000', max: 'max', usageUsec: '1' });
    expect((await new CgroupReader(root, NODE_MEMORY).read(ID))?.memoryBytes).toBe(0);
  });
});

test('a container the node does not have (or no longer has) reads as null', async () => {
  v2(`docker/${ID}`);
  const reader = new CgroupReader(root, NODE_MEMORY);
  expect(await reader.read(OTHER)).toBeNull();
  expect(await reader.read(ID)).not.toBeNull();
  fs.rmSync(path.join(root, 'docker', ID), { recursive: true });
  expect(await reader.read(ID)).toBeNull();
});

test('nothing but a full container id ever becomes part of a path', async () => {
  v2(`docker/${ID}`);
  const reader = new CgroupReader(root, NODE_MEMORY);
  for (const bad of ['../../etc', ID.slice(0, 12), `${ID}/..`, ID.toUpperCase(), '']) await expect(reader.read(bad)).rejects.toThrow('not a container id');
});

test('a tree that is no cgroup tree is said so', async () => {
  files({ 'something/else': 'x' });
  await expect(new CgroupReader(root, NODE_MEMORY).read(ID)).rejects.toThrow(/neither a cgroup v2 tree nor cgroup v1/);
});

test('parsing: keyed files, limits', () => {
  expect(parseKeyed('usage_usec 12\nuser_usec 7\nbroken\n\nnr_throttled x\n')).toEqual(new Map([['usage_usec', 12], ['user_usec', 7]]));
  expect(parseLimit('max\n', 'memory.max', 100)).toBe(100);
  expect(parseLimit('50\n', 'memory.max', 100)).toBe(50);
  expect(parseLimit(`${V1_UNLIMITED}\n`, 'memory.limit_in_bytes', 100)).toBe(100);
  expect(() => parseLimit('lots', 'memory.max', 100)).toThrow('memory.max holds "lots", not a number');
});
