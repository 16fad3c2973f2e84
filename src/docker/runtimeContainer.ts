import type { RuntimeChange, RuntimeInstance, RuntimeOwner, RuntimePhase, RuntimeSpec } from '../runtime/provisioner';
import type { RuntimeSettings } from '../runtime/runtimeSettings';
import { workspaceAddresses } from '../runtime/runtimeSpec';
import { LABELS, type ContainerEvent, type ContainerSnapshot, type ContainerSpec } from './runtimeBackend';

/**
 * How a runtime becomes a Docker container, and how a container reads back as a runtime: names,
 * labels, Traefik's Docker-provider labels, the healthcheck, hardening limits, and the mapping of
 * container statuses and engine event actions onto the provisioner's phases and changes.
 */

export const RUNTIME_ROLE = 'runtime';

export const runtimeNames = (runtimeId: string) => ({
  network: `clawloops-net-${runtimeId}`,
  volume: `clawloops-home-${runtimeId}`,
});

export const containerName = (owner: RuntimeOwner) => `clawloops-${owner.username}-${owner.runtimeId.slice(0, 8)}`;

export function ownerLabels(owner: RuntimeOwner, role: 'runtime' | 'network' | 'volume'): Record<string, string> {
  return {
    [LABELS.managed]: 'true',
    [LABELS.role]: role,
    [LABELS.runtimeId]: owner.runtimeId,
    [LABELS.userId]: owner.userId,
    [LABELS.username]: owner.username,
  };
}

export const ownerOf = (labels: Record<string, string>): RuntimeOwner => ({
  runtimeId: labels[LABELS.runtimeId] ?? '',
  userId: labels[LABELS.userId] ?? '',
  username: labels[LABELS.username] ?? '',
});

export type RoutingSettings = Pick<RuntimeSettings, 'addressing' | 'traefik' | 'router'>;

/**
 * Traefik's Docker provider reads these: one router for the workspace's host (or path), through
 * the forward-auth middleware, to OpenClaw's port on the runtime's own network; and one for the
 * same address's WebSocket upgrades, to the control plane, which checks and proxies them itself
 * so that ending a session can close them (a socket Traefik held would stay open). Its rule is
 * longer, so Traefik's default priority (the rule's length) puts it first. They live and die
 * with the container, so a stopped workspace has no route and falls to the catch-all.
 */
export function traefikLabels(owner: RuntimeOwner, settings: Pick<RuntimeSettings, 'addressing' | 'traefik'>, networkName: string, port: number): Record<string, string> {
  const addresses = workspaceAddresses(settings);
  const name = `clawloops-rt-${owner.runtimeId}`;
  const host = `Host(\`${addresses.hostName(owner.username)}\`)`;
  const rule = addresses.mode === 'host' ? host : `${host} && PathPrefix(\`${addresses.basePath(owner.username)}/\`)`;
  return {
    'traefik.enable': 'true',
    'traefik.docker.network': networkName,
    [`traefik.http.routers.${name}.rule`]: rule,
    [`traefik.http.routers.${name}.entrypoints`]: settings.traefik.entrypoint,
    [`traefik.http.routers.${name}.middlewares`]: settings.traefik.middleware,
    [`traefik.http.routers.${name}.service`]: name,
    ...(settings.traefik.certResolver ? { [`traefik.http.routers.${name}.tls.certresolver`]: settings.traefik.certResolver } : {}),
    [`traefik.http.services.${name}.loadbalancer.server.port`]: String(port),
    [`traefik.http.routers.${name}-ws.rule`]: `${rule} && HeaderRegexp(\`Upgrade\`, \`(?i)^websocket$\`)`,
    [`traefik.http.routers.${name}-ws.entrypoints`]: settings.traefik.entrypoint,
    [`traefik.http.routers.${name}-ws.service`]: settings.traefik.platformService,
    ...(settings.traefik.certResolver ? { [`traefik.http.routers.${name}-ws.tls.certresolver`]: settings.traefik.certResolver } : {}),
  };
}

