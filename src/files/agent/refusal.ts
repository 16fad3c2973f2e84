import type { AgentConflict, AgentFailure } from './protocol';

/** A request the agent turns down, with the code the control plane maps to an HTTP status. */
export class Refusal extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly extra: { conflicts?: AgentConflict[]; etag?: string } = {},
  ) {
    super(message);
  }
}

const FS_ERRORS: Record<string, [string, string]> = {
  ENOENT: ['NOT_FOUND', 'does not exist'],
  EACCES: ['PERMISSION_DENIED', "is not accessible to the runtime's user (uid 1000)"],
  EPERM: ['PERMISSION_DENIED', "is not accessible to the runtime's user (uid 1000)"],
  ENOSPC: ['NO_SPACE', 'could not be written: the disk is full'],
  EDQUOT: ['NO_SPACE', 'could not be written: the disk quota is exhausted'],
  ENAMETOOLONG: ['NAME_TOO_LONG', 'has a name that is too long'],
  ENOTDIR: ['NOT_A_DIRECTORY', 'has a file where a folder should be'],
  EISDIR: ['CONFLICT', 'is a folder'],
  EEXIST: ['ALREADY_EXISTS', 'already exists'],
  ENOTEMPTY: ['CONFLICT', 'is a folder that is not empty'],
  ELOOP: ['NOT_FOUND', 'is a loop of symbolic links'],
  EROFS: ['PERMISSION_DENIED', 'is on a read-only file system'],
};

/** Any failure of an operation as the response the control plane reads. */
export function failureOf(err: unknown): AgentFailure {
  if (err instanceof Refusal) return { ok: false, code: err.code, message: err.message, ...err.extra };
  const errno = err as NodeJS.ErrnoException;
  const known = errno.code ? FS_ERRORS[errno.code] : undefined;
  // Container paths stay out of the message: the user knows their files by workspace paths.
  if (known) return { ok: false, code: known[0], message: `The path ${known[1]}.` };
  return { ok: false, code: 'AGENT_FAILED', message: `The file operation failed inside the runtime: ${errno.code ?? errno.message}` };
}
