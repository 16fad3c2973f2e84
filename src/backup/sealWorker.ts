import { createHash, type Hash } from 'node:crypto';
import fs from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { AgeSealing } from './ageFormat';
import type { SealerMessage, SealerRequest } from './sealProtocol';
import { inFolders, TarEntrySieve } from './tarFilter';

/**
 * Runs in a worker thread (sealedParts.ts starts one and keeps it): takes the tar of one part at
 * a time, leaves out the folders it is told to, and encrypts the rest into the part's file,
 * counting and hashing as it goes, so that a backup's tar filtering, ChaCha20-Poly1305, SHA-256
 * and disk writes run on the machine's other core while the control plane's own thread reads
 * the engine. A chunk is filtered, sealed, hashed and written before its buffer goes back
 * (blocking calls are this thread's whole job), which is also how the sender keeps only a few
 * in flight.
 *
 * The part is on disk before it is reported done (fdatasync): a backup that says it is complete
 * survives a power cut. Write-back is started every FLUSH_EVERY bytes, without waiting for it, so
 * the disk works while the engine is still being read instead of all at the end. A part that
 * fails or is abandoned is removed: no half-written file stays behind.
 */
const port = parentPort;
if (!port) throw new Error('sealWorker runs only as a worker thread');
const FLUSH_EVERY = 32 * 1024 * 1024;
const post = (message: SealerMessage, transfer?: ArrayBuffer[]) => port.postMessage(message, transfer);

interface Part {
  file: string;
  fd: number;
  /** Null when nothing is left out: the plaintext need not even be a tar then. */
  sieve: TarEntrySieve | null;
  sealing: AgeSealing;
  hash: Hash;
  plainBytes: number;
  bytes: number;
  unflushed: number;
  /** The write-back started last, if it has not finished. */
  flushing: Promise<void> | null;
  failure: Error | null;
  closed: boolean;
}

let part: Part | null = null;

function writeAll(current: Part, pieces: Buffer[]): void {
  for (const piece of pieces) current.hash.update(piece);
  let pending = pieces;
  while (pending.length > 0) {
    let written = fs.writevSync(current.fd, pending);
    current.bytes += written;
    current.unflushed += written;
    // A regular file takes all of it unless the disk fails; the loop is for the rare short write.
    const rest: Buffer[] = [];
    for (const piece of pending) {
      if (written >= piece.length) written -= piece.length;
      else {
        rest.push(piece.subarray(written));
        written = 0;
      }
    }
    pending = rest;
  }
  if (current.unflushed >= FLUSH_EVERY && !current.flushing) {
    current.unflushed = 0;
    const flushing = new Promise<void>((resolve) => fs.fdatasync(current.fd, () => resolve()));
    current.flushing = flushing.then(() => {
      if (current.flushing === flushing) current.flushing = null;
    });
  }
}

/** Closes the part's file once no write-back is using its descriptor; once only (its number may be reused after). */
async function close(current: Part, durable: boolean): Promise<void> {
  await current.flushing;
  if (current.closed) return;
  try {
    if (durable) fs.fdatasyncSync(current.fd);
  } finally {
    if (!current.closed) fs.closeSync(current.fd);
    current.closed = true;
  }
}

/** Says why the part failed (once), and removes what it wrote. */
function fail(current: Part, err: unknown): void {
  if (current.failure) return;
  current.failure = err instanceof Error ? err : new Error(String(err));
  void close(current, false)
    .catch(() => undefined)
    .then(() => fs.rmSync(current.file, { force: true }))
    .catch(() => undefined)
    .finally(() => post({ type: 'failed', message: current.failure?.message ?? 'the part failed' }));
}

port.on('message', (message: SealerRequest) => {
  switch (message.type) {
    case 'begin': {
      try {
        const fd = fs.openSync(message.file, 'wx', 0o600);
        part = {
          file: message.file,
          fd,
          sieve: message.leaveOut.length > 0 ? new TarEntrySieve(inFolders(message.leaveOut)) : null,
          sealing: new AgeSealing(Buffer.from(message.recipient)),
          hash: createHash('sha256'),
          plainBytes: 0,
          bytes: 0,
          unflushed: 0,
          flushing: null,
          failure: null,
          closed: false,
        };
      } catch (err) {
        part = null;
        post({ type: 'failed', message: (err as Error).message });
      }
      break;
    }
    case 'chunk': {
      const current = part;
      if (current && !current.failure) {
        try {
          const plain = Buffer.from(message.data.buffer, message.data.byteOffset, message.length);
          const seal = (view: Buffer) => {
            current.plainBytes += view.length;
            writeAll(current, current.sealing.update(view));
          };
          if (current.sieve) current.sieve.feed(plain, seal);
          else seal(plain);
        } catch (err) {
          fail(current, err);
        }
      }
      post({ type: 'ack', data: message.data }, [message.data.buffer]);
      break;
    }
    case 'end': {
      const current = part;
      part = null;
      if (!current || current.failure) break;
      void (async () => {
        current.sieve?.finish();
        writeAll(current, current.sealing.final());
        await close(current, true);
        post({ type: 'done', result: { plainBytes: current.plainBytes, bytes: current.bytes, sha256: current.hash.digest('hex') } });
      })().catch((err: unknown) => fail(current, err));
      break;
    }
    case 'abort': {
      const current = part;
      part = null;
      if (current) fail(current, new Error('the backup was abandoned'));
      break;
    }
  }
});
