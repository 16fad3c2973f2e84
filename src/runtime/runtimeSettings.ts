/** How runtimes are built and run; parsed from the environment in config.ts. */
export interface RuntimeSettings {
  /** Pinned by tag, never by digest: digests cannot be satisfied without a registry. */
  image: string;
  /** Overrides the image's command; the default runs the OpenClaw gateway on the LAN bind. */
  command: string[];
  workingDir: string;
  memoryBytes: number;
  nanoCpus: number;
  pidsLimit: number;
  readyTimeoutMs: number;
  stopTimeoutSeconds: number;
  /** Lifecycle operations running at once across all users; the rest queue. */
  maxParallelOperations: number;
  /** 0 turns idle stop off. */
  idleStopMs: number;
  /** Workspace host names are `<username>.<domain>`. */
  domain: string;
  workspaceScheme: 'http' | 'https';
  /** Base URL (…/v1) of the model gateway as a runtime reaches it. */
  modelGatewayUrl: string;
  models: string[];
  /** The control plane's own container, joined to every runtime network; null when it runs on the host. */
  controlPlaneContainer: string | null;
  crashLoop: { maxExits: number; windowMs: number };
}

export const OPENCLAW_PORT = 18789;
export const OPENCLAW_HOME = '/home/node/.openclaw';
export const RUNTIME_UID = 1000;
export const DEFAULT_RUNTIME_IMAGE = 'ghcr.io/openclaw/openclaw:2026.9.6';
export const DEFAULT_RUNTIME_COMMAND = ['node', 'dist/index.js', 'gateway', '--bind', 'lan', '--port', String(OPENCLAW_PORT)];
