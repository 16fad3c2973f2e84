/**
 * Prometheus metrics: real operations through the platform (sign-in, a runtime started and
 * stopped on the in-memory provisioner, a file uploaded and downloaded through the fake volume
 * port, model calls through the gateway to the test upstream, an event stream a browser
 * reopened), then a scrape of /metrics parsed as Prometheus would read it. And who may scrape:
 * the token on the main port, the separate port, never a runtime.
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { ROUTE_CLASSES } from '../../src/http/routeClass';
import { OBSERVED_STATES } from '../../src/runtime/observedState';
import { alwaysReadyProbe, FakeProvisioner } from '../support/fakeProvisioner';
import { FakeWorkspaceVolumes } from '../support/fakeWorkspaceVolumes';
import { createHarness, errorCode, PUBLIC_URL, STRONG_PASSWORD, type Harness } from '../support/harness';
import { closeServer, portOf, servePlatform } from '../support/hostClient';
import { labelValues, parseExposition, sumOf, type Exposition } from '../support/promText';
import { startTestModelUpstream, type TestModelUpstream } from '../support/testModelUpstream';

const TOKEN = 'metrics-token-0123456789abcdef';
const MODEL = 'test-model';
const ADMIN = 'opsboss';
const PLATFORM_HOST = new URL(PUBLIC_URL).host;

let h: Harness | null = null;
let upstream: TestModelUpstream | null = null;
let volumeDir: string | null = null;
const servers: http.Server[] = [];

interface Options {
  env?: Record<string, string>;
  backend?: FakeProvisioner;
}

async function platformWith(options: Options = {}): Promise<Harness> {
  upstream = await startTestModelUpstream('Hello from upstream', MODEL);
  volumeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'clawloops-volume-'));
  h = createHarness({
    env: options.env ?? {},
    runtimeProvisioner: options.backend ?? new FakeProvisioner(),
    runtimeProbe: alwaysReadyProbe,
    workspaceVolumes: new FakeWorkspaceVolumes(volumeDir),
    files: { volumeRoot: volumeDir, root: path.join(volumeDir, 'workspace') },
    runtimeSettings: { image: 'ghcr.io/openclaw/openclaw:2026.9.6', models: [MODEL] },
    llm: { upstreamUrl: `http://127.0.0.1:${upstream.port}/v1`, upstreamKey: 'sk-upstream-secret', timeoutMs: 5_000 },
  });
  return h;
}

afterEach(async () => {
  for (const server of servers.splice(0)) await closeServer(server);
  await h?.platform.runtimes.drain(5_000);
  h?.close();
  h = null;
  await upstream?.close();
  upstream = null;
  if (volumeDir) fs.rmSync(volumeDir, { recursive: true, force: true });
  volumeDir = null;
});

async function scrape(harness: Harness): Promise<{ text: string; metrics: Exposition }> {
  const res = await harness.bareClient().get('/metrics').set('Authorization', `Bearer ${TOKEN}`);
  expect(res.status).toBe(200);
  expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
  return { text: res.text, metrics: parseExposition(res.text) };
}

/** The platform's separate metrics port (CLAWLOOPS_METRICS_PORT), listening on a free local port until the test ends. */
async function serveMetricsPort(harness: Harness): Promise<number> {
  const listener = harness.platform.metricsListener;
  if (!listener) throw new Error('no metrics listener');
  const server = http.createServer(listener);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return portOf(server);
}

/** GET on a listening server from a chosen local address; resolves once the head has come (the body is dropped). */
function rawGet(port: number, urlPath: string, headers: Record<string, string> = {}, localAddress = '127.0.0.1'): Promise<{ status: number; head: string; req: http.ClientRequest }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, localAddress, agent: false, headers: { host: PLATFORM_HOST, ...headers } }, (res) => {
      res.once('data', (chunk: Buffer) => resolve({ status: res.statusCode ?? 0, head: chunk.toString('utf8'), req }));
      res.once('end', () => resolve({ status: res.statusCode ?? 0, head: '', req }));
    });
    req.on('error', reject);
  });
}

function sessionCookie(res: { headers: Record<string, unknown> }): string {
  const cookie = ((res.headers['set-cookie'] as string[] | undefined) ?? []).find((c) => c.startsWith('clawloops_session='));
  if (!cookie) throw new Error('no session cookie');
  return cookie.split(';')[0] ?? '';
}

