import pino, { type Logger, type DestinationStream } from 'pino';
import type { LogLevel } from '../config';

export type { Logger };

/**
 * JSON logs. Redaction is a safety net for fields that must never reach a log even if some
 * future call site passes a whole object; call sites are still expected not to log secrets.
 */
export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
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
    destination,
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
