/**
 * Typed failures of the infrastructure ports (the runtime provisioner, workspace volumes): each
 * implementation (Docker today, Swarm next) translates its engine's wording into one of these, so
 * code above the ports decides by type, never by matching an engine's message.
 */
export type InfraErrorKind =
  /** The thing asked about does not exist (any more): a runtime, volume, network or image. */
  | 'not_found'
  /** The request collides with the current state: a name in use, an operation already running. */
  | 'conflict'
  /** The thing went away during the operation: a runtime stopped or was removed under a stream. */
  | 'gone'
  /** The engine itself cannot be reached or answers that it cannot serve now. */
  | 'unavailable';

export class InfraError extends Error {
  constructor(
    readonly kind: InfraErrorKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'InfraError';
  }
}

export const isInfraError = (err: unknown, kind?: InfraErrorKind): err is InfraError =>
  err instanceof InfraError && (kind === undefined || err.kind === kind);

export const infraNotFound = (message: string, cause?: unknown): InfraError => new InfraError('not_found', message, { cause });
export const infraConflict = (message: string, cause?: unknown): InfraError => new InfraError('conflict', message, { cause });
export const infraGone = (message: string, cause?: unknown): InfraError => new InfraError('gone', message, { cause });
export const infraUnavailable = (message: string, cause?: unknown): InfraError => new InfraError('unavailable', message, { cause });
