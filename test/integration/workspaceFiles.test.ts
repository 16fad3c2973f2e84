/**
 * The file manager against the REAL Docker engine with the stand-in image: bytes through the
 * archive API, names through the in-container agent, for running and stopped runtimes.
 */
import { createHash } from 'node:crypto';
import type TestAgent from 'supertest/lib/agent';
import { errorCode } from '../support/harness';
import { engineHarness, execIn, newInstanceId, sweep, withDiagnostics, type EngineHarness } from '../support/engine';

jest.setTimeout(120_000);

const instance = newInstanceId();
let h: EngineHarness;
let admin: TestAgent;
let alice: TestAgent;

const it = (name: string, body: () => Promise<void>) => test(name, withDiagnostics(() => instance, () => h.logs.text, body));
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

beforeAll(async () => {
  h = engineHarness({ instance });
  await h.platform.watcher.start();
  ({ client: admin } = await h.setupAdmin());
  ({ client: alice } = await h.createMember(admin, 'alice'));
});

afterAll(async () => {
  h.platform.watcher.close();
  await h.platform.runtimes.drain(30_000);
  await h.platform.fileHosts.removeAll();
  h.close();
  await sweep(instance);
});

describe('smoke', () => {
  it('upload, list, download on a never-started runtime', async () => {
    const content = Buffer.from('hello world\n');
    const up = await alice.post('/api/v1/files/upload?path=docs').attach('files', content, { filename: 'a.txt' });
    expect(up.status).toBe(201);
    const list = await alice.get('/api/v1/files?path=docs');
    expect(list.status).toBe(200);
    expect(list.body.entries).toEqual([expect.objectContaining({ name: 'a.txt', type: 'file', size: content.length })]);
    const down = await alice.get('/api/v1/files/download?path=docs/a.txt').buffer(true).parse((res, cb) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => cb(null, Buffer.concat(chunks)));
    });
    expect(down.status).toBe(200);
    expect(sha(down.body as Buffer)).toBe(sha(content));
    void execIn;
    void errorCode;
  });
});
