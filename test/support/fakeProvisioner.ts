/**
 * An in-memory RuntimeProvisioner at the port the runtime layer owns, for unit and HTTP tests of
 * what a real engine cannot show on our machines (an image pull with byte progress needs a
 * registry, idle stop needs time). What the Docker implementation really does is covered by
 * test/integration against the real engine.
 */
import { posix } from 'node:path';
import { Readable } from 'node:stream';
import { pack } from 'tar-stream';
import { OPENCLAW_PORT } from '../../src/runtime/runtimeSettings';
import { infraConflict } from '../../src/lib/infraErrors';
import type {
  FileEntry,
  PullProgress,
  RuntimeChange,
  RuntimeInstance,
  RuntimeInventory,
  RuntimeOwner,
  RuntimePlacement,
  RuntimeProvisioner,
  RuntimeSpec,
  RuntimeStats,
  Subscription,
} from '../../src/runtime/provisioner';

export type VolumeNode =
  | { type: 'file'; mode: number; content: Buffer }
  | { type: 'directory'; mode: number }
  | { type: 'symlink'; target: string };

/** An instance with the spec it was made from and every entry written into it, in order. */
export type FakeInstance = RuntimeInstance & { spec: RuntimeSpec; files: FileEntry[] };

export class FakeProvisioner implements RuntimeProvisioner {
  readonly images = new Set<string>();
  readonly instances = new Map<string, FakeInstance>();
  /** Placements by runtime id: what `prepare` made and `release` frees. */
  readonly placements = new Map<string, RuntimePlacement & { owner: RuntimeOwner }>();
  /** What each runtime's data holds, by runtime id, then path below its data path. */
  readonly data = new Map<string, Map<string, VolumeNode>>();
  /** What a pull reports, step by step; a string makes the pull fail with that reason. */
  pullScript: PullProgress[] | string = [];
  /** While set, starts wait for it: holds operations in flight for the test. */
  startGate: Promise<void> | null = null;
  /** Instances this says yes to exit at once when started (an image that cannot run, for one runtime or all). */
  exitsAtStart: (instance: FakeInstance) => boolean = () => false;
  /** When set, running instances are reached at this host (a loopback address a test serves OpenClaw's port on). */
  runtimeHost: string | null = null;
  private nextId = 1;
  private listeners: ((change: RuntimeChange) => void)[] = [];

  /** The runtime's data (made if missing), as a mutable map of paths below the data path. */
  dataOf(runtimeId: string): Map<string, VolumeNode> {
    let entries = this.data.get(runtimeId);
    if (!entries) this.data.set(runtimeId, (entries = new Map()));
    return entries;
  }

  /** The running instance of a runtime, if any. */
  running(runtimeId: string): FakeInstance | undefined {
    return [...this.instances.values()].find((i) => i.owner.runtimeId === runtimeId && i.phase === 'running');
  }

  /** Set to make the claim fail as when another installation owns the instance name. */
  claimedBy: string | null = null;

  async claim(): Promise<void> {
    if (this.claimedBy) throw infraConflict(`Another ClawLoops installation (${this.claimedBy}) already runs on this engine.`);
  }

  async imageAvailable(image: string): Promise<boolean> {
    return this.images.has(image);
  }

  async pullImage(image: string, onProgress: (progress: PullProgress) => void): Promise<void> {
    if (typeof this.pullScript === 'string') throw new Error(`Pulling image ${image} failed: ${this.pullScript}`);
    for (const step of this.pullScript) {
      await Promise.resolve();
      onProgress(step);
    }
    this.images.add(image);
  }

  async prepare(owner: RuntimeOwner): Promise<RuntimePlacement> {
    const placement = this.placements.get(owner.runtimeId) ?? { owner, trustedProxies: [`172.${20 + this.placements.size}.0.1`] };
    this.placements.set(owner.runtimeId, placement);
    const freshData = !this.data.has(owner.runtimeId);
    this.dataOf(owner.runtimeId);
    return { trustedProxies: placement.trustedProxies, freshData };
  }

  async create(spec: RuntimeSpec): Promise<string> {
    // The number ends at the `z`: padded right behind it, the 1st and the 10th instance would share an id.
    const id = `i${this.nextId++}z`.padEnd(64, '0');
    this.instances.set(id, {
      id,
      name: `fake-${spec.owner.username}-${this.nextId}`,
      owner: spec.owner,
      image: spec.image,
      specHash: spec.specHash,
      phase: 'created',
      exitCode: null,
      reason: null,
      createdAt: Date.now(),
      startedAt: null,
      finishedAt: null,
      url: null,
      memoryLimitBytes: spec.limits.memoryBytes,
      spec,
      files: [],
    });
    return id;
  }

