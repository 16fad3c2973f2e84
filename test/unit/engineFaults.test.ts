/**
 * Docker's failures in the ports' terms: decided by the engine's HTTP status and the socket's
 * errno (also when the backend wrapped them in its own error), never by the wording.
 */
import { engineFault, typedEngineCall } from '../../src/docker/engineFaults';
import { InfraError, type InfraErrorKind } from '../../src/lib/infraErrors';

/** An error shaped like dockerode's (docker-modem sets statusCode and json). */
const engineAnswer = (statusCode: number, message: string) => Object.assign(new Error(`(HTTP code ${statusCode}) ${message}`), { statusCode, json: { message } });
/** An error shaped like a failed socket connect. */
const socketError = (code: string, syscall = 'connect') => Object.assign(new Error(`${syscall} ${code} /var/run/docker.sock`), { code, syscall });

const kindOf = (err: unknown): InfraErrorKind | 'untyped' => (err instanceof InfraError ? err.kind : 'untyped');

describe('engine faults', () => {
  test.each([
    ['no socket file', socketError('ENOENT'), 'unavailable'],
    ['nobody listening', socketError('ECONNREFUSED'), 'unavailable'],
    ['a socket we may not open', socketError('EACCES'), 'unavailable'],
    ['the engine dropped the connection', socketError('ECONNRESET', 'read'), 'unavailable'],
    ['the engine cannot serve now', engineAnswer(503, 'service unavailable'), 'unavailable'],
    ['no such thing', engineAnswer(404, 'no such image'), 'not_found'],
    ['a name in use', engineAnswer(409, 'Conflict. The container name "/x" is already in use'), 'conflict'],
    ['an engine error the types do not cover', engineAnswer(500, 'server error'), 'untyped'],
    ['a file missing in our own process', socketError('ENOENT', 'open'), 'untyped'],
    ['a plain error', new Error('is not running'), 'untyped'],
  ])('%s', (_what, err, kind) => {
    expect(kindOf(engineFault(err, 'doing something'))).toBe(kind);
  });

  test('a container chosen before the call that is missing or not running has gone', () => {
    expect(kindOf(engineFault(engineAnswer(404, 'No such container: abc'), 'running the file agent', { target: true }))).toBe('gone');
    expect(kindOf(engineFault(engineAnswer(409, 'Container abc is not running'), 'running the file agent', { target: true }))).toBe('gone');
    expect(kindOf(engineFault(socketError('ECONNREFUSED'), 'running the file agent', { target: true }))).toBe('unavailable');
  });

  test('looks through the backend own wrapping to the engine cause', () => {
    const wrapped = new Error('Writing into the container failed: no such container', { cause: engineAnswer(404, 'no such container') });
    expect(kindOf(engineFault(wrapped, 'writing', { target: true }))).toBe('gone');
    const unreachable = new Error('Starting the container failed', { cause: socketError('ENOENT') });
    expect(kindOf(engineFault(unreachable, 'starting'))).toBe('unavailable');
  });

  test('keeps an error that is typed already, and the engine error as the cause', async () => {
    const typed = new InfraError('gone', 'revoked');
    expect(engineFault(typed, 'x')).toBe(typed);
    const cause = socketError('ECONNREFUSED');
    const failure = await typedEngineCall('listing', () => Promise.reject(cause)).catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(InfraError);
    expect((failure as InfraError).cause).toBe(cause);
    expect((failure as InfraError).message).toContain('listing');
  });
});
