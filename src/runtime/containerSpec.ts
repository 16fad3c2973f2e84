import { createHash } from 'node:crypto';
import { LABELS, type ContainerSpec, type FileEntry } from '../docker/runtimeBackend';
import { WorkspaceAddresses } from '../domain/workspaceAddresses';
import { planNetwork, trustedProxies } from './networkPlan';
import { MODEL_KEY_ENV, renderOpenClawConfig } from './openclawConfig';
import { OPENCLAW_HOME, OPENCLAW_PORT, RUNTIME_UID, type RuntimeSettings } from './runtimeSettings';

export interface RuntimeIdentity {
  runtimeId: string;
  userId: string;
  username: string;
}

export const runtimeNames = (runtimeId: string) => ({
  network: `clawloops-net-${runtimeId}`,
  volume: `clawloops-home-${runtimeId}`,
});

export const containerName = (id: RuntimeIdentity) => `clawloops-${id.username}-${id.runtimeId.slice(0, 8)}`;

export function ownerLabels(id: RuntimeIdentity, role: 'runtime' | 'network' | 'volume'): Record<string, string> {
  return {
    [LABELS.managed]: 'true',
    [LABELS.role]: role,
    [LABELS.runtimeId]: id.runtimeId,
    [LABELS.userId]: id.userId,
    [LABELS.username]: id.username,
  };
}

export const workspaceAddresses = (settings: Pick<RuntimeSettings, 'addressing'>) => new WorkspaceAddresses(settings.addressing);

/**
 * Traefik's Docker provider reads these: one router for the workspace's host (or path), through
 * the forward-auth middleware, to OpenClaw's port on the runtime's own network; and one for the
 * same address's WebSocket upgrades, to the control plane, which checks and proxies them itself
 * so that ending a session can close them (a socket Traefik held would stay open). Its rule is
 * longer, so Traefik's default priority (the rule's length) puts it first. They live and die
 * with the container, so a stopped workspace has no route and falls to the catch-all.
 */
export function traefikLabels(id: RuntimeIdentity, settings: Pick<RuntimeSettings, 'addressing' | 'traefik'>, networkName: string): Record<string, string> {
  const addresses = workspaceAddresses(settings);
  const name = `clawloops-rt-${id.runtimeId}`;
  const host = `Host(\`${addresses.hostName(id.username)}\`)`;
  const rule = addresses.mode === 'host' ? host : `${host} && PathPrefix(\`${addresses.basePath(id.username)}/\`)`;
  return {
    'traefik.enable': 'true',
    'traefik.docker.network': networkName,
    [`traefik.http.routers.${name}.rule`]: rule,
    [`traefik.http.routers.${name}.entrypoints`]: settings.traefik.entrypoint,
    [`traefik.http.routers.${name}.middlewares`]: settings.traefik.middleware,
    [`traefik.http.routers.${name}.service`]: name,
    ...(settings.traefik.certResolver ? { [`traefik.http.routers.${name}.tls.certresolver`]: settings.traefik.certResolver } : {}),
    [`traefik.http.services.${name}.loadbalancer.server.port`]: String(OPENCLAW_PORT),
    [`traefik.http.routers.${name}-ws.rule`]: `${rule} && HeaderRegexp(\`Upgrade\`, \`(?i)^websocket$\`)`,
    [`traefik.http.routers.${name}-ws.entrypoints`]: settings.traefik.entrypoint,
    [`traefik.http.routers.${name}-ws.service`]: settings.traefik.platformService,
    ...(settings.traefik.certResolver ? { [`traefik.http.routers.${name}-ws.tls.certresolver`]: settings.traefik.certResolver } : {}),
  };
}

export interface RenderedRuntime {
  spec: ContainerSpec;
  /**
   * The home folder and the platform's openclaw.json; before every start runtimeConfigFile.ts
   * writes them with the member's own settings merged into the config.
   */
  files: FileEntry[];
  /**
   * Changes whenever anything we render changes (the platform-owned part of the config included,
   * the member's settings not); secrets are excluded so it is stable across re-creation.
   */
  configHash: string;
  openclawConfig: Record<string, unknown>;
}