  /** The path below the instance's data path, or null when `path` is elsewhere (or the data path itself). */
  private inData(instanceId: string, path: string): { entries: Map<string, VolumeNode>; relative: string } | null {
    const instance = this.require(instanceId);
    return this.inDataOf(instance.owner.runtimeId, instance.spec.dataPath, path);
  }

  private inDataOf(runtimeId: string, mount: string, path: string): { entries: Map<string, VolumeNode>; relative: string } | null {
    if (!path.startsWith(`${mount}/`)) return null;
    return { entries: this.dataOf(runtimeId), relative: path.slice(mount.length + 1).replace(/\/$/, '') };
  }

  /** Entries written into runtimes' data before any instance existed, by runtime id. */
  readonly seeded = new Map<string, FileEntry[]>();

  async seedData(owner: RuntimeOwner, image: string, dataPath: string, dir: string, entries: FileEntry[]): Promise<boolean> {
    if (!this.images.has(image)) return false;
    this.seeded.set(owner.runtimeId, [...(this.seeded.get(owner.runtimeId) ?? []), ...entries]);
    this.writeInto((path) => this.inDataOf(owner.runtimeId, dataPath, path), dir, entries);
    return true;
  }

  async writeFiles(instanceId: string, dir: string, entries: FileEntry[]): Promise<void> {
    this.require(instanceId).files.push(...entries);
    this.writeInto((path) => this.inData(instanceId, path), dir, entries);
  }

  private writeInto(locate: (path: string) => { entries: Map<string, VolumeNode>; relative: string } | null, dir: string, entries: FileEntry[]): void {
    for (const entry of entries) {
      const at = locate(posix.join(dir, entry.path));
      if (!at) continue;
      const existing = at.entries.get(at.relative);
      if (entry.type === 'directory' && existing?.type === 'directory') continue;
      // Like a real one: whatever is in the way (a file, a link, a whole folder) is replaced.
      for (const key of [...at.entries.keys()]) if (key === at.relative || key.startsWith(`${at.relative}/`)) at.entries.delete(key);
      if (entry.type === 'directory') at.entries.set(at.relative, { type: 'directory', mode: entry.mode });
      else if (entry.type === 'file') at.entries.set(at.relative, { type: 'file', mode: entry.mode, content: entry.content ?? Buffer.alloc(0) });
      else {
        const target = locate(posix.join(dir, entry.linkTarget ?? ''));
        const node = target ? at.entries.get(target.relative) : undefined;
        if (!node || node.type === 'directory') throw new Error(`Writing into the runtime failed: cannot hard-link ${entry.linkTarget}`);
        at.entries.set(at.relative, node);
      }
    }
  }

  /** The data's entry at `path` (a folder with everything below it), as a tar stream. */
  async readEntry(instanceId: string, path: string): Promise<Readable | null> {
    const at = this.inData(instanceId, path);
    if (!at) throw new Error('the fake provisioner reads only below the data path');
    const node = at.entries.get(at.relative);
    if (!node) return null;
    const archive = pack();
    const base = posix.basename(at.relative);
    const add = (name: string, entry: VolumeNode) => {
      if (entry.type === 'file') archive.entry({ name, type: 'file', mode: entry.mode, size: entry.content.length }, entry.content);
      else if (entry.type === 'directory') archive.entry({ name, type: 'directory', mode: entry.mode });
      else archive.entry({ name, type: 'symlink', linkname: entry.target, mode: 0o777 });
    };
    add(base, node);
    for (const [key, entry] of at.entries) if (key.startsWith(`${at.relative}/`)) add(`${base}${key.slice(at.relative.length)}`, entry);
    archive.finalize();
    return Readable.from(archive);
  }

  async start(instanceId: string): Promise<void> {
    await this.startGate;
    const instance = this.require(instanceId);
    const n = [...this.instances.keys()].indexOf(instanceId) + 2;
    const host = this.runtimeHost ?? `172.30.0.${n}`;
    if (this.exitsAtStart(instance)) {
      Object.assign(instance, { phase: 'exited', startedAt: Date.now(), exitCode: 1, finishedAt: Date.now(), url: null });
      this.emit(instanceId, 'exited');
      return;
    }
    Object.assign(instance, { phase: 'running', startedAt: Date.now(), exitCode: null, url: `http://${host}:${OPENCLAW_PORT}` });
    this.emit(instanceId, 'started');
  }

  async freeze(instanceId: string): Promise<boolean> {
    const instance = this.instances.get(instanceId);
    if (!instance || instance.phase !== 'running') return false;
    instance.phase = 'paused';
    this.emit(instanceId, 'changed');
    return true;
  }

  async thaw(instanceId: string): Promise<void> {
    const instance = this.instances.get(instanceId);
    if (instance?.phase !== 'paused') return;
    instance.phase = 'running';
    this.emit(instanceId, 'changed');
  }

