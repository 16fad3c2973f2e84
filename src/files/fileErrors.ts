import { AppError } from '../lib/errors';
import { isInfraError } from '../lib/infraErrors';
import type { AgentConflict } from './agent/protocol';

/**
 * The file manager's failures as the HTTP API says them. An engine that cannot be reached is not
 * among them: its InfraError `unavailable` passes through untouched, and the error handler answers
 * it 503 ENGINE_UNAVAILABLE like every other route that needs the engine.
 */

/** What the agent's refusal codes become. */
export const STATUS_OF: Record<string, number> = {
  NOT_FOUND: 404,
  PATH_OUTSIDE_ROOT: 403,
  PERMISSION_DENIED: 403,
  NOT_A_DIRECTORY: 400,
  NOT_A_FILE: 400,
  INVALID_PATH: 400,
  INVALID_MOVE: 400,
  NAME_TOO_LONG: 400,
  ALREADY_EXISTS: 409,
  CONFLICT: 409,
  RECURSIVE_REQUIRED: 409,
  ROOT_UNAVAILABLE: 409,
  PRECONDITION_FAILED: 412,
  NO_SPACE: 507,
  QUOTA_EXCEEDED: 413,
};

export const RUNTIME_CHANGED = 'RUNTIME_CHANGED';

export const filesUnavailable = (message: string): AppError => new AppError(503, 'FILES_UNAVAILABLE', message);

export const runtimeChanged = (): AppError => new AppError(503, RUNTIME_CHANGED, 'The runtime was stopped or started during the file operation; try again.');

/**
 * A failure of the workspace-volume port in the API's words: the volume out of reach for now
 * (`not_found`: e.g. no runtime image yet) or taken away during the operation (`gone`) is a 503
 * FILES_UNAVAILABLE with the port's reason; anything else is returned as it was.
 */
export function volumeFault(err: unknown): Error {
  if (isInfraError(err, 'gone') || isInfraError(err, 'not_found')) return filesUnavailable(err.message);
  return err instanceof Error ? err : new Error(String(err));
}

export const fileTooLarge = (path: string, limit: number): AppError =>
  new AppError(413, 'FILE_TOO_LARGE', `"${path}" is larger than ${limit} bytes, the largest file allowed (CLAWLOOPS_FILES_MAX_FILE_SIZE).`, {}, { limitBytes: limit });

export const quotaError = (quota: number, available: number): AppError =>
  new AppError(413, 'QUOTA_EXCEEDED', `This would exceed your workspace quota of ${quota} bytes: ${available} bytes are free. Delete files or ask an admin for more space.`, {}, {
    quotaBytes: quota,
    availableBytes: available,
  });

export const conflictError = (conflicts: AgentConflict[]): AppError =>
  new AppError(
    409,
    'NAME_CONFLICT',
    `${conflicts.length === 1 ? 'A name is' : `${conflicts.length} names are`} already taken: ${conflicts
      .slice(0, 5)
      .map((c) => `"${c.path}"`)
      .join(', ')}${conflicts.length > 5 ? ', …' : ''}. Repeat with overwrite=1 to replace files.`,
    {},
    { conflicts },
  );
