import { createReadStream, createWriteStream } from 'node:fs';
import { unlink } from 'node:fs/promises';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Request } from 'express';
import multer, { MulterError, type StorageEngine } from 'multer';
import { z } from 'zod';
import { AppError, badRequest } from '../lib/errors';
import { newId } from '../lib/secrets';
import type { SpoolSpace } from '../files/spoolSpace';
import type { UploadSession } from '../files/uploadSession';
import { parseWorkspacePath, type WorkspacePath } from '../files/workspacePath';
import { formatIssues } from './validation';

/**
 * Optional form field sent BEFORE the files: their paths and sizes, in the order of the file
 * parts. With it, each file streams straight into the runtime (a tar entry needs its size up
 * front) and the quota and name conflicts are checked before any byte is sent. Without it,
 * each file is spooled to disk first.
 */
export const MANIFEST_FIELD = 'manifest';
const manifestSchema = z.array(z.strictObject({ path: z.string().max(4096), size: z.number().int().min(0) })).max(100_000);
export type UploadManifest = { path: WorkspacePath; size: number }[];

export function parseManifest(raw: unknown): UploadManifest | null {
  if (raw === undefined) return null;
  let value: unknown;
  try {
    value = JSON.parse(String(raw));
  } catch {
    throw badRequest('INVALID_MANIFEST', `The ${MANIFEST_FIELD} field is not valid JSON.`);
  }
  const parsed = manifestSchema.safeParse(value);
  if (!parsed.success) throw badRequest('INVALID_MANIFEST', `Invalid ${MANIFEST_FIELD}: ${formatIssues(parsed.error)}`);
  return parsed.data.map((entry, i) => ({ path: parseWorkspacePath(entry.path, `${MANIFEST_FIELD}[${i}].path`, { allowRoot: false }), size: entry.size }));
}

/**
 * The first refusal of a part, known at once. Multer drains the rest of a refused request body
 * before it reports the error (so the client is not cut off mid-send); the route answers from
 * this instead, so a client learns of a 413 as soon as it happens, not after sending gigabytes.
 */
export class PartRefusal {
  readonly refused: Promise<never>;
  private rejectWith: (err: unknown) => void = () => undefined;

  constructor() {
    this.refused = new Promise<never>((_resolve, reject) => (this.rejectWith = reject));
    this.refused.catch(() => undefined);
  }

  refuse(err: unknown): void {
    this.rejectWith(err);
  }
}

/** Per request: the upload session, opened when the first file arrives. */
export interface UploadState {
  open(manifest: UploadManifest | null): Promise<UploadSession>;
  session: Promise<UploadSession> | null;
  /** Parsed once, when the first file arrives (undefined until then; null: the upload has none). */
  manifest?: UploadManifest | null;
  index: number;
  /** File streams being read right now. */
  streams: Set<Readable>;
  spool: SpoolSpace;
  spoolDir: string;
  refusal: PartRefusal;
}

/**
 * A client that disconnects mid-upload ends the request without ending the multipart parser's
 * file stream: without this, whatever reads that stream would wait forever.
 */
export function failStreamsOnDisconnect(req: Request, streams: () => Iterable<Readable>): void {
  req.once('close', () => {
    if (req.complete) return;
    for (const stream of streams()) stream.destroy(new Error('the client disconnected during the upload'));
  });
}

/** How often an upload's progress is looked at: a cut comes at most a quarter of the bound late. */
const IDLE_CHECKS_PER_BOUND = 4;

/**
 * Cuts an upload whose client has sent nothing for `idleMs` while the server was ready to read:
 * its write into the volume keeps the engine's lock on the container it goes through for as long
 * as it stays open (docker/fileHelpers.ts). Time the server itself is not reading does not count (the
 * request paused by backpressure: the engine or the spool's disk is slower than the client).
 * `cut` is called at most once, never after the body has arrived in full or the request closed.
 */
export function cutWhenIdle(req: Request, idleMs: number, cut: (err: AppError) => void): void {
  const socket = req.socket;
  let bytesSeen = socket.bytesRead;
  let quietSince = performance.now();
  const timer = setInterval(() => {
    if (req.complete || req.destroyed || socket.destroyed) return clearInterval(timer);
    const now = performance.now();
    if (socket.bytesRead !== bytesSeen || req.isPaused() || req.readableLength > 0) {
      bytesSeen = socket.bytesRead;
      quietSince = now;
      return;
    }
    if (now - quietSince < idleMs) return;
    clearInterval(timer);
    cut(new AppError(408, 'UPLOAD_IDLE', `Nothing of the upload arrived for ${Math.round(idleMs / 1000)} s, so it was cut off; send it again.`));
  }, Math.max(50, Math.floor(idleMs / IDLE_CHECKS_PER_BOUND)));
  timer.unref();
  req.once('close', () => clearInterval(timer));
}

