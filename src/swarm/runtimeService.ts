import type Docker from 'dockerode';
import { LABELS } from '../docker/runtimeBackend';
import { containerName, ownerLabels, ownerOf, RUNTIME_ROLE, runtimeNames, traefikLabels, type RoutingSettings } from '../docker/runtimeContainer';
import type { RuntimeChange, RuntimeInstance, RuntimeOwner, RuntimePhase, RuntimeSpec } from '../runtime/provisioner';
import type { ServiceSnapshot, TaskSnapshot } from './swarmEngine';

/**
 * How a runtime becomes a one-replica swarm service, and how a service and its tasks read back
 * as a runtime: the swarm counterpart of docker/runtimeContainer.ts.
 */

/** The node a runtime is pinned to, on its overlay network (recorded at first placement). */
export const NODE_LABEL = 'io.clawloops.node';
/** Runtimes of an installation with shared storage run anywhere: no node recorded. */
export const ANY_NODE = 'any';

const NS = 1_000_000;

/**
 * Swarm 20.10 has no no-new-privileges option for services (API 1.41): the runtime's command runs
 * under util-linux's setpriv, which sets the flag before anything of the image runs; every
 * process the runtime starts inherits it. An image without /usr/bin/setpriv fails to start, with
 * the engine's reason, rather than run without it.
 */
export const NO_NEW_PRIVILEGES = ['/usr/bin/setpriv', '--no-new-privs', '--'];

/** How the volume is made on whichever node mounts it first. */
export function volumeMount(owner: RuntimeOwner, target: string, sharedOptions: Record<string, string> | null, stamp: (l: Record<string, string>) => Record<string, string>): Docker.MountSettings {
  const name = runtimeNames(owner.runtimeId).volume;
  const driverOptions = sharedOptions ? Object.fromEntries(Object.entries(sharedOptions).map(([k, v]) => [k, v.replaceAll('{volume}', name)])) : null;
  return {
    Type: 'volume',
    Source: name,
    Target: target,
    VolumeOptions: { Labels: stamp(ownerLabels(owner, 'volume')), ...(driverOptions ? { DriverConfig: { Name: 'local', Options: driverOptions } } : {}) },
  } as Docker.MountSettings;
}

export const placementConstraints = (node: string): string[] => (node === ANY_NODE ? [] : [`node.id==${node}`]);

/**
 * Traefik's swarm provider reads the same routers as its Docker provider; only the network
 * label has the provider's own name (`traefik.swarm.network`).
 */
export function swarmTraefikLabels(owner: RuntimeOwner, settings: RoutingSettings, port: number): Record<string, string> {
  const network = runtimeNames(owner.runtimeId).network;
  const labels = traefikLabels(owner, settings, network, port);
  delete labels['traefik.docker.network'];
  return { ...labels, 'traefik.swarm.network': network };
}

export interface ServiceSettings {
  routing: RoutingSettings;
  /** Local-driver options that put every volume on shared storage; null keeps them on their node. */
  sharedVolumeOptions: Record<string, string> | null;
  /** The share of the memory limit the scheduler sets aside on the node (what placement counts). */
  memoryReservationShare: number;
}

