import http, { type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { createProxyMiddleware, type RequestHandler as ProxyHandler } from 'http-proxy-middleware';
import { actorOf } from '../../domain/authService';
import type { WorkspaceAddresses } from '../../domain/workspaceAddresses';
import { WORKSPACE_BIND_COOKIE, WORKSPACE_COOKIE, type GateDecision, type WorkspaceGatekeeper } from '../../domain/workspaceGatekeeper';
import { forbidden, notFound } from '../../lib/errors';
import type { Logger } from '../../lib/logger';
import { PROBE_CLIENT_ADDRESS } from '../../runtime/readinessProbe';
import type { RouterMode } from '../../runtime/runtimeSettings';
import { originOf } from '../context';
import type { LiveConnections } from '../liveConnections';
import { streamRuntimeEvents, type RuntimeRouteDeps } from '../routes/runtime';
import { SECURE_SESSION_COOKIE, SESSION_COOKIE } from '../sessionCookie';
import { isNavigation, refuseUpgrade, sendRefusal } from './decisionResponses';
import { sendWakePage } from './pages';

export interface WorkspaceRouterDeps extends RuntimeRouteDeps {
  gatekeeper: WorkspaceGatekeeper;
  addresses: WorkspaceAddresses;
  /** Where proxied WebSockets and requests are registered, so the end of their session ends them. */
  connections: LiveConnections;
  /**
   * builtin: the control plane proxies workspace traffic itself; traefik: Traefik does, and the
   * control plane answers the catch-all and proxies WebSocket upgrades (routed here by the runtimes' labels).
   */
  mode: RouterMode;
  platformOrigin: string;
  logger: Logger;
}

export interface WorkspaceRouter {
  /** Express middleware in front of the platform: handles every request addressed to a workspace. */
  handle: RequestHandler;
  /** For the HTTP server's `upgrade` event: WebSockets to workspaces (the platform has none). */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Closes every proxied WebSocket and request (shutdown). */
  closeAll(): void;
}

type Allowed = Extract<GateDecision, { kind: 'allow' }>;

const TARGET = Symbol('clawloops.workspaceTarget');
type Routed = IncomingMessage & { [TARGET]?: string };

/** The control plane's own cookies, under every name they take: none of them is the runtime's business. */
const OWN_COOKIES = new Set([SESSION_COOKIE, SECURE_SESSION_COOKIE, WORKSPACE_COOKIE, WORKSPACE_BIND_COOKIE, `__Host-${WORKSPACE_COOKIE}`, `__Host-${WORKSPACE_BIND_COOKIE}`]);

/** OpenClaw refuses loopback clients arriving through a trusted proxy; a local browser is reported as a stand-in address. */
export function reportedClientAddress(remote: string | undefined): string {
  if (!remote) return PROBE_CLIENT_ADDRESS;
  const address = remote.startsWith('::ffff:') ? remote.slice(7) : remote;
  return address === '::1' || address.startsWith('127.') ? PROBE_CLIENT_ADDRESS : address;
}

/**
 * The identity and forwarded headers a runtime sees are written here, never passed through:
 * OpenClaw trusts this proxy's X-Forwarded-User, so a client-sent copy must not survive. The
 * platform's own cookies stay behind too; OpenClaw's cookies pass.
 */
export function rebuildForwardedHeaders(req: IncomingMessage, username: string, scheme: string): void {
  const headers = req.headers;
  for (const name of Object.keys(headers)) {
    if (name.startsWith('x-forwarded-') || name === 'forwarded' || name === 'x-real-ip') delete headers[name];
  }
  headers['x-forwarded-user'] = username;
  headers['x-forwarded-for'] = reportedClientAddress(req.socket.remoteAddress);
  headers['x-forwarded-proto'] = scheme;
  if (headers.host) headers['x-forwarded-host'] = headers.host;
  if (headers.cookie) {
    const kept = headers.cookie
      .split(';')
      .filter((part) => !OWN_COOKIES.has(part.slice(0, Math.max(0, part.indexOf('='))).trim()))
      .join(';')
      .trim();
    if (kept) headers.cookie = kept;
    else delete headers.cookie;
  }
}

export function createWorkspaceRouter(deps: WorkspaceRouterDeps): WorkspaceRouter {
  const { gatekeeper, addresses, manager, logger, connections } = deps;
  const scheme = new URL(deps.platformOrigin).protocol.replace(/:$/, '');

  const proxy: ProxyHandler = createProxyMiddleware<IncomingMessage>({
    router: (req) => (req as Routed)[TARGET] ?? '',
    changeOrigin: false,
    xfwd: false,
    // Long-lived streams (SSE, chat answers) must not be cut by a timer; the runtime ends them.
    proxyTimeout: 0,
    agent: new http.Agent({ keepAlive: true, maxSockets: 256 }),
    ejectPlugins: true,
    plugins: [
      (server) => {
        server.on('error', (err, req, res) => {
          logger.warn({ err: err.message, url: req.url }, 'workspace proxy error');
          if ('writeHead' in res) {
            const response = res as http.ServerResponse;
            if (!response.headersSent) {
              response.statusCode = 502;
              response.setHeader('Content-Type', 'application/json');
              response.end(JSON.stringify({ error: { code: 'RUNTIME_UNREACHABLE', message: 'The workspace did not answer; it may be restarting. Try again in a moment.' } }));
            } else response.destroy();
          } else (res as Duplex).destroy();
        });
      },
    ],
  });

  const reservedEndpoint = (allowed: Allowed, req: Request, res: Response) => {
    const { user, username } = allowed;
    switch (`${req.method} ${allowed.reserved}`) {
      case 'GET status':
        res.setHeader('Cache-Control', 'no-store');
        res.json(manager.viewForUser(user.id));
        return;
      case 'POST start': {
        // The wake page's own origin only: another workspace's page must not start this one.
        if (req.get('origin') !== addresses.origin(username)) throw forbidden('ORIGIN_NOT_ALLOWED', 'Start the workspace from its own page.');
        const result = manager.start(actorOf(user), user.id, originOf(req));
        res.status(result.operation ? 202 : 200).json(result);
        return;
      }
      case 'GET events':
        streamRuntimeEvents(deps, req, res, user.id, { userId: user.id, sessionId: allowed.platformSessionId });
        return;
      default:
        throw notFound('NOT_FOUND', 'No such workspace endpoint.');
    }
  };

  /** Points a request (or upgrade) at the owner's runtime: activity for idle stop, rebuilt identity headers, the target. */
  const aimAtRuntime = (req: IncomingMessage, username: string, runtimeId: string, url: string) => {
    manager.touch(runtimeId);
    rebuildForwardedHeaders(req, username, scheme);
    (req as Routed)[TARGET] = url;
  };

  const handle: RequestHandler = (req: Request, res: Response, next: NextFunction) => {
    // Path mode: `/w/alice` without its slash is outside both OpenClaw's base path and the
    // runtime's route; send the browser to the workspace's root.
    const bare = addresses.mode === 'path' ? /^\/w\/([a-z0-9-]+)(\?.*)?$/.exec(req.url) : null;
    if (bare?.[1]) return res.redirect(308, `${addresses.basePath(bare[1])}/${bare[2] ?? ''}`);
    const navigation = isNavigation(req.method, req.headers.accept, req.headers.upgrade);
    const decision = gatekeeper.decide({ host: req.headers.host, uri: req.url, method: req.method, cookieHeader: req.headers.cookie, origin: req.headers.origin, upgrade: false, navigation });
    if (decision.kind === 'platform') return next();
    if (decision.kind !== 'allow') return sendRefusal(req, res, decision);
    if (decision.reserved !== null) return reservedEndpoint(decision, req, res);

    const route = manager.routeForUser(decision.user.id);
    if (route.url && route.runtimeId && deps.mode === 'builtin') {
      aimAtRuntime(req, decision.username, route.runtimeId, route.url);
      // In flight until the answer is complete: the end of the session cuts it (a long answer, a stream).
      const forget = connections.add({ userId: decision.user.id, sessionId: decision.platformSessionId, kind: 'proxied' }, () => {
        req.destroy();
        res.destroy();
      });
      res.once('close', forget);
      return void proxy(req, res, next);
    }
    if (navigation) {
      return sendWakePage(res, {
        username: decision.username,
        statusPath: addresses.reservedPath(decision.username, 'status'),
        startPath: addresses.reservedPath(decision.username, 'start'),
        eventsPath: addresses.reservedPath(decision.username, 'events'),
        platformUrl: `${deps.platformOrigin}/`,
        reason: manager.viewForUser(decision.user.id).stateReason,
      });
    }
    res.status(503).setHeader('Retry-After', '5');
    res.json({ error: { code: 'WORKSPACE_NOT_RUNNING', message: 'This workspace is not running. Open it in the browser to start it.' } });
  };

  const upgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    let decision: GateDecision;
    try {
      decision = gatekeeper.decide({ host: req.headers.host, uri: req.url ?? '/', method: req.method ?? 'GET', cookieHeader: req.headers.cookie, origin: req.headers.origin, upgrade: true, navigation: false });
    } catch (err) {
      logger.error({ err: (err as Error).message }, 'workspace access decision failed');
      return refuseUpgrade(socket, 503, 'ACCESS_CHECK_FAILED', 'The access check failed; try again.');
    }
    if (decision.kind === 'platform') return refuseUpgrade(socket, 404, 'NOT_FOUND', 'The platform has no WebSocket endpoints.');
    if (decision.kind === 'invalid') return refuseUpgrade(socket, decision.status, decision.code, decision.message);
    if (decision.kind !== 'allow') {
      const status = decision.kind === 'denied' ? decision.status : 401;
      return refuseUpgrade(socket, status, decision.kind === 'denied' ? decision.code : 'WORKSPACE_SIGN_IN_REQUIRED', 'Open this workspace from the platform to sign in.');
    }
    const route = manager.routeForUser(decision.user.id);
    // Behind Traefik too: the runtimes' labels route WebSocket upgrades here, so that the sockets
    // are ours to close when their session ends.
    if (decision.reserved !== null || !route.url || !route.runtimeId) {
      return refuseUpgrade(socket, 503, 'WORKSPACE_NOT_RUNNING', 'This workspace is not running.');
    }
    const runtimeId = route.runtimeId;
    aimAtRuntime(req, decision.username, runtimeId, route.url);
    // Frames from the browser are activity for idle stop: an agent session in an open tab is in use.
    socket.on('data', () => manager.touch(runtimeId));
    const forget = connections.add({ userId: decision.user.id, sessionId: decision.platformSessionId, kind: 'proxied' }, () => socket.destroy());
    socket.once('close', forget);
    proxy.upgrade(req, socket as never, head);
  };

  return {
    handle,
    upgrade,
    closeAll: () => {
      connections.endAll('proxied');
    },
  };
}
