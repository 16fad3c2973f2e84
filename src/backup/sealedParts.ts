import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { openEngineArchive } from '../docker/engineArchiveRead';
import type { EngineArchiveRequest } from '../files/workspaceVolumes';
import type { SealerMessage, SealerRequest, SealResult } from './sealProtocol';

/** Plaintext is sent to the worker in pieces of this size, at most MAX_IN_FLIGHT of them unacknowledged. */
const PIECE = 1024 * 1024;
const MAX_IN_FLIGHT = 8;

let bundled: Promise<string> | null = null;

/** From the sources only (tsx, jest): the worker bundled once with esbuild, a build-time tool loaded only then. */
export function bundledWorker(): Promise<string> {
  if (!__filename.endsWith('.ts')) return Promise.reject(new Error(`the backup sealing worker was not built: ${path.join(__dirname, 'sealWorker.js')} is missing`));
  if (!bundled) {
    const loading = import('esbuild').then(async (esbuild) => {
      const result = await esbuild.build({ entryPoints: [path.join(__dirname, 'sealWorker.ts')], bundle: true, write: false, platform: 'node', format: 'cjs', target: 'node20', logLevel: 'silent' });
      return result.outputFiles[0]?.text ?? '';
    });
    loading.catch(() => {
      if (bundled === loading) bundled = null;
    });
    bundled = loading;
  }
  return bundled;
}

/**
 * One worker thread that seals backup parts, one at a time, for the life of the process: it is
 * started by the first part (or `start`, so that a process that will back up pays for the thread
 * once, up front) and never holds the process open. The compiled file next to this one runs it
 * in production (dist/); from the sources it is the bundle above.
 */
export class PartSealer {
  private worker: Promise<Worker> | null = null;
  /** Parts are sealed one after another: a second waits for the first. */
  private queue: Promise<unknown> = Promise.resolve();

  start(): Promise<Worker> {
    if (!this.worker) {
      const starting = (async () => {
        const built = path.join(__dirname, 'sealWorker.js');
        const worker = fs.existsSync(built) ? new Worker(built) : new Worker(await bundledWorker(), { eval: true });
        worker.unref();
        // A worker that dies is started again for the next part.
        worker.on('exit', () => {
          if (this.worker === starting) this.worker = null;
        });
        return worker;
      })();
      starting.catch(() => {
        if (this.worker === starting) this.worker = null;
      });
      this.worker = starting;
    }
    return this.worker;
  }

  async close(): Promise<void> {
    const worker = await this.worker?.catch(() => null);
    this.worker = null;
    await worker?.terminate();
  }

  /**
   * Encrypts `source` (a volume's tar) into `file`, the entries in the `leaveOut` folders left
   * out: this thread only reads the source and hands the bytes over, a few MiB ahead at most, so
   * memory stays flat whatever the part's size; leaving out, encryption, hashing and writing run
   * on another core. A failure on either side ends the part, and its file is removed.
   */
  seal(source: Readable, leaveOut: string[], file: string, recipient: Buffer): Promise<SealResult> {
    return this.inTurn(async () => {
      try {
        // A stream always has something to read: only an engine read finds nothing (null).
        return (await this.sealFed(file, recipient, leaveOut, (into) => feedStream(source, into))) as SealResult;
      } finally {
        // Also when the worker could not even start: the source holds the engine's archive lock.
        source.destroy();
      }
    });
  }

  /**
   * As `seal`, with the engine's archive `archive` read here through one reused buffer and
   * copied straight into the pieces the worker lends back (engineArchiveRead.ts): no memory is
   * made per byte on this thread, so the garbage collector has nothing to do. Resolves null when
   * the engine has no such container or path; `signal` stops it with its reason.
   */
  sealEngineArchive(archive: EngineArchiveRequest, leaveOut: string[], file: string, recipient: Buffer, signal: AbortSignal): Promise<SealResult | null> {
    return this.inTurn(() => this.sealFed(file, recipient, leaveOut, (into) => feedEngineArchive(archive, into, signal)));
  }

  private inTurn<T>(work: () => Promise<T>): Promise<T> {
    const turn = this.queue.then(work);
    this.queue = turn.catch(() => undefined);
    return turn;
  }

