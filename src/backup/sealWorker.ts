import fs from 'node:fs';
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parentPort, workerData } from 'node:worker_threads';
import { AgeEncrypt } from './ageFormat';
import { Tally } from './tally';
import type { SealRequest, SealerMessage, SealResult } from './sealProtocol';

/**
 * Runs in a worker thread (sealedParts.ts starts it): encrypts the plaintext it is sent into
 * `file`, counting and hashing as it goes, so that a backup's ChaCha20-Poly1305, SHA-256 and disk
 * writes run on the machine's other core while the control plane's own thread reads the engine.
 * Each chunk is acknowledged once taken, which is how the sender keeps only a few in flight.
 */
const port = parentPort;
if (!port) throw new Error('sealWorker runs only as a worker thread');
const { file, recipient } = workerData as SealRequest;
const input = new PassThrough({ highWaterMark: 4 * 1024 * 1024 });
const plain = new Tally(false);
const sealed = new Tally();
const post = (message: SealerMessage) => port.postMessage(message);

pipeline(input, plain, new AgeEncrypt(Buffer.from(recipient)), sealed, fs.createWriteStream(file, { flags: 'wx', mode: 0o600, highWaterMark: 4 * 1024 * 1024 })).then(
  () => post({ type: 'done', result: { plainBytes: plain.bytes, bytes: sealed.bytes, sha256: sealed.digest() } satisfies SealResult }),
  (err: unknown) => post({ type: 'failed', message: (err as Error).message }),
);

port.on('message', (message: { type: 'chunk'; data: Uint8Array } | { type: 'end' } | { type: 'abort' }) => {
  if (message.type === 'chunk') {
    if (input.write(Buffer.from(message.data.buffer, message.data.byteOffset, message.data.byteLength))) post({ type: 'ack' });
    else input.once('drain', () => post({ type: 'ack' }));
  } else if (message.type === 'end') input.end();
  else input.destroy(new Error('the backup was abandoned'));
});
