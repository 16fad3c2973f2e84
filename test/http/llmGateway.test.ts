/**
 * The model gateway (`/llm/v1`) with the official `openai` client as the caller and an
 * OpenAI-compatible test server as the upstream (LiteLLM's HTTP contract). Runtimes come from the
 * in-memory provisioner; their keys are the ones rendered into their container environment.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import OpenAI from 'openai';
import { alwaysReadyProbe, FakeProvisioner } from '../support/fakeProvisioner';
import { eventually } from '../support/eventually';
import { createHarness, usageRows, type Harness } from '../support/harness';
import { startTestModelUpstream, type TestModelUpstream } from '../support/testModelUpstream';

const MODEL = 'test-model';
let h: Harness;
let backend: FakeProvisioner;
let upstream: TestModelUpstream;
let server: http.Server;
let baseURL: string;

const ledger = () => usageRows(h);

/** Starts the member's runtime and returns the model key its container was given. */
async function keyOf(client: ReturnType<Harness['client']>): Promise<string> {
  const res = await client.post('/api/v1/runtime/start');
  await h.platform.runtimes.settled(res.body.runtime.id);
  const container = backend.running(res.body.runtime.id);
  const key = container?.spec.secretEnv.CLAWLOOPS_MODEL_KEY;
  if (!key) throw new Error('no model key in the container environment');
  return key;
}

/** Holds the upstream's answers until the returned function is called (and answers again at once after). */
function holdUpstream(): () => void {
  let release: () => void = () => undefined;
  upstream.behaviour.hold = new Promise<void>((resolve) => (release = resolve));
  return () => {
    upstream.behaviour.hold = null;
    release();
  };
}

const openai = (apiKey: string) => new OpenAI({ apiKey, baseURL, maxRetries: 0, timeout: 10_000 });

async function startPlatform(options: { timeoutMs?: number; idleStopMs?: number; models?: string[] } = {}): Promise<void> {
  upstream = await startTestModelUpstream('Hello from upstream', MODEL);
  backend = new FakeProvisioner();
  h = createHarness({
    runtimeProvisioner: backend,
    runtimeProbe: alwaysReadyProbe,
    runtimeSettings: { image: 'ghcr.io/openclaw/openclaw:2026.9.6', models: options.models ?? [MODEL, 'other-model'], ...(options.idleStopMs ? { idleStopMs: options.idleStopMs } : {}) },
    llm: { upstreamUrl: `http://127.0.0.1:${upstream.port}/v1`, upstreamKey: 'sk-upstream-secret', timeoutMs: options.timeoutMs ?? 5_000, bodyLimitBytes: 64 * 1024 },
  });
  server = http.createServer(h.platform.app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseURL = `http://127.0.0.1:${(server.address() as AddressInfo).port}/llm/v1`;
}

async function stopPlatform(): Promise<void> {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await upstream.close();
  await h.platform.runtimes.drain(5_000);
  h.close();
}

/** Replaces the platform of this test with one built with other settings. */
async function restartPlatform(options: Parameters<typeof startPlatform>[0]): Promise<void> {
  await stopPlatform();
  await startPlatform(options);
}

beforeEach(() => startPlatform());
afterEach(() => stopPlatform());

const postJson = (key: string, path: string, body: unknown, signal?: AbortSignal) =>
  fetch(`${baseURL}${path}`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify(body), ...(signal ? { signal } : {}) });

describe('through the openai client', () => {
  test('a chat completion passes through with the upstream key, and the ledger records its tokens', async () => {
    const { client } = await h.setupAdmin();
    const key = await keyOf(client);
    const answer = await openai(key).chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] });
    expect(answer.choices[0]?.message.content).toBe('Hello from upstream');
    expect(answer.usage).toMatchObject({ prompt_tokens: 11, completion_tokens: 3 });
    // The runtime's key never reaches the upstream; the upstream's key never reaches the runtime.
    expect(upstream.requests[0]?.authorization).toBe('Bearer sk-upstream-secret');
    expect(ledger()).toEqual([expect.objectContaining({ username: 'admin', endpoint: 'chat/completions', model: MODEL, streamed: 0, status: 'ok', prompt_tokens: 11, completion_tokens: 3 })]);
  });

  test('a streamed chat is metered through include_usage, and the client that did not ask for usage does not see that chunk', async () => {
    const { client } = await h.setupAdmin();
    const key = await keyOf(client);
    upstream.behaviour.chunks = 5;
    const stream = await openai(key).chat.completions.create({ model: MODEL, stream: true, messages: [{ role: 'user', content: 'hi' }] });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe('Hello from upstream'.repeat(5));
    expect(chunks.some((c) => c.usage)).toBe(false);
    expect(upstream.requests[0]?.body.stream_options).toEqual({ include_usage: true });
    expect(ledger()).toEqual([expect.objectContaining({ streamed: 1, status: 'ok', prompt_tokens: 11, completion_tokens: 3 })]);

    const asked = await openai(key).chat.completions.create({ model: MODEL, stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'hi' }] });
    const withUsage = [];
    for await (const chunk of asked) withUsage.push(chunk);
    expect(withUsage.at(-1)?.usage).toMatchObject({ prompt_tokens: 11, completion_tokens: 3 });
  });

  test('embeddings and the model list (only the models runtimes may use)', async () => {
    const { client } = await h.setupAdmin();
    const ai = openai(await keyOf(client));
    const embedding = await ai.embeddings.create({ model: MODEL, input: 'text' });
    expect(embedding.data[0]?.embedding.map((v) => Math.round(v * 10) / 10)).toEqual([0.1, 0.2, 0.3]);
    const models = await ai.models.list();
    expect(models.data.map((m) => m.id)).toEqual([MODEL]);
    expect(ledger().map((r) => [r.endpoint, r.prompt_tokens])).toEqual([['embeddings', 5]]);
  });
});

