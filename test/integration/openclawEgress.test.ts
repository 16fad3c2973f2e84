/**
 * The REAL OpenClaw image behind the egress proxy: its own web_fetch tool, called by the agent
 * because the (test) model asked for it, reaches an allowed address through the proxy, gets the
 * proxy's refusal for a denied one (which the agent can show), and a connection made without the
 * proxy goes nowhere. "The internet" is a container of this test's on an ordinary network of
 * this machine, known to the proxy by names only this test resolves.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type TestAgent from 'supertest/lib/agent';
import { LABELS } from '../../src/docker/runtimeBackend';
import { newSecret } from '../../src/lib/secrets';
import { docker, engineHarness, execIn, newInstanceId, OPENCLAW_SETTINGS, STANDIN_IMAGE, sweep, withDiagnostics, type EngineHarness } from '../support/engine';
import { freePort } from '../support/processes';
import { startTestModelUpstream, type TestModelUpstream } from '../support/testModelUpstream';

jest.setTimeout(420_000);

const instance = newInstanceId();
const ALLOWED = 'allowed.clawloops-test.example';
const DENIED = 'denied.clawloops-test.example';
const WORLD_PORT = 8080;
/** Only the world's page holds it: seeing it in the agent's tool result means the fetch got there. */
const MARKER = `world-page-${newSecret().slice(0, 12)}`;
const FINAL_ANSWER = 'Done with the fetch.';

let h: EngineHarness;
let server: http.Server;
let upstream: TestModelUpstream;
let alice: TestAgent;
let worldIp = '';
let containerId = '';

const it = (name: string, body: () => Promise<void>) => test(name, withDiagnostics(() => instance, () => h.logs.text, body));

interface ChatMessage {
  role: string;
  content: unknown;
}
const messagesOf = (body: Record<string, unknown>) => (body.messages as ChatMessage[] | undefined) ?? [];
const text = (content: unknown): string => (typeof content === 'string' ? content : JSON.stringify(content));
const toolNames = (body: Record<string, unknown>) => ((body.tools as { function?: { name?: string } }[] | undefined) ?? []).map((t) => t.function?.name);

/** What the agent got back from its tool in the request that followed the call. */
function toolResultAfter(marker: string): string | null {
  for (const request of upstream.requests) {
    const messages = messagesOf(request.body);
    const asked = messages.findIndex((m) => m.role === 'user' && text(m.content).includes(marker));
    const result = asked >= 0 ? messages.slice(asked).find((m) => m.role === 'tool') : undefined;
    if (result) return text(result.content);
  }
  return null;
}

async function agentTurn(message: string): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const turn = await execIn(containerId, ['openclaw', 'agent', '--agent', 'main', '--timeout', '180', '--message', message], '1000:1000');
  if (turn.exitCode !== 0) process.stderr.write(`--- openclaw agent\nstdout: ${turn.stdout}\nstderr: ${turn.stderr}\n`);
  return turn;
}

beforeAll(async () => {
  // "The internet": a web server in a container on an ordinary bridge network of this machine.
  const worldNetwork = `${instance}-world`;
  await docker.createNetwork({ Name: worldNetwork, Labels: { [LABELS.instance]: instance } });
  const world = await docker.createContainer({
    name: `${instance}-world`,
    Image: STANDIN_IMAGE,
    User: '1000:1000',
    Entrypoint: ['node', '-e', `require('http').createServer((q,s)=>{s.setHeader('content-type','text/plain');s.end('${MARKER}')}).listen(${WORLD_PORT})`],
    Labels: { [LABELS.instance]: instance },
    HostConfig: { NetworkMode: worldNetwork },
  });
  await world.start();
  worldIp = (await world.inspect()).NetworkSettings.Networks[worldNetwork]?.IPAddress ?? '';

  upstream = await startTestModelUpstream(FINAL_ANSWER);
  // The member's message says which address to fetch; once the tool's result is in, the model
  // answers. OpenClaw offers web_fetch through its tool catalog (tool_call by name), or directly.
  upstream.behaviour.toolCall = (body) => {
    const messages = messagesOf(body);
    let asked = -1;
    messages.forEach((m, index) => {
      if (m.role === 'user' && /FETCH-(ALLOWED|DENIED)/.test(text(m.content))) asked = index;
    });
    if (asked < 0 || messages.slice(asked).some((m) => m.role === 'tool')) return null;
    const host = text(messages[asked]?.content).includes('FETCH-ALLOWED') ? ALLOWED : DENIED;
    const args = { url: `http://${host}:${WORLD_PORT}/page` };
    const tools = toolNames(body);
    if (tools.includes('web_fetch')) return { name: 'web_fetch', arguments: args };
    return tools.includes('tool_call') ? { name: 'tool_call', arguments: { id: 'web_fetch', args } } : null;
  };
  server = http.createServer((req, res) => h.platform.app(req, res));
  await new Promise<void>((resolve) => server.listen(0, '0.0.0.0', resolve));
  const { port } = server.address() as AddressInfo;
  const egressPort = await freePort();
  h = engineHarness({
    instance,
    env: { CLAWLOOPS_EGRESS_ALLOW: ALLOWED, CLAWLOOPS_EGRESS_DENY: DENIED },
    runtimeSettings: {
      ...OPENCLAW_SETTINGS,
      modelGatewayUrl: `http://host.docker.internal:${port}/llm/v1`,
      models: ['test-model'],
      egressProxyUrl: `http://host.docker.internal:${egressPort}`,
    },
    llm: { upstreamUrl: `http://127.0.0.1:${upstream.port}/v1`, upstreamKey: 'upstream-key-egress-test' },
    egressResolve: async (host) => {
      if (host === ALLOWED || host === DENIED) return [worldIp];
      throw new Error('not a name of this test');
    },
  });
  await h.platform.egress.listen(egressPort, '0.0.0.0');
  await h.platform.watcher.start();
  const { client: admin } = await h.setupAdmin();
  ({ client: alice } = await h.createMember(admin, 'alice'));
  const start = await alice.post('/api/v1/runtime/start');
  await h.platform.runtimes.settled(start.body.runtime.id);
  expect((await alice.get('/api/v1/runtime')).body.state).toBe('running');
  containerId = (h.platform.db.prepare('SELECT container_id FROM runtimes WHERE id = ?').get(start.body.runtime.id) as { container_id: string }).container_id;
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  await h?.platform.egress.close();
  h?.platform.watcher.close();
  await h?.platform.runtimes.drain(30_000);
  h?.close();
  await upstream?.close();
  await sweep(instance);
});

