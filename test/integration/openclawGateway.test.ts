/**
 * The REAL OpenClaw runtime calling its model through the platform's gateway: the member's
 * agent (`openclaw agent` exec'd as uid 1000 inside the running container) answers a message
 * with the test upstream's text, the upstream sees the platform's key (never the runtime's),
 * and the usage ledger holds the member's tokens.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type TestAgent from 'supertest/lib/agent';
import { MODEL_KEY_ENV } from '../../src/runtime/openclawConfig';
import { docker, engineHarness, eventually, execIn, newInstanceId, sweep, withDiagnostics, OPENCLAW_SETTINGS, type EngineHarness } from '../support/engine';
import { usageRows } from '../support/harness';
import { startTestModelUpstream, type TestModelUpstream } from '../support/testModelUpstream';

jest.setTimeout(300_000);

const ANSWER = `The answer from the test model ${Math.random().toString(36).slice(2, 8)}`;
const UPSTREAM_KEY = 'sk-test';
const MESSAGE = 'Hello from the ClawLoops gateway test';
const instance = newInstanceId();
let h: EngineHarness;
let server: http.Server;
let upstream: TestModelUpstream;
let alice: TestAgent;
let runtimeId: string;

const it = (name: string, body: () => Promise<void>) => test(name, withDiagnostics(() => instance, () => h.logs.text, body));

beforeAll(async () => {
  upstream = await startTestModelUpstream(ANSWER);
  // The platform listens on all interfaces so the runtime reaches /llm/v1 through the host gateway;
  // the port is known before the harness (whose settings name it) exists.
  server = http.createServer((req, res) => h.platform.app(req, res));
  await new Promise<void>((resolve) => server.listen(0, '0.0.0.0', resolve));
  const { port } = server.address() as AddressInfo;
  h = engineHarness({
    instance,
    runtimeSettings: {
      ...OPENCLAW_SETTINGS,
      modelGatewayUrl: `http://host.docker.internal:${port}/llm/v1`,
      models: ['test-model'],
    },
    llm: { upstreamUrl: `http://127.0.0.1:${upstream.port}/v1`, upstreamKey: UPSTREAM_KEY },
  });
  const { client: admin } = await h.setupAdmin();
  ({ client: alice } = await h.createMember(admin, 'alice'));
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  await h?.platform.runtimes.drain(30_000);
  h?.close();
  await upstream?.close();
  await sweep(instance);
});

const containerIdOf = (id: string) =>
  (h.platform.db.prepare('SELECT container_id FROM runtimes WHERE id = ?').get(id) as { container_id: string }).container_id;

it('the agent answers a message with the upstream model through the gateway, and the ledger holds the member tokens', async () => {
  const start = await alice.post('/api/v1/runtime/start');
  expect(start.status).toBe(202);
  runtimeId = start.body.runtime.id;
  await h.platform.runtimes.settled(runtimeId);
  expect((await alice.get('/api/v1/runtime')).body.state).toBe('running');
  const containerId = containerIdOf(runtimeId);
  const env = (await docker.getContainer(containerId).inspect()).Config.Env ?? [];
  const runtimeKey = env.find((e) => e.startsWith(`${MODEL_KEY_ENV}=`))?.slice(MODEL_KEY_ENV.length + 1) ?? '';
  expect(runtimeKey.length).toBeGreaterThanOrEqual(16);

  // One agent turn through the running gateway (loopback, OPENCLAW_GATEWAY_PASSWORD from the env), as the runtime user.
  const began = Date.now();
  const agent = await execIn(containerId, ['openclaw', 'agent', '--agent', 'main', '--timeout', '180', '--message', MESSAGE], '1000:1000');
  process.stdout.write(`openclaw agent answered in ${Date.now() - began} ms (exit ${agent.exitCode})\n`);
  if (agent.exitCode !== 0 || !agent.stdout.includes(ANSWER)) process.stderr.write(`--- openclaw agent\nstdout: ${agent.stdout}\nstderr: ${agent.stderr}\n`);
  expect(agent.exitCode).toBe(0);
  expect(agent.stdout).toContain(ANSWER);

  // The upstream was asked with the platform's key, never the runtime's, and saw the member's message.
  const chats = upstream.requests.filter((r) => JSON.stringify(r.body).includes(MESSAGE));
  expect(chats.length).toBeGreaterThanOrEqual(1);
  expect(chats[0]?.body).toMatchObject({ model: 'test-model', stream: true, stream_options: { include_usage: true } });
  for (const r of upstream.requests) expect(r.authorization).toBe(`Bearer ${UPSTREAM_KEY}`);
  expect(JSON.stringify(upstream.requests)).not.toContain(runtimeKey);

  // The ledger: a row per call, attributed to alice and her runtime, with the upstream's token counts.
  const rows = await eventually(() => {
    const found = usageRows(h).filter((row) => row.username === 'alice');
    return found.length >= upstream.requests.length ? found : undefined;
  }, 'the ledger rows of the agent turn');
  expect(rows).toContainEqual(
    expect.objectContaining({
      username: 'alice',
      runtime_id: runtimeId,
      endpoint: 'chat/completions',
      model: 'test-model',
      streamed: 1,
      status: 'ok',
      prompt_tokens: 11,
      completion_tokens: 3,
    }),
  );
  for (const row of rows) {
    expect(row).toMatchObject({ username: 'alice', runtime_id: runtimeId, status: 'ok' });
    expect(row.prompt_tokens).toBeGreaterThan(0);
  }
  // And alice sees her tokens in her own usage.
  const usage = await alice.get('/api/v1/usage');
  expect(usage.status).toBe(200);
  expect(usage.body.month).toMatchObject({ requests: rows.length, promptTokens: 11 * rows.length, completionTokens: 3 * rows.length });
});
