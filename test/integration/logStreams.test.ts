/**
 * Log streams against the REAL engine, as a hostile agent would use them: the runtime writes one
 * endless line to its own log (an agent can write to its container's stdout) while the member's
 * browser reads the log stream slowly, or not at all. The control plane must hold a bounded amount
 * of it: lines are cut at a fixed length, and a reader that does not read stops the engine's
 * stream instead of filling the control plane's memory.
 */
import http from 'node:http';
import type { TransformCallback } from 'node:stream';
import type { AddressInfo } from 'node:net';
import v8 from 'node:v8';
import vm from 'node:vm';
import { DockerLogLines, MAX_LOG_LINE_BYTES } from '../../src/docker/logLines';
import { STRONG_PASSWORD } from '../support/harness';
import { signInCookie } from '../support/hostClient';
import { SseParser } from '../support/sseParser';
import { engineHarness, eventually, execIn, newInstanceId, tearDown, withDiagnostics, type EngineHarness } from '../support/engine';

jest.setTimeout(180_000);

const instance = newInstanceId();
const MIB = 1024 ** 2;
const ENDLESS_MIB = 128;
const WRITE_PAUSE_MS = 20;
let h: EngineHarness;
let server: http.Server;
let port: number;
let cookie: string;
let containerId: string;

v8.setFlagsFromString('--expose-gc');
const collectGarbage = vm.runInNewContext('gc') as () => void;
/**
 * What the process holds on to, after full collections: what is really retained, not what is
 * churned. Twice, a turn apart: buffers freed by one collection's finalizers are only counted out by
 * the next. The resident size too: the engine's response chunks live outside V8's accounting (a
 * kept chunk shows in neither heapUsed nor external).
 */
async function retained(): Promise<{ jsBytes: number; residentBytes: number }> {
  collectGarbage();
  await new Promise((resolve) => setImmediate(resolve));
  collectGarbage();
  const usage = process.memoryUsage();
  return { jsBytes: usage.heapUsed + usage.external, residentBytes: usage.rss };
}

const it = (name: string, body: () => Promise<void>) => test(name, withDiagnostics(() => instance, () => h.logs.text, body));

/**
 * Writes `mib` MiB to the container's log (PID 1's stdout) as one line with no newline, then
 * `text`, from inside the runtime as its own user. Paced (a pause per MiB): the engine rotates
 * the log every 10 MB, and a burst faster than its follower reads loses the follower altogether.
 */
async function writeToLog(mib: number, text: string): Promise<void> {
  const script = `const fs=require('fs');const fd=fs.openSync('/proc/1/fd/1','w');const chunk=Buffer.alloc(${MIB},0x78);const pause=new Int32Array(new SharedArrayBuffer(4));for(let i=0;i<${mib};i++){fs.writeSync(fd,chunk);Atomics.wait(pause,0,0,${WRITE_PAUSE_MS});}fs.writeSync(fd,${JSON.stringify(text)});`;
  const result = await execIn(containerId, ['node', '-e', script]);
  if (result.exitCode !== 0) throw new Error(`writer failed: ${result.stderr}`);
}

/** What the control plane has read of the engine's log streams (frame headers included). */
let engineBytesRead = 0;
// Counted by wrapping, not by jest.spyOn: a mock records its calls and would keep every chunk.
const transform = DockerLogLines.prototype._transform;
DockerLogLines.prototype._transform = function (this: DockerLogLines, chunk: Buffer, encoding: BufferEncoding, done: TransformCallback) {
  engineBytesRead += chunk.length;
  transform.call(this, chunk, encoding, done);
};

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

function openLog(path: string): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path, headers: { host: new URL(h.config.publicOrigin).host, cookie } }, resolve).on('error', reject);
  });
}

/** The log lines of an event stream, as they arrive (the stream is left paused or flowing as it is). */
function collectLogLines(res: http.IncomingMessage): { line: string; truncated?: boolean }[] {
  const parser = new SseParser();
  const lines: { line: string; truncated?: boolean }[] = [];
  res.on('data', (chunk: Buffer) => {
    for (const event of parser.push(chunk.toString('utf8'))) if (event.event === 'log') lines.push(JSON.parse(event.data) as { line: string; truncated?: boolean });
  });
  return lines;
}

describe('log streams hold a bounded amount whatever the runtime writes', () => {
  it('an endless line read by a client that stops reading: the control plane does not buffer it, and the client gets it cut and marked', async () => {
    const res = await openLog('/api/v1/runtime/logs?follow=1&tail=0');
    expect(res.statusCode).toBe(200);
    res.pause(); // a browser tab that stopped reading
    const before = await retained();
    await writeToLog(ENDLESS_MIB, '\n');
    // The rest of a cut line is read and dropped, so the line flows into the control plane even
    // though the client reads nothing, until the engine has no more. Measured once the flow has
    // stopped: while it flows, chunks not yet
    // freed are tens of MiB of garbage. Had the control plane kept what it read, it would hold
    // over 64 MiB more now.
    let lastRead = -1;
    await eventually(() => {
      const settled = engineBytesRead === lastRead;
      lastRead = engineBytesRead;
      return settled ? true : undefined;
    }, 'the engine to stop sending the line', 60_000, 2_000);
    expect(engineBytesRead).toBeGreaterThan(64 * MIB);
    const after = await retained();
    expect(after.jsBytes - before.jsBytes).toBeLessThan(16 * MIB);
    // The allocator keeps some freed pages (~25 MiB here after ~135 MB read); a kept line would be well over 100 MiB.
    expect(after.residentBytes - before.residentBytes).toBeLessThan(64 * MIB);

    // Reading again: the endless line arrives cut to the cap and marked.
    const lines = collectLogLines(res);
    res.resume();
    await eventually(() => (lines.some((l) => l.truncated) ? true : undefined), 'the cut line');
    res.destroy();
    const endless = lines.filter((l) => l.line.startsWith('xxxx'));
    expect(endless.length).toBeGreaterThanOrEqual(1);
    for (const line of endless) {
      expect(line.truncated).toBe(true);
      expect(Buffer.byteLength(line.line)).toBeLessThanOrEqual(MAX_LOG_LINE_BYTES);
    }
    expect(lines.every((l) => Buffer.byteLength(l.line) <= MAX_LOG_LINE_BYTES)).toBe(true);

    // Then the next line whole, read afresh: this engine's follower (Docker 20.10, json-file) can
    // stop following after rotating away most of such a burst (moby/moby#37646), so a reader that
    // opens the log again is what a member does, and gets.
    await writeToLog(0, '\nafter the endless line\n');
    const tail = await eventually(async () => {
      const fresh = await openLog('/api/v1/runtime/logs?tail=2');
      const read = collectLogLines(fresh);
      await new Promise((resolve) => fresh.on('end', resolve));
      return read.some((l) => l.line === 'after the endless line') ? read : undefined;
    }, 'the line after the endless one');
    expect(tail.every((l) => Buffer.byteLength(l.line) <= MAX_LOG_LINE_BYTES)).toBe(true);
  });
});
