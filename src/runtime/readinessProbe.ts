import http from 'node:http';

/**
 * Every address on a runtime's network is one of OpenClaw's trusted proxies, and OpenClaw answers
 * a trusted proxy's request without a non-loopback, non-proxy X-Forwarded-For with 403
 * (everything but /healthz). The probe therefore names a client from the benchmarking range.
 */
export const PROBE_CLIENT_ADDRESS = '198.18.0.1';

export interface HttpProbe {
  /** Resolves with the HTTP status of `path` below the runtime's base URL, or null when nothing answered within `timeoutMs`. */
  status(baseUrl: string, path: string, timeoutMs: number): Promise<number | null>;
}

export const runtimeHttpProbe: HttpProbe = {
  status(baseUrl, path, timeoutMs) {
    return new Promise((resolve) => {
      const base = new URL(baseUrl);
      const req = http.get(
        { host: base.hostname, port: base.port, path, timeout: timeoutMs, headers: { 'x-forwarded-for': PROBE_CLIENT_ADDRESS } },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? null);
        },
      );
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve(null));
    });
  },
};