it("the agent's web_fetch reaches an allowed address through the proxy, and the member's record shows it", async () => {
  const turn = await agentTurn(`FETCH-ALLOWED ${ALLOWED}: read the page and tell me what it says.`);
  expect(turn.exitCode).toBe(0);
  expect(turn.stdout).toContain(FINAL_ANSWER);
  expect(toolResultAfter('FETCH-ALLOWED')).toContain(MARKER);
  const own = (await alice.get('/api/v1/egress')).body;
  expect(own.recent).toEqual(expect.arrayContaining([expect.objectContaining({ host: ALLOWED, port: WORLD_PORT, verdict: 'allowed', bytesIn: expect.any(Number) })]));
  expect(own.recent.find((c: { host: string }) => c.host === ALLOWED).bytesIn).toBeGreaterThan(MARKER.length);
});

it('a denied address fails the tool with the proxy\'s refusal (403), which the agent can show, and the reason in the member\'s record; nothing reaches the address', async () => {
  const turn = await agentTurn(`FETCH-DENIED ${DENIED}: read the page and tell me what it says.`);
  expect(turn.exitCode).toBe(0);
  const result = toolResultAfter('FETCH-DENIED') ?? '';
  const reason = Math.max(result.indexOf('egress'), result.indexOf('403'));
  process.stdout.write(`web_fetch of a denied address gave the agent: …${result.slice(Math.max(0, reason - 120), reason + 200).replace(/\s+/g, ' ')}…\n`);
  expect(result).not.toContain(MARKER);
  // web_fetch tunnels even http:// (CONNECT), and its client reports a refused tunnel by status
  // only: the agent can say the proxy refused (403); the reason is in the member's record.
  expect(result).toContain('Proxy response (403)');
  const own = (await alice.get('/api/v1/egress')).body;
  expect(own.recent).toEqual(expect.arrayContaining([expect.objectContaining({ host: DENIED, verdict: 'denied', reason: expect.stringContaining('deny list') })]));
});

it('a connection that ignores the proxy goes nowhere: the world is not reachable from the runtime directly', async () => {
  const direct = `const s=require('net').connect(${WORLD_PORT},'${worldIp}');s.setTimeout(3000,()=>{console.log('timeout');process.exit(0)});
    s.on('connect',()=>{console.log('connected');process.exit(0)});s.on('error',e=>{console.log(e.code);process.exit(0)})`;
  const out = await execIn(containerId, ['node', '-e', direct], '1000:1000');
  expect(out.stdout.trim()).not.toBe('connected');
  // Node's own fetch, told to read the proxy environment (NODE_USE_ENV_PROXY), gets there through the proxy.
  const viaEnv = await execIn(containerId, ['node', '-e', `fetch('http://${ALLOWED}:${WORLD_PORT}/').then(r=>r.text()).then(t=>console.log(t),e=>console.log('failed',e.cause?.code??e.message))`], '1000:1000');
  expect(viaEnv.stdout.trim()).toBe(MARKER);
  // A client that sends plain http:// to the proxy as such (curl does; the image has none, so
  // node:http the same way) gets the refusal with its reason.
  const asCurlDoes = `const p=new URL(process.env.http_proxy);require('http').get({host:p.hostname,port:p.port,path:'http://${DENIED}:${WORLD_PORT}/'},r=>{let b='';r.on('data',d=>b+=d);r.on('end',()=>console.log(r.statusCode,b))}).on('error',e=>console.log('failed',e.code))`;
  const refused = await execIn(containerId, ['node', '-e', asCurlDoes], '1000:1000');
  process.stdout.write(`a plain http request to a denied address got: ${refused.stdout.trim()}\n`);
  expect(refused.stdout).toContain(`ClawLoops egress policy: ${DENIED} is on the administrator's deny list`);
});
