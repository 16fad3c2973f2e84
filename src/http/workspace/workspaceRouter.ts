import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { actorOf } from '../../domain/authService';
import type { WorkspaceAddresses } from '../../domain/workspaceAddresses';
import type { GateDecision, WorkspaceGatekeeper } from '../../domain/workspaceGatekeeper';
import { forbidden, notFound } from '../../lib/errors';
import { KEPT_ALIVE_IDLE_MS } from '../../lib/keptAlive';
import { loggablePath, type Logger } from '../../lib/logger';
import type { RouterMode } from '../../runtime/runtimeSettings';
import { originOf } from '../context';
import type { LiveConnections } from '../liveConnections';
import { streamRuntimeEvents, type RuntimeRouteDeps } from '../routes/runtime';
import { writeJsonError, writeUpgradeRefusal } from '../jsonError';
import { isNavigation, sendRefusal } from './decisionResponses';
import { sendWakePage } from './pages';
import { relayRequest, relayUpgrade, runtimeRequestHeaders } from './runtimeRelay';
import type { RuntimeRouteCache } from './runtimeRoutes';

export interface WorkspaceRouterDeps extends RuntimeRouteDeps {
  gatekeeper: WorkspaceGatekeeper;
  addresses: WorkspaceAddresses;
  /** Where each user's runtime answers (kept between requests, dropped on any change). */
  routes: RuntimeRouteCache;
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

/** A plain node:http handler that hands on what it does not answer. */
export type Fallback = (req: IncomingMessage, res: ServerResponse) => void;

export interface WorkspaceRouter {
  /**
   * In front of the platform, on node:http alone: answers every request addressed to a workspace
   * (proxied, refused, wake page) and returns true; false for the platform's own requests. The
   * workspace's reserved endpoints (status, start, events) are handed to `platform`, decided.
   */
  handle(req: IncomingMessage, res: ServerResponse, platform: Fallback): boolean;
  /** Express middleware answering a workspace's reserved endpoints for requests `handle` decided. */
  reserved: RequestHandler;
  /** For the HTTP server's `upgrade` event: WebSockets to workspaces (the platform has none). */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Closes every proxied WebSocket and request (shutdown). */
  closeAll(): void;
}

type Allowed = Extract<GateDecision, { kind: 'allow' }>;

/** Requests `handle` let through to a reserved endpoint, with the decision that let them. */
const DECIDED = new WeakMap<IncomingMessage, Allowed>();

const BARE_WORKSPACE_PATH = /^\/w\/([a-z0-9-]+)(\?.*)?$/;

export function createWorkspaceRouter(deps: WorkspaceRouterDeps): WorkspaceRouter {
  const { gatekeeper, addresses, manager, logger, connections, routes } = deps;
  const scheme = new URL(deps.platformOrigin).protocol.replace(/:$/, '');
  // Keep-alive to runtimes: a proxied request should not pay a TCP handshake.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256, timeout: KEPT_ALIVE_IDLE_MS });
  const onRelayError = (req: IncomingMessage) => (err: Error) => logger.warn({ err: err.message, path: loggablePath(req.url ?? '/') }, 'workspace proxy error');

  /** Proxied traffic is logged at debug (a line per asset would drown the log); everything else as the platform logs. */
  const logAnswer = (req: IncomingMessage, res: ServerResponse, proxied: boolean) => {
    const level = res.statusCode >= 500 && !proxied ? 'warn' : proxied ? 'debug' : 'info';
    if (!logger.isLevelEnabled(level)) return;
    const started = process.hrtime.bigint();
    res.once('finish', () => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      logger[level]({ method: req.method, host: req.headers.host?.slice(0, 200), path: loggablePath(req.url ?? '/'), status: res.statusCode, ms: Math.round(ms * 10) / 10, proxied }, 'workspace request');
    });
  };

  const decide = (req: IncomingMessage, upgrade: boolean): GateDecision =>
    gatekeeper.decide({
      host: req.headers.host,
      uri: req.url ?? '/',
      method: req.method ?? 'GET',
      cookieHeader: req.headers.cookie,
      origin: req.headers.origin,
      upgrade,
      navigation: !upgrade && isNavigation(req.method, req.headers.accept, req.headers.upgrade),
    });