describe('after real operations', () => {
  test('a scrape parses, the counters moved, and every label stays within its fixed set', async () => {
    const backend = new FakeProvisioner();
    const harness = await platformWith({ env: { CLAWLOOPS_METRICS_TOKEN: TOKEN }, backend });
    const { client: admin, userId } = await harness.setupAdmin(ADMIN);
    const before = (await scrape(harness)).metrics;
    expect(sumOf(before, 'clawloops_model_calls_total')).toBe(0);

    // Sign in again (the API), start the runtime (an operation), call a model with its key.
    const login = await harness.bareClient().post('/api/v1/auth/login').send({ username: ADMIN, password: STRONG_PASSWORD });
    expect(login.status).toBe(200);
    const cookie = sessionCookie(login);
    const started = await admin.post('/api/v1/runtime/start');
    expect(started.status).toBe(202);
    const runtimeId = started.body.runtime.id as string;
    await harness.platform.runtimes.settled(runtimeId);
    let { metrics } = await scrape(harness);
    expect(sumOf(metrics, 'clawloops_runtimes', { state: 'running' })).toBe(1);
    expect(sumOf(metrics, 'clawloops_runtime_operation_duration_seconds_count', { kind: 'start', status: 'succeeded' })).toBe(1);

    const key = backend.running(runtimeId)?.spec.secretEnv.CLAWLOOPS_MODEL_KEY ?? '';
    const chat = (model: string) =>
      harness.bareClient().post('/llm/v1/chat/completions').set('Authorization', `Bearer ${key}`).send({ model, messages: [{ role: 'user', content: 'hi' }] });
    expect((await chat(MODEL)).status).toBe(200);
    expect((await chat(MODEL)).status).toBe(200);
    // A model nobody offers: refused, and its name must never become a label.
    expect((await chat('invented-model-xyz')).status).toBe(404);

    // A file in and out.
    const content = Buffer.from('seventeen bytes!!');
    const up = await admin.post('/api/v1/files/upload?path=').attach('files', content, { filename: 'secret-plan.txt' });
    expect(up.status).toBe(201);
    const down = await admin.get('/api/v1/files/download?path=secret-plan.txt');
    expect(down.status).toBe(200);
    // And its last five bytes through WebDAV, counted as sent like the file API's.
    const appPassword = await admin.post('/api/v1/account/tokens').send({ name: 'dav', scopes: ['files'], expiresInDays: 30 });
    expect(appPassword.status).toBe(201);
    const basic = `Basic ${Buffer.from(`${ADMIN}:${(appPassword.body as { secret: string }).secret}`).toString('base64')}`;
    const davTail = await harness.bareClient().get('/dav/secret-plan.txt').set('Authorization', basic).set('Range', 'bytes=-5');
    expect(davTail.status).toBe(206);
    // And a file in through WebDAV, counted like an upload.
    const davPut = await harness.bareClient().put('/dav/from-dav.txt').set('Authorization', basic).send('eleven byte');
    expect(davPut.status).toBe(201);

    // The runtime's event stream, opened as a browser reopens a dropped one.
    const { server, port } = await servePlatform(harness.platform);
    servers.push(server);
    const fresh = await rawGet(port, '/api/v1/runtime/events', { cookie, accept: 'text/event-stream' });
    expect(fresh.status).toBe(200);
    // The first block gives the stream an id: what makes a browser send Last-Event-ID when it reconnects.
    expect(fresh.head).toMatch(/^retry: \d+\nid: \S+\n\n/);
    fresh.req.destroy();
    const reopened = await rawGet(port, '/api/v1/runtime/events', { cookie, accept: 'text/event-stream', 'last-event-id': '0' });
    expect(reopened.status).toBe(200);
    ({ metrics } = await scrape(harness));
    expect(sumOf(metrics, 'clawloops_event_streams_open')).toBeGreaterThanOrEqual(1);
    reopened.req.destroy();

    // A visit to the member's workspace host (its own route class, never its name) and a health check.
    const visit = await harness.bareClient().get('/some/page').set('Host', `${ADMIN}.localhost:8080`);
    expect(visit.status).toBeLessThan(500);
    expect((await harness.bareClient().get('/healthz')).status).toBe(200);

    const stopped = await admin.post('/api/v1/runtime/stop');
    expect(stopped.status).toBe(202);
    await harness.platform.runtimes.settled(runtimeId);

    const { text, metrics: after } = await scrape(harness);
    expect(sumOf(after, 'clawloops_runtimes', { state: 'stopped' })).toBe(1);
    expect(sumOf(after, 'clawloops_runtimes', { state: 'running' })).toBe(0);
    expect(sumOf(after, 'clawloops_runtime_operation_duration_seconds_count', { kind: 'stop', status: 'succeeded' })).toBe(1);
    expect(sumOf(after, 'clawloops_runtime_operations_queued')).toBe(0);
    expect(sumOf(after, 'clawloops_model_calls_total', { model: MODEL, status: 'ok' })).toBe(2);
    expect(sumOf(after, 'clawloops_model_call_duration_seconds_count', { model: MODEL })).toBe(2);
    // The test upstream reports 11 prompt and 3 completion tokens per call.
    expect(sumOf(after, 'clawloops_model_tokens_total', { model: MODEL, type: 'prompt' })).toBe(22);
    expect(sumOf(after, 'clawloops_model_tokens_total', { model: MODEL, type: 'completion' })).toBe(6);
    expect(sumOf(after, 'clawloops_model_cost_usd_total')).toBe(0);
    expect(sumOf(after, 'clawloops_file_bytes_total', { direction: 'in' })).toBe(content.length + 'eleven byte'.length);
    expect(sumOf(after, 'clawloops_file_bytes_total', { direction: 'out' })).toBe(content.length + 5);
    expect(sumOf(after, 'clawloops_event_streams_opened_total')).toBe(2);
    expect(sumOf(after, 'clawloops_event_stream_reconnects_total')).toBe(1);
    expect(sumOf(after, 'clawloops_http_request_duration_seconds_count', { route_class: 'gateway', status_class: '2xx' })).toBe(2);
    expect(sumOf(after, 'clawloops_http_request_duration_seconds_count', { route_class: 'gateway', status_class: '4xx' })).toBe(1);
    expect(sumOf(after, 'clawloops_http_request_duration_seconds_count', { route_class: 'files', status_class: '2xx' })).toBe(4);
    expect(sumOf(after, 'clawloops_http_request_duration_seconds_count', { route_class: 'api', status_class: '2xx' })).toBeGreaterThanOrEqual(3);
    expect(sumOf(after, 'clawloops_http_request_duration_seconds_count', { route_class: 'metrics' })).toBeGreaterThanOrEqual(3);
    expect(sumOf(after, 'clawloops_http_request_duration_seconds_count', { route_class: 'workspace' })).toBe(1);
    expect(sumOf(after, 'clawloops_http_request_duration_seconds_count', { route_class: 'health', status_class: '2xx' })).toBe(1);
    expect(sumOf(after, 'clawloops_http_request_duration_seconds_count', { route_class: 'stream', status_class: '2xx' })).toBe(2);
    expect(sumOf(after, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);
    expect(after.types.get('clawloops_http_request_duration_seconds')).toBe('histogram');

    // Bounded: every label value comes from a fixed set; no user, file, key or path in the text.
    expect([...labelValues(after, 'clawloops_http_request_duration_seconds_count', 'route_class')].every((c) => (ROUTE_CLASSES as readonly string[]).includes(c))).toBe(true);
    expect([...labelValues(after, 'clawloops_http_request_duration_seconds_count', 'status_class')].every((c) => /^([1-5]xx|aborted)$/.test(c))).toBe(true);
    expect(labelValues(after, 'clawloops_runtimes', 'state')).toEqual(new Set(OBSERVED_STATES));
    expect(labelValues(after, 'clawloops_model_calls_total', 'model')).toEqual(new Set([MODEL]));
    expect(labelValues(after, 'clawloops_file_bytes_total', 'direction')).toEqual(new Set(['in', 'out']));
    for (const secret of [ADMIN, userId, runtimeId, 'secret-plan', 'invented-model-xyz', key, TOKEN, 'sk-upstream-secret', '/api/v1']) expect(text).not.toContain(secret);
    const clawloopsLabels = new Set(after.samples.filter((s) => s.name.startsWith('clawloops_')).flatMap((s) => Object.keys(s.labels)));
    expect([...clawloopsLabels].sort()).toEqual(['direction', 'kind', 'le', 'model', 'route_class', 'state', 'status', 'status_class', 'type', 'version']);
  });

  test('a call refused by the member\'s limits is counted as limited', async () => {
    const backend = new FakeProvisioner();
    const harness = await platformWith({ env: { CLAWLOOPS_METRICS_TOKEN: TOKEN, CLAWLOOPS_LLM_REQUESTS_PER_MINUTE: '1' }, backend });
    const { client: admin } = await harness.setupAdmin(ADMIN);
    const started = await admin.post('/api/v1/runtime/start');
    await harness.platform.runtimes.settled(started.body.runtime.id);
    const key = backend.running(started.body.runtime.id)?.spec.secretEnv.CLAWLOOPS_MODEL_KEY ?? '';
    const chat = () => harness.bareClient().post('/llm/v1/chat/completions').set('Authorization', `Bearer ${key}`).send({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] });
    expect((await chat()).status).toBe(200);
    expect((await chat()).status).toBe(429);
    const { metrics } = await scrape(harness);
    expect(sumOf(metrics, 'clawloops_model_calls_total', { model: MODEL, status: 'ok' })).toBe(1);
    expect(sumOf(metrics, 'clawloops_model_calls_total', { model: MODEL, status: 'limited' })).toBe(1);
  });
});

