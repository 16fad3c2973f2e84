import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RequestOrigin } from '../domain/audit';
import { plainAddress } from '../egress/egressProxy';
import type { Logger } from '../lib/logger';
import { constantTimeEqual } from '../lib/secrets';
import { bearerCredential } from './bearer';
import { isMetricsPath, type RequestListener } from './frontDoor';
import { writeJsonError } from './jsonError';

export interface MetricsAccess {
  /** The exposition text. */
  expose(): Promise<string>;
  contentType: string;
  /** The bearer token a scrape must carry; null: none (the separate port, left to the network). */
  token: string | null;
  /** Whether an address is a running runtime's: runtimes never read the platform's metrics. */
  isRuntime(address: string): boolean;
  /** A refused scrape, for the audit log. */
  refused(origin: RequestOrigin, reason: 'invalid_token' | 'runtime'): void;
  logger: Logger;
}

const notFound = (req: IncomingMessage, res: ServerResponse): void =>
  writeJsonError(res, 404, 'NOT_FOUND', `No route for ${req.method ?? 'GET'} ${(req.url ?? '/').split('?')[0]?.slice(0, 200) ?? '/'}.`);

/**
 * `/metrics` for Prometheus. `access` null: metrics are not served here (a 404 like any unknown
 * path). Otherwise a scrape from a runtime's address is refused whatever it carries, then the
 * token is checked (in constant time) when one is configured.
 */
export function metricsEndpoint(access: MetricsAccess | null): RequestListener {
  return (req, res) => {
    if (!access) return notFound(req, res);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      return writeJsonError(res, 405, 'METHOD_NOT_ALLOWED', 'Metrics are read with GET.');
    }
    const origin: RequestOrigin = { ip: plainAddress(req.socket.remoteAddress) || null, userAgent: req.headers['user-agent']?.slice(0, 256) ?? null };
    if (origin.ip && access.isRuntime(origin.ip)) {
      access.refused(origin, 'runtime');
      return writeJsonError(res, 403, 'METRICS_FORBIDDEN', 'Workspaces cannot read the platform\'s metrics.');
    }
    if (access.token !== null) {
      const presented = bearerCredential(req.headers.authorization);
      if (!presented || !constantTimeEqual(presented, access.token)) {
        access.refused(origin, 'invalid_token');
        res.setHeader('WWW-Authenticate', 'Bearer realm="clawloops-metrics"');
        return writeJsonError(res, 401, 'METRICS_TOKEN_REQUIRED', 'Send the metrics token (CLAWLOOPS_METRICS_TOKEN) as Authorization: Bearer <token>.');
      }
    }
    access.expose().then(
      (text) => {
        const body = Buffer.from(text, 'utf8');
        res.statusCode = 200;
        res.setHeader('Content-Type', access.contentType);
        res.setHeader('Content-Length', body.length);
        res.setHeader('Cache-Control', 'no-store');
        res.end(req.method === 'HEAD' ? undefined : body);
      },
      (err: unknown) => {
        access.logger.error({ err: (err as Error).message }, 'collecting metrics failed');
        writeJsonError(res, 500, 'INTERNAL_ERROR', 'Collecting the metrics failed; the error was logged.');
      },
    );
  };
}

/** The separate metrics listener (CLAWLOOPS_METRICS_PORT): `/metrics` and nothing else. */
export function metricsListener(access: MetricsAccess): RequestListener {
  const serve = metricsEndpoint(access);
  return (req, res) => {
    if (isMetricsPath(req.url ?? '/')) return serve(req, res);
    notFound(req, res);
  };
}
