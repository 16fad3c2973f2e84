/**
 * The egress proxy's cost, every figure next to a baseline of the same run, no Docker:
 *
 *   direct        a client process downloads BENCH_EGRESS_MIB (1024) MiB from a web server
 *                 process on this machine ("the internet"): THE baseline
 *   tunnel        the same download through the egress proxy with CONNECT, as OpenClaw's
 *                 web_fetch and Node's fetch (undici) go through it, even for http://
 *   forward       the same through the proxy as a plain http:// request (absolute form, as curl)
 *   relay         the same through socat (Debian's, when installed) forwarding a port to the
 *                 server: the least any process relaying the bytes costs on this machine, a
 *                 reference for the proxy (it has no policy, no record, no CONNECT)
 *   latency       a fresh connection and one small request each, direct vs through the proxy
 *                 (CONNECT): time to the first byte of the answer, medians over BENCH_SAMPLES (300)
 *
 * The proxy is the production EgressProxy (its policy, its record) in this process; the client
 * and the server are processes of their own, as the runtime and the outside are.
 * The headline ratio is the median of the rounds' own ratios (both paths measured back to back).
 * Usage: npx tsx bench/egress.ts   Env: BENCH_EGRESS_MIB (1024), BENCH_ROUNDS (5), BENCH_SAMPLES (300).
 */
import { execFileSync, fork, spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EgressPolicy } from '../src/egress/egressPolicy';
import { EgressProxy, type EgressOutcome } from '../src/egress/egressProxy';
import { createLogger } from '../src/lib/logger';
import { knob, machineNote, p50, ratio, table } from './support';

const MIBS = knob('BENCH_EGRESS_MIB', 1024);
const ROUNDS = knob('BENCH_ROUNDS', 5);
const SAMPLES = knob('BENCH_SAMPLES', 300);
const WORLD_NAME = 'world.bench.example';

/** "The internet": answers /big with MIBS MiB (one reused buffer, no disk) and /small with a few bytes. */
const WORLD = `
const http = require('http');
const chunk = Buffer.alloc(1024 * 1024, 7);
const server = http.createServer((req, res) => {
  if (req.url === '/small') return res.end('ok');
  res.setHeader('content-length', String(${MIBS} * chunk.length));
  let left = ${MIBS};
  const more = () => { while (left > 0) { left--; if (!res.write(chunk)) return res.once('drain', more); } res.end(); };
  more();
});
server.keepAliveTimeout = 0;
server.listen(0, '127.0.0.1', () => process.send(server.address().port));
`;

/**
 * "The runtime": downloads or probes as told, reports bytes and milliseconds. Modes: direct,
 * tunnel (CONNECT through the proxy, then the request inside), forward (absolute-form request
 * to the proxy).
 */
const CLIENT = `
const http = require('http');
const net = require('net');
process.on('message', async ({ mode, worldPort, proxyPort, relayPort, path, samples }) => {
  const target = '${WORLD_NAME}:' + worldPort;
  const socketFor = () => new Promise((resolve, reject) => {
    if (mode !== 'tunnel') return resolve(null);
    const s = net.connect(proxyPort, '127.0.0.1', () => s.write('CONNECT ' + target + ' HTTP/1.1\\r\\nHost: ' + target + '\\r\\n\\r\\n'));
    let head = '';
    const onData = (d) => {
      head += d.toString('latin1');
      const end = head.indexOf('\\r\\n\\r\\n');
      if (end < 0) return;
      s.off('data', onData);
      if (!head.startsWith('HTTP/1.1 200')) return reject(new Error(head.split('\\r\\n')[0]));
      resolve(s);
    };
    s.on('data', onData);
    s.on('error', reject);
  });
  const once = async () => {
    const started = performance.now();
    const socket = await socketFor();
    return new Promise((resolve, reject) => {
      const options = mode === 'forward'
        ? { host: '127.0.0.1', port: proxyPort, path: 'http://' + target + path, headers: { host: target } }
        : mode === 'tunnel'
          ? { createConnection: () => socket, path, headers: { host: target } }
          : { host: '127.0.0.1', port: mode === 'relay' ? relayPort : worldPort, path };
      // A fresh connection every time: the tunnel is one by itself, the others get no agent.
      const req = http.get(mode === 'tunnel' ? options : { ...options, agent: false }, (res) => {
        let bytes = 0;
        let firstByte = null;
        res.on('data', (c) => { if (firstByte === null) firstByte = performance.now() - started; bytes += c.length; });
        res.on('end', () => { socket?.destroy(); resolve({ bytes, ms: performance.now() - started, firstByteMs: firstByte ?? performance.now() - started, status: res.statusCode }); });
      });
      req.on('error', reject);
    });
  };
  try {
    const results = [];
    for (let i = 0; i < samples; i++) results.push(await once());
    process.send({ results });
  } catch (err) {
    process.send({ error: err.message });
  }
});
process.send('ready');
`;