export function serviceSpecFor(
  spec: RuntimeSpec,
  imageCommand: string[],
  node: string,
  settings: ServiceSettings,
  stamp: (l: Record<string, string>) => Record<string, string>,
): Docker.CreateServiceOptions {
  const names = runtimeNames(spec.owner.runtimeId);
  const routing = settings.routing.router === 'traefik' ? swarmTraefikLabels(spec.owner, settings.routing, spec.port) : {};
  const command = [...NO_NEW_PRIVILEGES, ...imageCommand];
  const readyCheck = `fetch('http://127.0.0.1:${spec.port}${spec.readinessPath}').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))`;
  return {
    Name: containerName(spec.owner),
    Labels: stamp({ ...ownerLabels(spec.owner, 'runtime'), ...routing, [LABELS.configHash]: spec.specHash, [NODE_LABEL]: node }),
    TaskTemplate: {
      ContainerSpec: {
        Image: spec.image,
        Labels: stamp(ownerLabels(spec.owner, 'runtime')),
        Command: command,
        Env: Object.entries({ ...spec.env, ...spec.secretEnv }).map(([k, v]) => `${k}=${v}`),
        User: `${spec.uid}:${spec.uid}`,
        Dir: spec.workingDir,
        Hostname: `openclaw-${spec.owner.runtimeId.slice(0, 8)}`,
        Init: true,
        CapabilityDrop: ['ALL'],
        Mounts: [volumeMount(spec.owner, spec.dataPath, settings.sharedVolumeOptions, stamp)],
        StopGracePeriod: 10_000 * NS,
        HealthCheck: { Test: ['CMD', 'node', '-e', readyCheck], Interval: 15_000 * NS, Timeout: 5_000 * NS, StartPeriod: 180_000 * NS, Retries: 3 },
      },
      Resources: {
        Limits: { MemoryBytes: spec.limits.memoryBytes, NanoCPUs: spec.limits.nanoCpus, Pids: spec.limits.pidsLimit },
        Reservations: { MemoryBytes: Math.floor(spec.limits.memoryBytes * settings.memoryReservationShare) },
      },
      // Like the Docker runtime's unless-stopped: back after a crash, never after our own stop (replicas 0).
      RestartPolicy: { Condition: 'any', Delay: 5_000 * NS, MaxAttempts: 0 },
      Placement: { Constraints: placementConstraints(node) },
      Networks: [{ Target: names.network, Aliases: ['openclaw'] }],
    },
    Mode: { Replicated: { Replicas: 0 } },
    // No IPVS on our kernels (and no need for a VIP): the name resolves to the task itself.
    EndpointSpec: { Mode: 'dnsrr' },
  } as Docker.CreateServiceOptions;
}

const PENDING_STATES = new Set(['new', 'allocated', 'pending', 'assigned', 'accepted', 'preparing', 'ready', 'starting']);
export const taskIsUp = (task: TaskSnapshot): boolean => task.state === 'running' || PENDING_STATES.has(task.state);

/**
 * Whether a runtime is where it is heading, so that nothing but a crash or an announced change
 * (a service or node event) can move it: running with nothing else up, stopped with nothing up,
 * or held by its node (drained, down), which only a node event ends.
 */
export function isSettled(service: ServiceSnapshot, tasks: TaskSnapshot[], verdict: NodeVerdict): boolean {
  if (verdict.lost || verdict.reason) return true;
  const up = tasks.filter(taskIsUp);
  if (service.replicas === 0) return up.length === 0;
  const latest = tasks[0];
  return latest !== undefined && latest.state === 'running' && latest.desiredState === 'running' && up.length === 1;
}

/** The newest task that is not a leftover of an earlier desired state. */
export const latestTask = (tasks: TaskSnapshot[]): TaskSnapshot | null => tasks[0] ?? null;

/** A service and its tasks (newest first) as a runtime phase, with the swarm's reason when it has one. */
export function phaseOf(service: ServiceSnapshot, tasks: TaskSnapshot[]): { phase: RuntimePhase; reason: string | null } {
  const latest = latestTask(tasks);
  const failure = latest?.error ?? null;
  if (service.replicas === 0) {
    if (!latest) return { phase: 'created', reason: null };
    if (taskIsUp(latest)) return { phase: 'running', reason: null };
    if (latest.state === 'rejected') return { phase: 'crashed', reason: failure };
    return { phase: 'exited', reason: latest.state === 'failed' ? failure : null };
  }
  if (!latest) return { phase: 'starting', reason: null };
  if (latest.state === 'running') return { phase: 'running', reason: null };
  // A second task since our last start is the swarm's replacement of the first (it failed, or its
  // node was drained or lost): down until it runs, so that the platform confirms it anew.
  const since = service.updatedAt ?? 0;
  if (tasks.slice(1).some((t) => (t.createdAt ?? 0) >= since) && latest.state !== 'rejected') {
    return { phase: 'restarting', reason: failure ?? (latest.state === 'pending' && latest.message !== 'pending task scheduling' ? latest.message : null) };
  }
  // With a health check the swarm holds a task in `starting` until its first check passes: it
  // runs already (the platform's own readiness probe decides), as a Docker container's `starting` health.
  if (latest.state === 'starting') return { phase: 'starting', reason: null };
  if (PENDING_STATES.has(latest.state)) {
    // "pending" with an error is the scheduler saying why it cannot place the task.
    return { phase: 'starting', reason: failure ?? (latest.state === 'pending' && latest.message !== 'pending task scheduling' ? latest.message : null) };
  }
  if (latest.state === 'rejected') return { phase: 'crashed', reason: failure };
  return { phase: 'restarting', reason: failure };
}

