/**
 * The relay between a browser and its runtime, against a runtime that closes a kept-alive
 * connection just as the next request goes out on it (the race a loaded machine hits when a
 * runtime drops idle connections): a request without a body still gets the runtime's answer,
 * and one with a body is never sent twice.
 */
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { relayRequest } from '../../src/http/workspace/runtimeRelay';
import { KEPT_ALIVE_IDLE_MS } from '../../src/lib/keptAlive';

interface FakeRuntime {
  port: number;
  connections: number;
  requests: string[];
  close(): Promise<void>;
}

/** Answers the first request on each connection (keeping it alive), then hangs up on any later one unread. */
async function startRuntimeDroppingReusedConnections(): Promise<FakeRuntime> {
  const sockets = new Set<net.Socket>();
  const runtime: FakeRuntime = { port: 0, connections: 0, requests: [], close: async () => undefined };
  const server = net.createServer((socket) => {
    runtime.connections += 1;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    let answered = false;
    let pending = '';
    socket.on('data', (chunk: Buffer) => {
      if (answered) {
        socket.destroy();
        return;
      }
      pending += chunk.toString('latin1');
      if (!pending.includes('\r\n\r\n')) return;
      const head = pending.slice(0, pending.indexOf('\r\n\r\n'));
      runtime.requests.push(head.split('\r\n')[0] ?? '');
      answered = true;
      const body = `connection ${runtime.connections}`;
      socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\n${body}`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  runtime.port = (server.address() as AddressInfo).port;
  runtime.close = () =>
    new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    });
  return runtime;
}

let runtime: FakeRuntime;
let platform: http.Server;
let platformPort: number;
let agent: http.Agent;
const relayErrors: string[] = [];

beforeEach(async () => {
  relayErrors.length = 0;
  runtime = await startRuntimeDroppingReusedConnections();
  agent = new http.Agent({ keepAlive: true, maxSockets: 1, timeout: KEPT_ALIVE_IDLE_MS });
  platform = http.createServer((req, res) => {
    relayRequest(req, res, { host: '127.0.0.1', port: runtime.port }, { ...req.headers }, { agent, onError: (err) => relayErrors.push(err.message) });
  });
  await new Promise<void>((resolve) => platform.listen(0, '127.0.0.1', resolve));
  platformPort = (platform.address() as AddressInfo).port;
});

afterEach(async () => {
  agent.destroy();
  platform.closeAllConnections();
  await new Promise((resolve) => platform.close(resolve));
  await runtime.close();
});

function ask(method: string, body?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: platformPort, method, path: '/assets/chunk.js', agent: false, headers: body === undefined ? {} : { 'content-length': Buffer.byteLength(body) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

test('a GET that meets a connection the runtime just closed is sent again on a new one and answered', async () => {
  expect(await ask('GET')).toEqual({ status: 200, body: 'connection 1' });
  // The pooled connection is reused, the runtime hangs up on it unread: the browser still gets the runtime's answer.
  expect(await ask('GET')).toEqual({ status: 200, body: 'connection 2' });
  expect(relayErrors).toEqual([]);
  expect(runtime.requests).toEqual(['GET /assets/chunk.js HTTP/1.1', 'GET /assets/chunk.js HTTP/1.1']);
});

test('a request with a body is never replayed: the browser is told the workspace did not answer', async () => {
  expect(await ask('GET')).toEqual({ status: 200, body: 'connection 1' });
  const answer = await ask('POST', '{"message":"send once"}');
  expect(answer.status).toBe(502);
  expect(JSON.parse(answer.body)).toEqual({ error: { code: 'RUNTIME_UNREACHABLE', message: expect.stringContaining('did not answer') } });
  expect(relayErrors).toHaveLength(1);
  expect(runtime.connections).toBe(1);
});

test('a runtime that is not listening answers 502 once, without a retry loop', async () => {
  await runtime.close();
  const answer = await ask('GET');
  expect(answer.status).toBe(502);
  expect(relayErrors).toHaveLength(1);
});
