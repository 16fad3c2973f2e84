import pino, { type Logger, type DestinationStream } from 'pino';
import type { LogLevel } from '../config';
import { prettyLogDestination } from './prettyLogDestination';

export type { Logger };

/** What createLogger needs to know of standard output. */
export interface LogOutput {
  isTTY?: boolean;
  write(text: string): unknown;
}

/**
 * Where logs go without an explicit destination: readable lines for a person at a terminal, JSON
 * lines (pino's own fast writer on fd 1) for everything else (compose, journald, a pipe, a file),
 * which is what log collectors parse. `undefined` means pino's default.
 */
export function stdoutDestination(stdout: LogOutput): DestinationStream | undefined {
  if (!stdout.isTTY) return undefined;
  return prettyLogDestination((text) => stdout.write(text), !process.env.NO_COLOR);
}

/**
 * Logs as JSON lines, or readable lines when standard output is a terminal (see
 * stdoutDestination); tests and benchmarks pass their own destination. Redaction is a safety net
 * for fields that must never reach a log even if some future call site passes a whole object;
 * call sites are still expected not to log secrets. It applies before either format is written.
 */
export function createLogger(level: LogLevel, destination?: DestinationStream, stdout: LogOutput = process.stdout): Logger {
  return pino(
    {
      level,
      base: { service: 'clawloops' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: {
        paths: [
          'password', 'newPassword', 'currentPassword', 'temporaryPassword', 'token', 'secret',
          '*.password', '*.newPassword', '*.currentPassword', '*.temporaryPassword', '*.token', '*.secret',
          'headers.cookie', 'headers.authorization', '*.headers.cookie', '*.headers.authorization',
        ],
        censor: '[redacted]',
      },
    },
    destination ?? stdoutDestination(stdout),
  );
}

/**
 * Request paths can carry secrets (`/api/v1/invitations/<secret>`, `?token=`); logs get the
 * path without the query and with every secret-looking segment masked.
 */
export function loggablePath(originalUrl: string): string {
  const pathOnly = originalUrl.split('?')[0] ?? '';
  return pathOnly
    .split('/')
    .map((segment) => (segment.length >= 24 && /^[A-Za-z0-9_%-]+$/.test(segment) && !/^[0-9a-f-]{36}$/.test(segment) ? ':secret' : segment))
    .join('/')
    .slice(0, 300);
}
