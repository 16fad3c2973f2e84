/**
 * Log streams against the REAL engine, as a hostile agent would use them: the runtime writes one
 * endless line to its own log (an agent can write to its container's stdout) while the member's
 * browser reads the log stream slowly, or not at all. The control plane must hold a bounded amount
 * of it: lines are cut at a fixed length, and a reader that does not read stops the engine's
 * stream instead of filling the control plane's memory.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import v8 from 'node:v8';
import vm from 'node:vm';
import { MAX_LOG_LINE_BYTES } from '../../src/docker/logLines';
import { STRONG_PASSWORD } from '../support/harness';
import { signInCookie } from '../support/hostClient';
import { SseParser } from '../support/sseParser';
import { engineHarness, eventually, execIn, newInstanceId, tearDown, withDiagnostics, type EngineHarness } from '../support/engine';

jest.setTimeout(180_000);

const instance = newInstanceId();
const MIB = 1024 ** 2;
let h: EngineHarness;
let server: http.Server;
let port: number;
let cookie: string;
let containerId: string;

v8.setFlagsFromString('--expose-gc');
const collectGarbage = vm.runInNewContext('gc') as () => void;
/** Memory the process holds on to (heap and buffers), after a full collection: what is really retained, not what is churned. */
function retainedBytes(): number {
  collectGarbage();
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.external;
}

const it = (name: string, body: () => Promise<void>) => test(name, withDiagnostics(() => instance, () => h.logs.text, body));

/** Writes `mib` MiB to the container's log (PID 1's stdout) as one line with no newline, from inside the runtime as its own user. */
async function writeEndlessLine(mib: number): Promise<void> {
  const script = `const fs=require('fs');const fd=fs.openSync('/proc/1/fd/1','w');const chunk=Buffer.alloc(${MIB},0x78);for(let i=0;i<${mib};i++)fs.writeSync(fd,chunk);fs.writeSync(fd,'\\nafter the endless line\\n');`;
  const result = await execIn(containerId, ['node', '-e', script]);
  if (result.exitCode !== 0) throw new Error(`writer failed: ${result.stderr}`);
}

beforeAll(async () => {
  h = engineHarness({ instance });
  const { client: admin } = await h.setupAdmin();
  const { client: alice } = await h.createMember(admin, 'alice');
  const started = await alice.post('/api/v1/runtime/start');
  await h.platform.runtimes.settled(started.body.runtime.id);
  containerId = (h.platform.db.prepare('SELECT container_id FROM runtimes WHERE id = ?').get(started.body.runtime.id) as { container_id: string }).container_id;
  server = http.createServer(h.platform.app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
  cookie = await signInCookie(port, new URL(h.config.publicOrigin).host, 'alice', STRONG_PASSWORD);
});

afterAll(async () => {
  server.closeAllConnections();
  server.close();
  await tearDown(h);
});

describe('log streams hold a bounded amount whatever the runtime writes', () => {
  it('an endless line read by a client that stops reading: the control plane does not buffer it, and the client gets it cut and marked', async () => {
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port, path: '/api/v1/runtime/logs?follow=1&tail=0', headers: { host: new URL(h.config.publicOrigin).host, cookie } }, resolve).on('error', reject);
    });
    expect(res.statusCode).toBe(200);
    res.pause(); // a browser tab that stopped reading
    const before = retainedBytes();
    await writeEndlessLine(192);
    // The engine has written it all; had the control plane kept it, it would hold ~192 MiB now.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(retainedBytes() - before).toBeLessThan(16 * MIB);

    // Reading again: the endless line arrives cut to the cap and marked, then the next line whole.
    const parser = new SseParser();
    const lines: { line: string; truncated?: boolean }[] = [];
    res.on('data', (chunk: Buffer) => {
      for (const event of parser.push(chunk.toString('utf8'))) if (event.event === 'log') lines.push(JSON.parse(event.data) as { line: string; truncated?: boolean });
    });
    res.resume();
    await eventually(async () => (lines.some((l) => l.line === 'after the endless line') ? true : undefined), 'the line after the endless one');
    res.destroy();
    const endless = lines.filter((l) => l.line.startsWith('xxxx'));
    expect(endless.length).toBeGreaterThanOrEqual(1);
    for (const line of endless) {
      expect(line.truncated).toBe(true);
      expect(Buffer.byteLength(line.line)).toBeLessThanOrEqual(MAX_LOG_LINE_BYTES);
    }
    expect(lines.every((l) => Buffer.byteLength(l.line) <= MAX_LOG_LINE_BYTES)).toBe(true);
  });
});
