import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { Worker } from 'node:worker_threads';
import type { SealRequest, SealerMessage, SealResult } from './sealProtocol';

/** Plaintext is sent to the worker in pieces of this size, at most MAX_IN_FLIGHT of them unacknowledged. */
const PIECE = 1024 * 1024;
const MAX_IN_FLIGHT = 8;

let bundled: Promise<string> | null = null;

/**
 * The sealing worker as this process can start it: the compiled file next to this one
 * (production, dist/), or, when the control plane runs from its TypeScript sources (tsx, jest),
 * the sources bundled once with esbuild (a build-time tool, loaded only then) and run as code.
 */
async function startWorker(request: SealRequest): Promise<Worker> {
  const built = path.join(__dirname, 'sealWorker.js');
  if (fs.existsSync(built)) return new Worker(built, { workerData: request });
  if (!__filename.endsWith('.ts')) throw new Error(`the backup sealing worker was not built: ${built} is missing`);
  if (!bundled) {
    bundled = import('esbuild').then(async (esbuild) => {
      const result = await esbuild.build({ entryPoints: [path.join(__dirname, 'sealWorker.ts')], bundle: true, write: false, platform: 'node', format: 'cjs', target: 'node20', logLevel: 'silent' });
      return result.outputFiles[0]?.text ?? '';
    });
    bundled.catch(() => (bundled = null));
  }
  return new Worker(await bundled, { eval: true, workerData: request });
}

/**
 * Encrypts `source` into `file` in a worker thread: this thread only reads the source (the
 * engine's archive stream, the staging filter) and hands the bytes over, a few MiB ahead at
 * most, so memory stays flat whatever the part's size; the encryption, hashing and writing run
 * on another core. A failure on either side ends both.
 */
export async function sealPart(source: Readable, file: string, recipient: Buffer): Promise<SealResult> {
  const worker = await startWorker({ file, recipient: new Uint8Array(recipient) });
  let inFlight = 0;
  let wake: (() => void) | null = null;
  let failure: Error | null = null;
  const finished = new Promise<SealResult>((resolve, reject) => {
    worker.on('message', (message: SealerMessage) => {
      if (message.type === 'ack') {
        inFlight--;
        wake?.();
      } else if (message.type === 'done') resolve(message.result);
      else reject(new Error(message.message));
    });
    worker.on('error', reject);
    worker.on('exit', (code) => reject(new Error(`the backup sealing worker stopped (exit code ${code})`)));
  });
  finished.catch((err: Error) => {
    failure = err;
    wake?.();
  });
  const send = async (piece: Buffer) => {
    // A fresh copy the worker owns outright: the stream's buffers may be views into shared pools.
    const owned = new Uint8Array(piece.length);
    owned.set(piece);
    worker.postMessage({ type: 'chunk', data: owned }, [owned.buffer]);
    inFlight++;
    while (inFlight >= MAX_IN_FLIGHT && !failure) await new Promise<void>((resolve) => (wake = resolve));
    wake = null;
  };
  try {
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    for await (const chunk of source as AsyncIterable<Buffer>) {
      if (failure) break;
      pending.push(chunk);
      pendingBytes += chunk.length;
      if (pendingBytes >= PIECE) {
        await send(pending.length === 1 ? chunk : Buffer.concat(pending, pendingBytes));
        pending = [];
        pendingBytes = 0;
      }
    }
    if (failure) throw failure;
    if (pendingBytes > 0) await send(Buffer.concat(pending, pendingBytes));
    worker.postMessage({ type: 'end' });
    return await finished;
  } catch (err) {
    worker.postMessage({ type: 'abort' });
    source.destroy();
    throw failure ?? err;
  } finally {
    await worker.terminate();
  }
}
