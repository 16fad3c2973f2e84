/**
 * An in-memory RuntimeBackend at the interface we own, for unit tests of what the real engine
 * cannot show on our machines (an image pull with byte progress needs a registry). Everything
 * the engine really does is covered by test/integration against the real engine.
 */
import { posix } from 'node:path';
import { Readable } from 'node:stream';
import { pack } from 'tar-stream';
import type {
  ContainerEvent,
  ContainerSnapshot,
  ContainerSpec,
  ContainerStats,
  EventSubscription,
  ExecResult,
  FileEntry,
  NetworkInfo,
  PullProgress,
  RuntimeBackend,
} from '../../src/docker/runtimeBackend';

export type VolumeNode =
  | { type: 'file'; mode: number; content: Buffer }
  | { type: 'directory'; mode: number }
  | { type: 'symlink'; target: string };

export class FakeRuntimeBackend implements RuntimeBackend {
  readonly images = new Set<string>();
  readonly containers = new Map<string, ContainerSnapshot & { spec: ContainerSpec; files: FileEntry[] }>();
  readonly networks = new Map<string, NetworkInfo & { labels: Record<string, string> }>();
  readonly volumes = new Map<string, Record<string, string>>();
  /** What a pull reports, layer by layer; a string makes the pull fail with that reason. */
  pullScript: PullProgress[] | string = [];
  /** While set, container starts wait for it: holds operations in flight for the test. */
  startGate: Promise<void> | null = null;
  /** When set, running containers get this address (a loopback address a test serves OpenClaw's port on). */
  containerAddress: string | null = null;
  private nextId = 1;
  private listeners: ((event: ContainerEvent) => void)[] = [];

