import { promises as fsp, type Dirent } from 'node:fs';
import path from 'node:path';

/**
 * A container's memory and CPU as its node's kernel counts them, from the cgroup files the engine
 * keeps for it (what the engine's own stats call reads), under a node's /sys/fs/cgroup mounted
 * read-only at `root`. Both layouts:
 *
 * - cgroup v2 (one tree): `<root>/<group>/memory.current`, `memory.stat` (inactive_file),
 *   `memory.max`, `cpu.stat` (usage_usec);
 * - cgroup v1 (a tree per controller): `<root>/memory/<group>/memory.usage_in_bytes`,
 *   `memory.stat` (total_inactive_file), `memory.limit_in_bytes`, and `cpuacct.usage` (ns) in
 *   the cpuacct tree (`cpuacct`, or `cpu,cpuacct` where the two are mounted together).
 *
 * `<group>` is where the engine's cgroup driver put the container: `docker/<id>` (cgroupfs; also
 * an engine inside a container, as in scripts/swarm-lab), `system.slice/docker-<id>.scope`
 * (systemd). Anywhere else (a cgroup parent of the operator's, a rootless engine) it is searched
 * for, a few levels deep, once per container.
 *
 * Memory is what the Docker CLI shows: usage less the inactive page cache (file data the kernel
 * may drop at once). Node built-ins only: bundled into the node-stats server (server.ts).
 */

export interface CgroupReading {
  memoryBytes: number;
  /** The container's memory limit; the node's memory when it has none (as the engine reports it). */
  memoryLimitBytes: number;
  /** CPU time the container used since it started, in nanoseconds. */
  cpuNs: number;
}

/** A container id as the engine prints it in full: nothing else ever becomes part of a path. */
export const CONTAINER_ID = /^[0-9a-f]{64}$/;

type Layout = { version: 2 } | { version: 1; cpuTree: string };

/** Where a container's group usually is, relative to a tree's root. */
const usualGroups = (id: string): string[] => [`docker/${id}`, `system.slice/docker-${id}.scope`];
const SEARCH_DEPTH = 5;
const SEARCH_MAX_DIRS = 20_000;

/** `key value` lines (memory.stat, cpu.stat) as numbers by key. */
export function parseKeyed(text: string): Map<string, number> {
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    const [key, value] = line.trim().split(/\s+/);
    if (key && value !== undefined && /^\d+$/.test(value)) values.set(key, Number(value));
  }
  return values;
}

function parseCount(text: string, file: string): number {
  const value = text.trim();
  if (!/^\d+$/.test(value)) throw new Error(`${file} holds ${JSON.stringify(value.slice(0, 40))}, not a number`);
  return Number(value);
}

/** A memory limit file's value: `max` (v2) or a number past the node's memory (v1's "none") is the node's memory. */
export function parseLimit(text: string, file: string, nodeMemoryBytes: number): number {
  if (text.trim() === 'max') return nodeMemoryBytes;
  const limit = parseCount(text, file);
  return limit > 0 && limit < nodeMemoryBytes ? limit : nodeMemoryBytes;
}

const isMissing = (err: unknown): boolean => ['ENOENT', 'ENOTDIR'].includes((err as NodeJS.ErrnoException | null)?.code ?? '');

async function exists(file: string): Promise<boolean> {
  try {
    await fsp.access(file);
    return true;
  } catch {
    return false;
  }
}

export class CgroupReader {
  private layout: Promise<Layout> | null = null;
  /** Where each container's group was found (relative to a tree's root): found once, read every sample. */
  private readonly groups = new Map<string, string>();

  constructor(
    private readonly root: string,
    private readonly nodeMemoryBytes: number,
  ) {}

  /** The container's figures; null when the node has no group of that container (not here, or gone). */
  async read(id: string): Promise<CgroupReading | null> {
    if (!CONTAINER_ID.test(id)) throw new Error('not a container id');
    const layout = await this.layoutOf();
    const group = await this.groupOf(id, layout);
    if (group === null) return null;
    try {
      return layout.version === 2 ? await this.readV2(path.join(this.root, group)) : await this.readV1(group, layout.cpuTree);
    } catch (err) {
      this.groups.delete(id);
      if (isMissing(err)) return null;
      throw err;
    }
  }

