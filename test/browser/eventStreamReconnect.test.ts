/**
 * What the reconnect metric rests on, in a real browser (Debian's chromium): an event stream's
 * opening `id:` line makes EventSource send `Last-Event-ID` when it reconnects by itself after
 * the connection is cut, and the platform counts exactly that. The runtime side is the in-memory
 * provisioner: only the stream matters here.
 */
import http from 'node:http';
import type { Browser } from 'playwright-core';
import { launchChromium } from '../support/browser';
import { alwaysReadyProbe, FakeProvisioner } from '../support/fakeProvisioner';
import { createHarness, STRONG_PASSWORD, type Harness } from '../support/harness';
import { closeServer, freePort } from '../support/hostClient';
import { eventually } from '../support/eventually';
import { parseExposition, sumOf } from '../support/promText';

jest.setTimeout(60_000);

const TOKEN = 'browser-test-metrics-token-0123456789';
let h: Harness;
let server: http.Server;
let base: string;
let browser: Browser;

beforeAll(async () => {
  const port = await freePort();
  base = `http://localhost:${port}`;
  h = createHarness({
    env: { CLAWLOOPS_PUBLIC_URL: base, CLAWLOOPS_METRICS_TOKEN: TOKEN },
    runtimeProvisioner: new FakeProvisioner(),
    runtimeProbe: alwaysReadyProbe,
  });
  server = http.createServer(h.platform.app);
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  if (server) await closeServer(server);
  h?.close();
});

async function reconnects(): Promise<number> {
  const res = await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
  return sumOf(parseExposition(await res.text()), 'clawloops_event_stream_reconnects_total');
}

test('a stream cut under the browser is reopened with Last-Event-ID, and counted once', async () => {
  const token = h.platform.setup.issueToken();
  const setup = await fetch(`${base}/api/v1/setup`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', origin: base },
    body: JSON.stringify({ token, username: 'admin', password: STRONG_PASSWORD }),
  });
  expect(setup.status).toBe(201);
  const session = /clawloops_session=([^;]+)/.exec(setup.headers.get('set-cookie') ?? '')?.[1];
  if (!session) throw new Error('no session cookie');

  const context = await browser.newContext();
  await context.addCookies([{ name: 'clawloops_session', value: session, url: base }]);
  const page = await context.newPage();
  const lastEventIds: Promise<string | undefined>[] = [];
  page.on('request', (req) => {
    // allHeaders: what the network stack sent, not only what the page set.
    if (new URL(req.url()).pathname === '/api/v1/runtime/events') lastEventIds.push(req.allHeaders().then((headers) => headers['last-event-id']));
  });
  await page.goto(`${base}/healthz`);
  // Strings: the page's code runs in the browser (and this project's TypeScript has no DOM types).
  await page.evaluate(`
    window.states = 0;
    window.source = new EventSource('/api/v1/runtime/events');
    window.source.addEventListener('state', (e) => {
      window.states += 1;
      window.lastId = e.lastEventId;
    });
  `);
  await page.waitForFunction('window.states === 1');
  expect(await reconnects()).toBe(0);
  expect(await Promise.all(lastEventIds)).toEqual([undefined]);
  // The opening id is the stream's, before any event: the state event carries it already.
  expect(await page.evaluate('window.lastId')).toBe('0');

  // The connection goes (a proxy's timeout, a network blip): the browser comes back by itself.
  server.closeAllConnections();
  await page.waitForFunction('window.states === 2', undefined, { timeout: 20_000 });
  expect(await Promise.all(lastEventIds)).toEqual([undefined, '0']);
  await eventually(async () => ((await reconnects()) === 1 ? true : undefined), 'the reconnect counted');
  await page.evaluate('window.source.close()');
  await context.close();
});