  async imageExists(image: string): Promise<boolean> {
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

  async ensureNetwork(name: string, labels: Record<string, string>): Promise<NetworkInfo> {
    const existing = this.networks.get(name);
    if (existing) return existing;
    const n = this.networks.size + 20;
    const network = { id: `net-${n}`, name, subnet: `172.${n}.0.0/16`, gateway: `172.${n}.0.1`, labels };
    this.networks.set(name, network);
    return network;
  }

  async removeNetwork(name: string): Promise<void> {
    this.networks.delete(name);
  }

  /** Proxy attachments requested, as `network→container@address`. */
  readonly attachments: string[] = [];
  async connectToNetwork(network: string, containerId: string, attachment: { ipv4Address: string }): Promise<void> {
    this.attachments.push(`${network}→${containerId}@${attachment.ipv4Address}`);
  }

  proxies: { id: string; role: string; networks: string[] }[] = [];
  async findProxyContainers() {
    return this.proxies;
  }

  async listManagedNetworks() {
    return [...this.networks.values()];
  }

  async ensureVolume(name: string, labels: Record<string, string>): Promise<{ created: boolean }> {
    if (this.volumes.has(name)) return { created: false };
    this.volumes.set(name, labels);
    return { created: true };
  }

  async removeVolume(name: string): Promise<void> {
    this.volumes.delete(name);
  }

  async volumeExists(name: string): Promise<boolean> {
    return this.volumes.has(name);
  }

  async listManagedVolumes() {
    return [...this.volumes.entries()].map(([name, labels]) => ({ name, labels }));
  }

  async createContainer(spec: ContainerSpec): Promise<string> {
    const id = `c${this.nextId++}`.padEnd(64, '0');
    this.containers.set(id, {
      id,
      name: spec.name,
      image: spec.image,
      labels: spec.labels,
      status: 'created',
      health: null,
      exitCode: null,
      oomKilled: false,
      restartCount: 0,
      error: null,
      createdAt: Date.now(),
      startedAt: null,
      finishedAt: null,
      addresses: {},
      memoryLimitBytes: spec.memoryBytes,
      nanoCpus: spec.nanoCpus,
      pidsLimit: spec.pidsLimit,
      spec,
      files: [],
    });
    return id;
  }

  /**
   * What each volume holds, by path below its mount point: enough of a file system for the
   * runtime's config (files, folders, symbolic links, hard links sharing one node).
   */
  readonly volumeEntries = new Map<string, Map<string, VolumeNode>>();

  volume(name: string): Map<string, VolumeNode> {
    let entries = this.volumeEntries.get(name);
    if (!entries) this.volumeEntries.set(name, (entries = new Map()));
    return entries;
  }

  /** The path below the container's volume mount, or null when `path` is elsewhere (or the mount itself). */
  private inVolume(containerId: string, path: string): { entries: Map<string, VolumeNode>; relative: string } | null {
    const c = this.require(containerId);
    const mount = c.spec.volumeMountPath;
    if (!path.startsWith(`${mount}/`)) return null;
    return { entries: this.volume(c.spec.volumeName), relative: path.slice(mount.length + 1).replace(/\/$/, '') };
  }

  async putFiles(containerId: string, dir: string, entries: FileEntry[]): Promise<void> {
    this.require(containerId).files.push(...entries);
    for (const entry of entries) {
      const at = this.inVolume(containerId, posix.join(dir, entry.path));
      if (!at) continue;
      const existing = at.entries.get(at.relative);
      if (entry.type === 'directory' && existing?.type === 'directory') continue;
      // Like the engine: whatever is in the way (a file, a link, a whole folder) is replaced.
      for (const key of [...at.entries.keys()]) if (key === at.relative || key.startsWith(`${at.relative}/`)) at.entries.delete(key);
      if (entry.type === 'directory') at.entries.set(at.relative, { type: 'directory', mode: entry.mode });
      else if (entry.type === 'file') at.entries.set(at.relative, { type: 'file', mode: entry.mode, content: entry.content ?? Buffer.alloc(0) });
      else {
        const target = this.inVolume(containerId, posix.join(dir, entry.linkTarget ?? ''));
        const node = target ? at.entries.get(target.relative) : undefined;
        if (!node || node.type === 'directory') throw new Error(`Writing into the container failed: cannot hard-link ${entry.linkTarget}`);
        at.entries.set(at.relative, node);
      }
    }
  }

  // File access needs a real engine (exec, archives): test/integration covers it.
  async createHelperContainer(): Promise<string> {
    throw new Error('the fake backend has no file access: use the real engine');
  }

  async exec(): Promise<ExecResult> {
    throw new Error('the fake backend has no file access: use the real engine');
  }

  async putArchive(): Promise<void> {
    throw new Error('the fake backend has no file access: use the real engine');
  }

  /** The volume's entry at `path` (a folder with everything below it), as the engine's archive API sends it. */
  async getArchive(containerId: string, path: string): Promise<Readable | null> {
    const at = this.inVolume(containerId, path);
    if (!at) throw new Error('the fake backend reads only below a volume mount: use the real engine');
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

  async startContainer(id: string): Promise<void> {
    await this.startGate;
    const c = this.require(id);
    const network = this.networks.get(c.spec.networkName);
    const address = this.containerAddress ?? network?.gateway.replace(/\.1$/, '.2') ?? '';
    Object.assign(c, { status: 'running', startedAt: Date.now(), addresses: { [c.spec.networkName]: address } });
    this.emit(id, 'start');
  }

  async stopContainer(id: string): Promise<void> {
    const c = this.containers.get(id);
    if (!c || c.status !== 'running') return;
    Object.assign(c, { status: 'exited', exitCode: 0, finishedAt: Date.now() });
    this.emit(id, 'die');
  }

  async removeContainer(id: string): Promise<void> {
    if (this.containers.delete(id)) this.emit(id, 'destroy');
  }

  async inspectContainer(id: string): Promise<ContainerSnapshot | null> {
    const c = this.containers.get(id);
    if (!c) return null;
    const snapshot: ContainerSnapshot & { spec?: unknown; files?: unknown } = { ...c };
    delete snapshot.spec;
    delete snapshot.files;
    return snapshot;
  }

  async listManagedContainers(): Promise<ContainerSnapshot[]> {
    const all = await Promise.all([...this.containers.keys()].map((id) => this.inspectContainer(id)));
    return all.filter((c): c is ContainerSnapshot => c !== null);
  }

  async subscribeEvents(onEvent: (event: ContainerEvent) => void): Promise<EventSubscription> {
    this.listeners.push(onEvent);
    return { close: () => (this.listeners = this.listeners.filter((l) => l !== onEvent)) };
  }

  async stats(id: string): Promise<ContainerStats | null> {
    const c = this.containers.get(id);
    return c ? { memoryBytes: 50 * 1024 ** 2, memoryLimitBytes: c.memoryLimitBytes, cpuPercent: 1 } : null;
  }

  async logs(_id: string, options?: { tail: number; follow: boolean }): Promise<Readable> {
    const lines = [{ stream: 'stdout', line: 'fake gateway listening' }];
    if (!options?.follow) return Readable.from(lines);
    // A followed log stays open until its reader goes away, as the engine's does.
    const stream = new Readable({ objectMode: true, read() {} });
    for (const line of lines) stream.push(line);
    return stream;
  }

  private require(id: string) {
    const c = this.containers.get(id);
    if (!c) throw new Error(`no such container: ${id}`);
    return c;
  }

  private emit(containerId: string, action: string): void {
    const c = this.containers.get(containerId);
    const event = { containerId, action, labels: c?.labels ?? {}, exitCode: c?.exitCode ?? null, at: Date.now() };
    for (const listener of this.listeners) listener(event);
  }
}

/** Every address answers 200: the fake containers are "ready" as soon as they run. */
export const alwaysReadyProbe = { status: async () => 200 };
