import { createHash } from 'node:crypto';
import { WorkspaceAddresses } from '../domain/workspaceAddresses';
import { MODEL_KEY_ENV, renderOpenClawConfig } from './openclawConfig';
import type { FileEntry, RuntimeOwner, RuntimePlacement, RuntimeSpec } from './provisioner';
import { OPENCLAW_HOME, OPENCLAW_PORT, RUNTIME_UID, type RuntimeSettings } from './runtimeSettings';

export const workspaceAddresses = (settings: Pick<RuntimeSettings, 'addressing'>) => new WorkspaceAddresses(settings.addressing);

export interface RenderedRuntime {
  spec: RuntimeSpec;
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

export const READINESS_PATH = '/readyz';

function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * Every tool's way to find the egress proxy (curl, git, npm, Python read the lower-case names,
 * others the upper-case ones; Node 24's own fetch only with NODE_USE_ENV_PROXY). The model gateway
 * and the runtime itself are reached directly.
 */
function proxyEnv(settings: Pick<RuntimeSettings, 'egressProxyUrl' | 'modelGatewayUrl'>): Record<string, string> {
  if (!settings.egressProxyUrl) return {};
  const direct = [new URL(settings.modelGatewayUrl).hostname, 'localhost', '127.0.0.1', '::1'].join(',');
  return {
    HTTP_PROXY: settings.egressProxyUrl,
    HTTPS_PROXY: settings.egressProxyUrl,
    http_proxy: settings.egressProxyUrl,
    https_proxy: settings.egressProxyUrl,
    NO_PROXY: direct,
    no_proxy: direct,
    NODE_USE_ENV_PROXY: '1',
  };
}

/**
 * What a user's runtime is, independent of how a provisioner runs it: OpenClaw's image, command,
 * environment, limits and config file. The hash also covers the routing settings, since a
 * provisioner derives the runtime's routes from them (Traefik's labels, say).
 */
export function renderRuntime(owner: RuntimeOwner, settings: RuntimeSettings, placement: RuntimePlacement, secrets: RuntimeSecrets): RenderedRuntime {
  const addresses = workspaceAddresses(settings);
  const openclawConfig = renderOpenClawConfig({
    username: owner.username,
    workspaceOrigin: addresses.origin(owner.username),
    basePath: addresses.basePath(owner.username),
    trustedProxies: placement.trustedProxies,
    settings,
  });
  const env: Record<string, string> = {
    HOME: '/home/node',
    // tini is the image's entrypoint and the engine's init runs above it: without this it warns on every start.
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
    ...proxyEnv(settings),
  };
  const limits = { memoryBytes: settings.memoryBytes, nanoCpus: settings.nanoCpus, pidsLimit: settings.pidsLimit };
  const routing =
    settings.router === 'traefik'
      ? { router: 'traefik', host: addresses.hostName(owner.username), mode: addresses.mode, basePath: addresses.basePath(owner.username), traefik: settings.traefik }
      : { router: settings.router };
  const hashed = {
    image: settings.image,
    command: settings.command,
    workingDir: settings.workingDir,
    env,
    secretEnv: ['OPENCLAW_GATEWAY_PASSWORD', MODEL_KEY_ENV],
    limits,
    readiness: { port: OPENCLAW_PORT, path: READINESS_PATH },
    openclawConfig,
    routing,
  };
  const configHash = createHash('sha256').update(stableJson(hashed)).digest('hex').slice(0, 16);

  const spec: RuntimeSpec = {
    owner,
    image: settings.image,
    command: settings.command,
    workingDir: settings.workingDir,
    env,
    secretEnv: { OPENCLAW_GATEWAY_PASSWORD: secrets.gatewayPassword, [MODEL_KEY_ENV]: secrets.modelKey },
    uid: RUNTIME_UID,
    dataPath: OPENCLAW_HOME,
    port: OPENCLAW_PORT,
    readinessPath: READINESS_PATH,
    limits,
    specHash: configHash,
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