  /**
   * One part: `feed` writes the plaintext into the pieces and resolves true at its end (false:
   * there was nothing to read); the pieces go to the worker, at most MAX_IN_FLIGHT unacknowledged.
   */
  private async sealFed(file: string, recipient: Buffer, leaveOut: string[], feed: (into: PieceWriter) => Promise<boolean>): Promise<SealResult | null> {
    const worker = await this.start();
    const post = (message: SealerRequest, transfer?: ArrayBuffer[]) => worker.postMessage(message, transfer);
    // Buffers the worker has handed back, filled again in turn (at most MAX_IN_FLIGHT + 2 exist:
    // one read of the source may fill two pieces after the last one the worker has room for).
    const free: Uint8Array<ArrayBuffer>[] = [];
    let inFlight = 0;
    let failure: Error | null = null;
    let onMessage: (message: SealerMessage) => void = () => undefined;
    let onExit: (code: number) => void = () => undefined;
    const into = new PieceWriter((piece, length) => {
      post({ type: 'chunk', data: piece, length }, [piece.buffer]);
      inFlight++;
      return { next: free.pop() ?? new Uint8Array(PIECE), room: inFlight < MAX_IN_FLIGHT };
    });
    const finished = new Promise<SealResult>((resolve, reject) => {
      onMessage = (message) => {
        if (message.type === 'ack') {
          inFlight--;
          free.push(message.data);
          if (inFlight < MAX_IN_FLIGHT) into.roomAgain();
        } else if (message.type === 'done') resolve(message.result);
        else reject(new Error(message.message));
      };
      onExit = (code) => reject(new Error(`the backup sealing worker stopped (exit code ${code})`));
    });
    worker.on('message', onMessage);
    worker.on('exit', onExit);
    finished.catch((err: Error) => {
      failure = err;
      into.fail(err);
    });
    try {
      post({ type: 'begin', file, recipient: new Uint8Array(recipient), leaveOut });
      const found = await feed(into);
      if (!found) {
        post({ type: 'abort' });
        await finished.catch(() => undefined);
        return null;
      }
      into.flush();
      post({ type: 'end' });
      return await finished;
    } catch (err) {
      // What went wrong first: the worker's failure, or the source's.
      const cause: unknown = failure ?? err;
      post({ type: 'abort' });
      // The part's end (done or failed) still comes: wait for it, so the next part starts clean.
      await finished.catch(() => undefined);
      throw cause;
    } finally {
      worker.off('message', onMessage);
      worker.off('exit', onExit);
    }
  }
}

/**
 * Copies the source's bytes into pieces and hands each full one on. `send` answers with the
 * piece to fill next and whether there is room for more; without room the source is told to
 * wait (`write` returns false) until `roomAgain`.
 */
class PieceWriter {
  /** Rejects once the part failed on the worker's side: whatever feeds it stops then. */
  readonly failed: Promise<never>;
  private piece = new Uint8Array(PIECE);
  private filled = 0;
  private waiting: (() => void)[] = [];
  private room = true;
  private rejectFailed: (err: Error) => void = () => undefined;

  constructor(private readonly send: (piece: Uint8Array<ArrayBuffer>, length: number) => { next: Uint8Array<ArrayBuffer>; room: boolean }) {
    this.failed = new Promise<never>((_resolve, reject) => (this.rejectFailed = reject));
    this.failed.catch(() => undefined);
  }

  /** Copies `view` in (it may be reused once this returns); false: wait for `whenRoom` before writing more. */
  write(view: Uint8Array): boolean {
    for (let offset = 0; offset < view.length; ) {
      const n = Math.min(PIECE - this.filled, view.length - offset);
      this.piece.set(view.subarray(offset, offset + n), this.filled);
      this.filled += n;
      offset += n;
      if (this.filled === PIECE) this.handOn();
    }
    return this.room;
  }

  /** Resolves when there is room again (or the part failed: that is heard through `failed`). */
  whenRoom(): Promise<void> {
    if (this.room) return Promise.resolve();
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  roomAgain(): void {
    this.room = true;
    this.wake();
  }

  fail(err: Error): void {
    this.rejectFailed(err);
    // Nothing more goes to the worker: whoever waits for room goes on, to hear of the failure.
    this.room = true;
    this.wake();
  }

  /** The last, partly filled piece. */
  flush(): void {
    if (this.filled > 0) this.handOn();
  }

  private handOn(): void {
    const { next, room } = this.send(this.piece, this.filled);
    this.piece = next;
    this.filled = 0;
    this.room = room;
  }

  private wake(): void {
    const waiting = this.waiting;
    this.waiting = [];
    for (const waiter of waiting) waiter();
  }
}

/** A stream's chunks into the pieces; true at its end. */
async function feedStream(source: Readable, into: PieceWriter): Promise<boolean> {
  // 'data' events, not `for await`: the iterator joins whatever the stream has buffered into
  // a new buffer on every read (a quarter of a second per GiB on this thread, and as much GC).
  await new Promise<void>((resolve, reject) => {
    source.on('data', (chunk: Buffer) => {
      if (into.write(chunk)) return;
      source.pause();
      void into.whenRoom().then(() => source.resume());
    });
    source.once('end', resolve);
    source.once('error', reject);
    into.failed.catch(reject);
  });
  return true;
}

/** The engine's archive into the pieces; true at its end, false when the engine has no such path. */
async function feedEngineArchive(archive: EngineArchiveRequest, into: PieceWriter, signal: AbortSignal): Promise<boolean> {
  let settle: { resolve: () => void; reject: (err: Error) => void } = { resolve: () => undefined, reject: () => undefined };
  const read = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
  read.catch(() => undefined);
  let waiting = false;
  const reading = openEngineArchive(
    archive,
    {
      data: (view) => {
        if (into.write(view)) return true;
        // One wait per read: the rest of this read's views come before the reading stops.
        if (!waiting) {
          waiting = true;
          void into.whenRoom().then(() => {
            waiting = false;
            reading.resume();
          });
        }
        return false;
      },
      end: () => settle.resolve(),
      fail: (err) => settle.reject(err),
    },
    signal,
  );
  try {
    if (!(await Promise.race([reading.answered, into.failed]))) return false;
    await Promise.race([read, into.failed]);
    return true;
  } finally {
    reading.stop();
  }
}
