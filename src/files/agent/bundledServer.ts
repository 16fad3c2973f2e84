import * as fs from 'node:fs';
import type * as http from 'node:http';
import { filesKeyFrom } from './requestSigning';

/**
 * The start of a server the build bundles into one `node -e` script (the file server, the
 * node-stats service): configuration from the environment, refused in one line on stderr with
 * exit code 1, then listening on every address until SIGTERM or SIGINT.
 */
export interface BundledServerStart {
  fatal(message: string): never;
  /** The signing key from the file the variable names. */
  keyFrom(variable: string): Buffer;
  /** The port the variable holds, or `fallback` when it is unset. */
  portFrom(variable: string, fallback: number): number;
  /**
   * Listens on 0.0.0.0:`port`, saying so on stderr. On a signal it stops taking connections and
   * exits once the open ones are done, or after `graceMs` (it is often PID 1 in its container,
   * where a signal without a handler does nothing).
   */
  listenUntilStopped(server: http.Server, port: number, serving: string, graceMs: number): void;
}

export function bundledServerStart(name: string): BundledServerStart {
  const fatal = (message: string): never => {
    process.stderr.write(`${name}: ${message}\n`);
    process.exit(1);
  };
  return {
    fatal,
    keyFrom(variable) {
      const keyFile = process.env[variable] ?? '';
      if (!keyFile) fatal(`${variable} must name the file holding the key`);
      try {
        return filesKeyFrom(fs.readFileSync(keyFile));
      } catch (err) {
        return fatal(`the key cannot be read from ${keyFile}: ${(err as Error).message}`);
      }
    },
    portFrom(variable, fallback) {
      const text = process.env[variable] || String(fallback);
      const port = Number(text);
      if (!/^\d+$/.test(text) || port < 1 || port > 65535) fatal(`${variable} (${text}) is not a port`);
      return port;
    },
    listenUntilStopped(server, port, serving, graceMs) {
      server.on('error', (err) => fatal(err.message));
      server.listen(port, '0.0.0.0', () => process.stderr.write(`${name}: listening on 0.0.0.0:${port} for ${serving}\n`));
      const stop = () => {
        server.close(() => process.exit(0));
        server.closeIdleConnections();
        setTimeout(() => process.exit(0), graceMs).unref();
      };
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    },
  };
}
