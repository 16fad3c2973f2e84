import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** How the stand-in answers one request: it writes raw HTTP on the socket. */
export type EngineAnswer = (socket: net.Socket, request: string) => unknown;

export interface StandInEngine {
  socketPath: string;
  /** Every request's head, in order. */
  requests: string[];
  answer: EngineAnswer;
  close(): Promise<void>;
}

/**
 * An engine API on a Unix socket of its own that answers each request as `answer` says, in raw
 * HTTP: what the readers of the engine's archive endpoint are tested against (framing, refusals,
 * answers cut short), where the real engine would only ever answer well.
 */
export async function startStandInEngine(): Promise<StandInEngine> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'clawloops-engine-'));
  const engine: StandInEngine = {
    socketPath: path.join(dir, 'engine.sock'),
    requests: [],
    answer: (socket) => socket.end('HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n'),
    close: async () => {
      await new Promise((resolve) => server.close(resolve));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  const server = net.createServer((socket) => {
    let head = '';
    const onData = (chunk: Buffer) => {
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      engine.requests.push(head);
      void engine.answer(socket, head);
    };
    socket.on('data', onData);
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(engine.socketPath, resolve));
  return engine;
}

export const tick = () => new Promise((resolve) => setTimeout(resolve, 1));

/** Answers 200 with `body` chunked, in chunks of the given sizes (cycled), each frame itself split into two writes. */
export async function writeChunked(socket: net.Socket, body: Buffer, sizes: number[]): Promise<void> {
  socket.write('HTTP/1.1 200 OK\r\nContent-Type: application/x-tar\r\nTransfer-Encoding: chunked\r\n\r\n');
  let offset = 0;
  for (let i = 0; offset < body.length; i++) {
    const size = Math.min(sizes[i % sizes.length] ?? 1, body.length - offset);
    const frame = Buffer.concat([Buffer.from(`${size.toString(16)}${i % 3 === 0 ? ';ext=1' : ''}\r\n`), body.subarray(offset, offset + size), Buffer.from('\r\n')]);
    const cut = Math.floor(frame.length / 2);
    socket.write(frame.subarray(0, cut));
    if (i % 50 === 0) await tick();
    socket.write(frame.subarray(cut));
    offset += size;
  }
  socket.end('0\r\nX-Trailer: yes\r\n\r\n');
}

/**
 * An answer that never ends: 200, chunked, `first` (if any) and then random 64 KiB chunks for as
 * long as the reader takes them. `hungUp` resolves once the reader closed the connection.
 */
export function endlessAnswer(first?: Buffer): { answer: EngineAnswer; hungUp: Promise<void> } {
  let hangUp: () => void = () => undefined;
  const hungUp = new Promise<void>((resolve) => (hangUp = resolve));
  const frame = (data: Buffer) => Buffer.concat([Buffer.from(`${data.length.toString(16)}\r\n`), data, Buffer.from('\r\n')]);
  const block = frame(randomBytes(64 * 1024));
  const answer: EngineAnswer = (socket) => {
    socket.on('close', hangUp);
    socket.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n');
    if (first) socket.write(frame(first));
    const more = () => {
      while (!socket.destroyed && socket.write(block));
      if (!socket.destroyed) socket.once('drain', more);
    };
    more();
  };
  return { answer, hungUp };
}
