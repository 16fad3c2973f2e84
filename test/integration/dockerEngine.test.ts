/**
 * Against the REAL Docker engine. These tests must fail (not skip) when no engine answers:
 * scripts/test.sh makes sure one does.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { DockerodeEngine } from '../../src/docker/dockerEngine';
import { createHarness, errorCode, type Harness } from '../support/harness';

const SOCKET = process.env.CLAWLOOPS_DOCKER_SOCKET ?? '/var/run/docker.sock';

describe('Docker adapter against the real engine', () => {
  test('ping reports the engine version and API version', async () => {
    const engine = new DockerodeEngine(SOCKET);
    const version = await engine.ping(5000);
    expect(version.version).toMatch(/\d+\.\d+/);
    expect(version.apiVersion).toMatch(/^1\.\d+$/);
  });

  test('ping of a socket that accepts but never answers rejects at the timeout instead of hanging', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'clawloops-silent-'));
    const socketPath = path.join(dir, 'silent.sock');
    const held: net.Socket[] = [];
    const silent = net.createServer((socket) => held.push(socket));
    await new Promise<void>((resolve) => silent.listen(socketPath, resolve));
    try {
      await expect(new DockerodeEngine(socketPath).ping(300)).rejects.toThrow(/did not answer within 300 ms/);
    } finally {
      held.forEach((s) => s.destroy());
      await new Promise<void>((resolve) => silent.close(() => resolve()));
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('GET /readyz with the real engine', () => {
  let h: Harness;
  afterEach(() => h.close());

  test('is 200 when the database is writable and the engine answers', async () => {
    h = createHarness({ docker: new DockerodeEngine(SOCKET) });
    const res = await h.bareClient().get('/readyz');
    expect(res.status).toBe(200);
    expect(res.body.checks.database.ok).toBe(true);
    expect(res.body.checks.docker.ok).toBe(true);
    expect(res.body.checks.docker.message).toMatch(/engine .* API 1\.\d+/);
  });

  test('is 503 naming docker when the engine socket does not exist, while /healthz stays 200', async () => {
    h = createHarness({ docker: new DockerodeEngine('/nonexistent/docker.sock') });
    const ready = await h.bareClient().get('/readyz');
    expect(ready.status).toBe(503);
    expect(errorCode(ready)).toBe('NOT_READY');
    expect(ready.body.error.message).toMatch(/docker unreachable/);
    expect(ready.body.checks.database.ok).toBe(true);
    expect(ready.body.checks.docker.ok).toBe(false);
    expect((await h.bareClient().get('/healthz')).status).toBe(200);
  });

  test('is 503 naming the database when it no longer accepts writes', async () => {
    h = createHarness({ docker: new DockerodeEngine(SOCKET) });
    h.platform.db.pragma('query_only = ON');
    const ready = await h.bareClient().get('/readyz');
    expect(ready.status).toBe(503);
    expect(ready.body.error.message).toMatch(/database not writable/);
    expect(ready.body.checks.docker.ok).toBe(true);
    h.platform.db.pragma('query_only = OFF');
  });
});
