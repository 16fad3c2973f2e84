/**
 * The REAL OpenClaw image (scripts/images/build-openclaw-image.sh builds it locally under the
 * product's default tag) started end to end through the API, with the product's default limits.
 */
import http from 'node:http';
import type TestAgent from 'supertest/lib/agent';
import { DEFAULT_RUNTIME_IMAGE } from '../../src/runtime/runtimeSettings';
import { runtimeNames } from '../../src/docker/runtimeContainer';
import { PROBE_CLIENT_ADDRESS } from '../../src/runtime/readinessProbe';
import { docker, engineHarness, execIn, newInstanceId, sweep, withDiagnostics, type EngineHarness, OPENCLAW_SETTINGS } from '../support/engine';

jest.setTimeout(240_000);

const instance = newInstanceId();
let h: EngineHarness;
let alice: TestAgent;
let runtimeId: string;
let address: string;

const containerIdOf = (id: string) =>
  (h.platform.db.prepare('SELECT container_id FROM runtimes WHERE id = ?').get(id) as { container_id: string }).container_id;

const it = (name: string, body: () => Promise<void>) => test(name, withDiagnostics(() => instance, () => h.logs.text, body));

/** A request as a trusted proxy on the runtime's network would send it (the host sits on its gateway address). */
function asProxy(path: string, user: string | null): Promise<{ status: number; body: string }> {
  const headers: Record<string, string> = { 'x-forwarded-for': PROBE_CLIENT_ADDRESS, 'x-forwarded-proto': 'http', 'x-forwarded-host': 'alice.localhost' };
  if (user) headers['x-forwarded-user'] = user;
  return new Promise((resolve, reject) => {
    const req = http.get({ host: address, port: 18789, path, headers, timeout: 10_000 }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString('utf8')));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

beforeAll(async () => {
  // The product's defaults (image, 2 GiB, 2 CPUs), not the stand-in's.
  h = engineHarness({
    instance,
    runtimeSettings: OPENCLAW_SETTINGS,
  });
  await h.platform.watcher.start();
  const { client: admin } = await h.setupAdmin();
  ({ client: alice } = await h.createMember(admin, 'alice'));
});

afterAll(async () => {
  h.platform.watcher.close();
  await h.platform.runtimes.drain(30_000);
  h.close();
  await sweep(instance);
});

it('starts through the API and is running once /healthz and /readyz answer', async () => {
  const res = await alice.post('/api/v1/runtime/start');
  expect(res.status).toBe(202);
  runtimeId = res.body.runtime.id;
  await h.platform.runtimes.settled(runtimeId);
  const view = (await alice.get('/api/v1/runtime')).body;
  expect(view).toMatchObject({ state: 'running', image: DEFAULT_RUNTIME_IMAGE, lastError: null });
  const info = await docker.getContainer(containerIdOf(runtimeId)).inspect();
  address = info.NetworkSettings.Networks[runtimeNames(runtimeId).network]?.IPAddress ?? '';
  expect(address).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
  expect(info.Config.User).toBe('1000:1000');
  expect(info.HostConfig.CapDrop).toEqual(['ALL']);
  const stats = await h.platform.runtimes.stats(runtimeId);
  process.stdout.write(`real OpenClaw idle memory after ready: ${Math.round((stats?.memoryBytes ?? 0) / 1024 ** 2)} MiB\n`);
});

it('the rendered config is in place, owned by the runtime user, and accepted by OpenClaw itself', async () => {
  const containerId = containerIdOf(runtimeId);
  const config = JSON.parse((await execIn(containerId, ['cat', '/home/node/.openclaw/openclaw.json'])).stdout);
  expect(config.gateway.auth).toMatchObject({ mode: 'trusted-proxy', trustedProxy: { allowUsers: ['alice'] } });
  const network = await docker.getNetwork(runtimeNames(runtimeId).network).inspect();
  // Exactly the proxy in front: the control plane runs on the host, on the network's gateway.
  expect(config.gateway.trustedProxies).toEqual([network.IPAM?.Config?.[0]?.Gateway]);
  const validate = await execIn(containerId, ['openclaw', 'config', 'validate', '--json']);
  expect(JSON.parse(validate.stdout)).toMatchObject({ valid: true });
  const stat = await execIn(containerId, ['stat', '-c', '%u:%g %a', '/home/node/.openclaw', '/home/node/.openclaw/openclaw.json']);
  expect(stat.stdout.trim().split('\n')).toEqual(['1000:1000 700', '1000:1000 600']);
  // OpenClaw wrote its own state into the fresh volume with all capabilities dropped.
  const state = await execIn(containerId, ['ls', '/home/node/.openclaw']);
  expect(state.stdout).toMatch(/state|agents|workspace/);
});

it('the gateway accepts the owner from a trusted proxy address and refuses anyone else', async () => {
  const owner = await asProxy('/control-ui-config.json', 'alice');
  expect(owner.status).toBe(200);
  expect(JSON.parse(owner.body)).toHaveProperty('serverBuildId');
  const other = await asProxy('/control-ui-config.json', 'mallory');
  expect(other.status).toBe(401);
  const nobody = await asProxy('/control-ui-config.json', null);
  expect(nobody.status).toBe(401);
  // The readiness probe's rule: from a trusted proxy, /readyz needs a non-loopback forwarded client.
  expect((await asProxy('/readyz', null)).status).toBe(200);
});

it('stops cleanly and starts again on the same volume', async () => {
  const stop = await alice.post('/api/v1/runtime/stop');
  expect(stop.status).toBe(202);
  await h.platform.runtimes.settled(runtimeId);
  expect((await alice.get('/api/v1/runtime')).body.state).toBe('stopped');
  const start = await alice.post('/api/v1/runtime/start');
  await h.platform.runtimes.settled(start.body.runtime.id);
  expect((await alice.get('/api/v1/runtime')).body.state).toBe('running');
});

it('files uploaded while it is stopped are in its workspace when it starts, readable and editable while it runs', async () => {
  const stop = await alice.post('/api/v1/runtime/stop');
  if (stop.status === 202) await h.platform.runtimes.settled(runtimeId);
  expect((await alice.get('/api/v1/runtime')).body.state).toBe('stopped');
  const plan = Buffer.from('# Plan\n\n- ship the file manager\n');
  // The stopped runtime is served by a helper made from the real OpenClaw image.
  const up = await alice.post('/api/v1/files/upload?path=notes').attach('files', plan, { filename: 'plan.md' });
  expect(up.status).toBe(201);
  const start = await alice.post('/api/v1/runtime/start');
  await h.platform.runtimes.settled(start.body.runtime.id);
  expect((await alice.get('/api/v1/runtime')).body.state).toBe('running');
  const seen = await execIn(containerIdOf(runtimeId), ['cat', '/home/node/.openclaw/workspace/notes/plan.md']);
  expect(seen.stdout).toBe(plan.toString());
  const names = (await alice.get('/api/v1/files')).body.entries.map((e: { name: string }) => e.name);
  expect(names).toContain('notes');
  // Now served through the running OpenClaw container itself.
  const text = await alice.get('/api/v1/files/text?path=notes/plan.md');
  expect(text.body.content).toBe(plan.toString());
  const saved = await alice.put('/api/v1/files/text?path=notes/plan.md').set('If-Match', text.headers.etag as string).set('Content-Type', 'text/plain').send('# Plan\n\n- shipped\n');
  expect(saved.status).toBe(200);
  expect((await execIn(containerIdOf(runtimeId), ['cat', '/home/node/.openclaw/workspace/notes/plan.md'])).stdout).toBe('# Plan\n\n- shipped\n');
});