describe('refusals, in OpenAI error shape', () => {
  test('a missing, unknown or rotated key is a 401 AuthenticationError; so is a disabled user\'s', async () => {
    const { client } = await h.setupAdmin();
    const member = await h.createMember(client, 'alice');
    const key = await keyOf(member.client);
    await expect(openai('sk-not-a-key-of-ours-at-all').models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    const noKey = await fetch(`${baseURL}/models`);
    expect(noKey.status).toBe(401);
    expect(await noKey.json()).toEqual({ error: { message: expect.stringContaining('API key'), type: 'invalid_request_error', code: 'invalid_api_key' } });
    // A restart re-creates nothing here (same config), but a delete does: the old key dies with its container.
    const removed = await member.client.delete('/api/v1/runtime');
    await h.platform.runtimes.settled(removed.body.runtime.id);
    await expect(openai(key).models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    const fresh = await keyOf(member.client);
    expect(fresh).not.toBe(key);
    expect((await openai(fresh).models.list()).data).toHaveLength(1);
    await client.patch(`/api/v1/admin/users/${member.userId}`).send({ status: 'disabled' });
    await expect(openai(fresh).models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
  });

  test('unknown model, malformed JSON, oversized body', async () => {
    const { client } = await h.setupAdmin();
    const key = await keyOf(client);
    const unknown = openai(key).chat.completions.create({ model: 'gpt-9', messages: [{ role: 'user', content: 'hi' }] });
    await expect(unknown).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    const post = (body: string) => fetch(`${baseURL}/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body });
    const malformed = await post('{"model": ');
    expect(malformed.status).toBe(400);
    expect(((await malformed.json()) as { error: { code: string } }).error.code).toBe('invalid_json');
    const big = await post(JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'x'.repeat(100 * 1024) }] }));
    expect(big.status).toBe(413);
    expect(((await big.json()) as { error: { type: string } }).error.type).toBe('invalid_request_error');
    expect(upstream.requests).toHaveLength(0);
  });

  test('upstream down is a 502 with a clear message; upstream errors pass through and are recorded', async () => {
    const { client } = await h.setupAdmin();
    const key = await keyOf(client);
    upstream.behaviour.failStatus = 500;
    await expect(openai(key).chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] })).rejects.toBeInstanceOf(OpenAI.InternalServerError);
    await upstream.close();
    const down = await postJson(key, '/chat/completions', { model: MODEL, messages: [] });
    expect(down.status).toBe(502);
    expect(((await down.json()) as { error: unknown }).error).toMatchObject({ code: 'upstream_unreachable', message: expect.stringContaining('could not be reached') });
    expect(ledger().map((r) => r.status)).toEqual(['upstream_error', 'unreachable']);
  });

  test('an upstream that fails mid-stream ends the client\'s stream with an error event; a client that leaves aborts the upstream call', async () => {
    const { client } = await h.setupAdmin();
    const key = await keyOf(client);
    upstream.behaviour.chunks = 5;
    upstream.behaviour.failAfterChunks = 2;
    const res = await postJson(key, '/chat/completions', { model: MODEL, stream: true, messages: [] });
    const text = await res.text();
    expect(text).toContain('Hello from upstream');
    expect(text).toMatch(/data: \{"error":\{"message":"The model service failed mid-answer/);
    expect(ledger().at(-1)).toMatchObject({ status: 'upstream_error', streamed: 1 });

    upstream.behaviour.failAfterChunks = null;
    const release = holdUpstream();
    const controller = new AbortController();
    const before = upstream.received;
    const pending = postJson(key, '/chat/completions', { model: MODEL, stream: true, messages: [] }, controller.signal).catch(() => null);
    await eventually(() => (upstream.received > before ? true : undefined), 'the call to reach the upstream', 5_000, 10);
    controller.abort();
    await pending;
    await eventually(() => (ledger().length === 2 ? true : undefined), 'the aborted call\'s ledger row', 5_000);
    expect(ledger().at(-1)).toMatchObject({ status: 'aborted' });
    await eventually(() => (upstream.aborted >= 1 ? true : undefined), 'the upstream call to be aborted', 5_000);
    release();
  });

  test('an upstream that fails in the middle of a non-streamed answer is recorded as its failure, not as a client that left', async () => {
    const { client } = await h.setupAdmin();
    const key = await keyOf(client);
    upstream.behaviour.failAfterChunks = 0;
    const res = await postJson(key, '/chat/completions', { model: MODEL, messages: [] });
    expect(res.status).toBe(200);
    await expect(res.text()).rejects.toThrow();
    await eventually(() => (ledger().length === 1 ? true : undefined), 'the ledger row', 5_000);
    expect(ledger()[0]).toMatchObject({ status: 'upstream_error', streamed: 0 });
  });
});

describe('more of the contract', () => {
  test('the Responses API passes through, streamed and not, metered by its input and output tokens', async () => {
    const { client } = await h.setupAdmin();
    const key = await keyOf(client);
    const answer = await openai(key).responses.create({ model: MODEL, input: 'hi' });
    expect(answer.output_text).toBe('Hello from upstream');
    const stream = await openai(key).responses.create({ model: MODEL, input: 'hi', stream: true });
    const types: string[] = [];
    for await (const event of stream) types.push(event.type);
    expect(types).toEqual(['response.created', 'response.output_text.delta', 'response.completed']);
    // The Responses API was not asked for stream_options: it reports usage in its last event anyway.
    expect(upstream.requests.at(-1)?.body.stream_options).toBeUndefined();
    expect(ledger().map((r) => [r.endpoint, r.streamed, r.prompt_tokens, r.completion_tokens])).toEqual([
      ['responses', 0, 7, 2],
      ['responses', 1, 7, 2],
    ]);
  });

  test('a slow upstream meets the configured timeout: a 504 before the answer, an error event during a stream', async () => {
    await restartPlatform({ timeoutMs: 400 });
    const { client } = await h.setupAdmin();
    const key = await keyOf(client);
    upstream.behaviour.delayMs = 2_000;
    const late = openai(key).chat.completions.create({ model: MODEL, messages: [] });
    await expect(late).rejects.toMatchObject({ status: 504, code: 'upstream_timeout', message: expect.stringContaining('within 400 ms (CLAWLOOPS_LLM_TIMEOUT)') });

    upstream.behaviour.delayMs = 0;
    upstream.behaviour.chunks = 5;
    upstream.behaviour.stallAfterChunks = 2;
    const res = await postJson(key, '/chat/completions', { model: MODEL, stream: true, messages: [] });
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text.match(/Hello from upstream/g)).toHaveLength(2);
    expect(text).toMatch(/data: \{"error":\{"message":"The model service did not finish answering within 400 ms/);
    await eventually(() => (upstream.aborted === 2 ? true : undefined), 'both upstream calls to be aborted', 5_000);
    expect(ledger().map((r) => [r.status, r.streamed])).toEqual([
      ['timeout', 0],
      ['timeout', 1],
    ]);
  });

  test('model calls count as activity: an agent working with the browser closed is not stopped as idle', async () => {
    await restartPlatform({ idleStopMs: 30 * 60_000 });
    const { client } = await h.setupAdmin();
    const key = await keyOf(client);
    h.clock.advance(25 * 60_000);
    await openai(key).chat.completions.create({ model: MODEL, messages: [] });
    h.clock.advance(25 * 60_000);
    expect(h.platform.runtimes.stopIdle()).toBe(0);
    h.clock.advance(6 * 60_000);
    expect(h.platform.runtimes.stopIdle()).toBe(1);
  });
});

describe('limits: 429 in OpenAI\'s shape, naming the limit and when it resets', () => {
  const chat = (key: string) => openai(key).chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] });

  test('requests per minute, set for one user by an admin (audited)', async () => {
    const { client } = await h.setupAdmin();
    const member = await h.createMember(client, 'alice');
    const key = await keyOf(member.client);
    const put = await client.put(`/api/v1/admin/users/${member.userId}/model-limits`).send({ requestsPerMinute: 2 });
    expect(put.status).toBe(200);
    expect(put.body).toMatchObject({ overrides: { requestsPerMinute: 2, concurrentRequests: null }, effective: { requestsPerMinute: 2, concurrentRequests: 4 } });
    await chat(key);
    await chat(key);
    const refused = await chat(key).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(OpenAI.RateLimitError);
    expect((refused as InstanceType<typeof OpenAI.RateLimitError>).message).toMatch(/limit of 2 model requests per minute; it resets in \d+ s/);
    expect((refused as InstanceType<typeof OpenAI.RateLimitError>).headers?.get('retry-after')).toMatch(/^\d+$/);
    expect(upstream.requests).toHaveLength(2);
    // Bob is not limited by alice's override.
    expect((await chat(await keyOf(client))).choices).toHaveLength(1);
    const audit = (await client.get('/api/v1/admin/audit?action=llm.limits.update')).body.items;
    expect(audit[0]).toMatchObject({ actor: { username: 'admin' }, target: { label: 'alice' } });
    expect((await member.client.put(`/api/v1/admin/users/${member.userId}/model-limits`).send({ requestsPerMinute: 1000 })).status).toBe(403);
  });

  test('requests at once', async () => {
    const { client, userId } = await h.setupAdmin();
    const key = await keyOf(client);
    await client.put(`/api/v1/admin/users/${userId}/model-limits`).send({ concurrentRequests: 1 });
    // The first call is held at the upstream until the second has been answered.
    const release = holdUpstream();
    const before = upstream.received;
    const first = chat(key);
    await eventually(() => (upstream.received > before ? true : undefined), 'the first call to reach the upstream', 5_000, 10);
    const second = await chat(key).then(
      () => null,
      (err: unknown) => err,
    );
    release();
    expect((await first).choices).toHaveLength(1);
    expect(second).toBeInstanceOf(OpenAI.RateLimitError);
    expect((second as Error).message).toMatch(/1 model requests running, your limit/);
    // Finished requests free their place.
    expect((await chat(key)).choices).toHaveLength(1);
  });

  test('a monthly token budget: checked before the call, settled after, overshot by one request at most', async () => {
    const { client, userId } = await h.setupAdmin();
    const key = await keyOf(client);
    await client.put(`/api/v1/admin/users/${userId}/model-limits`).send({ monthlyTokens: 20 });
    await chat(key); // 14 tokens: 6 left
    await chat(key); // admitted with 6 left, uses 14: 8 over, the one request the rule allows
    const refused = await chat(key).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(OpenAI.RateLimitError);
    expect((refused as Error).message).toMatch(/used your 20 tokens for this month \(28 used\); the budget resets on \d{4}-\d{2}-01/);
    const usage = (await client.get('/api/v1/usage')).body;
    expect(usage).toMatchObject({ limits: { monthlyTokens: 20 }, tokensRemaining: 0, month: { requests: 2, promptTokens: 22, completionTokens: 6 } });
    // The key is for models only: it opens nothing on the platform's API.
    const withKey = await fetch(`${baseURL.replace('/llm/v1', '')}/api/v1/usage`, { headers: { authorization: `Bearer ${key}` } });
    expect(withKey.status).toBe(401);
  });
});

describe('a monthly cost budget', () => {
  test('priced at the catalog\'s prices, refused once spent, shown in the user\'s usage', async () => {
    const { client, userId } = await h.setupAdmin();
    const key = await keyOf(client);
    // $100 per million prompt tokens and $1000 per million completion tokens: a call costs $0.0041.
    await client.put(`/api/v1/admin/models/${MODEL}`).send({ inputPricePerMTok: 100, outputPricePerMTok: 1000 });
    const put = await client.put(`/api/v1/admin/users/${userId}/model-limits`).send({ monthlyBudgetUsd: 0.005 });
    expect(put.body.effective.monthlyCostMicrodollars).toBe(5000);
    const chat = () => openai(key).chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] });
    await chat();
    await chat(); // admitted with $0.0009 left: the one request the budget may be passed by
    const refused = await chat().catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(OpenAI.RateLimitError);
    expect((refused as Error).message).toMatch(/spent your \$0\.0050 budget for this month \(\$0\.0082 spent\); it resets on/);
    const usage = (await client.get('/api/v1/usage')).body;
    expect(usage).toMatchObject({ spentMicrodollars: 8200, budgetRemainingMicrodollars: 0, month: { costMicrodollars: 8200 } });
  });
});

describe('the model catalog', () => {
  test('an admin offers a model under its own name and price: runtimes see it at their next start, calls are mapped and priced', async () => {
    const { client } = await h.setupAdmin();
    const member = await h.createMember(client, 'alice');
    const key = await keyOf(member.client);
    const catalog = (await client.get('/api/v1/admin/models')).body;
    expect(catalog).toMatchObject({ models: [], upstream: [MODEL], upstreamError: null });
    const saved = await client.put('/api/v1/admin/models/house-model').send({ upstreamModel: MODEL, displayName: 'House model', contextWindow: 128000, maxTokens: 8192, inputPricePerMTok: 1, outputPricePerMTok: 2, isDefault: true });
    expect(saved.status).toBe(200);
    expect(saved.body.model).toMatchObject({ id: 'house-model', enabled: true, isDefault: true, inputMicrodollarsPerMTok: 1_000_000 });
    expect((await member.client.get('/api/v1/models')).body.models).toEqual([{ id: 'house-model', name: 'House model', default: true, contextWindow: 128000, maxTokens: 8192 }]);
    // The running runtime still has the old list: its config is stale until it restarts.
    expect((await member.client.get('/api/v1/runtime')).body.configStale).toBe(true);
    await openai(key).chat.completions.create({ model: 'house-model', messages: [{ role: 'user', content: 'hi' }] });
    expect(upstream.requests.at(-1)?.body.model).toBe(MODEL);
    // 11 prompt tokens at $1/M and 3 completion tokens at $2/M.
    expect(ledger().at(-1)).toMatchObject({ model: 'house-model', cost_microdollars: 17 });
    await expect(openai(key).chat.completions.create({ model: MODEL, messages: [] })).rejects.toBeInstanceOf(OpenAI.NotFoundError);

    // The admin sees which runtimes still run the old list, and restarts them in one call.
    expect(saved.body.staleRuntimes).toEqual([{ userId: member.userId, username: 'alice' }]);
    expect((await client.get('/api/v1/admin/models')).body.staleRuntimes).toEqual([{ userId: member.userId, username: 'alice' }]);
    const restarted = await client.post('/api/v1/admin/runtimes/restart').send({ stale: true });
    expect(restarted.status).toBe(200);
    expect(restarted.body.results).toMatchObject([{ userId: member.userId, ok: true, operation: { kind: 'restart' } }]);
    await h.platform.runtimes.settled(restarted.body.results[0].runtime.id);
    expect((await member.client.get('/api/v1/runtime')).body).toMatchObject({ state: 'running', configStale: false });
    expect((await client.get('/api/v1/admin/models')).body.staleRuntimes).toEqual([]);
    // The re-created container has a new key and the new list rendered into its config.
    await expect(openai(key).models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    const renewed = await keyOf(member.client);
    const container = [...backend.instances.values()].find((c) => c.spec.secretEnv.CLAWLOOPS_MODEL_KEY === renewed);
    const config = container?.files.find((f) => f.path.endsWith('openclaw.json'))?.content?.toString();
    expect(config).toContain('House model');

    const disabled = await client.put('/api/v1/admin/models/house-model').send({ enabled: false });
    expect(disabled.body.staleRuntimes).toEqual([{ userId: member.userId, username: 'alice' }]);
    await expect(openai(renewed).chat.completions.create({ model: 'house-model', messages: [] })).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    const audit = (await client.get('/api/v1/admin/audit?action=llm.model.save')).body.items;
    expect(audit).toHaveLength(2);
    expect((await member.client.put('/api/v1/admin/models/x').send({ enabled: true })).status).toBe(403);
    expect((await client.put('/api/v1/admin/models/bad%20id').send({})).status).toBe(400);
    expect((await client.delete('/api/v1/admin/models/house-model')).status).toBe(200);
    expect((await client.delete('/api/v1/admin/models/house-model')).status).toBe(404);
  });
});

describe('own usage', () => {
  test('GET /api/v1/usage shows this month\'s totals, per day and per model, and only the caller\'s', async () => {
    const { client } = await h.setupAdmin();
    const member = await h.createMember(client, 'alice');
    const key = await keyOf(member.client);
    await openai(key).chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] });
    await openai(key).chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'again' }] });
    const mine = (await member.client.get('/api/v1/usage')).body;
    expect(mine.month).toMatchObject({ requests: 2, promptTokens: 22, completionTokens: 6 });
    expect(mine.perModel).toEqual([expect.objectContaining({ model: MODEL, requests: 2 })]);
    expect(mine.perDay).toHaveLength(1);
    const admins = (await client.get('/api/v1/usage')).body;
    expect(admins.month).toMatchObject({ requests: 0, promptTokens: 0 });
    expect((await h.bareClient().get('/api/v1/usage')).status).toBe(401);
    // A runtime's model key is no way into the platform's API, its owner's usage included.
    expect((await h.bareClient().get('/api/v1/usage').set('authorization', `Bearer ${key}`)).status).toBe(401);
  });

  test('admins see everyone\'s usage per user and per model over a range, as JSON or CSV', async () => {
    const { client } = await h.setupAdmin();
    const member = await h.createMember(client, 'alice');
    await openai(await keyOf(member.client)).chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] });
    await openai(await keyOf(client)).embeddings.create({ model: MODEL, input: 'x' });
    const report = (await client.get('/api/v1/admin/usage')).body;
    expect(report.perUser.map((r: { username: string; requests: number }) => [r.username, r.requests])).toEqual([['admin', 1], ['alice', 1]]);
    expect(report.perModel).toEqual([expect.objectContaining({ model: MODEL, requests: 2, promptTokens: 16, completionTokens: 3 })]);
    expect(report.perDay).toEqual([expect.objectContaining({ day: new Date(h.clock.now()).toISOString().slice(0, 10), requests: 2, promptTokens: 16 })]);
    const csv = await client.get('/api/v1/admin/usage?format=csv');
    expect(csv.headers['content-type']).toMatch(/^text\/csv/);
    expect(csv.headers['content-disposition']).toMatch(/attachment; filename="?usage-\d{4}-\d{2}-\d{2}-\d{4}-\d{2}-\d{2}\.csv/);
    expect(csv.text.split('\r\n')).toEqual([
      'kind,name,requests,prompt_tokens,completion_tokens,cost_usd,estimated_requests',
      'user,admin,1,5,0,0.000000,0',
      'user,alice,1,11,3,0.000000,0',
      `model,${MODEL},2,16,3,0.000000,0`,
      '',
    ]);
    const empty = (await client.get('/api/v1/admin/usage?from=2020-01-01T00:00:00Z&to=2020-02-01T00:00:00Z')).body;
    expect(empty).toMatchObject({ perUser: [], perModel: [] });
    expect((await client.get('/api/v1/admin/usage?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z')).status).toBe(400);
    expect((await member.client.get('/api/v1/admin/usage')).status).toBe(403);
  });
});

/** The gateway's estimate of a body it forwarded (or of text it relayed): one token per 3 bytes. */
const tokensOf = (value: unknown) => Math.ceil(Buffer.byteLength(typeof value === 'string' ? value : JSON.stringify(value)) / 3);
/** What `n` streamed chunks of the test upstream's answer are estimated at. */
const streamedTokens = (n: number) => tokensOf('Hello from upstream'.repeat(n));

/** Reads a streamed answer until it has carried `chunks` content chunks. */
async function readChunks(res: globalThis.Response, chunks: number): Promise<string> {
  if (!res.body) throw new Error('no body');
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  while ((text.match(/Hello from upstream/g) ?? []).length < chunks) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
  }
  return text;
}

const waitForRows = (n: number) => eventually(() => (ledger().length >= n ? ledger() : undefined), `${n} ledger rows`, 5_000);

describe('budgets cannot be dodged: every call is charged', () => {
  test('a stream the client abandons is charged its prompt and what was streamed, marked estimated, at the model\'s prices', async () => {
    const { client } = await h.setupAdmin();
    const key = await keyOf(client);
    await client.put(`/api/v1/admin/models/${MODEL}`).send({ inputPricePerMTok: 100, outputPricePerMTok: 1000 });
    upstream.behaviour.chunks = 5;
    upstream.behaviour.stallAfterChunks = 2;
    const controller = new AbortController();
    const res = await postJson(key, '/chat/completions', { model: MODEL, stream: true, messages: [{ role: 'user', content: 'write a long story' }] }, controller.signal);
    await readChunks(res, 2);
    controller.abort();
    const [row] = await waitForRows(1);
    const prompt = tokensOf(upstream.requests[0]?.body);
    expect(row).toMatchObject({ status: 'aborted', streamed: 1, estimated: 1, prompt_tokens: prompt, completion_tokens: streamedTokens(2) });
    expect(row?.cost_microdollars).toBe(prompt * 100 + streamedTokens(2) * 1000);
    const usage = (await client.get('/api/v1/usage')).body;
    expect(usage).toMatchObject({ spentMicrodollars: row?.cost_microdollars, month: { requests: 1, estimatedRequests: 1, promptTokens: prompt } });
  });

  test('a call abandoned before any answer is charged its whole reservation: the prompt and the completion it asked for', async () => {
    const { client } = await h.setupAdmin();
    const key = await keyOf(client);
    const release = holdUpstream();
    const body = { model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 50 };
    const controller = new AbortController();
    const pending = postJson(key, '/chat/completions', body, controller.signal).catch(() => null);
    await eventually(() => (upstream.received === 1 ? true : undefined), 'the call to reach the upstream', 5_000, 10);
    controller.abort();
    await pending;
    // The gateway hears the client leave and aborts its upstream call; only then may the upstream answer.
    await eventually(() => (upstream.aborted >= 1 ? true : undefined), 'the upstream call to be aborted', 5_000, 10);
    release();
    const [row] = await waitForRows(1);
    expect(row).toMatchObject({ status: 'aborted', streamed: 0, estimated: 1, prompt_tokens: tokensOf(body), completion_tokens: 50 });
  });

  test('an upstream that fails or times out mid-stream: charged what was streamed, not 0', async () => {
    await restartPlatform({ timeoutMs: 400 });
    const { client } = await h.setupAdmin();
    const key = await keyOf(client);
    upstream.behaviour.chunks = 5;
    upstream.behaviour.failAfterChunks = 2;
    await (await postJson(key, '/chat/completions', { model: MODEL, stream: true, messages: [] })).text();
    upstream.behaviour.failAfterChunks = null;
    upstream.behaviour.stallAfterChunks = 3;
    await (await postJson(key, '/chat/completions', { model: MODEL, stream: true, messages: [] })).text();
    const rows = await waitForRows(2);
    expect(rows.map((r) => [r.status, r.estimated, r.completion_tokens])).toEqual([
      ['upstream_error', 1, streamedTokens(2)],
      ['timeout', 1, streamedTokens(3)],
    ]);
    for (const [i, row] of rows.entries()) expect(row.prompt_tokens).toBe(tokensOf(upstream.requests[i]?.body));
  });

  test('a request the upstream refuses (4xx) or never receives is recorded and charged nothing; an upstream failure (5xx) is charged its prompt', async () => {
    const { client } = await h.setupAdmin();
    const key = await keyOf(client);
    upstream.behaviour.failStatus = 400;
    expect((await postJson(key, '/chat/completions', { model: MODEL, messages: [{ role: 'user', content: 'hi' }] })).status).toBe(400);
    upstream.behaviour.failStatus = 503;
    const failing = { model: MODEL, messages: [{ role: 'user', content: 'hi' }] };
    expect((await postJson(key, '/chat/completions', failing)).status).toBe(503);
    // An upstream that cannot be reached never saw the call.
    await upstream.close();
    expect((await postJson(key, '/chat/completions', failing)).status).toBe(502);
    expect(ledger().map((r) => [r.status, r.http_status, r.estimated, r.prompt_tokens, r.completion_tokens])).toEqual([
      ['upstream_error', 400, 0, 0, 0],
      ['upstream_error', 503, 1, tokensOf(failing), 0],
      ['unreachable', null, 0, 0, 0],
    ]);
  });

  test('an upstream that sends no usage: chat, streamed chat, Responses and embeddings are charged an estimate', async () => {
    const { client } = await h.setupAdmin();
    const ai = openai(await keyOf(client));
    upstream.behaviour.reportUsage = false;
    await ai.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] });
    const stream = await ai.chat.completions.create({ model: MODEL, stream: true, messages: [{ role: 'user', content: 'hi' }] });
    for await (const chunk of stream) expect(chunk.usage).toBeFalsy();
    await ai.responses.create({ model: MODEL, input: 'hi' });
    for await (const event of await ai.responses.create({ model: MODEL, input: 'hi', stream: true })) expect(event.type).toMatch(/^response\./);
    await ai.embeddings.create({ model: MODEL, input: 'text' });
    const rows = ledger();
    expect(rows.map((r) => [r.endpoint, r.streamed, r.status, r.estimated])).toEqual([
      ['chat/completions', 0, 'ok', 1],
      ['chat/completions', 1, 'ok', 1],
      ['responses', 0, 'ok', 1],
      ['responses', 1, 'ok', 1],
      ['embeddings', 0, 'ok', 1],
    ]);
    for (const [i, row] of rows.entries()) expect(row.prompt_tokens).toBe(tokensOf(upstream.requests[i]?.body));
    // Streamed: the text that went by; not streamed: the whole answer; embeddings: no completion.
    expect(rows[1]?.completion_tokens).toBe(streamedTokens(1));
    expect(rows[3]?.completion_tokens).toBe(streamedTokens(1));
    expect(rows[0]?.completion_tokens).toBeGreaterThan(streamedTokens(1));
    expect(rows[4]?.completion_tokens).toBe(0);
  });

  test('an answer larger than the metering limit (16 MiB) is charged: the usage at its end, else its size', async () => {
    const { client } = await h.setupAdmin();
    const key = await keyOf(client);
    upstream.behaviour.answerBytes = 17 * 1024 ** 2;
    const big = await postJson(key, '/chat/completions', { model: MODEL, messages: [{ role: 'user', content: 'hi' }] });
    expect((await big.arrayBuffer()).byteLength).toBeGreaterThan(17 * 1024 ** 2);
    upstream.behaviour.reportUsage = false;
    await (await postJson(key, '/chat/completions', { model: MODEL, messages: [{ role: 'user', content: 'hi' }] })).arrayBuffer();
    const rows = await waitForRows(2);
    expect(rows[0]).toMatchObject({ status: 'ok', estimated: 0, prompt_tokens: 11, completion_tokens: 3 });
    expect(rows[1]).toMatchObject({ status: 'ok', estimated: 1, prompt_tokens: tokensOf(upstream.requests[1]?.body) });
    expect(rows[1]?.completion_tokens).toBeGreaterThanOrEqual(Math.ceil((17 * 1024 ** 2) / 3));
  });

  test('a model without a price cannot be used under a budget in US dollars (403 model_unpriced) until an admin prices it', async () => {
    const { client } = await h.setupAdmin();
    const member = await h.createMember(client, 'alice');
    const key = await keyOf(member.client);
    await client.put(`/api/v1/admin/users/${member.userId}/model-limits`).send({ monthlyBudgetUsd: 5 });
    const refused = await openai(key).chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] }).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(OpenAI.PermissionDeniedError);
    expect(refused).toMatchObject({ status: 403, code: 'model_unpriced', message: expect.stringContaining('has no price') });
    expect(upstream.requests).toHaveLength(0);
    // Without a USD budget the model stays usable: nothing is priced, so nothing can be overspent.
    await openai(await keyOf(client)).chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] });
    await client.put(`/api/v1/admin/models/${MODEL}`).send({ inputPricePerMTok: 1, outputPricePerMTok: 2 });
    await openai(key).chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] });
    expect(ledger().map((r) => [r.username, r.cost_microdollars])).toEqual([
      ['admin', 0],
      ['alice', 17],
    ]);
  });

  test('abandoned streams in parallel cannot spend past the budget: each is charged, and the reservations hold at once', async () => {
    const { client, userId } = await h.setupAdmin();
    const key = await keyOf(client);
    await client.put(`/api/v1/admin/users/${userId}/model-limits`).send({ monthlyTokens: 300, requestsPerMinute: 0, concurrentRequests: 0 });
    upstream.behaviour.chunks = 5;
    upstream.behaviour.stallAfterChunks = 1;
    const body = { model: MODEL, stream: true, max_tokens: 100, messages: [{ role: 'user', content: 'hi' }] };
    const reservation = tokensOf({ ...body, stream_options: { include_usage: true } }) + 100;
    // A round: four calls at once; those admitted each get a chunk, then all are abandoned together.
    const round = async (): Promise<('refused' | 'abandoned')[]> => {
      const controllers = [0, 1, 2, 3].map(() => new AbortController());
      const responses = await Promise.all(controllers.map((c) => postJson(key, '/chat/completions', body, c.signal)));
      await Promise.all(responses.map((res) => (res.status === 429 ? res.text() : readChunks(res, 1))));
      for (const c of controllers) c.abort();
      return responses.map((res) => (res.status === 429 ? 'refused' : 'abandoned'));
    };
    const rounds: ('refused' | 'abandoned')[][] = [];
    while (rounds.length < 10 && !rounds.at(-1)?.every((o) => o === 'refused')) {
      rounds.push(await round());
      await waitForRows(rounds.flat().filter((o) => o === 'abandoned').length);
    }
    // The first round: as many ran at once as the budget could reserve for, no more.
    expect(rounds[0]?.filter((o) => o === 'abandoned')).toHaveLength(Math.ceil(300 / reservation));
    expect(rounds.at(-1)).toEqual(['refused', 'refused', 'refused', 'refused']);
    const rows = ledger();
    for (const row of rows) expect(row).toMatchObject({ status: 'aborted', estimated: 1, completion_tokens: streamedTokens(1) });
    const charged = rows.reduce((sum, r) => sum + r.prompt_tokens + r.completion_tokens, 0);
    expect(charged).toBeGreaterThanOrEqual(300);
    // Passed by at most the calls admitted at once before the last charges landed.
    expect(charged).toBeLessThan(300 + Math.ceil(300 / reservation) * reservation);
    expect((await client.get('/api/v1/usage')).body).toMatchObject({ tokensRemaining: 0, month: { estimatedRequests: rows.length } });
  });
});

describe('the model allow-list fails closed', () => {
  test('with no catalog and no CLAWLOOPS_RUNTIME_MODELS, no model may be called and none is listed', async () => {
    await restartPlatform({ models: [] });
    const { client } = await h.setupAdmin();
    const ai = openai(await keyOf(client));
    const refused = await ai.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] }).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(OpenAI.NotFoundError);
    expect((refused as Error).message).toMatch(/No models are offered on this ClawLoops yet.*model catalog.*CLAWLOOPS_RUNTIME_MODELS/);
    await expect(ai.embeddings.create({ model: 'anything', input: 'x' })).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    expect((await ai.models.list()).data).toEqual([]);
    expect(upstream.requests).toHaveLength(0);
    expect(ledger()).toEqual([]);
  });
});

describe('requests upstream are rebuilt from the OpenAI fields we accept', () => {
  const LITELLM_CONTROL = {
    fallbacks: ['gpt-4o'],
    context_window_fallbacks: [{ [MODEL]: ['gpt-4o'] }],
    api_base: 'http://attacker.example/v1',
    base_url: 'http://attacker.example/v1',
    api_key: 'sk-attacker',
    api_version: '2099-01-01',
    metadata: { tags: ['free'], user_api_key_user_id: 'someone-else' },
    litellm_metadata: { spend_logs_metadata: {} },
    user_config: { model_list: [{ model_name: MODEL, litellm_params: { model: 'openai/gpt-4o', api_base: 'http://attacker.example' } }] },
    extra_body: { anything: true },
    extra_headers: { 'x-anything': '1' },
    mock_response: 'free tokens',
    mock_testing_fallbacks: true,
    caching: false,
    cache: { 'no-cache': true },
    guardrails: [],
    disable_fallbacks: true,
    num_retries: 100,
    timeout: 99999,
    input_cost_per_token: 0,
    output_cost_per_token: 0,
    user: 'someone-else',
    service_tier: 'priority',
    web_search_options: {},
    tags: ['x'],
  };

  test('chat: LiteLLM control fields and unknown fields are dropped; the OpenAI fields arrive as sent', async () => {
    const { client } = await h.setupAdmin();
    const key = await keyOf(client);
    const accepted = {
      model: MODEL,
      messages: [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: [{ type: 'text', text: 'hi' }] },
      ],
      temperature: 0.2,
      top_p: 0.9,
      max_completion_tokens: 20,
      stop: ['\n\n'],
      tools: [{ type: 'function', function: { name: 'read_file', description: 'reads', parameters: { type: 'object', properties: {} } } }],
      tool_choice: 'auto',
      parallel_tool_calls: true,
      response_format: { type: 'text' },
      reasoning_effort: 'low',
      store: false,
      prompt_cache_key: 'session-1',
    };
    const res = await postJson(key, '/chat/completions', { ...accepted, ...LITELLM_CONTROL, some_future_field: 1, nothing: null });
    expect(res.status).toBe(200);
    expect(upstream.requests[0]?.body).toEqual(accepted);
    // A `__proto__` key is a field like any other (dropped), not a way to slip fields in as inherited ones.
    const smuggled = await fetch(`${baseURL}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: `{"model":"${MODEL}","messages":[],"__proto__":{"api_base":"http://attacker.example","temperature":"hot"}}`,
    });
    expect(smuggled.status).toBe(200);
    expect(upstream.requests[1]?.body).toEqual({ model: MODEL, messages: [] });
  });

  test('Responses and embeddings likewise; background mode, hosted tools and mistyped fields are refused or dropped, never forwarded', async () => {
    const { client } = await h.setupAdmin();
    const key = await keyOf(client);
    expect((await postJson(key, '/responses', { model: MODEL, input: 'hi', instructions: 'brief', background: true, ...LITELLM_CONTROL })).status).toBe(200);
    expect(upstream.requests[0]?.body).toEqual({ model: MODEL, input: 'hi', instructions: 'brief' });
    expect((await postJson(key, '/embeddings', { model: MODEL, input: ['a', 'b'], encoding_format: 'float', stream: true, ...LITELLM_CONTROL })).status).toBe(200);
    expect(upstream.requests[1]?.body).toEqual({ model: MODEL, input: ['a', 'b'], encoding_format: 'float' });

    const mcp = await postJson(key, '/responses', { model: MODEL, input: 'hi', tools: [{ type: 'mcp', server_label: 'x', server_url: 'http://169.254.169.254/' }] });
    expect(mcp.status).toBe(400);
    expect(((await mcp.json()) as { error: unknown }).error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_value', param: 'tools.0' });
    const mistyped = await openai(key).chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], temperature: 'hot' as unknown as number }).catch((err: unknown) => err);
    expect(mistyped).toBeInstanceOf(OpenAI.BadRequestError);
    expect(mistyped).toMatchObject({ code: 'invalid_value', param: 'temperature', message: expect.stringContaining('temperature') });
    const noModel = await postJson(key, '/chat/completions', { messages: [] });
    expect(((await noModel.json()) as { error: unknown }).error).toMatchObject({ code: 'missing_model', param: 'model' });
    expect(upstream.requests).toHaveLength(2);
  });

  test('audio output (modalities, audio) is dropped, streamed or not, on chat and Responses: the upstream is asked for text only', async () => {
    const { client } = await h.setupAdmin();
    const key = await keyOf(client);
    const asked = { model: MODEL, messages: [{ role: 'user', content: 'say hi' }] };
    const audio = { modalities: ['text', 'audio'], audio: { voice: 'alloy', format: 'wav' } };
    expect((await postJson(key, '/chat/completions', { ...asked, ...audio })).status).toBe(200);
    expect(upstream.requests[0]?.body).toEqual(asked);
    const streamed = await postJson(key, '/chat/completions', { ...asked, ...audio, stream: true });
    expect(streamed.status).toBe(200);
    await streamed.text();
    expect(upstream.requests[1]?.body).toMatchObject({ ...asked, stream: true });
    expect(upstream.requests.map((r) => ['modalities', 'audio'].filter((field) => field in r.body))).toEqual([[], []]);
    // The Responses endpoint has no audio output either: the same fields are dropped there.
    expect((await postJson(key, '/responses', { model: MODEL, input: 'hi', ...audio })).status).toBe(200);
    expect(upstream.requests[2]?.body).toEqual({ model: MODEL, input: 'hi' });
  });

  test('only the gateway\'s own headers go upstream, to the path the gateway picks: nothing from the runtime chooses them', async () => {
    const { client } = await h.setupAdmin();
    const key = await keyOf(client);
    const res = await fetch(`${baseURL}/chat/completions?api_base=http://attacker.example&model=gpt-4o`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${key}`,
        'content-type': 'application/json',
        'x-litellm-api-key': 'sk-attacker',
        'x-litellm-tags': 'free',
        'x-litellm-timeout': '1',
        'api-key': 'sk-attacker',
        'x-api-key': 'sk-attacker',
        'openai-organization': 'org-x',
        'x-forwarded-host': 'attacker.example',
        cookie: 'a=b',
      },
      body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] }),
    });
    expect(res.status).toBe(200);
    expect(upstream.requests[0]?.url).toBe('/v1/chat/completions');
    expect(Object.keys(upstream.requests[0]?.headers ?? {}).sort()).toEqual(['accept', 'authorization', 'connection', 'content-length', 'content-type', 'host']);
    expect(upstream.requests[0]?.authorization).toBe('Bearer sk-upstream-secret');
  });
});
