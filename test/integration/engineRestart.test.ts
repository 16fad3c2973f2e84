/**
 * The engine going away in the middle of a start, against the REAL engine. Restarting dockerd
 * itself would pull the engine from under every other test on the machine, so the control plane
 * reaches it through a unix-socket proxy this test cuts (every open connection dropped, new ones
 * refused) and restores: what the control plane sees is what an engine restart looks like from
 * its side. The platform must answer in words (the operation fails naming the engine, engine
 * endpoints answer 503), never crash, and work again once the engine is back.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type TestAgent from 'supertest/lib/agent';
import type { OperationView } from '../../src/runtime/operations';
import { errorCode } from '../support/harness';
import { engineHarness, eventually, newInstanceId, SOCKET, sweep, tearDown, withDiagnostics, type EngineHarness } from '../support/engine';

jest.setTimeout(120_000);

/** A unix socket in front of the engine's that can be cut and restored. */
class EngineProxy {
  private server: net.Server | null = null;
  private readonly open = new Set<net.Socket>();
  constructor(readonly socketPath: string) {}

  async up(): Promise<void> {
    fs.rmSync(this.socketPath, { force: true });
    const server = net.createServer((client) => {
      const engine = net.connect(SOCKET);
      for (const socket of [client, engine]) {
        this.open.add(socket);
        socket.on('close', () => this.open.delete(socket));
        socket.on('error', () => undefined);
      }
      client.pipe(engine).pipe(client);
      client.on('close', () => engine.destroy());
      engine.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve) => server.listen(this.socketPath, resolve));
    this.server = server;
  }

  /** Synchronous: whatever the control plane does next already finds the engine gone. */
  cut(): void {
    this.server?.close();
    this.server = null;
    fs.rmSync(this.socketPath, { force: true });
    for (const socket of this.open) socket.destroy();
  }
}

const instance = newInstanceId();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'clawloops-engine-proxy-'));
const proxy = new EngineProxy(path.join(dir, 'docker.sock'));
let h: EngineHarness;
let client: TestAgent;
let userId: string;
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);

const it = (name: string, body: () => Promise<void>) => test(name, withDiagnostics(() => instance, () => h.logs.text, body));

beforeAll(async () => {
  process.on('unhandledRejection', onUnhandled);
  await proxy.up();
  h = engineHarness({ instance, dockerSocket: proxy.socketPath });
  await h.platform.watcher.start();
  ({ client, userId } = await h.setupAdmin());
});

afterAll(async () => {
  process.off('unhandledRejection', onUnhandled);
  proxy.cut();
  await proxy.up().catch(() => undefined);
  await tearDown(h).catch(() => undefined);
  proxy.cut();
  await sweep(instance);
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('the engine goes away during a start', () => {
  it('the start fails naming the engine, engine endpoints answer 503, nothing crashes, and it all works once the engine is back', async () => {
    // Cut the engine the moment the start reaches "starting": the container exists, its start call is next.
    const seen: OperationView[] = [];
    // The account's runtime record was made with the account (its network and volume are prepared then).
    const preparedId = h.platform.runtimes.runtimeIdForUser(userId);
    if (!preparedId) throw new Error('the account has no runtime record');
    h.platform.runtimeHub.subscribe(preparedId, (event) => {
      if (event.type !== 'progress') return;
      seen.push(event.operation);
      if (event.operation.step === 'starting' && seen.filter((o) => o.step === 'starting').length === 1) proxy.cut();
    });
    const started = await client.post('/api/v1/runtime/start');
    expect(started.status).toBe(202);
    const runtimeId: string = started.body.runtime.id;
    await h.platform.runtimes.settled(runtimeId);

    const failed = (await client.get('/api/v1/runtime')).body;
    expect(failed.lastError).toMatchObject({ code: 'ENGINE_UNAVAILABLE', message: expect.stringContaining('engine') });
    expect(seen.at(-1)).toMatchObject({ status: 'failed', error: { code: 'ENGINE_UNAVAILABLE' } });
    // What needs the engine says so; what does not keeps answering.
    const logs = await client.get('/api/v1/runtime/logs');
    expect(logs.status).toBe(503);
    expect(errorCode(logs)).toBe('ENGINE_UNAVAILABLE');
    expect((await client.get('/api/v1/auth/me')).status).toBe(200);
    await eventually(() => (/runtime change feed dropped; reconnecting/.test(h.logs.text) ? true : undefined), 'the watcher noticing');

    // The engine is back: the watcher reconnects and re-reads, and a start goes through.
    await proxy.up();
    await eventually(() => (/runtime change feed restored and state re-read/.test(h.logs.text) ? true : undefined), 'the reconnect', 60_000);
    const again = await client.post('/api/v1/runtime/start');
    expect([200, 202]).toContain(again.status);
    await h.platform.runtimes.settled(runtimeId);
    expect((await client.get('/api/v1/runtime')).body).toMatchObject({ state: 'running', lastError: null });
    expect(unhandled).toEqual([]);
  });
});