function child(script: string): { process: ChildProcess; next: () => Promise<unknown> } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'clawloops-bench-egress-'));
  const file = path.join(dir, 'child.cjs');
  fs.writeFileSync(file, script);
  const proc = fork(file, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const queue: unknown[] = [];
  const waiting: ((value: unknown) => void)[] = [];
  proc.on('message', (message) => {
    const waiter = waiting.shift();
    if (waiter) waiter(message);
    else queue.push(message);
  });
  proc.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  return { process: proc, next: () => (queue.length > 0 ? Promise.resolve(queue.shift()) : new Promise((resolve) => waiting.push(resolve))) };
}

/** socat forwarding a free local port to the server, with large buffers; null when socat is not installed. */
async function startSocatRelay(worldPort: number): Promise<{ port: number; process: ChildProcess } | null> {
  try {
    execFileSync('socat', ['-V'], { stdio: 'ignore' });
  } catch {
    return null;
  }
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise((resolve) => probe.close(resolve));
  const proc = spawn('socat', ['-b', '262144', `TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr,fork`, `TCP:127.0.0.1:${worldPort}`], { stdio: 'ignore' });
  for (let tries = 0; tries < 100; tries++) {
    const up = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => (s.destroy(), resolve(true)));
      s.on('error', () => resolve(false));
    });
    if (up) return { port, process: proc };
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  proc.kill();
  throw new Error('socat did not start listening');
}

interface Sample {
  bytes: number;
  ms: number;
  firstByteMs: number;
  status: number;
}

