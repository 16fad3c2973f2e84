/**
 * What the file server (server.ts) answers when it turns a request down: an HTTP status and a
 * code, sent as `{"error":{"code","message"}}`. Messages never carry a stack or anything but what
 * the caller sent and what the server decided.
 */
export class ServerRefusal extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export const badRequest = (code: string, message: string): ServerRefusal => new ServerRefusal(400, code, message);

/** File system errors of an archive write or read, as refusals; null for those with no meaning of their own. */
const ERRNO: Record<string, [number, string, string]> = {
  ENOSPC: [507, 'NO_SPACE', 'the disk is full'],
  EDQUOT: [507, 'NO_SPACE', 'the disk quota is exhausted'],
  EACCES: [403, 'PERMISSION_DENIED', 'permission denied'],
  EPERM: [403, 'PERMISSION_DENIED', 'operation not permitted'],
  EROFS: [403, 'PERMISSION_DENIED', 'read-only file system'],
  ENAMETOOLONG: [400, 'NAME_TOO_LONG', 'a name is too long'],
  ENOTDIR: [400, 'NOT_A_DIRECTORY', 'a file is where a folder should be'],
  ELOOP: [400, 'SYMLINK_IN_PATH', 'a symbolic link is where a folder should be'],
  EEXIST: [409, 'CONFLICT', 'a name was taken meanwhile'],
  ENOENT: [409, 'CONFLICT', 'a folder went away meanwhile'],
  EISDIR: [409, 'CONFLICT', 'a folder is where a file should be'],
  EMLINK: [507, 'TOO_MANY_LINKS', 'too many links'],
};

export function refusalOfErrno(err: unknown, doing: string): ServerRefusal | null {
  if (err instanceof ServerRefusal) return err;
  const code = (err as NodeJS.ErrnoException | null)?.code;
  const known = code ? ERRNO[code] : undefined;
  return known ? new ServerRefusal(known[0], known[1], `${doing} failed: ${known[2]} (${code}).`) : null;
}
