import { createHash, type Hash } from 'node:crypto';
import fs from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { readEngineArchive } from '../docker/engineArchiveRead';
import { AgeSealing } from './ageFormat';
import type { SealerMessage, SealerRequest } from './sealProtocol';
import { inFolders, TarEntryFilter } from './tarFilter';

/**
 * Runs in a worker thread (sealedParts.ts starts one and keeps it): encrypts the plaintext of one
 * part at a time into its file, counting and hashing as it goes, so that a backup's
 * ChaCha20-Poly1305, SHA-256 and disk writes run on the machine's other core. The plaintext
 * comes in one of two ways:
 * - `read`: the worker reads the engine's archive itself, on the engine's Unix socket, and
 *   leaves out the folders it is told to. The control plane's thread then does nothing per
 *   byte: reading 1 GiB there (copies, fresh buffers, the garbage collection they set off on a
 *   heap as large as the control plane's) cost it about 3 s of CPU on our 2-core machines, which
 *   the engine's own tar needs (bench/backup.ts).
 * - `chunk`s sent by the control plane, for archives only it can read (over the network). A
 *   chunk is sealed, hashed and written before its buffer goes back (blocking calls are this
 *   thread's whole job), which is also how the sender keeps only a few in flight.
 *
 * The part is on disk before it is reported done (fdatasync): a backup that says it is complete
 * survives a power cut. Write-back is started every FLUSH_EVERY bytes, without waiting for it, so
 * the disk works while the engine is still being read instead of all at the end.
 */
const port = parentPort;
if (!port) throw new Error('sealWorker runs only as a worker thread');
const FLUSH_EVERY = 32 * 1024 * 1024;
const post = (message: SealerMessage, transfer?: ArrayBuffer[]) => port.postMessage(message, transfer);

interface Part {
  fd: number;
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

/** The part being sent in chunks, if any. */
let part: Part | null = null;
/** Stops the part being read from the engine, if any. */
let stopReading: (() => void) | null = null;

function openPart(file: string, recipient: Uint8Array): Part {
  const fd = fs.openSync(file, 'wx', 0o600);
  return { fd, sealing: new AgeSealing(Buffer.from(recipient)), hash: createHash('sha256'), plainBytes: 0, bytes: 0, unflushed: 0, flushing: null, failure: null, closed: false };
}

function seal(current: Part, plain: Uint8Array): void {
  current.plainBytes += plain.length;
  writeAll(current, current.sealing.update(plain));
}

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

/** The last chunk, the file on disk, and the part's figures. */
async function finish(current: Part): Promise<void> {
  writeAll(current, current.sealing.final());
  await close(current, true);
  post({ type: 'done', result: { plainBytes: current.plainBytes, bytes: current.bytes, sha256: current.hash.digest('hex') } });
}

/** A `read` part: the archive is fetched only once the file can be made, and the file only once the engine has the path. */
async function readPart(message: Extract<SealerRequest, { type: 'read' }>): Promise<void> {
  const stop = new AbortController();
  const halt = () => stop.abort(new Error('the backup was abandoned'));
  stopReading = halt;
  let current: Part | null = null;
  try {
    const archive = await readEngineArchive(message.archive, stop.signal);
    if (!archive) {
      post({ type: 'missing' });
      return;
    }
    try {
      current = openPart(message.file, message.recipient);
    } catch (err) {
      archive.destroy();
      throw err;
    }
    const into = current;
    const filter = new TarEntryFilter(inFolders(message.leaveOut));
    archive.on('error', (err) => filter.destroy(err));
    await new Promise<void>((resolve, reject) => {
      filter.on('data', (chunk: Buffer) => {
        try {
          seal(into, chunk);
        } catch (err) {
          archive.destroy();
          filter.destroy(err as Error);
        }
      });
      filter.once('end', resolve);
      filter.once('error', reject);
      archive.pipe(filter);
    });
    await finish(into);
  } catch (err) {
    post({ type: 'failed', message: (err as Error).message });
    if (current) await close(current, false).catch(() => undefined);
  } finally {
    if (stopReading === halt) stopReading = null;
  }
}

function fail(current: Part, err: unknown): void {
  if (current.failure) return;
  current.failure = err instanceof Error ? err : new Error(String(err));
  post({ type: 'failed', message: current.failure.message });
}

port.on('message', (message: SealerRequest) => {
  switch (message.type) {
    case 'begin': {
      try {
        part = openPart(message.file, message.recipient);
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
          seal(current, message.data.subarray(0, message.length));
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
      if (!current || current.failure) {
        if (current) void close(current, false).catch(() => undefined);
        break;
      }
      finish(current).catch((err: unknown) => {
        fail(current, err);
        return close(current, false).catch(() => undefined);
      });
      break;
    }
    case 'read':
      void readPart(message);
      break;
    case 'abort': {
      stopReading?.();
      const current = part;
      part = null;
      if (!current) break;
      fail(current, new Error('the backup was abandoned'));
      void close(current, false).catch(() => undefined);
      break;
    }
  }
});
