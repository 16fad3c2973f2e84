import { InfraError, infraConflict, infraGone, infraNotFound, infraUnavailable } from '../lib/infraErrors';

/**
 * Docker's failures in the ports' terms (lib/infraErrors.ts), decided by the engine's HTTP status
 * and the socket's errno, never by the wording of a message. The code above the ports sees only
 * the typed errors; what the engine said stays in the message and the cause.
 */

/** Errno codes of a request that never reached the engine, or lost it mid-way. */
const UNREACHABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOTFOUND', 'ESOCKETTIMEDOUT']);
/** These mean "unreachable" only when connecting (a missing or forbidden socket file). */
const UNREACHABLE_ON_CONNECT = new Set(['ENOENT', 'EACCES']);

/** The error and its causes, outermost first (the backend wraps some engine errors in its own). */
function* chain(err: unknown): Generator<Record<string, unknown>> {
  let current: unknown = err;
  for (let depth = 0; depth < 5 && typeof current === 'object' && current !== null; depth++) {
    yield current as Record<string, unknown>;
    current = (current as { cause?: unknown }).cause;
  }
}

/** The engine's HTTP status, when it answered at all. */
export function engineStatus(err: unknown): number | null {
  for (const link of chain(err)) if (typeof link.statusCode === 'number') return link.statusCode;
  return null;
}

/** True when the engine could not be reached (no socket, refused, dropped connection). */
export function engineUnreachable(err: unknown): boolean {
  for (const link of chain(err)) {
    const code = typeof link.code === 'string' ? link.code : null;
    if (!code) continue;
    if (UNREACHABLE.has(code)) return true;
    if (UNREACHABLE_ON_CONNECT.has(code) && link.syscall === 'connect') return true;
  }
  return false;
}

const messageOf = (err: unknown) => (err instanceof Error ? err.message : String(err));

/**
 * Translates an engine failure into a typed one. `target`: the failure concerns a container chosen
 * before the call (exec or an archive into it): its absence (404) or its not running (409) then
 * means it went away meanwhile (`gone`), not that the request was wrong. Anything the types do not
 * cover is returned as it was.
 */
export function engineFault(err: unknown, what: string, options: { target?: boolean } = {}): unknown {
  if (err instanceof InfraError) return err;
  if (engineUnreachable(err)) return infraUnavailable(`the Docker engine did not answer while ${what} (${messageOf(err)})`, err);
  const status = engineStatus(err);
  if (options.target && (status === 404 || status === 409)) return infraGone(`the container went away while ${what}`, err);
  if (status === 404) return infraNotFound(`${what}: ${messageOf(err)}`, err);
  if (status === 409) return infraConflict(`${what}: ${messageOf(err)}`, err);
  if (status === 503) return infraUnavailable(`the Docker engine cannot serve ${what} now (${messageOf(err)})`, err);
  return err;
}

/** Runs `work` and rethrows its failure translated (engineFault). */
export async function typedEngineCall<T>(what: string, work: () => Promise<T>, options: { target?: boolean } = {}): Promise<T> {
  try {
    return await work();
  } catch (err) {
    throw engineFault(err, what, options);
  }
}
