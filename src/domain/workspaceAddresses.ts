import { USERNAME_PATTERN } from './accountRules';

export type WorkspaceRoutingMode = 'host' | 'path';

export interface WorkspaceAddressingConfig {
  mode: WorkspaceRoutingMode;
  /** Workspace hosts are `<username>.<domain>` in host mode. */
  domain: string;
  /** The platform's origin as browsers see it; path-mode workspaces live under it. */
  platformOrigin: string;
}

/** What a request's host and path address: the platform itself, a workspace, or nothing valid. */
export type AddressedTarget =
  | { kind: 'platform' }
  | { kind: 'workspace'; username: string; /** Path after the workspace's base path, always starting with `/`. */ innerPath: string }
  | { kind: 'invalid'; reason: string };

/** Paths under a workspace's base that the control plane answers itself (ticket redemption, wake page). */
export const RESERVED_PREFIX = '/_clawloops/';
const PATH_PREFIX = '/w/';
const MAX_HOST_LENGTH = 253;

/**
 * Where each user's workspace lives, and which workspace a request addresses. One host per user
 * (`alice.<domain>`) is the default: each workspace is its own origin, so the agent's pages there
 * cannot read the platform or another workspace. Path mode (`<platform>/w/alice/`) exists for
 * teams with only an IP address, and shares the platform's origin (see the warning in docs/architecture.md, Workspaces).
 */
export class WorkspaceAddresses {
  private readonly scheme: string;
  private readonly portSuffix: string;
  private readonly platformHost: string;

  constructor(readonly config: WorkspaceAddressingConfig) {
    const url = new URL(config.platformOrigin);
    this.scheme = url.protocol.replace(/:$/, '');
    this.portSuffix = url.port ? `:${url.port}` : '';
    this.platformHost = url.hostname.toLowerCase();
  }

  get mode(): WorkspaceRoutingMode {
    return this.config.mode;
  }

  /** The browser origin of a user's workspace: OpenClaw's only allowed origin. */
  origin(username: string): string {
    return this.config.mode === 'host' ? `${this.scheme}://${username}.${this.config.domain}${this.portSuffix}` : this.config.platformOrigin;
  }

  /** OpenClaw's `gateway.controlUi.basePath`: empty in host mode, `/w/<username>` in path mode. */
  basePath(username: string): string {
    return this.config.mode === 'host' ? '' : `${PATH_PREFIX}${username}`;
  }

  /** Absolute URL of a path inside the workspace (`inner` starts with `/`). */
  url(username: string, inner = '/'): string {
    return `${this.origin(username)}${this.basePath(username)}${inner}`;
  }

  /** The path, as the browser sees it, of one of the control plane's reserved endpoints. */
  reservedPath(username: string, name: string): string {
    return `${this.basePath(username)}${RESERVED_PREFIX}${name}`;
  }

  /** Host name (no port) of a user's workspace in host mode; the platform's host in path mode. */
  hostName(username: string): string {
    return this.config.mode === 'host' ? `${username}.${this.config.domain}` : this.platformHost;
  }

  /**
   * Classifies a request by its Host header (host mode) or path (path mode). Hosts that are not
   * under the domain at all (an IP address, the container name a health check uses) are the
   * platform's: only names shaped like a workspace are treated as one.
   */
  resolve(hostHeader: string | undefined, path: string): AddressedTarget {
    if (this.config.mode === 'path') return this.resolvePath(path);
    if (!hostHeader) return { kind: 'platform' };
    if (hostHeader.length > MAX_HOST_LENGTH + 6) return { kind: 'invalid', reason: 'The Host header is too long.' };
    const lowered = hostHeader.trim().toLowerCase();
    if (/^\[[0-9a-f:.]+\](:\d{1,5})?$/.test(lowered)) return { kind: 'platform' };
    const host = stripPort(lowered);
    if (host === null) return { kind: 'invalid', reason: 'The Host header is malformed.' };
    if (host === this.config.domain || host === this.platformHost) return { kind: 'platform' };
    const suffix = `.${this.config.domain}`;
    if (!host.endsWith(suffix)) return { kind: 'platform' };
    const label = host.slice(0, -suffix.length);
    if (!isWorkspaceName(label)) return { kind: 'invalid', reason: `"${label.slice(0, 64)}" is not a workspace name.` };
    return { kind: 'workspace', username: label, innerPath: path.startsWith('/') ? path : `/${path}` };
  }

  private resolvePath(path: string): AddressedTarget {
    if (!path.startsWith(PATH_PREFIX)) return { kind: 'platform' };
    const rest = path.slice(PATH_PREFIX.length);
    const slash = rest.search(/[/?]/);
    const name = decodeSafe(slash === -1 ? rest : rest.slice(0, slash));
    if (name === null || !isWorkspaceName(name)) return { kind: 'invalid', reason: 'The path does not name a workspace.' };
    const inner = slash === -1 ? '/' : rest.slice(slash);
    return { kind: 'workspace', username: name, innerPath: inner.startsWith('?') ? `/${inner}` : inner };
  }
}

function isWorkspaceName(name: string): boolean {
  return USERNAME_PATTERN.test(name) && !name.endsWith('-');
}

function decodeSafe(segment: string): string | null {
  try {
    return decodeURIComponent(segment).toLowerCase();
  } catch {
    return null;
  }
}

/** `alice.localhost:8080` → `alice.localhost`; null for anything that is not a host name with an optional port. */
function stripPort(host: string): string | null {
  const match = /^([a-z0-9.-]+)(?::(\d{1,5}))?$/.exec(host);
  if (!match?.[1] || match[1].length > MAX_HOST_LENGTH) return null;
  return match[1].replace(/\.$/, '');
}

/**
 * A post-sign-in destination inside a workspace: a relative path that stays on the workspace
 * (no scheme, no `//host`, no backslashes browsers treat as slashes). Anything else becomes `/`.
 */
export function safeInnerPath(candidate: unknown): string {
  if (typeof candidate !== 'string' || candidate.length > 2048) return '/';
  if (!candidate.startsWith('/') || candidate.startsWith('//') || /[\\\s]/.test(candidate)) return '/';
  if (candidate.startsWith(RESERVED_PREFIX)) return '/';
  return candidate;
}
