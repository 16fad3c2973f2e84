import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../lib/logger';
import { isGatewayPath } from './llm/gatewayHandler';
import { writeJsonError } from './jsonError';
import { routeClassOf, type RequestObserver, type RouteClass } from './routeClass';
import type { WorkspaceRouter } from './workspace/workspaceRouter';

export type RequestListener = (req: IncomingMessage, res: ServerResponse) => void;

export interface FrontDoorParts {
  workspaces: WorkspaceRouter;
  gateway: RequestListener;
  platform: RequestListener;
  /** `/metrics` on the platform's own host (it answers 404 itself when metrics are not served here). */
  metrics: RequestListener;
  logger: Logger;
  /** Told of every answered request by route class (the metrics); none when metrics are off. */
  observe?: RequestObserver | null;
}

/** Whether a request URL (path and query, as it came) is `/metrics`: on the main port and on the metrics port alike. */
export const isMetricsPath = (url: string): boolean => url === '/metrics' || url.startsWith('/metrics?');

/**
 * The HTTP server's request listener: a plain node:http dispatcher in front of Express. The hot
 * paths never enter Express's middleware chain: requests addressed to a workspace (its host, or
 * `/w/<user>/` in path mode) go to the workspace router, `/llm/v1` to the model gateway; the rest
 * (the API, the console, health, forward-auth, a workspace's reserved endpoints) to Express.
 * Workspace addresses are checked first, as before: on a workspace host, `/llm/v1` is the runtime's.
 */
export function frontDoor(parts: FrontDoorParts): RequestListener {
  const { workspaces, gateway, platform, metrics, logger } = parts;
  const observe = parts.observe ?? null;
  return (req, res) => {
    // Decided as the request is dispatched, read when it is answered: a workspace's reserved
    // endpoints go through Express, but are the workspace's. The URL as it came: Express rewrites
    // req.url below its mount points.
    let routeClass: RouteClass | null = null;
    if (observe) {
      const started = process.hrtime.bigint();
      const url = req.url ?? '/';
      // 'close' comes for every request: answered, or cut (an event stream the page left is cut
      // by the client; one cut before any answer has no status at all).
      res.once('close', () => observe(routeClass ?? routeClassOf(url), res.headersSent ? res.statusCode : null, Number(process.hrtime.bigint() - started) / 1e9));
    }
    try {
      if (workspaces.handle(req, res, platform)) {
        routeClass = 'workspace';
        return;
      }
      const url = req.url ?? '/';
      if (isGatewayPath(url)) return gateway(req, res);
      if (isMetricsPath(url)) return metrics(req, res);
      platform(req, res);
    } catch (err) {
      // A throw here would reach the HTTP server and end the process: answer it in words.
      logger.error({ err }, 'request dispatch failed');
      if (!res.headersSent) writeJsonError(res, 500, 'INTERNAL_ERROR', 'Something went wrong on the server. The error was logged.');
      else res.destroy();
    }
  };
}