  /** Forgets where the containers not named here were (the caller asks for what runs now). */
  keepOnly(ids: Iterable<string>): void {
    const keep = new Set(ids);
    for (const id of this.groups.keys()) if (!keep.has(id)) this.groups.delete(id);
  }

  private async readV2(dir: string): Promise<CgroupReading> {
    const file = (name: string) => path.join(dir, name);
    const [current, stat, max] = await Promise.all([fsp.readFile(file('memory.current'), 'utf8'), fsp.readFile(file('memory.stat'), 'utf8'), fsp.readFile(file('memory.max'), 'utf8')]);
    // Last, right before the caller notes the time: the CPU figure is a rate between two of these.
    const usageUsec = parseKeyed(await fsp.readFile(file('cpu.stat'), 'utf8')).get('usage_usec');
    if (usageUsec === undefined) throw new Error(`${file('cpu.stat')} has no usage_usec`);
    const usage = parseCount(current, 'memory.current');
    return {
      memoryBytes: Math.max(0, usage - (parseKeyed(stat).get('inactive_file') ?? 0)),
      memoryLimitBytes: parseLimit(max, 'memory.max', this.nodeMemoryBytes),
      cpuNs: usageUsec * 1000,
    };
  }

  private async readV1(group: string, cpuTree: string): Promise<CgroupReading> {
    const memory = (name: string) => path.join(this.root, 'memory', group, name);
    const [usage, stat, limit] = await Promise.all([fsp.readFile(memory('memory.usage_in_bytes'), 'utf8'), fsp.readFile(memory('memory.stat'), 'utf8'), fsp.readFile(memory('memory.limit_in_bytes'), 'utf8')]);
    const cpu = await fsp.readFile(path.join(this.root, cpuTree, group, 'cpuacct.usage'), 'utf8');
    return {
      memoryBytes: Math.max(0, parseCount(usage, 'memory.usage_in_bytes') - (parseKeyed(stat).get('total_inactive_file') ?? 0)),
      memoryLimitBytes: parseLimit(limit, 'memory.limit_in_bytes', this.nodeMemoryBytes),
      cpuNs: parseCount(cpu, 'cpuacct.usage'),
    };
  }

  private layoutOf(): Promise<Layout> {
    this.layout ??= this.detect();
    const detecting = this.layout;
    // A node whose cgroups could not be read now may be read later: not kept.
    detecting.catch(() => {
      if (this.layout === detecting) this.layout = null;
    });
    return detecting;
  }

  private async detect(): Promise<Layout> {
    if (await exists(path.join(this.root, 'cgroup.controllers'))) return { version: 2 };
    for (const tree of ['cpuacct', 'cpu,cpuacct', 'cpuacct,cpu', 'cpu']) {
      if (await exists(path.join(this.root, tree, 'cpuacct.usage'))) return { version: 1, cpuTree: tree };
    }
    throw new Error(`${this.root} is neither a cgroup v2 tree nor cgroup v1 trees with memory and cpuacct`);
  }

  /** The container's group relative to the tree's root; null when there is none. */
  private async groupOf(id: string, layout: Layout): Promise<string | null> {
    const known = this.groups.get(id);
    if (known !== undefined) return known;
    const tree = layout.version === 2 ? this.root : path.join(this.root, 'memory');
    let group: string | null = null;
    for (const candidate of usualGroups(id)) {
      if (await exists(path.join(tree, candidate))) {
        group = candidate;
        break;
      }
    }
    group ??= await this.search(tree, new Set([id, `docker-${id}.scope`]));
    if (group !== null) this.groups.set(id, group);
    return group;
  }

  /** Breadth first, a bounded number of folders: the first folder by one of `names`. */
  private async search(tree: string, names: Set<string>): Promise<string | null> {
    let level = [''];
    let seen = 0;
    for (let depth = 0; depth < SEARCH_DEPTH && level.length > 0; depth++) {
      const next: string[] = [];
      for (const dir of level) {
        let entries: Dirent[];
        try {
          entries = await fsp.readdir(path.join(tree, dir), { withFileTypes: true });
        } catch {
          continue;
        }
        for (const entry of entries) {
          if (!entry.isDirectory()) continue;
          const relative = dir ? `${dir}/${entry.name}` : entry.name;
          if (names.has(entry.name)) return relative;
          if (++seen > SEARCH_MAX_DIRS) return null;
          next.push(relative);
        }
      }
      level = next;
    }
    return null;
  }
}