  const handle = (req: IncomingMessage, res: ServerResponse, platform: Fallback): boolean => {
    const url = req.url ?? '/';
    // Path mode: `/w/alice` without its slash is outside both OpenClaw's base path and the
    // runtime's route; send the browser to the workspace's root.
    if (addresses.mode === 'path' && url.startsWith('/w/')) {
      const bare = BARE_WORKSPACE_PATH.exec(url);
      if (bare?.[1]) {
        logAnswer(req, res, false);
        res.statusCode = 308;
        res.setHeader('Location', `${addresses.basePath(bare[1])}/${bare[2] ?? ''}`);
        res.end();
        return true;
      }
    }
    let decision: GateDecision;
    try {
      decision = decide(req, false);
    } catch (err) {
      logger.error({ err: (err as Error).message }, 'workspace access decision failed');
      writeJsonError(res, 503, 'ACCESS_CHECK_FAILED', 'The access check failed; try again.');
      return true;
    }
    if (decision.kind === 'platform') return false;
    if (decision.kind !== 'allow') {
      logAnswer(req, res, false);
      sendRefusal(req, res, decision);
      return true;
    }
    if (decision.reserved !== null) {
      DECIDED.set(req, decision);
      platform(req, res);
      return true;
    }

    const route = deps.mode === 'builtin' ? routes.routeFor(decision.user.id) : null;
    if (route) {
      logAnswer(req, res, true);
      manager.touch(route.runtimeId);
      // In flight until the answer is complete: the end of the session cuts it (a long answer, a stream).
      const forget = connections.add({ userId: decision.user.id, sessionId: decision.platformSessionId, kind: 'proxied' }, () => {
        req.destroy();
        res.destroy();
      });
      res.once('close', forget);
      relayRequest(req, res, route.target, runtimeRequestHeaders(req, decision.username, scheme, false), { agent, onError: onRelayError(req) });
      return true;
    }
    logAnswer(req, res, false);
    if (isNavigation(req.method, req.headers.accept, req.headers.upgrade)) {
      sendWakePage(res, {
        username: decision.username,
        statusPath: addresses.reservedPath(decision.username, 'status'),
        startPath: addresses.reservedPath(decision.username, 'start'),
        eventsPath: addresses.reservedPath(decision.username, 'events'),
        platformUrl: `${deps.platformOrigin}/`,
        reason: manager.viewForUser(decision.user.id).stateReason,
      });
      return true;
    }
    res.setHeader('Retry-After', '5');
    writeJsonError(res, 503, 'WORKSPACE_NOT_RUNNING', 'This workspace is not running. Open it in the browser to start it.');
    return true;
  };

  const reserved: RequestHandler = (req: Request, res: Response, next: NextFunction) => {
    const allowed = DECIDED.get(req);
    if (!allowed) return next();
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

  const upgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    let decision: GateDecision;
    try {
      decision = decide(req, true);
    } catch (err) {
      logger.error({ err: (err as Error).message }, 'workspace access decision failed');
      return writeUpgradeRefusal(socket, 503, 'ACCESS_CHECK_FAILED', 'The access check failed; try again.');
    }
    if (decision.kind === 'platform') return writeUpgradeRefusal(socket, 404, 'NOT_FOUND', 'The platform has no WebSocket endpoints.');
    if (decision.kind === 'invalid') return writeUpgradeRefusal(socket, decision.status, decision.code, decision.message);
    if (decision.kind !== 'allow') {
      const status = decision.kind === 'denied' ? decision.status : 401;
      return writeUpgradeRefusal(socket, status, decision.kind === 'denied' ? decision.code : 'WORKSPACE_SIGN_IN_REQUIRED', 'Open this workspace from the platform to sign in.');
    }
    // Behind Traefik too: the runtimes' labels route WebSocket upgrades here, so that the sockets
    // are ours to close when their session ends.
    const route = decision.reserved === null ? routes.routeFor(decision.user.id) : null;
    if (!route) return writeUpgradeRefusal(socket, 503, 'WORKSPACE_NOT_RUNNING', 'This workspace is not running.');
    const { runtimeId } = route;
    manager.touch(runtimeId);
    const forget = connections.add({ userId: decision.user.id, sessionId: decision.platformSessionId, kind: 'proxied' }, () => socket.destroy());
    socket.once('close', forget);
    logger.debug({ host: req.headers.host?.slice(0, 200), path: loggablePath(req.url ?? '/') }, 'workspace WebSocket');
    relayUpgrade(req, socket, head, route.target, runtimeRequestHeaders(req, decision.username, scheme, true), {
      onError: onRelayError(req),
      // Frames from the browser are activity for idle stop: an agent session in an open tab is in use.
      onData: () => manager.touch(runtimeId),
    });
  };

  return {
    handle,
    reserved,
    upgrade,
    closeAll: () => {
      connections.endAll('proxied');
    },
  };
}
