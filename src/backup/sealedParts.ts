import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { Worker } from 'node:worker_threads';
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

  /**
   * Encrypts `source` into `file`: this thread only reads the source (the engine's archive
   * stream, the staging filter) and hands the bytes over, a few MiB ahead at most, so memory
   * stays flat whatever the part's size; the encryption, hashing and writing run on another core.
   * A failure on either side ends the part.
   */
  seal(source: Readable, file: string, recipient: Buffer): Promise<SealResult> {
    return this.inTurn(() => this.sealNow(source, file, recipient));
  }

  /**
   * Encrypts the engine's archive `archive` into `file`, the entries in the `leaveOut` folders
   * left out, read by the worker itself: nothing of it passes through this thread. Resolves null
   * when the engine has no such container or path (no file is made then); `signal` stops it.
   */
  sealEngineArchive(archive: EngineArchiveRequest, leaveOut: string[], file: string, recipient: Buffer, signal: AbortSignal): Promise<SealResult | null> {
    return this.inTurn(async () => {
      signal.throwIfAborted();
      const worker = await this.start();
      const part = this.partEnd(worker);
      const stop = () => worker.postMessage({ type: 'abort' } satisfies SealerRequest);
      signal.addEventListener('abort', stop, { once: true });
      try {
        worker.postMessage({ type: 'read', file, archive, leaveOut, recipient: new Uint8Array(recipient) } satisfies SealerRequest);
        return await part.finished;
      } catch (err) {
        throw signal.aborted ? (signal.reason as Error) : err;
      } finally {
        signal.removeEventListener('abort', stop);
        part.stopListening();
      }
    });
  }

  private inTurn<T>(work: () => Promise<T>): Promise<T> {
    const turn = this.queue.then(work);
    this.queue = turn.catch(() => undefined);
    return turn;
  }

  /** How the part the worker is on ends, as it says (or by its death); `onAck` hears of each chunk it is done with. */
  private partEnd(worker: Worker, onAck: (data: Uint8Array<ArrayBuffer>) => void = () => undefined): { finished: Promise<SealResult | null>; stopListening: () => void } {
    let onMessage: (message: SealerMessage) => void = () => undefined;
    let onExit: (code: number) => void = () => undefined;
    const finished = new Promise<SealResult | null>((resolve, reject) => {
      onMessage = (message) => {
        if (message.type === 'ack') onAck(message.data);
        else if (message.type === 'done') resolve(message.result);
        else if (message.type === 'missing') resolve(null);
        else reject(new Error(message.message));
      };
      onExit = (code) => reject(new Error(`the backup sealing worker stopped (exit code ${code})`));
    });
    worker.on('message', onMessage);
    worker.on('exit', onExit);
    return {
      finished,
      stopListening: () => {
        worker.off('message', onMessage);
        worker.off('exit', onExit);
      },
    };
  }

  async close(): Promise<void> {
    const worker = await this.worker?.catch(() => null);
    this.worker = null;
    await worker?.terminate();
  }

  private async sealNow(source: Readable, file: string, recipient: Buffer): Promise<SealResult> {
    const worker = await this.start();
    const post = (message: SealerRequest, transfer?: ArrayBuffer[]) => worker.postMessage(message, transfer);
    // Buffers the worker has handed back, filled again in turn (at most MAX_IN_FLIGHT + 2 exist:
    // one chunk of the source may fill two pieces after the last one the worker has room for).
    const free: Uint8Array<ArrayBuffer>[] = [];
    let inFlight = 0;
    let wake: (() => void) | null = null;
    let failure: Error | null = null;
    const part = this.partEnd(worker, (data) => {
      inFlight--;
      free.push(data);
      wake?.();
    });
    const finished = part.finished;
    finished.catch((err: Error) => {
      failure = err;
      wake?.();
    });
    let piece = new Uint8Array(PIECE);
    let filled = 0;
    const send = () => {
      post({ type: 'chunk', data: piece, length: filled }, [piece.buffer]);
      inFlight++;
      filled = 0;
      piece = free.pop() ?? new Uint8Array(PIECE);
    };
    try {
      post({ type: 'begin', file, recipient: new Uint8Array(recipient) });
      // 'data' events, not `for await`: the iterator joins whatever the stream has buffered into
      // a new buffer on every read (a quarter of a second per GiB on this thread, and as much GC).
      await new Promise<void>((resolve, reject) => {
        wake = () => {
          if (failure) reject(failure);
          else if (inFlight < MAX_IN_FLIGHT) source.resume();
        };
        source.on('data', (chunk: Buffer) => {
          // Copied into the piece being filled: the stream's own buffers may be views into shared pools.
          for (let offset = 0; offset < chunk.length; ) {
            const n = Math.min(PIECE - filled, chunk.length - offset);
            piece.set(chunk.subarray(offset, offset + n), filled);
            filled += n;
            offset += n;
            if (filled === PIECE) send();
          }
          if (inFlight >= MAX_IN_FLIGHT) source.pause();
        });
        source.once('end', resolve);
        source.once('error', reject);
        if (failure) reject(failure);
      });
      wake = null;
      if (filled > 0) send();
      post({ type: 'end' });
      const result = await finished;
      if (!result) throw new Error('the backup sealing worker lost the part');
      return result;
    } catch (err) {
      // What went wrong first: the worker's failure, or the source's.
      const cause: unknown = failure ?? err;
      post({ type: 'abort' });
      source.destroy();
      // The part's end (done or failed) still comes: wait for it, so the next part starts clean.
      await finished.catch(() => undefined);
      throw cause;
    } finally {
      part.stopListening();
    }
  }
}