export interface RuntimeSecrets {
  gatewayPassword: string;
  modelKey: string;
}

const READY_CHECK = `fetch('http://127.0.0.1:${OPENCLAW_PORT}/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))`;

function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export function renderRuntime(
  id: RuntimeIdentity,
  settings: RuntimeSettings,
  network: { subnet: string },
  secrets: RuntimeSecrets,
): RenderedRuntime {
  const names = runtimeNames(id.runtimeId);
  const addresses = workspaceAddresses(settings);
  const openclawConfig = renderOpenClawConfig({
    username: id.username,
    workspaceOrigin: addresses.origin(id.username),
    basePath: addresses.basePath(id.username),
    trustedProxies: trustedProxies(planNetwork(network.subnet), settings),
    settings,
  });
  const routing = settings.router === 'traefik' ? traefikLabels(id, settings, names.network) : {};
  const publicEnv: Record<string, string> = {
    HOME: '/home/node',
    // tini is the image's entrypoint and Docker's init runs above it: without this it warns on every start.
    TINI_SUBREAPER: '1',
    OPENCLAW_DISABLE_BONJOUR: '1',
    OPENCLAW_NO_AUTO_UPDATE: '1',
    // OpenClaw picks its config file from these, and lets a .env file in its state folder or the
    // config's own `env` block set them when the process has none: an agent could point it at a
    // file the platform never merges. A value here wins over both.
    // OpenClaw's OPENCLAW_HOME is the user's home; its state folder (our OPENCLAW_HOME) is below it.
    OPENCLAW_HOME: '/home/node',
    OPENCLAW_STATE_DIR: OPENCLAW_HOME,
    OPENCLAW_CONFIG_PATH: `${OPENCLAW_HOME}/openclaw.json`,
  };
  const healthcheck = { test: ['CMD', 'node', '-e', READY_CHECK], intervalMs: 15_000, timeoutMs: 5_000, startPeriodMs: 180_000, retries: 3 };
  const hashed = {
    image: settings.image,
    command: settings.command,
    workingDir: settings.workingDir,
    env: publicEnv,
    secretEnv: ['OPENCLAW_GATEWAY_PASSWORD', MODEL_KEY_ENV],
    limits: [settings.memoryBytes, settings.nanoCpus, settings.pidsLimit],
    healthcheck,
    openclawConfig,
    routing,
  };
  const configHash = createHash('sha256').update(stableJson(hashed)).digest('hex').slice(0, 16);

  const spec: ContainerSpec = {
    name: containerName(id),
    image: settings.image,
    labels: { ...ownerLabels(id, 'runtime'), ...routing, [LABELS.configHash]: configHash },
    env: { ...publicEnv, OPENCLAW_GATEWAY_PASSWORD: secrets.gatewayPassword, [MODEL_KEY_ENV]: secrets.modelKey },
    user: `${RUNTIME_UID}:${RUNTIME_UID}`,
    ...(settings.command.length > 0 ? { cmd: settings.command } : {}),
    workingDir: settings.workingDir,
    volumeName: names.volume,
    volumeMountPath: OPENCLAW_HOME,
    networkName: names.network,
    networkAliases: ['openclaw'],
    memoryBytes: settings.memoryBytes,
    nanoCpus: settings.nanoCpus,
    pidsLimit: settings.pidsLimit,
    healthcheck,
    extraHosts: ['host.docker.internal:host-gateway'],
  };

  // Put at /home/node so the `.openclaw/` entry also gives a fresh volume's root to uid 1000;
  // nothing else under it (the user's workspace) is touched.
  const files: FileEntry[] = [
    { path: '.openclaw', type: 'directory', mode: 0o700, uid: RUNTIME_UID, gid: RUNTIME_UID },
    {
      path: '.openclaw/openclaw.json',
      type: 'file',
      content: Buffer.from(`${JSON.stringify(openclawConfig, null, 2)}\n`),
      mode: 0o600,
      uid: RUNTIME_UID,
      gid: RUNTIME_UID,
    },
  ];
  return { spec, files, configHash, openclawConfig };
}