async function main(): Promise<void> {
  console.log(await machineNote());
  const world = child(WORLD);
  const worldPort = (await world.next()) as number;
  const recorded: EgressOutcome[] = [];
  const proxy = new EgressProxy({
    identify: () => ({ userId: 'bench-user', username: 'bench' }),
    // The world is on loopback: allowed by name, as an administrator allows a private service.
    policy: () => new EgressPolicy({ profile: 'public', allow: [WORLD_NAME], deny: [] }),
    resolve: async () => ['127.0.0.1'],
    record: (outcome) => recorded.push(outcome),
    logger: createLogger('silent'),
  });
  const proxyPort = await proxy.listen(0, '127.0.0.1');
  const relay = await startSocatRelay(worldPort);
  const client = child(CLIENT);
  await client.next();
  const run = async (mode: string, pathName: string, samples: number): Promise<Sample[]> => {
    client.process.send({ mode, worldPort, proxyPort, relayPort: relay?.port, path: pathName, samples });
    const answer = (await client.next()) as { results?: Sample[]; error?: string };
    if (!answer.results) throw new Error(`${mode}: ${answer.error}`);
    return answer.results;
  };
  try {
    const downloads: Record<string, number[]> = { direct: [], tunnel: [], forward: [], relay: [] };
    const modes = relay ? (['direct', 'tunnel', 'forward', 'relay'] as const) : (['direct', 'tunnel', 'forward'] as const);
    for (let round = 0; round < ROUNDS; round++) {
      for (const mode of modes) {
        const [sample] = await run(mode, '/big', 1);
        if (!sample || sample.bytes !== MIBS * 1024 * 1024) throw new Error(`${mode}: got ${sample?.bytes} bytes (status ${sample?.status})`);
        downloads[mode]?.push(sample.ms);
      }
      console.log(`  round ${round + 1}/${ROUNDS}: direct ${Math.round(downloads.direct?.[round] ?? 0)} ms, tunnel ${Math.round(downloads.tunnel?.[round] ?? 0)} ms, forward ${Math.round(downloads.forward?.[round] ?? 0)} ms${relay ? `, socat ${Math.round(downloads.relay?.[round] ?? 0)} ms` : ''}`);
    }
    const mbps = (ms: number) => MIBS / (ms / 1000);
    const direct = p50(downloads.direct ?? []);
    const tunnel = p50(downloads.tunnel ?? []);
    const forward = p50(downloads.forward ?? []);
    console.log(`\n## A ${MIBS} MiB download, ${ROUNDS} rounds, medians\n`);
    console.log(
      table([
        ['path', 'time', 'MiB/s', 'vs direct'],
        ['direct  [baseline]', `${Math.round(direct)} ms`, mbps(direct).toFixed(0), '1.00'],
        ['through the proxy, CONNECT (web_fetch, Node fetch)', `${Math.round(tunnel)} ms`, mbps(tunnel).toFixed(0), ratio(mbps(tunnel), mbps(direct))],
        ['through the proxy, plain http (curl)', `${Math.round(forward)} ms`, mbps(forward).toFixed(0), ratio(mbps(forward), mbps(direct))],
        ...(relay ? [['through socat, a bare relay (reference)', `${Math.round(p50(downloads.relay ?? []))} ms`, mbps(p50(downloads.relay ?? [])).toFixed(0), ratio(mbps(p50(downloads.relay ?? [])), mbps(direct))]] : []),
      ]),
    );

    const directLatency = (await run('direct', '/small', SAMPLES)).map((s) => s.firstByteMs);
    const tunnelLatency = (await run('tunnel', '/small', SAMPLES)).map((s) => s.firstByteMs);
    console.log(`\n## A new connection and one small request, ${SAMPLES} samples, time to the first byte\n`);
    console.log(
      table([
        ['path', 'p50', 'added'],
        ['direct  [baseline]', `${p50(directLatency).toFixed(2)} ms`, '-'],
        ['through the proxy (CONNECT, lookup, policy, record)', `${p50(tunnelLatency).toFixed(2)} ms`, `+${(p50(tunnelLatency) - p50(directLatency)).toFixed(2)} ms`],
      ]),
    );
    // Each round measures both back to back: the ratio within a round is what the machine's
    // drifting speed (here it swung 0.45-6.7 s for the same direct GiB) disturbs least.
    const paired = p50((downloads.direct ?? []).map((ms, i) => ms / (downloads.tunnel?.[i] ?? Number.NaN)));
    console.log(`\nthrough the proxy (CONNECT) vs direct within each round: ${(downloads.direct ?? []).map((ms, i) => `${Math.round((ms / (downloads.tunnel?.[i] ?? Number.NaN)) * 100)} %`).join(', ')}; median ${(paired * 100).toFixed(0)} %`);
    const share = paired;
    console.log(`\ndownload through the proxy: ${(share * 100).toFixed(0)} % of direct (target ≥ 70 %: ${share >= 0.7 ? 'MET' : 'MISSED'}); added latency per connection ${(p50(tunnelLatency) - p50(directLatency)).toFixed(2)} ms (p50)`);
    if (relay) {
      const bare = p50((downloads.direct ?? []).map((ms, i) => ms / (downloads.relay?.[i] ?? Number.NaN)));
      const againstBare = p50((downloads.relay ?? []).map((ms, i) => ms / (downloads.tunnel?.[i] ?? Number.NaN)));
      console.log(`socat, relaying and nothing else, vs direct within each round: median ${(bare * 100).toFixed(0)} %; the proxy (CONNECT) vs socat: median ${(againstBare * 100).toFixed(0)} %`);
    }
    console.log(`the proxy recorded ${recorded.length} connections`);
  } finally {
    client.process.kill();
    world.process.kill();
    relay?.process.kill();
    await proxy.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