describe('who may scrape', () => {
  test('off by default: /metrics is a 404 like any unknown path, and nothing is recorded', async () => {
    const harness = await platformWith();
    expect(harness.platform.metrics).toBeNull();
    expect(harness.platform.metricsListener).toBeNull();
    const res = await harness.bareClient().get('/metrics').set('Authorization', `Bearer ${TOKEN}`);
    expect(res.status).toBe(404);
    expect(errorCode(res)).toBe('NOT_FOUND');
  });

  test('with a token: 401 without it or with a wrong one (audited, counted), 200 with it', async () => {
    const harness = await platformWith({ env: { CLAWLOOPS_METRICS_TOKEN: TOKEN } });
    const none = await harness.bareClient().get('/metrics');
    expect(none.status).toBe(401);
    expect(errorCode(none)).toBe('METRICS_TOKEN_REQUIRED');
    expect(none.headers['www-authenticate']).toMatch(/^Bearer /);
    for (const wrong of [`${TOKEN}x`, TOKEN.slice(1), 'short', '']) {
      const res = await harness.bareClient().get('/metrics').set('Authorization', `Bearer ${wrong}`);
      expect(res.status).toBe(401);
      expect(res.text).not.toContain('clawloops_');
    }
    expect((await harness.bareClient().get('/metrics').set('Authorization', TOKEN)).status).toBe(401);
    expect((await harness.bareClient().get('/metrics').set('Authorization', `bearer ${TOKEN}`)).status).toBe(200);
    const post = await harness.bareClient().post('/metrics').set('Authorization', `Bearer ${TOKEN}`);
    expect(post.status).toBe(405);
    const audit = harness.platform.db.prepare("SELECT action, detail FROM audit_log WHERE action = 'metrics.refused'").all() as { action: string; detail: string }[];
    // One row for the first refusal; the repeats are counted in memory and written as one row later.
    expect(audit).toHaveLength(1);
    expect(audit[0]?.detail).toContain('invalid_token');
    expect(audit[0]?.detail).not.toContain(TOKEN);
  });

  test('a separate port without a token: /metrics only there, the main port answers 404', async () => {
    const harness = await platformWith({ env: { CLAWLOOPS_METRICS_PORT: '19464' } });
    expect((await harness.bareClient().get('/metrics')).status).toBe(404);
    const port = await serveMetricsPort(harness);
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    expect(res.status).toBe(200);
    const metrics = parseExposition(await res.text());
    expect(sumOf(metrics, 'clawloops_runtimes')).toBe(0);
    expect((await fetch(`http://127.0.0.1:${port}/api/v1/auth/me`)).status).toBe(404);
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(404);
  });

  test('with both, the separate port wants the token too; a runtime is refused whatever it carries', async () => {
    const backend = new FakeProvisioner();
    backend.runtimeHost = '127.0.0.7';
    const harness = await platformWith({ env: { CLAWLOOPS_METRICS_PORT: '19464', CLAWLOOPS_METRICS_TOKEN: TOKEN }, backend });
    const port = await serveMetricsPort(harness);
    expect((await rawGet(port, '/metrics')).status).toBe(401);
    expect((await rawGet(port, '/metrics', { authorization: `Bearer ${TOKEN}` })).status).toBe(200);

    // A member's runtime running at 127.0.0.7 asks, token and all: refused on both ports.
    const { client: admin } = await harness.setupAdmin(ADMIN);
    const started = await admin.post('/api/v1/runtime/start');
    await harness.platform.runtimes.settled(started.body.runtime.id);
    expect((await rawGet(port, '/metrics', { authorization: `Bearer ${TOKEN}` }, '127.0.0.7')).status).toBe(403);
    const main = await servePlatform(harness.platform);
    servers.push(main.server);
    expect((await rawGet(main.port, '/metrics', { authorization: `Bearer ${TOKEN}` }, '127.0.0.7')).status).toBe(403);
    expect((await rawGet(main.port, '/metrics', { authorization: `Bearer ${TOKEN}` })).status).toBe(200);
  });
});
