/**
 * The lean reader of the engine's archive endpoint, against a stand-in engine on a Unix socket
 * that answers as raw HTTP (chunked in awkward pieces, by length, or to the end of the
 * connection): the tar comes through byte for byte, refusals keep the engine's status and words,
 * and an answer cut short or a stop never passes for a complete archive.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { readEngineArchive } from '../../src/docker/engineArchiveRead';

type Answer = (socket: net.Socket, request: string) => unknown;

let dir: string;
let socketPath: string;
let server: net.Server;
let answer: Answer;
const requests: string[] = [];

beforeEach(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'clawloops-engine-archive-'));
  socketPath = path.join(dir, 'engine.sock');
  requests.length = 0;
  server = net.createServer((socket) => {
    let head = '';
    const onData = (chunk: Buffer) => {
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      requests.push(head);
      void answer(socket, head);
    };
    socket.on('data', onData);
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
});

afterEach(async () => {
  await new Promise((resolve) => server.close(resolve));
  fs.rmSync(dir, { recursive: true, force: true });
});

const engine = () => ({ socketPath, version: 'v1.41' });
const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const pause = () => new Promise((resolve) => setTimeout(resolve, 1));

/** The whole archive, or the fault, whether it came before the stream was handed over or during it. */
const fetchAll = (): Promise<Buffer> => readEngineArchive(engine(), 'c', '/x').then((stream) => readAll(stream as Readable));

async function readAll(stream: Readable, slowly = false): Promise<Buffer> {
  // A reader that starts late: the stream fills up and must stop reading the engine, then go on.
  if (slowly) await new Promise((resolve) => setTimeout(resolve, 300));
  const chunks: Buffer[] = [];
  for await (const chunk of stream) {
    chunks.push(chunk as Buffer);
    if (slowly) await pause();
  }
  return Buffer.concat(chunks);
}

/** Writes `body` chunked, in chunks of the given sizes (cycled), each frame itself split into small writes. */
async function writeChunked(socket: net.Socket, body: Buffer, sizes: number[]): Promise<void> {
  socket.write('HTTP/1.1 200 OK\r\nContent-Type: application/x-tar\r\nTransfer-Encoding: chunked\r\n\r\n');
  let offset = 0;
  for (let i = 0; offset < body.length; i++) {
    const size = Math.min(sizes[i % sizes.length] ?? 1, body.length - offset);
    const frame = Buffer.concat([Buffer.from(`${size.toString(16)}${i % 3 === 0 ? ';ext=1' : ''}\r\n`), body.subarray(offset, offset + size), Buffer.from('\r\n')]);
    const cut = Math.floor(frame.length / 2);
    socket.write(frame.subarray(0, cut));
    if (i % 50 === 0) await pause();
    socket.write(frame.subarray(cut));
    offset += size;
  }
  socket.end('0\r\nX-Trailer: yes\r\n\r\n');
}

test('a chunked archive comes through byte for byte, whatever its chunks and however slowly it is read', async () => {
  const body = randomBytes(24 * 1024 * 1024 + 123);
  answer = (socket) => writeChunked(socket, body, [1, 7, 32 * 1024, 3, 70_000, 1024 * 1024 + 5]);
  const stream = await readEngineArchive(engine(), 'c0ffee', '/home/node/.openclaw');
  expect(stream).not.toBeNull();
  const read = await readAll(stream as Readable, true);
  expect([read.length, sha(read)]).toEqual([body.length, sha(body)]);
  expect(requests[0]).toMatch(/^GET \/v1\.41\/containers\/c0ffee\/archive\?path=%2Fhome%2Fnode%2F.openclaw HTTP\/1\.1\r\n/);
});

test('an archive sent with its length, or to the end of the connection, comes through too', async () => {
  const body = randomBytes(3 * 1024 * 1024 + 1);
  answer = (socket) => {
    socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n`);
    socket.end(body);
  };
  expect(sha(await readAll((await readEngineArchive(engine(), 'c', '/x')) as Readable))).toBe(sha(body));
  answer = (socket) => {
    socket.write('HTTP/1.0 200 OK\r\n\r\n');
    socket.write(body.subarray(0, 1000));
    socket.end(body.subarray(1000));
  };
  expect(sha(await readAll((await readEngineArchive(engine(), 'c', '/x')) as Readable))).toBe(sha(body));
  answer = (socket) => socket.end('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
  expect((await readAll((await readEngineArchive(engine(), 'c', '/x')) as Readable)).length).toBe(0);
});

test('nothing there is null; any other refusal keeps the engine status and its words', async () => {
  answer = (socket) => socket.end('HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 48\r\n\r\n{"message":"Could not find the file /x in c"}\n   ');
  expect(await readEngineArchive(engine(), 'c', '/x')).toBeNull();
  const said = '{"message":"container c is being removed"}';
  answer = (socket) => socket.end(`HTTP/1.1 409 Conflict\r\nTransfer-Encoding: chunked\r\n\r\n${said.length.toString(16)}\r\n${said}\r\n0\r\n\r\n`);
  await expect(readEngineArchive(engine(), 'c', '/x')).rejects.toMatchObject({ statusCode: 409, json: { message: 'container c is being removed' } });
});

test('an archive cut short fails the stream instead of ending it', async () => {
  const body = randomBytes(2 * 1024 * 1024);
  answer = (socket) => {
    socket.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n');
    socket.write(`${body.length.toString(16)}\r\n`);
    socket.end(body.subarray(0, body.length / 2));
  };
  await expect(fetchAll()).rejects.toThrow('before its end');
  answer = (socket) => {
    socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n`);
    socket.end(body.subarray(0, 10));
  };
  await expect(fetchAll()).rejects.toThrow('before its end');
  answer = (socket) => socket.end('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n');
  await expect(fetchAll()).rejects.toThrow('malformed');
  answer = (socket) => socket.destroy();
  await expect(readEngineArchive(engine(), 'c', '/x')).rejects.toThrow('without answering');
});

test('a stop ends the stream with its reason and hangs up on the engine', async () => {
  let hungUp: () => void = () => undefined;
  const closed = new Promise<void>((resolve) => (hungUp = resolve));
  answer = (socket) => {
    socket.on('close', hungUp);
    socket.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n');
    const block = randomBytes(64 * 1024);
    const frame = Buffer.concat([Buffer.from(`${block.length.toString(16)}\r\n`), block, Buffer.from('\r\n')]);
    const more = () => {
      while (!socket.destroyed && socket.write(frame));
      if (!socket.destroyed) socket.once('drain', more);
    };
    more();
  };
  const stop = new AbortController();
  const stream = (await readEngineArchive(engine(), 'c', '/x', stop.signal)) as Readable;
  let got = 0;
  stream.on('data', (chunk: Buffer) => {
    got += chunk.length;
    if (got >= 8 * 1024 * 1024) stop.abort(new Error('the workspace is being removed'));
  });
  await expect(new Promise((resolve, reject) => stream.on('end', resolve).on('error', reject))).rejects.toThrow('the workspace is being removed');
  await closed;
  const stopped = new AbortController();
  stopped.abort(new Error('already stopped'));
  await expect(readEngineArchive(engine(), 'c', '/x', stopped.signal)).rejects.toThrow('already stopped');
});
