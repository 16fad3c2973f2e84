import { badRequest } from '../lib/errors';

/**
 * A path inside a user's file root, as the API names it: relative, `/`-separated, normalised
 * (no empty, `.` or `..` segments). The empty string is the root itself. Only values made by
 * `parseWorkspacePath` exist, so nothing downstream re-checks the shape.
 */
export type WorkspacePath = string & { readonly __workspacePath: unique symbol };

export const ROOT_PATH = '' as WorkspacePath;
/** Linux's NAME_MAX: longer names fail deep inside the engine with a far less helpful error. */
export const MAX_NAME_BYTES = 255;
export const MAX_PATH_BYTES = 4096;

/**
 * Parses a path a client sent. Refused: absolute paths, `..` segments (also when they arrive
 * percent-encoded: Express has decoded the query by now), NUL bytes, names over 255 bytes.
 * Symlinks cannot be judged here; the in-container agent resolves them against the root.
 */
export function parseWorkspacePath(raw: unknown, field = 'path', options: { allowRoot?: boolean } = {}): WorkspacePath {
  if (raw === undefined || raw === null) raw = '';
  if (typeof raw !== 'string') throw badRequest('INVALID_PATH', `${field} must be a string.`);
  if (raw.includes('\0')) throw badRequest('INVALID_PATH', `${field} contains a NUL byte.`);
  if (Buffer.byteLength(raw) > MAX_PATH_BYTES) throw badRequest('INVALID_PATH', `${field} is longer than ${MAX_PATH_BYTES} bytes.`);
  if (raw.startsWith('/')) {
    throw badRequest('INVALID_PATH', `${field} must be relative to your workspace (no leading /), got "${preview(raw)}".`);
  }
  const segments: string[] = [];
  for (const segment of raw.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') throw badRequest('PATH_TRAVERSAL', `${field} must not contain ".." segments, got "${preview(raw)}".`);
    if (Buffer.byteLength(segment) > MAX_NAME_BYTES) {
      throw badRequest('NAME_TOO_LONG', `A name in ${field} is longer than ${MAX_NAME_BYTES} bytes: "${preview(segment)}".`);
    }
    segments.push(segment);
  }
  const path = segments.join('/') as WorkspacePath;
  if (path === ROOT_PATH && options.allowRoot === false) throw badRequest('INVALID_PATH', `${field} must name something inside your workspace, not the workspace itself.`);
  return path;
}

export function joinPath(base: WorkspacePath, relative: WorkspacePath): WorkspacePath {
  if (base === ROOT_PATH) return relative;
  if (relative === ROOT_PATH) return base;
  return `${base}/${relative}` as WorkspacePath;
}

export function baseName(path: WorkspacePath): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

const preview = (value: string) => (value.length > 80 ? `${value.slice(0, 80)}…` : value);
