import type { RequestHandler } from 'express';
import type { WorkspaceGatekeeper } from '../../domain/workspaceGatekeeper';
import type { Logger } from '../../lib/logger';
import type { RuntimeManager } from '../../runtime/runtimeManager';
import { writeJsonError } from '../jsonError';
import { isNavigation, sendRefusal } from './decisionResponses';
import { sendMessagePage } from './pages';

export const FORWARD_AUTH_PATH = '/_clawloops/forward-auth';

const single = (value: string | string[] | undefined): string | undefined => (Array.isArray(value) ? value[0] : value);

/**
 * Traefik's ForwardAuth target. Traefik sends the browser's method, headers and cookies, plus
 * X-Forwarded-Method/Proto/Host/Uri/For describing the original request; a 2xx lets the request
 * through with X-Forwarded-User copied onto it (replacing any client-sent copy), anything else
 * goes back to the browser as it is. The decision is the built-in router's, so both front
 * doors behave the same. Every failure is a refusal.
 */
export function forwardAuthHandler(deps: { gatekeeper: WorkspaceGatekeeper; manager: RuntimeManager; logger: Logger }): RequestHandler {
  return (req, res) => {
    const host = single(req.headers['x-forwarded-host']);
    const uri = single(req.headers['x-forwarded-uri']) ?? '/';
    const method = (single(req.headers['x-forwarded-method']) ?? req.method).toUpperCase();
    res.setHeader('Cache-Control', 'no-store');
    if (!host) {
      writeJsonError(res, 400, 'NOT_A_FORWARD_AUTH_REQUEST', 'X-Forwarded-Host is missing: this endpoint answers Traefik only.');
      return;
    }
    try {
      const decision = deps.gatekeeper.decide({
        host,
        uri,
        method,
        cookieHeader: req.headers.cookie,
        origin: single(req.headers.origin),
        upgrade: req.headers.upgrade !== undefined,
        navigation: isNavigation(method, req.headers.accept, req.headers.upgrade),
      });
      if (decision.kind === 'platform') {
        writeJsonError(res, 403, 'NOT_A_WORKSPACE', `${host.slice(0, 200)} is not a workspace address.`);
        return;
      }
      if (decision.kind === 'allow') {
        // Reserved paths are routed to the control plane itself, never through a runtime's router.
        if (decision.reserved !== null) {
          writeJsonError(res, 403, 'RESERVED_PATH', 'This path is served by the control plane.');
          return;
        }
        deps.manager.touchUser(decision.user.id);
        res.setHeader('X-Forwarded-User', decision.username);
        res.status(200).end();
        return;
      }
      sendRefusal(req, res, decision);
    } catch (err) {
      deps.logger.error({ err: (err as Error).message }, 'forward-auth decision failed');
      if (!res.headersSent) sendMessagePage(res, 503, { title: 'Access check unavailable', message: 'The access check failed; try again in a moment.' });
    }
  };
}
