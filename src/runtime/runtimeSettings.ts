import type { WorkspaceAddressingConfig } from '../domain/workspaceAddresses';

export type RouterMode = 'builtin' | 'traefik';

export interface TraefikSettings {
  /** Entrypoint the runtimes' routers listen on (web, or websecure with TLS). */
  entrypoint: string;
  /** Certificate resolver for the runtimes' routers; null without TLS. */
  certResolver: string | null;
  /** The forward-auth middleware every runtime router uses, as Traefik names it (name@provider). */
  middleware: string;
  /**
   * The control plane's Traefik service (name@provider). Workspace WebSockets are routed to it, not
   * to the runtime: the control plane then holds each socket and closes it when the session it was
   * opened under ends, which it cannot do for a socket Traefik holds.
   */
  platformService: string;
}

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
  /** Where workspaces live: `<username>.<domain>` (host mode) or `<platform>/w/<username>/` (path mode). */
  addressing: WorkspaceAddressingConfig;
  /** Who routes browsers to runtimes: the control plane itself, or Traefik through the runtimes' labels. */
  router: RouterMode;
  traefik: TraefikSettings;
  /** Base URL (…/v1) of the model gateway as a runtime reaches it. */
  modelGatewayUrl: string;
  models: string[];
  /** Names and sizes the administrator gave models (by id), rendered into OpenClaw's model list. */
  modelDetails: Record<string, { name: string; contextWindow: number | null; maxTokens: number | null }>;
  /**
   * The control plane's own container, joined to every runtime network at a fixed address; null
   * when it runs on the host (it then reaches runtimes through each network's gateway).
   */
  controlPlaneContainer: string | null;
  /**
   * The egress proxy as a runtime reaches it: its networks are internal, so this is its only way
   * out. Null leaves the proxy variables unset (a runtime then reaches nothing outside).
   */
  egressProxyUrl: string | null;
  crashLoop: { maxExits: number; windowMs: number };
}

export const OPENCLAW_PORT = 18789;
export const OPENCLAW_HOME = '/home/node/.openclaw';
export const RUNTIME_UID = 1000;
export const DEFAULT_RUNTIME_IMAGE = 'ghcr.io/openclaw/openclaw:2026.9.6';
export const DEFAULT_RUNTIME_COMMAND = ['node', 'dist/index.js', 'gateway', '--bind', 'lan', '--port', String(OPENCLAW_PORT)];
