/**
 * Metrics on the BUILT server (dist/main.js) with the real Docker engine: a runtime (the small
 * stand-in image, test/support/engine.ts) is started and stopped for real, then both ways of
 * scraping are read and parsed: the main port behind the token and the metrics port of its own.
 */
import { STANDIN_IMAGE } from '../support/engine';
import { eventually } from '../support/eventually';
import net from 'node:net';
import path from 'node:path';
import { assertBuilt, call, cleanUpProcesses, field, freePort, login, MAIN, processTest, sessionCookie, spawnMain, startServer, stopServer, tempDir } from '../support/processes';
import { parseExposition, sumOf } from '../support/promText';

const ADMIN_PASSWORD = 'correct horse battery staple';
const TOKEN = 'process-test-metrics-token-0123456789';

beforeAll(() => assertBuilt([MAIN]));
afterEach(cleanUpProcesses);

processTest('a real start and stop show in a scrape of the main port and of the metrics port', async () => {
  const metricsPort = await freePort();
  const server = await startServer(tempDir(), {
    CLAWLOOPS_ADMIN_USERNAME: 'admin',
    CLAWLOOPS_ADMIN_PASSWORD: ADMIN_PASSWORD,
    CLAWLOOPS_METRICS_TOKEN: TOKEN,
    CLAWLOOPS_METRICS_PORT: String(metricsPort),
    CLAWLOOPS_RUNTIME_IMAGE: STANDIN_IMAGE,
    CLAWLOOPS_RUNTIME_MEMORY: '256mb',
    CLAWLOOPS_RUNTIME_CPUS: '0.5',
    CLAWLOOPS_RUNTIME_READY_TIMEOUT: '30s',
    CLAWLOOPS_RUNTIME_STOP_TIMEOUT: '3s',
  });
  expect(server.child.logs().some((l) => l.msg === 'Prometheus metrics listening on their own port')).toBe(true);
  const headers = { Cookie: sessionCookie(await login(server, 'admin', ADMIN_PASSWORD)), Origin: server.publicUrl };
  const scrape = async (port = server.port) => {
    const res = await call({ ...server, port }, 'GET', '/metrics', { headers: { Authorization: `Bearer ${TOKEN}` } });
    expect(res.status).toBe(200);
    return parseExposition(res.text);
  };
  const reaches = (state: string, timeoutMs: number) =>
    eventually(async () => (field((await call(server, 'GET', '/api/v1/runtime', { headers })).body, 'state') === state ? true : undefined), `the runtime ${state}`, timeoutMs, 250);

  expect((await call(server, 'GET', '/metrics')).status).toBe(401);
  expect((await call(server, 'POST', '/api/v1/runtime/start', { headers, json: {} })).status).toBe(202);
  await reaches('running', 45_000);
  const running = await scrape();
  expect(sumOf(running, 'clawloops_runtimes', { state: 'running' })).toBe(1);
  expect(sumOf(running, 'clawloops_runtime_operation_duration_seconds_count', { kind: 'start', status: 'succeeded' })).toBe(1);
  expect(sumOf(running, 'clawloops_runtime_operation_duration_seconds_sum', { kind: 'start' })).toBeGreaterThan(0);

  expect((await call(server, 'POST', '/api/v1/runtime/stop', { headers, json: {} })).status).toBe(202);
  await reaches('stopped', 30_000);
  const stopped = await scrape(metricsPort);
  expect(sumOf(stopped, 'clawloops_runtimes', { state: 'stopped' })).toBe(1);
  expect(sumOf(stopped, 'clawloops_runtime_operation_duration_seconds_count', { kind: 'stop', status: 'succeeded' })).toBe(1);
  expect(sumOf(stopped, 'clawloops_http_request_duration_seconds_count', { route_class: 'api' })).toBeGreaterThanOrEqual(4);
  expect(sumOf(stopped, 'process_resident_memory_bytes')).toBeGreaterThan(0);

  await stopServer(server);
  expect(server.child.output).not.toContain(TOKEN);
});

processTest('a metrics port already taken stops the start with a message naming it; a bad token is refused unechoed', async () => {
  const taken = net.createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  const takenPort = (taken.address() as net.AddressInfo).port;
  try {
    const child = spawnMain('metrics port taken', {
      CLAWLOOPS_PORT: String(await freePort()),
      CLAWLOOPS_EGRESS_PORT: String(await freePort()),
      CLAWLOOPS_HOST: '127.0.0.1',
      CLAWLOOPS_DATA_DIR: tempDir(),
      CLAWLOOPS_METRICS_PORT: String(takenPort),
      CLAWLOOPS_METRICS_HOST: '127.0.0.1',
    });
    expect(await child.waitForExit()).toEqual({ code: 1, signal: null });
    expect(child.output).toContain(`the metrics listener cannot listen on 127.0.0.1:${takenPort} (CLAWLOOPS_METRICS_PORT)`);
    expect(child.logs().some((l) => l.msg === 'ClawLoops control plane listening')).toBe(false);
  } finally {
    await new Promise((resolve) => taken.close(resolve));
  }

  const badToken = 'has a space but is long enough';
  const refused = spawnMain('bad metrics token', { CLAWLOOPS_DATA_DIR: path.join(tempDir(), 'data'), CLAWLOOPS_METRICS_TOKEN: badToken });
  expect(await refused.waitForExit()).toEqual({ code: 78, signal: null });
  expect(refused.stderr).toContain('CLAWLOOPS_METRICS_TOKEN');
  expect(refused.output).not.toContain(badToken);
});
