import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../lib/logger';
import { isGatewayPath } from './llm/gatewayHandler';
import { writeJsonError } from './jsonError';
import type { WorkspaceRouter } from './workspace/workspaceRouter';

export type RequestListener = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * The HTTP server's request listener: a plain node:http dispatcher in front of Express. The hot
 * paths never enter Express's middleware chain: requests addressed to a workspace (its host, or
 * `/w/<user>/` in path mode) go to the workspace router, `/llm/v1` to the model gateway; the rest
 * (the API, the console, health, forward-auth, a workspace's reserved endpoints) to Express.
 * Workspace addresses are checked first, as before: on a workspace host, `/llm/v1` is the runtime's.
 */
export function frontDoor(parts: { workspaces: WorkspaceRouter; gateway: RequestListener; platform: RequestListener; logger: Logger }): RequestListener {
  const { workspaces, gateway, platform, logger } = parts;
  return (req, res) => {
    try {
      if (workspaces.handle(req, res, platform)) return;
      if (isGatewayPath(req.url ?? '/')) return gateway(req, res);
      platform(req, res);
    } catch (err) {
      // A throw here would reach the HTTP server and end the process: answer it in words.
      logger.error({ err }, 'request dispatch failed');
      if (!res.headersSent) writeJsonError(res, 500, 'INTERNAL_ERROR', 'Something went wrong on the server. The error was logged.');
      else res.destroy();
    }
  };
}