/** Docker's healthcheck: the image's own node asks OpenClaw's readiness path from inside. */
const readyCheck = (spec: RuntimeSpec) =>
  `fetch('http://127.0.0.1:${spec.port}${spec.readinessPath}').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))`;

/** The container a runtime spec becomes: on its own network and volume, with the runtime's limits. */
export function containerSpecFor(spec: RuntimeSpec, settings: RoutingSettings): ContainerSpec {
  const names = runtimeNames(spec.owner.runtimeId);
  const routing = settings.router === 'traefik' ? traefikLabels(spec.owner, settings, names.network, spec.port) : {};
  return {
    name: containerName(spec.owner),
    hostname: `openclaw-${spec.owner.runtimeId.slice(0, 8)}`,
    image: spec.image,
    labels: { ...ownerLabels(spec.owner, 'runtime'), ...routing, [LABELS.configHash]: spec.specHash },
    env: { ...spec.env, ...spec.secretEnv },
    user: `${spec.uid}:${spec.uid}`,
    ...(spec.command.length > 0 ? { cmd: spec.command } : {}),
    workingDir: spec.workingDir,
    volumeName: names.volume,
    volumeMountPath: spec.dataPath,
    networkName: names.network,
    networkAliases: ['openclaw'],
    memoryBytes: spec.limits.memoryBytes,
    nanoCpus: spec.limits.nanoCpus,
    pidsLimit: spec.limits.pidsLimit,
    healthcheck: { test: ['CMD', 'node', '-e', readyCheck(spec)], intervalMs: 15_000, timeoutMs: 5_000, startPeriodMs: 180_000, retries: 3 },
    // A runtime may call services on the host (a local model server): Docker's name for it.
    extraHosts: ['host.docker.internal:host-gateway'],
  };
}

/** A container's status (and health, and OOM flag) as a runtime phase. */
export function phaseOf(snapshot: ContainerSnapshot): RuntimePhase {
  switch (snapshot.status) {
    case 'running':
      if (snapshot.health === 'healthy') return 'healthy';
      if (snapshot.health === 'unhealthy') return 'unhealthy';
      return snapshot.health === 'starting' ? 'starting' : 'running';
    case 'created':
    case 'restarting':
    case 'paused':
    case 'removing':
      return snapshot.status;
    case 'exited':
      return snapshot.oomKilled ? 'oom' : 'exited';
    case 'dead':
      return snapshot.oomKilled ? 'oom' : 'crashed';
  }
}

/** A runtime container as the provisioner reports it; `port` is where OpenClaw listens. */
export function instanceOf(snapshot: ContainerSnapshot, port: number): RuntimeInstance {
  const owner = ownerOf(snapshot.labels);
  const address = snapshot.status === 'running' ? snapshot.addresses[runtimeNames(owner.runtimeId).network] : undefined;
  return {
    id: snapshot.id,
    name: snapshot.name,
    owner,
    image: snapshot.image,
    specHash: snapshot.labels[LABELS.configHash] ?? null,
    phase: phaseOf(snapshot),
    exitCode: snapshot.exitCode,
    reason: snapshot.error,
    createdAt: snapshot.createdAt,
    startedAt: snapshot.startedAt,
    finishedAt: snapshot.finishedAt,
    url: address ? `http://${address}:${port}` : null,
    memoryLimitBytes: snapshot.memoryLimitBytes,
  };
}

/** An engine event of a runtime container as a change; null for events of anything else. */
export function changeOf(event: ContainerEvent): RuntimeChange | null {
  const runtimeId = event.labels[LABELS.runtimeId];
  if (event.labels[LABELS.role] !== RUNTIME_ROLE || !runtimeId) return null;
  const kind: RuntimeChange['kind'] =
    event.action === 'start' ? 'started' : event.action === 'die' ? 'exited' : event.action === 'oom' ? 'out-of-memory' : event.action === 'destroy' ? 'removed' : 'changed';
  return { kind, runtimeId, instanceId: event.containerId, exitCode: event.exitCode };
}
