import fs from 'node:fs';
import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parentPort } from 'node:worker_threads';
import { AgeEncrypt } from './ageFormat';
import { Tally } from './tally';
import type { SealerMessage, SealerRequest } from './sealProtocol';

/**
 * Runs in a worker thread (sealedParts.ts starts one and keeps it): encrypts the plaintext of one
 * part at a time into its file, counting and hashing as it goes, so that a backup's
 * ChaCha20-Poly1305, SHA-256 and disk writes run on the machine's other core while the control
 * plane's own thread reads the engine. Each chunk is acknowledged once taken, which is how the
 * sender keeps only a few in flight.
 */
const port = parentPort;
if (!port) throw new Error('sealWorker runs only as a worker thread');
const BUFFER = 1024 * 1024;
const post = (message: SealerMessage) => port.postMessage(message);
let input: PassThrough | null = null;

port.on('message', (message: SealerRequest) => {
  switch (message.type) {
    case 'begin': {
      const current = new PassThrough({ highWaterMark: BUFFER });
      input = current;
      const plain = new Tally(false, BUFFER);
      const sealed = new Tally(true, BUFFER);
      pipeline(current, plain, new AgeEncrypt(Buffer.from(message.recipient), BUFFER), sealed, fs.createWriteStream(message.file, { flags: 'wx', mode: 0o600, highWaterMark: BUFFER })).then(
        () => post({ type: 'done', result: { plainBytes: plain.bytes, bytes: sealed.bytes, sha256: sealed.digest() } }),
        (err: unknown) => post({ type: 'failed', message: (err as Error).message }),
      );
      break;
    }
    case 'chunk': {
      const current = input;
      if (!current) break;
      if (current.write(Buffer.from(message.data.buffer, message.data.byteOffset, message.data.byteLength))) post({ type: 'ack' });
      else current.once('drain', () => post({ type: 'ack' }));
      break;
    }
    case 'end':
      input?.end();
      input = null;
      break;
    case 'abort':
      input?.destroy(new Error('the backup was abandoned'));
      input = null;
      break;
  }
});
