/**
 * The Docker provisioner answers in the port's typed errors, so nothing above it matches the
 * engine's wording: the engine out of reach (also when the adapter wrapped the socket error),
 * a 404 and a 409, with the engine's own words kept as the message.
 */
import { DockerRuntimeProvisioner } from '../../src/docker/dockerRuntimeProvisioner';
import type { RuntimeBackend } from '../../src/docker/runtimeBackend';
import { isInfraError, type InfraErrorKind } from '../../src/lib/infraErrors';
import { createLogger } from '../../src/lib/logger';
import { runtimeSettingsFixture } from '../support/runtimeFixtures';

const failingWith = (error: unknown) =>
  new DockerRuntimeProvisioner(
    { startContainer: async () => Promise.reject(error) } as unknown as RuntimeBackend,
    runtimeSettingsFixture(),
    createLogger('silent'),
    { instance: 'test', id: 'test-installation' },
  );

// As Node's net module makes them: a code and the system call that failed.
const socketError = (code: string) => Object.assign(new Error(`connect ${code} /var/run/docker.sock`), { code, syscall: 'connect' });
const engineError = (statusCode: number, message: string) => Object.assign(new Error(message), { statusCode });

test.each<[string, unknown, InfraErrorKind | null]>([
  ['the socket is missing', socketError('ENOENT'), 'unavailable'],
  ['the engine refuses connections', socketError('ECONNREFUSED'), 'unavailable'],
  ['the adapter wrapped a broken pipe', new Error('Starting the container failed: write EPIPE', { cause: socketError('EPIPE') }), 'unavailable'],
  ['the connection dropped mid-call', Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }), 'unavailable'],
  ['the container is gone', engineError(404, 'no such container'), 'not_found'],
  ['the adapter wrapped a conflict', new Error('Starting the container failed: in use', { cause: engineError(409, 'in use') }), 'conflict'],
  ['anything else', engineError(500, 'cannot start: bad mount'), null],
])('%s', async (_what, error, kind) => {
  const failure: unknown = await failingWith(error).start('c1').catch((err: unknown) => err);
  if (kind === null) {
    expect(isInfraError(failure)).toBe(false);
    expect(failure).toBe(error);
  } else {
    expect(isInfraError(failure, kind)).toBe(true);
    expect((failure as Error).message).toContain((error as Error).message);
  }
});
