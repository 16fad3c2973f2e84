import { Writable, type Duplex, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type Docker from 'dockerode';
import {
  LABELS,
  MANAGED_LABEL,
  NO_HOST_ADDRESS_OPTION,
  type ContainerEvent,
  type ContainerSnapshot,
  type ContainerSpec,
  type ContainerStats,
  type ContainerStatus,
  type EventSubscription,
  type ExecResult,
  type HelperContainerSpec,
  type FileEntry,
  type NetworkInfo,
  type PullProgress,
  type RuntimeBackend,
} from './runtimeBackend';
import { DEFAULT_SUBNET_POOL, nextFreeSubnet, poolCapacity, type SubnetPool, upperHalf } from './subnetPool';
import { readEngineArchive } from './engineArchiveRead';
import type { EngineArchiveRequest } from '../files/workspaceVolumes';
import { DockerLogLines } from './logLines';
import { fileEntriesTar } from '../runtime/fileEntriesTar';

const MS_TO_NS = 1_000_000;
/** The role label of a runtime container (ownerLabels in runtime/containerSpec.ts). */
const RUNTIME_ROLE = 'runtime';

function statusCode(err: unknown): number | undefined {
  return typeof err === 'object' && err !== null && 'statusCode' in err ? Number((err as { statusCode: unknown }).statusCode) : undefined;
}

/** The engine's own sentence, without dockerode's "(HTTP code 404) no such container -" prefix. */
export function engineReason(err: unknown): string {
  if (typeof err === 'object' && err !== null) {
    const json = (err as { json?: unknown }).json;
    if (json && typeof json === 'object' && 'message' in json) return String((json as { message: unknown }).message);
    if (Buffer.isBuffer(json)) return json.toString('utf8').trim();
    if ('message' in err) return String((err as { message: unknown }).message);
  }
  return String(err);
}

async function ignoreNotFound<T>(work: Promise<T>): Promise<T | null> {
  try {
    return await work;
  } catch (err) {
    if (statusCode(err) === 404) return null;
    throw err;
  }
}

function parseTime(value: string | undefined): number | null {
  if (!value || value.startsWith('0001-')) return null;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? null : ms;
}

function snapshotOf(info: Docker.ContainerInspectInfo): ContainerSnapshot {
  const networks = info.NetworkSettings?.Networks ?? {};
  const addresses: Record<string, string> = {};
  for (const [name, net] of Object.entries(networks)) if (net.IPAddress) addresses[name] = net.IPAddress;
  // The engine reports a paused container "unhealthy", and one just unpaused too until its next
  // check, without a single failed check (FailingStreak 0): that is no verdict (a backup freezes
  // runtimes for a moment), only failed checks are.
  const reported = info.State.Health?.Status;
  const health = reported === 'unhealthy' && (info.State.Health?.FailingStreak ?? 0) === 0 ? null : reported;
  return {
    id: info.Id,
    name: info.Name.replace(/^\//, ''),
    image: info.Config.Image,
    labels: info.Config.Labels ?? {},
    status: info.State.Status as ContainerStatus,
    health: health === 'starting' || health === 'healthy' || health === 'unhealthy' ? health : null,
    exitCode: info.State.Status === 'exited' || info.State.Status === 'dead' ? info.State.ExitCode : null,
    oomKilled: info.State.OOMKilled,
    restartCount: info.RestartCount,
    error: info.State.Error || null,
    createdAt: parseTime(info.Created),
    startedAt: parseTime(info.State.StartedAt),
    finishedAt: parseTime(info.State.FinishedAt),
    addresses,
    memoryLimitBytes: info.HostConfig.Memory ?? 0,
    nanoCpus: info.HostConfig.NanoCpus ?? 0,
    pidsLimit: info.HostConfig.PidsLimit ?? null,
  };
}

/** What the engine's container list tells (no lock taken): no health, exit code, restarts or limits. */
function listedSnapshot(c: Docker.ContainerInfo): ContainerSnapshot {
  const addresses: Record<string, string> = {};
  for (const [name, net] of Object.entries(c.NetworkSettings?.Networks ?? {})) if (net.IPAddress) addresses[name] = net.IPAddress;
  return {
    id: c.Id,
    name: (c.Names[0] ?? '').replace(/^\//, ''),
    image: c.Image,
    labels: c.Labels ?? {},
    status: c.State as ContainerStatus,
    health: null,
    exitCode: null,
    oomKilled: false,
    restartCount: 0,
    error: null,
    createdAt: c.Created ? c.Created * 1000 : null,
    startedAt: null,
    finishedAt: null,
    addresses,
    memoryLimitBytes: 0,
    nanoCpus: 0,
    pidsLimit: null,
  };
}

export class DockerodeRuntimeBackend implements RuntimeBackend {
  /**
   * `instance` separates ClawLoops installations sharing one engine (a test run next to a real
   * one): everything created is stamped with it, and only resources carrying it are ever listed,
   * watched, adopted or swept.
   */
  constructor(
    private readonly docker: Docker,
    private readonly instance: string,
    private readonly subnetPool: SubnetPool = DEFAULT_SUBNET_POOL,
  ) {}

  private managedFilter(extra: Record<string, string[]> = {}): string {
    return JSON.stringify({ label: [`${MANAGED_LABEL}=true`, `${LABELS.instance}=${this.instance}`], ...extra });
  }

  private stamp(labels: Record<string, string>): Record<string, string> {
    return { ...labels, [MANAGED_LABEL]: 'true', [LABELS.instance]: this.instance };
  }

  async imageExists(image: string): Promise<boolean> {
    return (await ignoreNotFound(this.docker.getImage(image).inspect())) !== null;
  }

  async pullImage(image: string, onProgress: (progress: PullProgress) => void, signal?: AbortSignal): Promise<void> {
    let stream: NodeJS.ReadableStream;
    try {
      stream = (await this.docker.pull(image, signal ? { abortSignal: signal } : {})) as NodeJS.ReadableStream;
    } catch (err) {
      throw new Error(`Pulling image ${image} failed: ${engineReason(err)}`, { cause: err });
    }
    const layers = new Map<string, { current: number; total: number }>();
    await new Promise<void>((resolve, reject) => {
      this.docker.modem.followProgress(
        stream,
        (err: Error | null, output: unknown[]) => {
          // The engine reports a failed pull as a final {error} message on a 200 stream.
          const failure = output?.find((o): o is { error: string } => typeof o === 'object' && o !== null && 'error' in o);
          if (err || failure) reject(new Error(`Pulling image ${image} failed: ${failure?.error ?? engineReason(err)}`));
          else resolve();
        },
        (event: { id?: string; status?: string; progressDetail?: { current?: number; total?: number } }) => {
          if (event.id && event.progressDetail?.total) {
            layers.set(event.id, { current: event.progressDetail.current ?? 0, total: event.progressDetail.total });
          }
          let bytesDone = 0;
          let bytesTotal = 0;
          for (const layer of layers.values()) {
            bytesDone += layer.current;
            bytesTotal += layer.total;
          }
          onProgress({ bytesDone, bytesTotal, status: event.status ?? '' });
        },
      );
    });
  }

  async ensureNetwork(name: string, labels: Record<string, string>, options: { hostAddress: boolean }): Promise<NetworkInfo> {
    const existing = await this.inspectNetwork(name);
    if (existing?.internal && existing.hostAddress === options.hostAddress) return existing;
    // Made by a version that let runtimes route out. On a bridge that may route, the engine's
    // isolation between networks is a chain of firewall rules it briefly unhooks every time any
    // network is created or removed; measured here, one runtime reached another in 74 of 208
    // tries while networks churned. An internal network has no forwarding rule to fall through
    // to, so the firewall's default (drop) holds in those moments too. One with an address for the
    // host, once the control plane has moved into a container, would leave the host's ports open.
    if (existing) await this.removeNetwork(name);
    // Allocation reads every network's subnet, then claims a free one: two allocations in this
    // process must not pick the same subnet, so they take turns.
    const allocation = this.networkAllocation.then(() => this.createNetwork(name, labels, options.hostAddress));
    this.networkAllocation = allocation.then(
      () => undefined,
      () => undefined,
    );
    return allocation;
  }

  private networkAllocation: Promise<void> = Promise.resolve();

  private async inspectNetwork(name: string): Promise<NetworkInfo | null> {
    const info = await ignoreNotFound(this.docker.getNetwork(name).inspect() as Promise<Docker.NetworkInspectInfo>);
    if (!info) return null;
    const ipam = info.IPAM?.Config?.[0];
    if (!ipam?.Subnet) throw new Error(`Network ${name} has no IPv4 subnet`);
    return { id: info.Id, name, subnet: ipam.Subnet, gateway: ipam.Gateway ?? '', internal: info.Internal === true, hostAddress: info.Options?.[NO_HOST_ADDRESS_OPTION] !== 'true' };
  }

  private async createNetwork(name: string, labels: Record<string, string>, hostAddress: boolean): Promise<NetworkInfo> {
    const raced = await this.inspectNetwork(name);
    if (raced) return raced;
    const used = (await this.docker.listNetworks()).flatMap((n) => (n.IPAM?.Config ?? []).map((c) => c.Subnet ?? '')).filter(Boolean);
    // Another installation on the engine may claim a subnet between our read and our create.
    for (let attempt = 0; attempt < 5; attempt++) {
      const free = nextFreeSubnet(this.subnetPool, used);
      if (!free) {
        throw new Error(
          `no free /${this.subnetPool.prefix} subnet left in ${this.subnetPool.base} (${poolCapacity(this.subnetPool)} runtime networks fit): widen CLAWLOOPS_RUNTIME_SUBNET_POOL`,
        );
      }
      try {
        const network = await this.docker.createNetwork({
          Name: name,
          Driver: 'bridge',
          // Runtimes reach the outside only through the control plane's egress proxy (see ensureNetwork).
          Internal: true,
          ...(hostAddress ? {} : { Options: { [NO_HOST_ADDRESS_OPTION]: 'true' } }),
          Labels: this.stamp(labels),
          CheckDuplicate: true,
          // The lower half stays free for the proxies' fixed addresses (see runtime/networkPlan.ts).
          IPAM: { Driver: 'default', Config: [{ Subnet: free.subnet, Gateway: free.gateway, IPRange: upperHalf(free.subnet) }] },
        });
        return { id: network.id, name, subnet: free.subnet, gateway: free.gateway, internal: true, hostAddress };
      } catch (err) {
        if (statusCode(err) === 409) {
          const winner = await this.inspectNetwork(name);
          if (winner) return winner;
        }
        if (!/overlap/i.test(engineReason(err))) throw err;
        used.push(free.subnet);
      }
    }
    throw new Error(`could not claim a free subnet in ${this.subnetPool.base}: other networks kept taking them`);
  }

  async removeNetwork(name: string): Promise<void> {
    const network = this.docker.getNetwork(name);
    const info = await ignoreNotFound(network.inspect() as Promise<Docker.NetworkInspectInfo>);
    if (!info) return;
    // The control plane (and later the proxy) joined it; the engine refuses to remove a network with endpoints.
    for (const containerId of Object.keys(info.Containers ?? {})) {
      await ignoreNotFound(network.disconnect({ Container: containerId, Force: true }));
    }
    await ignoreNotFound(network.remove());
  }

  async connectToNetwork(networkName: string, containerId: string, attachment: { ipv4Address: string; aliases: string[] }): Promise<void> {
    try {
      await this.docker.getNetwork(networkName).connect({
        Container: containerId,
        EndpointConfig: { IPAMConfig: { IPv4Address: attachment.ipv4Address }, Aliases: attachment.aliases },
      });
    } catch (err) {
      // Already attached is the state we wanted (a bridge says so with 403, an overlay with 409).
      if ((statusCode(err) === 403 && /already exists/.test(engineReason(err))) || (statusCode(err) === 409 && /already attached/.test(engineReason(err)))) return;
      throw err;
    }
  }

  async findProxyContainers(): Promise<{ id: string; role: string; networks: string[] }[]> {
    const list = await this.docker.listContainers({
      filters: JSON.stringify({ label: [LABELS.proxy, `${LABELS.instance}=${this.instance}`], status: ['running'] }),
    });
    return list.map((c) => ({
      id: c.Id,
      role: c.Labels?.[LABELS.proxy] ?? '',
      networks: Object.keys(c.NetworkSettings?.Networks ?? {}),
    }));
  }

  async listManagedNetworks(): Promise<(NetworkInfo & { labels: Record<string, string> })[]> {
    const networks = await this.docker.listNetworks({ filters: this.managedFilter() });
    return networks.map((n) => ({
      id: n.Id,
      name: n.Name,
      subnet: n.IPAM?.Config?.[0]?.Subnet ?? '',
      gateway: n.IPAM?.Config?.[0]?.Gateway ?? '',
      internal: n.Internal === true,
      hostAddress: n.Options?.[NO_HOST_ADDRESS_OPTION] !== 'true',
      labels: n.Labels ?? {},
    }));
  }

  async ensureVolume(name: string, labels: Record<string, string>): Promise<{ created: boolean }> {
    if (await this.volumeExists(name)) return { created: false };
    await this.docker.createVolume({ Name: name, Labels: this.stamp(labels) });
    return { created: true };
  }

  async listManagedVolumes(): Promise<{ name: string; labels: Record<string, string> }[]> {
    const { Volumes } = await this.docker.listVolumes({ filters: this.managedFilter() });
    return (Volumes ?? []).map((v) => ({ name: v.Name, labels: v.Labels ?? {} }));
  }

  async claimInstance(installationId: string): Promise<{ owner: string }> {
    const name = `clawloops-installation-${this.instance}`;
    // Not marked managed: no listing of runtime resources ever sees it. Two installations
    // creating it at once both get the one the engine kept, and read the same owner back.
    if (!(await this.volumeExists(name))) {
      await this.docker.createVolume({ Name: name, Labels: { [LABELS.instance]: this.instance, [LABELS.installation]: installationId, [LABELS.role]: 'installation' } });
    }
    const info = (await this.docker.getVolume(name).inspect()) as { Labels?: Record<string, string> | null };
    return { owner: info.Labels?.[LABELS.installation] ?? '' };
  }

  async volumeExists(name: string): Promise<boolean> {
    return (await ignoreNotFound(this.docker.getVolume(name).inspect())) !== null;
  }

  async removeVolume(name: string): Promise<void> {
    await ignoreNotFound(this.docker.getVolume(name).remove());
  }

  async createContainer(spec: ContainerSpec): Promise<string> {
    const container = await this.docker.createContainer({
      name: spec.name,
      Image: spec.image,
      Hostname: spec.hostname,
      Labels: this.stamp(spec.labels),
      Env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
      User: spec.user,
      ...(spec.cmd ? { Cmd: spec.cmd } : {}),
      ...(spec.workingDir ? { WorkingDir: spec.workingDir } : {}),
      // No ExposedPorts/PortBindings: a runtime is reached on its own network, never on the host.
      Healthcheck: {
        Test: spec.healthcheck.test,
        Interval: spec.healthcheck.intervalMs * MS_TO_NS,
        Timeout: spec.healthcheck.timeoutMs * MS_TO_NS,
        StartPeriod: spec.healthcheck.startPeriodMs * MS_TO_NS,
        Retries: spec.healthcheck.retries,
      },
      HostConfig: {
        Init: true,
        CapDrop: ['ALL'],
        SecurityOpt: ['no-new-privileges'],
        Privileged: false,
        ReadonlyRootfs: false,
        Memory: spec.memoryBytes,
        // Equal to Memory: no swap on top of the limit, so the limit means what it says.
        MemorySwap: spec.memoryBytes,
        NanoCpus: spec.nanoCpus,
        PidsLimit: spec.pidsLimit,
        RestartPolicy: { Name: 'unless-stopped', MaximumRetryCount: 0 },
        NetworkMode: spec.networkName,
        Mounts: [{ Type: 'volume', Source: spec.volumeName, Target: spec.volumeMountPath }],
        ExtraHosts: spec.extraHosts,
        LogConfig: { Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '3' } },
      },
      NetworkingConfig: { EndpointsConfig: { [spec.networkName]: { Aliases: spec.networkAliases } } },
    });
    return container.id;
  }

  async putFiles(containerId: string, dir: string, entries: FileEntry[]): Promise<void> {
    await this.docker.getContainer(containerId).putArchive(await fileEntriesTar(entries), { path: dir });
  }

  async createHelperContainer(spec: HelperContainerSpec): Promise<string> {
    const container = await this.docker.createContainer({
      name: spec.name,
      Image: spec.image,
      Labels: this.stamp(spec.labels),
      User: spec.user,
      Entrypoint: spec.entrypoint,
      Cmd: [],
      Env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'HOME=/home/node'],
      HostConfig: {
        Init: true,
        CapDrop: ['ALL'],
        SecurityOpt: ['no-new-privileges'],
        Privileged: false,
        Memory: spec.memoryBytes,
        MemorySwap: spec.memoryBytes,
        PidsLimit: spec.pidsLimit,
        NetworkMode: 'none',
        Mounts: [{ Type: 'volume', Source: spec.volumeName, Target: spec.volumeMountPath }],
        LogConfig: { Type: 'json-file', Config: { 'max-size': '1m', 'max-file': '1' } },
      },
    });
    return container.id;
  }

  async exec(
    containerId: string,
    command: string[],
    options: { user: string; stdin: string; maxOutputBytes: number; timeoutMs: number },
  ): Promise<ExecResult> {
    const exec = await this.docker.getContainer(containerId).exec({
      Cmd: command,
      User: options.user,
      AttachStdin: true,
      AttachStdout: true,
      AttachStderr: true,
      Tty: false,
    });
    const socket = (await exec.start({ hijack: true, stdin: true })) as Duplex;
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let size = 0;
    await new Promise<void>((resolve, reject) => {
      const fail = (err: Error) => {
        clearTimeout(timer);
        socket.destroy();
        reject(err);
      };
      const timer = setTimeout(() => fail(new Error(`the command did not finish within ${Math.round(options.timeoutMs / 1000)} s`)), options.timeoutMs);
      const collect = (into: Buffer[]) =>
        new Writable({
          write(chunk: Buffer, _enc, done) {
            size += chunk.length;
            if (size > options.maxOutputBytes) fail(new Error(`the command wrote more than ${options.maxOutputBytes} bytes`));
            else into.push(chunk);
            done();
          },
        });
      this.docker.modem.demuxStream(socket, collect(stdout), collect(stderr));
      socket.on('error', fail);
      socket.on('end', () => {
        clearTimeout(timer);
        resolve();
      });
      socket.end(options.stdin);
    });
    const info = await exec.inspect();
    return { exitCode: info.ExitCode ?? -1, stdout: Buffer.concat(stdout).toString('utf8'), stderr: Buffer.concat(stderr).toString('utf8') };
  }

  async putArchive(containerId: string, dir: string, archive: Readable, signal?: AbortSignal): Promise<void> {
    try {
      await this.docker.getContainer(containerId).putArchive(archive, { path: dir, ...(signal ? { abortSignal: signal } : {}) });
    } catch (err) {
      throw new Error(`Writing into the container failed: ${engineReason(err)}`, { cause: err });
    }
  }

  async getArchive(containerId: string, path: string, signal?: AbortSignal): Promise<Readable | null> {
    // On the engine's Unix socket, our own lean reader (engineArchiveRead.ts says why).
    const request = this.archiveRequest(containerId, path);
    if (request) return readEngineArchive(request, signal);
    const stream = await ignoreNotFound(this.docker.getContainer(containerId).getArchive({ path, ...(signal ? { abortSignal: signal } : {}) }));
    return stream as Readable | null;
  }

  archiveRequest(containerId: string, path: string): EngineArchiveRequest | null {
    const modem = this.docker.modem as { socketPath?: unknown; version?: unknown };
    if (typeof modem.socketPath !== 'string') return null;
    return { socketPath: modem.socketPath, apiVersion: typeof modem.version === 'string' ? modem.version : undefined, containerId, path };
  }

  async startContainer(id: string): Promise<void> {
    try {
      await this.docker.getContainer(id).start();
    } catch (err) {
      if (statusCode(err) === 304) return; // already started
      throw new Error(`Starting the container failed: ${engineReason(err)}`, { cause: err });
    }
  }

  async stopContainer(id: string, timeoutSeconds: number): Promise<void> {
    try {
      await this.docker.getContainer(id).stop({ t: timeoutSeconds });
    } catch (err) {
      if (statusCode(err) === 304 || statusCode(err) === 404) return; // already stopped / gone
      throw err;
    }
  }

  async pauseContainer(id: string): Promise<boolean> {
    try {
      await this.docker.getContainer(id).pause();
      return true;
    } catch (err) {
      // 409: not running (or paused already); 404: gone.
      if (statusCode(err) === 409 || statusCode(err) === 404) return false;
      throw err;
    }
  }

  async unpauseContainer(id: string): Promise<void> {
    try {
      await this.docker.getContainer(id).unpause();
    } catch (err) {
      if (statusCode(err) === 409 || statusCode(err) === 404) return;
      throw err;
    }
  }

  async removeContainer(id: string): Promise<void> {
    try {
      await this.docker.getContainer(id).remove({ force: true, v: false });
    } catch (err) {
      // 404: gone already; 409: removal already in progress.
      if (statusCode(err) === 404 || statusCode(err) === 409) return;
      throw err;
    }
  }

  async inspectContainer(id: string): Promise<ContainerSnapshot | null> {
    const info = await ignoreNotFound(this.docker.getContainer(id).inspect());
    return info ? snapshotOf(info) : null;
  }

  async listManagedContainers(): Promise<ContainerSnapshot[]> {
    const list = await this.docker.listContainers({ all: true, filters: this.managedFilter() });
    // Only runtimes are inspected. Inspect waits for the container's lock, which the engine holds
    // for the whole of an archive stream, and file helpers carry streams paced by a member's
    // client: one stalled download must not hold up a listing every user's state depends on.
    const snapshots = await Promise.all(list.map((c) => (c.Labels?.[LABELS.role] === RUNTIME_ROLE ? this.inspectContainer(c.Id) : listedSnapshot(c))));
    return snapshots.filter((s): s is ContainerSnapshot => s !== null);
  }

  async subscribeEvents(onEvent: (event: ContainerEvent) => void, onEnd: (error: Error | null) => void): Promise<EventSubscription> {
    const stream = (await this.docker.getEvents({
      filters: this.managedFilter({ type: ['container'] }),
    })) as Readable;
    let buffered = '';
    return followEngineStream(
      stream,
      (chunk) => {
        buffered += chunk.toString('utf8');
        const lines = buffered.split('\n');
        buffered = lines.pop() ?? '';
        for (const line of lines) {
          if (!line.trim()) continue;
          let raw: {
            Action?: string;
            id?: string;
            timeNano?: number;
            Actor?: { ID?: string; Attributes?: Record<string, string> };
          };
          try {
            raw = JSON.parse(line) as typeof raw;
          } catch {
            continue; // not an event; the engine never sends this, but one bad line must not kill the watcher
          }
          const attributes = raw.Actor?.Attributes ?? {};
          const exitCode = attributes.exitCode === undefined ? null : Number(attributes.exitCode);
          onEvent({
            containerId: raw.Actor?.ID ?? raw.id ?? '',
            action: raw.Action ?? '',
            labels: attributes,
            exitCode,
            at: raw.timeNano ? Math.floor(raw.timeNano / MS_TO_NS) : Date.now(),
          });
        }
      },
      onEnd,
    );
  }

  async stats(id: string): Promise<ContainerStats | null> {
    const stats = await ignoreNotFound(this.docker.getContainer(id).stats({ stream: false }));
    if (!stats) return null;
    const cpuDelta = stats.cpu_stats.cpu_usage.total_usage - stats.precpu_stats.cpu_usage.total_usage;
    const systemDelta = (stats.cpu_stats.system_cpu_usage ?? 0) - (stats.precpu_stats.system_cpu_usage ?? 0);
    const cpus = stats.cpu_stats.online_cpus ?? stats.cpu_stats.cpu_usage.percpu_usage?.length ?? 1;
    // Page cache is not the runtime's own memory: the engine CLI subtracts it the same way.
    const cache = (stats.memory_stats.stats as Record<string, number> | undefined)?.total_inactive_file ?? 0;
    return {
      memoryBytes: Math.max(0, (stats.memory_stats.usage ?? 0) - cache),
      memoryLimitBytes: stats.memory_stats.limit ?? 0,
      cpuPercent: systemDelta > 0 && cpuDelta > 0 ? (cpuDelta / systemDelta) * cpus * 100 : 0,
    };
  }

  async logs(id: string, options: { tail: number; follow: boolean }): Promise<Readable | null> {
    // Always as a stream: dockerode reads a log that does not follow into one buffer, whatever its size.
    const raw = await ignoreNotFound(
      new Promise<Readable>((resolve, reject) => {
        this.docker.modem.dial(
          {
            path: `/containers/${encodeURIComponent(id)}/logs?`,
            method: 'GET',
            isStream: true,
            statusCodes: { 200: true, 404: 'no such container', 500: 'server error' },
            options: { stdout: true, stderr: true, tail: options.tail, follow: options.follow },
          },
          (err: unknown, stream?: unknown) => (err ? reject(err) : resolve(stream as Readable)),
        );
      }),
    );
    if (raw === null) return null;
    const lines = new DockerLogLines();
    pipeline(raw, lines).catch(() => undefined); // an ended or destroyed reader ends the engine's stream with it
    return lines;
  }

}

/**
 * Follows one of the engine's endless streams (events): `onChunk` for what arrives, `onEnd` once
 * when it ends or fails, never after the subscriber closed it.
 */
export function followEngineStream(stream: Readable, onChunk: (chunk: Buffer) => void, onEnd: (error: Error | null) => void): EventSubscription {
  let ended = false;
  const finish = (error: Error | null): void => {
    if (ended) return;
    ended = true;
    onEnd(error);
  };
  stream.on('data', onChunk);
  stream.on('error', (err: Error) => finish(err));
  stream.on('end', () => finish(null));
  stream.on('close', () => finish(null));
  return {
    close: () => {
      ended = true;
      stream.destroy();
    },
  };
}
