/**
 * The Docker implementation of the workspace-volume port with no engine behind its socket: the
 * real dockerode adapter, pointed at a socket path where nothing listens. Every file endpoint must
 * answer 503 ENGINE_UNAVAILABLE naming the engine (before the typed errors, a file operation
 * answered 500 INTERNAL_ERROR), and the port's own calls must fail typed, not by their wording.
 * Needs no engine at all.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type TestAgent from 'supertest/lib/agent';
import type { WorkspaceVolumes } from '../../src/files/workspaceVolumes';
import { isInfraError } from '../../src/lib/infraErrors';
import { createHarness, errorCode, type Harness } from '../support/harness';

const sockets = fs.mkdtempSync(path.join(os.tmpdir(), 'clawloops-no-engine-'));
/** connect() fails with ENOENT: no such file. */
const missing = path.join(sockets, 'missing.sock');
/** connect() fails with ECONNREFUSED: a file, but nobody listens on it. */
const deaf = path.join(sockets, 'deaf.sock');
fs.writeFileSync(deaf, '');

afterAll(() => fs.rmSync(sockets, { recursive: true, force: true }));

describe.each([
  ['a socket path that does not exist', missing],
  ['a socket nobody listens on', deaf],
])('the engine behind %s', (_what, socket) => {
  let h: Harness;
  let client: TestAgent;
  let userId: string;

  beforeAll(async () => {
    h = createHarness({ env: { CLAWLOOPS_DOCKER_SOCKET: socket } });
    ({ client, userId } = await h.setupAdmin());
  });
  afterAll(() => h.close());

  test.each([
    ['list', (c: TestAgent) => c.get('/api/v1/files?path=')],
    ['usage', (c: TestAgent) => c.get('/api/v1/files/usage?fresh=1')],
    ['download', (c: TestAgent) => c.get('/api/v1/files/download?path=a.txt')],
    ['export', (c: TestAgent) => c.get('/api/v1/files/export')],
    ['save text', (c: TestAgent) => c.put('/api/v1/files/text?path=b.txt').set('If-None-Match', '*').set('Content-Type', 'text/plain').send('hello')],
    ['mkdir', (c: TestAgent) => c.post('/api/v1/files/mkdir').send({ path: 'new' })],
    ['upload', (c: TestAgent) => c.post('/api/v1/files/upload?path=').attach('files', Buffer.from('up'), { filename: 'up.txt' })],
  ])('%s answers 503 ENGINE_UNAVAILABLE naming the engine', async (_op, send) => {
    const res = await send(client);
    expect([res.status, errorCode(res)]).toEqual([503, 'ENGINE_UNAVAILABLE']);
    expect(res.headers['retry-after']).toBe('5');
    expect(res.body.error.message).toMatch(/Docker engine did not answer/);
  });

  test('the port fails typed: acquiring access and the start-up sweep are InfraError unavailable', async () => {
    const volumes: WorkspaceVolumes = h.platform.volumes;
    for (const attempt of [() => volumes.acquire(userId, 'stream'), () => volumes.acquire(userId, 'command'), () => volumes.closeAll()]) {
      const failure = await attempt().then(
        () => null,
        (err: unknown) => err,
      );
      expect(isInfraError(failure, 'unavailable')).toBe(true);
    }
    expect(h.logs.text).not.toContain('unhandled error');
  });
});
