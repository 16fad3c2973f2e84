import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { MAX_SCRIPT_BYTES } from '../../src/files/agent/build';
import { FILES_AUTH_HEADER, signRequest } from '../../src/files/agent/requestSigning';
import { nodeStatsServerScript } from '../../src/files/agentScript';
import { MAX_CONTAINERS, parseAnswer, type NodeStatsAnswer } from '../../src/swarm/nodeStats/protocol';
import { createNodeStatsServer } from '../../src/swarm/nodeStats/server';
import { bundleRefusal, startBundle } from '../support/bundledServer';
import { freePort } from '../support/processes';

/**
 * The node-stats server a swarm runs on every node (src/swarm/nodeStats/server.ts): in-process on a
 * fake cgroup v1 tree, and once as its bundle (`node -e <bundle>`), the way the service starts it.
 * It answers only signed requests, only for full container ids, and keeps nothing between them.
 */

const KEY = Buffer.from(randomBytes(32).toString('hex'));
const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const GONE = 'c'.repeat(64);

let root: string;
const servers: http.Server[] = [];
let child: ChildProcess | null = null;

function container(id: string, usage: number, cpuNs: number): void {
  const write = (file: string, content: string) => {
    fs.mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
    fs.writeFileSync(path.join(root, file), content);
  };
  write(`memory/docker/${id}/memory.usage_in_bytes`, `${usage}\n`);
  write(`memory/docker/${id}/memory.stat`, 'total_inactive_file 1000\n');
  write(`memory/docker/${id}/memory.limit_in_bytes`, '268435456\n');
  write(`cpuacct/docker/${id}/cpuacct.usage`, `${cpuNs}\n`);
}

beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'node-stats-'));
  fs.mkdirSync(path.join(root, 'cpuacct'), { recursive: true });
  fs.writeFileSync(path.join(root, 'cpuacct', 'cpuacct.usage'), '1\n');
  container(A, 51_000, 2_000_000_000);
  container(B, 11_000, 5);
});

afterEach(async () => {
  child?.kill();
  child = null;
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
  fs.rmSync(root, { recursive: true, force: true });
});

