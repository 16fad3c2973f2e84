/**
 * A real browser (Debian's chromium, driven by playwright-core) against the real server, the
 * real Docker engine and the REAL OpenClaw image behind the built-in router: the owner is sent
 * from their workspace address to the platform's sign-in and back, the OpenClaw Control UI
 * connects, and a chat message gets its answer from a test model upstream. Another user's
 * browser is refused. Screenshots go to a folder printed at the end.
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from '../support/browser';
import type TestAgent from 'supertest/lib/agent';
import { engineHarness, eventually, newInstanceId, sweep, withDiagnostics, OPENCLAW_SETTINGS, type EngineHarness } from '../support/engine';
import { STRONG_PASSWORD, usageRows } from '../support/harness';
import { freePort } from '../support/hostClient';
import { startTestModelUpstream, type TestModelUpstream } from '../support/testModelUpstream';

jest.setTimeout(240_000);

const ANSWER = `The answer from the test model ${Math.random().toString(36).slice(2, 8)}`;
const instance = newInstanceId();
const shots = fs.mkdtempSync(path.join(os.tmpdir(), 'clawloops-browser-'));
let h: EngineHarness;
let server: http.Server;
let port: number;
let upstream: TestModelUpstream;
let browser: Browser;
let aliceApi: TestAgent;
const it = (name: string, body: () => Promise<void>) => test(name, withDiagnostics(() => instance, () => h.logs.text, body));

async function signInThroughPlatform(page: Page, username: string): Promise<void> {
  await page.waitForSelector('#login:not([hidden])');
  await page.fill('#login input[name=username]', username);
  await page.fill('#login input[name=password]', STRONG_PASSWORD);
  await page.click('#login button');
}

beforeAll(async () => {
  upstream = await startTestModelUpstream(ANSWER);
  port = await freePort();
  h = engineHarness({
    instance,
    env: { CLAWLOOPS_PUBLIC_URL: `http://localhost:${port}`, CLAWLOOPS_DOMAIN: 'localhost' },
    webRoot: path.resolve(__dirname, '../../web/dist'),
    runtimeSettings: {
      ...OPENCLAW_SETTINGS,
      // The runtime calls the platform's model gateway (the server listens on all interfaces), which calls the test upstream.
      modelGatewayUrl: `http://host.docker.internal:${port}/llm/v1`,
      models: ['test-model'],
    },
    llm: { upstreamUrl: `http://127.0.0.1:${upstream.port}/v1`, upstreamKey: 'sk-upstream-browser-test' },
  });
  server = http.createServer(h.platform.app);
  server.on('upgrade', h.platform.upgrade);
  await new Promise<void>((resolve) => server.listen(port, resolve));
  const { client: admin } = await h.setupAdmin();
  const { client: alice } = await h.createMember(admin, 'alice');
  aliceApi = alice;
  await h.createMember(admin, 'bob');
  const start = await alice.post('/api/v1/runtime/start');
  await h.platform.runtimes.settled(start.body.runtime.id);
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  await h?.platform.runtimes.drain(30_000);
  h?.close();
  await upstream?.close();
  await sweep(instance);
  process.stdout.write(`browser screenshots: ${shots}\n`);
});

it('the owner goes from their workspace address to the platform sign-in and back, the Control UI connects, and a chat gets its answer', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const consoleErrors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text());
  });
  const failed: string[] = [];
  page.on('response', (r) => {
    if (r.status() >= 400) failed.push(`${r.status()} ${r.url()}`);
  });
  let connected = false;
  page.on('websocket', (ws) => ws.on('framereceived', (frame) => (connected ||= String(frame.payload).includes('"hello-ok"'))));

  await page.goto(`http://alice.localhost:${port}/`);
  // No workspace session: the platform's sign-in, which remembers where the browser was going.
  expect(new URL(page.url()).host).toBe(`localhost:${port}`);
  expect(new URL(page.url()).pathname).toBe('/login');
  await page.screenshot({ path: path.join(shots, '1-platform-sign-in.png') });
  await signInThroughPlatform(page, 'alice');

  await page.waitForURL(`http://alice.localhost:${port}/**`, { timeout: 30_000 });
  await page.waitForSelector('textarea', { timeout: 90_000 }).catch(async (err: Error) => {
    await page.screenshot({ path: path.join(shots, 'control-ui-failure.png') });
    throw new Error(`${err.message}\nurl: ${page.url()}\nfailed responses: ${failed.join(' | ')}\nconsole errors: ${consoleErrors.join(' | ').slice(0, 800)}`);
  });
  await eventually(() => (connected ? true : undefined), 'the gateway hello-ok frame', 30_000);
  await page.screenshot({ path: path.join(shots, '2-control-ui-connected.png') });

  await page.fill('textarea', 'Hello from the ClawLoops browser test');
  await page.keyboard.press('Enter');
  await eventually(() => (upstream.requests.length > 0 ? true : undefined), 'the model upstream to be called', 60_000);
  await page.getByText(ANSWER).first().waitFor({ timeout: 60_000 });
  await page.screenshot({ path: path.join(shots, '3-chat-answered.png') });
  expect(JSON.stringify(upstream.requests[0]?.body)).toContain('Hello from the ClawLoops browser test');
  // It went through the gateway: the upstream saw the platform's key, and alice's ledger has the call.
  expect(upstream.requests[0]?.authorization).toBe('Bearer sk-upstream-browser-test');
  expect(usageRows(h).filter((row) => row.username === 'alice' && row.status === 'ok').length).toBeGreaterThanOrEqual(1);
  process.stdout.write(`console errors: ${consoleErrors.length ? consoleErrors.join(' | ').slice(0, 500) : 'none'}\nfailed responses: ${failed.join(' | ') || 'none'}\n`);
  // Every request reached OpenClaw: the router itself failed none (the avatar 502 and icon 404 are OpenClaw's own answers offline).
  expect(h.logs.text).not.toContain('workspace proxy error');
  await context.close();
});

it("another user's browser is refused with a page that says why", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`http://localhost:${port}/login`);
  await signInThroughPlatform(page, 'bob');
  await page.waitForSelector('#home:not([hidden])');
  const response = await page.goto(`http://alice.localhost:${port}/`);
  expect(response?.status()).toBe(403);
  expect(await page.textContent('body')).toContain('belongs to another account');
  await page.screenshot({ path: path.join(shots, '4-other-user-refused.png') });
  await context.close();
});

it('wake on visit: a stopped workspace offers to start, follows the progress, then opens the workspace', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  let connected = false;
  page.on('websocket', (ws) => ws.on('framereceived', (frame) => (connected ||= String(frame.payload).includes('"hello-ok"'))));
  await page.goto(`http://localhost:${port}/login`);
  await signInThroughPlatform(page, 'alice');
  await page.waitForSelector('#home:not([hidden])');
  const stop = await aliceApi.post('/api/v1/runtime/stop');
  await h.platform.runtimes.settled(stop.body.runtime.id);

  // Signed in on the platform: the hand-off is silent, and the stopped workspace shows the wake page.
  await page.goto(`http://alice.localhost:${port}/`);
  await page.waitForSelector('#start:not([hidden])');
  expect(await page.textContent('#message')).toContain('stopped');
  await page.screenshot({ path: path.join(shots, '5-wake-page.png') });
  await page.click('#start');
  await page.waitForSelector('#progress:not([hidden])');
  await page.screenshot({ path: path.join(shots, '6-wake-progress.png') });
  // The woken workspace is open once its Control UI completes the gateway handshake.
  await eventually(() => (connected ? true : undefined), 'the woken workspace to connect', 120_000).catch(async (err: Error) => {
    await page.screenshot({ path: path.join(shots, 'wake-failure.png') });
    throw new Error(`${err.message}\nurl: ${page.url()}\npage: ${(await page.textContent('body'))?.slice(0, 500)}`);
  });
  expect(new URL(page.url()).host).toBe(`alice.localhost:${port}`);
  await page.screenshot({ path: path.join(shots, '7-woken-workspace.png') });
  await context.close();
});