/**
 * What the swarm's nodes say about a runtime: `reason` why it cannot run where its data is, and
 * `lost` when its task still reads "running" on a node that is down (the swarm keeps the last
 * state it heard from a node that stopped answering).
 */
export interface NodeVerdict {
  reason: string | null;
  lost: boolean;
}

export function instanceOfService(service: ServiceSnapshot, tasks: TaskSnapshot[], port: number, verdict: NodeVerdict): RuntimeInstance {
  const owner = ownerOf(service.labels);
  const latest = latestTask(tasks);
  const observed = phaseOf(service, tasks);
  const { phase, reason } = verdict.lost ? { phase: 'crashed' as const, reason: verdict.reason } : observed;
  const address = !verdict.lost && (latest?.state === 'running' || latest?.state === 'starting') ? latest.addresses[runtimeNames(owner.runtimeId).network] : undefined;
  const started = tasks.find((t) => t.state === 'running' || t.exitCode !== null);
  return {
    id: service.id,
    name: service.name,
    owner,
    image: service.image,
    specHash: service.labels[LABELS.configHash] ?? null,
    phase,
    exitCode: phase === 'exited' || phase === 'crashed' || phase === 'restarting' ? (latest?.exitCode ?? null) : null,
    reason: verdict.reason ?? reason,
    createdAt: service.createdAt,
    startedAt: started?.createdAt ?? null,
    finishedAt: latest && !taskIsUp(latest) ? latest.stateSince : null,
    url: address ? `http://${address}:${port}` : null,
    memoryLimitBytes: service.memoryLimitBytes,
  };
}

export const isRuntimeService = (service: ServiceSnapshot): boolean => service.labels[LABELS.role] === RUNTIME_ROLE && Boolean(service.labels[LABELS.runtimeId]);

/** What a runtime's observed state looked like at the last look: compared to tell what changed. */
export interface ServiceDigest {
  replicas: number;
  taskId: string | null;
  taskState: string | null;
  running: boolean;
  reason: string | null;
}

export function digestOf(service: ServiceSnapshot, tasks: TaskSnapshot[], verdict: NodeVerdict): ServiceDigest {
  const latest = latestTask(tasks);
  return { replicas: service.replicas, taskId: latest?.id ?? null, taskState: latest?.state ?? null, running: latest?.state === 'running' && !verdict.lost, reason: verdict.reason };
}

/** The change between two looks at a runtime service; null when nothing changed. */
export function changeBetween(runtimeId: string, instanceId: string, before: ServiceDigest | undefined, after: ServiceDigest | null, exitCode: number | null): RuntimeChange | null {
  if (!after) return before ? { kind: 'removed', runtimeId, instanceId, exitCode: null } : null;
  if (before && before.replicas === after.replicas && before.taskId === after.taskId && before.taskState === after.taskState && before.reason === after.reason) return null;
  const kind: RuntimeChange['kind'] = after.running && !before?.running ? 'started' : before?.running && !after.running ? 'exited' : 'changed';
  return { kind, runtimeId, instanceId, exitCode: kind === 'exited' ? exitCode : null };
}