async function listening(clock = () => 42): Promise<number> {
  const server = createNodeStatsServer({ cgroupRoot: root, key: KEY, nodeMemoryBytes: 8 * 1024 ** 3, monotonicUs: clock, log: () => undefined });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

function call(port: number, target: string, options: { sign?: boolean; header?: string; method?: string } = {}): Promise<{ status: number; body: string }> {
  const method = options.method ?? 'GET';
  const headers: Record<string, string> = {};
  if (options.header) headers[FILES_AUTH_HEADER] = options.header;
  else if (options.sign !== false) headers[FILES_AUTH_HEADER] = signRequest(KEY, method, target, Date.now());
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: target, method, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('answers the named containers with their figures and the moment each CPU time was read', async () => {
  let now = 1_000_000;
  const port = await listening(() => (now += 10));
  const answer = await call(port, `/stats?containers=${A},${B},${GONE}`);
  expect(answer.status).toBe(200);
  const body = JSON.parse(answer.body) as NodeStatsAnswer;
  expect(body.containers).toEqual({
    [A]: { memoryBytes: 50_000, memoryLimitBytes: 268435456, cpuNs: 2_000_000_000, atUs: 1_000_010 },
    [B]: { memoryBytes: 10_000, memoryLimitBytes: 268435456, cpuNs: 5, atUs: 1_000_020 },
    [GONE]: null,
  });
  expect(body.clock).toMatch(/^[0-9a-f]{16}$/);
  // What the control plane accepts of it: the same, for what it asked.
  expect(parseAnswer(body, [A, GONE])).toEqual({ clock: body.clock, containers: { [A]: body.containers[A], [GONE]: null } });
  // Nothing is kept: the next answer reads the files again, on the same clock.
  container(A, 81_000, 3_000_000_000);
  const again = JSON.parse((await call(port, `/stats?containers=${A}`)).body) as NodeStatsAnswer;
  expect(again).toEqual({ clock: body.clock, containers: { [A]: { memoryBytes: 80_000, memoryLimitBytes: 268435456, cpuNs: 3_000_000_000, atUs: 1_000_030 } } });
});

test('refuses what the control plane did not sign, a replay, and anything but full container ids', async () => {
  const port = await listening();
  expect(await call(port, '/healthz', { sign: false })).toEqual({ status: 200, body: 'ok' });
  expect((await call(port, `/stats?containers=${A}`, { sign: false })).status).toBe(401);
  const otherKey = Buffer.from(randomBytes(32).toString('hex'));
  expect((await call(port, `/stats?containers=${A}`, { header: signRequest(otherKey, 'GET', `/stats?containers=${A}`, Date.now()) })).status).toBe(401);
  // Signed for another target: not this one.
  expect((await call(port, `/stats?containers=${B}`, { header: signRequest(KEY, 'GET', `/stats?containers=${A}`, Date.now()) })).status).toBe(401);
  const once = signRequest(KEY, 'GET', `/stats?containers=${A}`, Date.now());
  expect((await call(port, `/stats?containers=${A}`, { header: once })).status).toBe(200);
  expect(JSON.parse((await call(port, `/stats?containers=${A}`, { header: once })).body)).toMatchObject({ error: { code: 'UNAUTHORIZED', message: expect.stringContaining('replayed') } });
  for (const bad of ['../../../etc', A.slice(0, 12), `${A}%2F..`, A.toUpperCase()]) {
    const refused = await call(port, `/stats?containers=${bad}`);
    expect(refused.status).toBe(400);
    expect(JSON.parse(refused.body)).toMatchObject({ error: { code: 'INVALID_CONTAINER' } });
  }
  const many = Array.from({ length: MAX_CONTAINERS + 1 }, (_, i) => i.toString(16).padStart(64, '0')).join(',');
  expect(JSON.parse((await call(port, `/stats?containers=${many}`)).body)).toMatchObject({ error: { code: 'TOO_MANY_CONTAINERS' } });
  expect((await call(port, '/stats', { method: 'POST' })).status).toBe(405);
  expect((await call(port, '/etc/passwd')).status).toBe(404);
});

test('the control plane takes only well-formed figures, and only of what it asked', () => {
  expect(() => parseAnswer({ error: 'x' }, [A])).toThrow('something else than figures');
  expect(() => parseAnswer({ clock: 'c', containers: { [A]: { memoryBytes: -1, memoryLimitBytes: 1, cpuNs: 1, atUs: 1 } } }, [A])).toThrow('malformed');
  expect(parseAnswer({ clock: 'c', containers: { [B]: { memoryBytes: 1, memoryLimitBytes: 1, cpuNs: 1, atUs: 1 } } }, [A])).toEqual({ clock: 'c', containers: { [A]: null } });
});

test('starts as `node -e <bundle>` from its environment, the way the node-stats service runs it', async () => {
  const bundle = await nodeStatsServerScript();
  expect(Buffer.byteLength(bundle)).toBeLessThanOrEqual(MAX_SCRIPT_BYTES);
  const keyFile = path.join(root, 'key');
  fs.writeFileSync(keyFile, `${KEY.toString()}\n`, { mode: 0o600 });
  const port = await freePort();
  child = await startBundle(bundle, { CLAWLOOPS_NODE_STATS_CGROUP: root, CLAWLOOPS_NODE_STATS_KEY_FILE: keyFile, CLAWLOOPS_NODE_STATS_PORT: String(port) });
  expect((await call(port, `/stats?containers=${A}`, { sign: false })).status).toBe(401);
  const body = JSON.parse((await call(port, `/stats?containers=${A}`)).body) as NodeStatsAnswer;
  expect(body.containers[A]).toMatchObject({ memoryBytes: 50_000, cpuNs: 2_000_000_000, atUs: expect.any(Number) });
});

test('refuses to start without a key or a cgroup tree', async () => {
  const bundle = await nodeStatsServerScript();
  const run = (env: Record<string, string>) => bundleRefusal(bundle, env);
  expect(await run({ CLAWLOOPS_NODE_STATS_CGROUP: root })).toMatchObject({ code: 1, stderr: expect.stringContaining('CLAWLOOPS_NODE_STATS_KEY_FILE must name the file holding the key') });
  expect(await run({ CLAWLOOPS_NODE_STATS_CGROUP: '/nonexistent' })).toMatchObject({ code: 1, stderr: expect.stringContaining('CLAWLOOPS_NODE_STATS_CGROUP') });
});
