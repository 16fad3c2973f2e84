import { isGatewayPath } from './llm/gatewayHandler';
import { FORWARD_AUTH_PATH } from './workspace/forwardAuth';
import { WORKSPACE_OPEN_PATH } from './workspace/workspaceOpen';

/**
 * The kinds of request the HTTP metrics tell apart. A fixed, small set: a label per path (or per
 * user, per file) would grow without bound and make every scrape heavier.
 */
export const ROUTE_CLASSES = ['workspace', 'gateway', 'api', 'admin_api', 'files', 'stream', 'forward_auth', 'health', 'metrics', 'static'] as const;
export type RouteClass = (typeof ROUTE_CLASSES)[number];

/** How one request is told to whoever measures, once it is over; `status` null: cut before any answer. */
export type RequestObserver = (routeClass: RouteClass, status: number | null, seconds: number) => void;

const FILES = /^\/api\/v1\/(?:files|admin\/users\/[^/]+\/files)(?:\/|$)/;
// Server-Sent Events stay open for as long as the page does: their time would swamp the API's.
const STREAM = /^\/api\/v1\/(?:runtime|admin\/users\/[^/]+\/runtime)\/(?:events|logs)\/?$/;

/**
 * The class of a request the platform itself answers (not addressed to a workspace), from its
 * path alone. Workspace traffic (a workspace's host or /w/<user>/) is decided by the workspace
 * router before this is asked.
 */
export function routeClassOf(url: string): RouteClass {
  const queryAt = url.indexOf('?');
  const path = queryAt === -1 ? url : url.slice(0, queryAt);
  if (isGatewayPath(path)) return 'gateway';
  if (path.startsWith('/api/')) {
    if (FILES.test(path)) return 'files';
    if (STREAM.test(path)) return 'stream';
    if (path === '/api/v1/admin' || path.startsWith('/api/v1/admin/')) return 'admin_api';
    return 'api';
  }
  // WebDAV is the file API by another protocol.
  if (path === '/dav' || path.startsWith('/dav/')) return 'files';
  if (path === '/healthz' || path === '/readyz') return 'health';
  if (path === '/metrics') return 'metrics';
  if (path === FORWARD_AUTH_PATH) return 'forward_auth';
  // The hand-off into a workspace, and a workspace's reserved endpoints reached by path.
  if (path === WORKSPACE_OPEN_PATH || path.startsWith('/w/')) return 'workspace';
  return 'static';
}