const STATES = new WeakMap<Request, UploadState>();
export const uploadStateOf = (req: Request) => STATES.get(req) ?? null;
export const setUploadState = (req: Request, state: UploadState) => STATES.set(req, state);

/**
 * Multer storage that hands each file to the request's UploadSession: streamed directly when
 * the manifest gave its size, else spooled to a private temp file (removed on every path).
 */
export class StagingStorage implements StorageEngine {
  _handleFile(req: Request, file: Express.Multer.File, callback: (error?: unknown, info?: Partial<Express.Multer.File>) => void): void {
    const state = uploadStateOf(req);
    if (!state) return callback(new Error('upload state missing: middleware order is wrong'));
    state.streams.add(file.stream);
    void (async () => {
      // A manifest may hold 100,000 entries: parsed for the first file only, never once per file.
      if (state.manifest === undefined) state.manifest = parseManifest((req.body as Record<string, unknown> | undefined)?.[MANIFEST_FIELD]);
      const manifest = state.manifest;
      const index = state.index++;
      state.session ??= state.open(manifest);
      const session = await state.session;
      const announced = manifest?.[index];
      if (manifest && !announced) throw badRequest('INVALID_MANIFEST', `The upload has more files than its ${MANIFEST_FIELD} lists.`);
      const target = announced?.path ?? parseWorkspacePath(file.originalname, 'file name', { allowRoot: false });
      if (announced) {
        await session.add(target, announced.size, () => file.stream);
        return announced.size;
      }
      const spooled = path.join(state.spoolDir, `upload-${newId()}`);
      const claim = state.spool.claim();
      try {
        let size = 0;
        // Each chunk is claimed from the user's quota and from the spool before it is written.
        const meter = new Transform({
          transform(chunk: Buffer, _enc, done) {
            size += chunk.length;
            try {
              session.reserve(target, size);
              claim.grow(size);
            } catch (err) {
              return done(err as Error);
            }
            done(null, chunk);
          },
        });
        await pipeline(file.stream, meter, createWriteStream(spooled, { flags: 'wx', mode: 0o600 }));
        await session.add(target, size, () => createReadStream(spooled));
        return size;
      } finally {
        await unlink(spooled).catch(() => undefined);
        claim.release();
      }
    })().then(
      (size) => {
        state.streams.delete(file.stream);
        callback(null, { size });
      },
      (err: unknown) => {
        state.streams.delete(file.stream);
        state.refusal.refuse(err);
        file.stream.resume(); // let busboy move on to report the error
        callback(err);
      },
    );
  }

  _removeFile(_req: Request, _file: Express.Multer.File, callback: (error: Error | null) => void): void {
    // Nothing to do: spooled copies are gone already, staged ones go with the session's abort.
    callback(null);
  }
}

/** Multer's and busboy's errors in our words. */
export function uploadError(err: unknown, limits: { maxFileBytes: number; maxFiles: number }): unknown {
  if (err instanceof MulterError) {
    switch (err.code) {
      case 'LIMIT_FILE_SIZE':
        return new AppError(413, 'FILE_TOO_LARGE', `A file is larger than ${limits.maxFileBytes} bytes, the largest file allowed.`, {}, { limitBytes: limits.maxFileBytes });
      case 'LIMIT_FILE_COUNT':
        return new AppError(413, 'TOO_MANY_FILES', `One upload takes at most ${limits.maxFiles} files; send the rest in another request.`);
      case 'LIMIT_FIELD_VALUE':
        return new AppError(413, 'FIELD_TOO_LARGE', `The form field "${err.field ?? ''}" is too large.`);
      default:
        return badRequest('MALFORMED_UPLOAD', `The upload was refused: ${err.message}.`);
    }
  }
  if (err instanceof AppError) return err;
  if (err instanceof Error && /Unexpected end of form|Malformed part header|Multipart: Boundary not found|Unexpected end of (multipart )?data|^Request (aborted|closed)$/i.test(err.message)) {
    return badRequest('MALFORMED_UPLOAD', 'The upload was cut off or is not valid multipart/form-data.');
  }
  return err;
}

export function uploadMiddleware(options: { maxFileBytes: number; maxFiles: number }) {
  return multer({
    storage: new StagingStorage(),
    // Keeps "folder/a.txt" of a dropped folder instead of reducing it to "a.txt".
    preservePath: true,
    // Browsers send file names as UTF-8; busboy would read them as Latin-1.
    defParamCharset: 'utf8',
    limits: { fileSize: options.maxFileBytes, files: options.maxFiles, fields: 10, fieldSize: 16 * 1024 ** 2, parts: options.maxFiles + 10 },
  }).any();
}
