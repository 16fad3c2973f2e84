/**
 * The lean reader of the engine's archive endpoint, against a stand-in engine on a Unix socket
 * that answers as raw HTTP (chunked in awkward pieces, by length, or to the end of the
 * connection): the tar comes through byte for byte, refusals keep the engine's status and words,
 * and an answer cut short or a stop never passes for a complete archive.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { readEngineArchive } from '../../src/docker/engineArchiveRead';
import { endlessAnswer, startStandInEngine, tick, writeChunked, type StandInEngine } from '../support/standInEngine';

let engine: StandInEngine;
beforeEach(async () => {
  engine = await startStandInEngine();
});
afterEach(() => engine.close());

const request = (containerId = 'c', path = '/x') => ({ socketPath: engine.socketPath, apiVersion: 'v1.41', containerId, path });
const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** The whole archive, or the fault, whether it came before the stream was handed over or during it. */
const fetchAll = (): Promise<Buffer> => readEngineArchive(request()).then((stream) => readAll(stream as Readable));

async function readAll(stream: Readable, slowly = false): Promise<Buffer> {
  // A reader that starts late: the stream fills up and must stop reading the engine, then go on.
  if (slowly) await new Promise((resolve) => setTimeout(resolve, 300));
  const chunks: Buffer[] = [];
  for await (const chunk of stream) {
    chunks.push(chunk as Buffer);
    if (slowly) await tick();
  }
  return Buffer.concat(chunks);
}

test('a chunked archive comes through byte for byte, whatever its chunks and however slowly it is read', async () => {
  const body = randomBytes(24 * 1024 * 1024 + 123);
  engine.answer = (socket) => writeChunked(socket, body, [1, 7, 32 * 1024, 3, 70_000, 1024 * 1024 + 5]);
  const stream = await readEngineArchive(request('c0ffee', '/home/node/.openclaw'));
  expect(stream).not.toBeNull();
  const read = await readAll(stream as Readable, true);
  expect([read.length, sha(read)]).toEqual([body.length, sha(body)]);
  expect(engine.requests[0]).toMatch(/^GET \/v1\.41\/containers\/c0ffee\/archive\?path=%2Fhome%2Fnode%2F.openclaw HTTP\/1\.1\r\n/);
});

test('an archive sent with its length, or to the end of the connection, comes through too', async () => {
  const body = randomBytes(3 * 1024 * 1024 + 1);
  engine.answer = (socket) => {
    socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n`);
    socket.end(body);
  };
  expect(sha(await readAll((await readEngineArchive(request())) as Readable))).toBe(sha(body));
  engine.answer = (socket) => {
    socket.write('HTTP/1.0 200 OK\r\n\r\n');
    socket.write(body.subarray(0, 1000));
    socket.end(body.subarray(1000));
  };
  expect(sha(await readAll((await readEngineArchive(request())) as Readable))).toBe(sha(body));
  engine.answer = (socket) => socket.end('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
  expect((await readAll((await readEngineArchive(request())) as Readable)).length).toBe(0);
});

test('nothing there is null; any other refusal keeps the engine status and its words', async () => {
  engine.answer = (socket) => socket.end('HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 48\r\n\r\n{"message":"Could not find the file /x in c"}\n   ');
  expect(await readEngineArchive(request())).toBeNull();
  const said = '{"message":"container c is being removed"}';
  engine.answer = (socket) => socket.end(`HTTP/1.1 409 Conflict\r\nTransfer-Encoding: chunked\r\n\r\n${said.length.toString(16)}\r\n${said}\r\n0\r\n\r\n`);
  await expect(readEngineArchive(request())).rejects.toMatchObject({ statusCode: 409, json: { message: 'container c is being removed' } });
});

test('an archive cut short fails the stream instead of ending it', async () => {
  const body = randomBytes(2 * 1024 * 1024);
  engine.answer = (socket) => {
    socket.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n');
    socket.write(`${body.length.toString(16)}\r\n`);
    socket.end(body.subarray(0, body.length / 2));
  };
  await expect(fetchAll()).rejects.toThrow('before its end');
  engine.answer = (socket) => {
    socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n`);
    socket.end(body.subarray(0, 10));
  };
  await expect(fetchAll()).rejects.toThrow('before its end');
  engine.answer = (socket) => socket.end('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n');
  await expect(fetchAll()).rejects.toThrow('malformed');
  engine.answer = (socket) => socket.destroy();
  await expect(readEngineArchive(request())).rejects.toThrow('without answering');
});

test('a stop ends the stream with its reason and hangs up on the engine', async () => {
  const endless = endlessAnswer();
  engine.answer = endless.answer;
  const stop = new AbortController();
  const stream = (await readEngineArchive(request(), stop.signal)) as Readable;
  let got = 0;
  stream.on('data', (chunk: Buffer) => {
    got += chunk.length;
    if (got >= 8 * 1024 * 1024) stop.abort(new Error('the workspace is being removed'));
  });
  await expect(new Promise((resolve, reject) => stream.on('end', resolve).on('error', reject))).rejects.toThrow('the workspace is being removed');
  await endless.hungUp;
  const stopped = new AbortController();
  stopped.abort(new Error('already stopped'));
  await expect(readEngineArchive(request(), stopped.signal)).rejects.toThrow('already stopped');
});