  async stop(instanceId: string): Promise<void> {
    const instance = this.instances.get(instanceId);
    if (!instance || instance.phase !== 'running') return;
    Object.assign(instance, { phase: 'exited', exitCode: 0, finishedAt: Date.now(), url: null });
    this.emit(instanceId, 'exited');
  }

  /** Ends a running instance as if its process died (or was killed for its memory). */
  crash(instanceId: string, how: { exitCode: number; oom?: boolean }): void {
    const instance = this.require(instanceId);
    if (how.oom) this.emit(instanceId, 'out-of-memory');
    Object.assign(instance, { phase: how.oom ? 'oom' : 'exited', exitCode: how.exitCode, finishedAt: Date.now(), url: null });
    this.emit(instanceId, 'exited');
  }

  async removeInstance(instanceId: string): Promise<void> {
    const instance = this.instances.get(instanceId);
    if (!instance) return;
    this.instances.delete(instanceId);
    this.emitFor(instance, 'removed');
  }

  async release(runtimeId: string, options: { withData: boolean }): Promise<void> {
    this.placements.delete(runtimeId);
    if (options.withData) this.data.delete(runtimeId);
  }

  async removeEverythingOf(userId: string): Promise<{ instances: { runtimeId: string; instanceId: string }[]; places: number; volumes: number }> {
    const instances = [...this.instances.values()].filter((i) => i.owner.userId === userId);
    for (const instance of instances) await this.removeInstance(instance.id);
    const places = [...this.placements.entries()].filter(([, p]) => p.owner.userId === userId).map(([id]) => id);
    for (const id of places) this.placements.delete(id);
    const volumes = places.filter((id) => this.data.delete(id)).length;
    return { instances: instances.map((i) => ({ runtimeId: i.owner.runtimeId, instanceId: i.id })), places: places.length, volumes };
  }

  async inspect(instanceId: string): Promise<RuntimeInstance | null> {
    const instance = this.instances.get(instanceId);
    if (!instance) return null;
    const copy: RuntimeInstance & { spec?: RuntimeSpec; files?: FileEntry[] } = { ...instance };
    delete copy.spec;
    delete copy.files;
    return copy;
  }

  async inventory(): Promise<RuntimeInventory> {
    const instances = await Promise.all([...this.instances.keys()].map((id) => this.inspect(id)));
    return {
      instances: instances.filter((i): i is RuntimeInstance => i !== null),
      placements: new Map([...this.placements.entries()].map(([id, p]) => [id, { trustedProxies: p.trustedProxies }])),
    };
  }

  async sweepPlacements(known: Set<string>): Promise<number> {
    let removed = 0;
    for (const id of [...this.placements.keys()]) {
      if (known.has(id) || [...this.instances.values()].some((i) => i.owner.runtimeId === id)) continue;
      this.placements.delete(id);
      removed++;
    }
    return removed;
  }

  async watch(onChange: (change: RuntimeChange) => void): Promise<Subscription> {
    this.listeners.push(onChange);
    return { close: () => (this.listeners = this.listeners.filter((l) => l !== onChange)) };
  }

  async maintain(): Promise<void> {}

  async stats(instanceId: string): Promise<RuntimeStats | null> {
    const instance = this.instances.get(instanceId);
    return instance ? { memoryBytes: 50 * 1024 ** 2, memoryLimitBytes: instance.memoryLimitBytes, cpuPercent: 1 } : null;
  }

  async logs(_instanceId: string, options?: { tail: number; follow: boolean }): Promise<Readable> {
    const lines = [{ stream: 'stdout', line: 'fake gateway listening' }];
    if (!options?.follow) return Readable.from(lines);
    // A followed log stays open until its reader goes away, as a real one does.
    const stream = new Readable({ objectMode: true, read() {} });
    for (const line of lines) stream.push(line);
    return stream;
  }

  private require(instanceId: string): FakeInstance {
    const instance = this.instances.get(instanceId);
    if (!instance) throw new Error(`no such runtime instance: ${instanceId}`);
    return instance;
  }

  /** Tells the watchers about a change, as a real provisioner would on its own. */
  announce(instanceId: string, kind: RuntimeChange['kind']): void {
    this.emit(instanceId, kind);
  }

  private emit(instanceId: string, kind: RuntimeChange['kind']): void {
    const instance = this.instances.get(instanceId);
    if (instance) this.emitFor(instance, kind);
  }

  private emitFor(instance: FakeInstance, kind: RuntimeChange['kind']): void {
    const change: RuntimeChange = { kind, runtimeId: instance.owner.runtimeId, instanceId: instance.id, exitCode: instance.exitCode };
    for (const listener of this.listeners) listener(change);
  }
}

/** Every address answers 200: the fake runtimes are "ready" as soon as they run. */
export const alwaysReadyProbe = { status: async () => 200 };
