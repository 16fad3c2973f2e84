import type { Readable } from 'node:stream';
import express, { Router, type Request, type RequestHandler, type Response } from 'express';
import multer, { type StorageEngine } from 'multer';
import { z } from 'zod';
import type { AuditLog } from '../../domain/audit';
import { actorOf } from '../../domain/authService';
import type { ImportTotals } from '../../files/archiveImport';
import type { SpoolSpace } from '../../files/spoolSpace';
import type { FileTraffic } from '../../files/fileStreams';
import type { FileActor, WorkspaceFiles } from '../../files/workspaceFiles';
import { parseWorkspacePath } from '../../files/workspacePath';
import { AppError } from '../../lib/errors';
import { authOf, originOf } from '../context';
import { requestedBytes, sendFileBytes } from '../fileDownload';
import { requireAuth } from '../middleware/authentication';
import { requireJsonBody } from '../middleware/originCheck';
import { cutWhenIdle, failStreamsOnDisconnect, PartRefusal, setUploadState, uploadError, uploadMiddleware, uploadStateOf } from '../uploads';
import { body, idParam, parseInput } from '../validation';
import type * as Api from '../apiTypes';

export interface FileRouteDeps {
  files: WorkspaceFiles;
  audit: AuditLog;
  spoolDir: string;
  spool: SpoolSpace;
  /** Counts the bytes that go in and out (metrics on); nothing is counted without it. */
  traffic?: FileTraffic | null;
}

const flag = z.enum(['0', '1', 'true', 'false']).transform((v) => v === '1' || v === 'true');
const pathQuery = z.strictObject({ path: z.string().optional() });
const downloadQuery = z.strictObject({ path: z.string().optional(), inline: flag.default(false) });
const writeQuery = z.strictObject({ path: z.string().optional(), overwrite: flag.default(false) });
const deleteQuery = z.strictObject({ path: z.string().optional(), recursive: flag.default(false) });
const usageQuery = z.strictObject({ fresh: flag.default(false) });
const mkdirBody = body({ path: z.string(), parents: z.boolean().default(true) });
const moveBody = body({ from: z.string(), to: z.string(), overwrite: z.boolean().default(false) });

/** Shown inline (image preview) only when asked and only for types a browser cannot run as a page. */
const INLINE_SAFE = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp', 'image/avif', 'image/bmp', 'text/plain', 'application/pdf']);

const json = [requireJsonBody, express.json({ limit: '64kb', strict: true })];

function requireMultipart(req: Request): void {
  if (!req.is('multipart/form-data')) throw new AppError(415, 'UNSUPPORTED_MEDIA_TYPE', 'Send files as multipart/form-data.');
}

/** Refuses a body over the limit before reading it; a body of unknown length is not accepted. */
function checkRequestSize(req: Request, maxBytes: number): void {
  const declared = req.headers['content-length'];
  if (declared === undefined) throw new AppError(411, 'LENGTH_REQUIRED', 'Send a Content-Length header with uploads.');
  if (Number(declared) > maxBytes) {
    throw new AppError(413, 'REQUEST_TOO_LARGE', `The request is ${declared} bytes; one request may carry at most ${maxBytes} bytes.`, {}, { limitBytes: maxBytes });
  }
}

/** Files are served with headers that keep a browser from running them on the platform's origin. */
function lockDown(res: Response): void {
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Content-Security-Policy', "default-src 'none'; sandbox");
  res.setHeader('Cache-Control', 'private, no-cache');
}

async function streamDownload(files: WorkspaceFiles, req: Request, res: Response, userId: string, traffic: FileTraffic | null): Promise<void> {
  const query = parseInput(downloadQuery, req.query, 'query');
  const path = parseWorkspacePath(query.path);
  const opened = await files.open(userId, path);
  lockDown(res);
  if (opened.kind === 'directory') {
    res.attachment(`${opened.name}.tar.gz`);
    res.type('application/gzip');
    await sendFileBytes(opened.body, res, traffic).catch(() => res.destroy());
    return;
  }
  // attachment() also sets the type from the extension; inline only for types that cannot run as a page.
  res.attachment(opened.name);
  if (!res.getHeader('Content-Type')) res.type('application/octet-stream');
  const type = String(res.getHeader('Content-Type'));
  if (query.inline && INLINE_SAFE.has(type.split(';')[0] ?? '')) {
    res.setHeader('Content-Disposition', String(res.getHeader('Content-Disposition')).replace(/^attachment/, 'inline'));
  }
  const etag = `W/"${opened.size.toString(16)}-${opened.modifiedAt.getTime().toString(16)}"`;
  res.setHeader('ETag', etag);
  res.setHeader('Last-Modified', opened.modifiedAt.toUTCString());
  res.setHeader('Accept-Ranges', 'bytes');
  const body = requestedBytes(req, res, opened, etag);
  if (req.method === 'HEAD') {
    opened.body.destroy();
    res.end();
    return;
  }
  await sendFileBytes(body, res, traffic).catch(() => {
    opened.body.destroy();
    res.destroy();
  });
}

/**
 * Runs multer with our storage and returns once every file is staged, or throws why not: at
 * once when our storage refuses a part (the rest of the body is then drained in the background
 * and the connection closed after the answer).
 */
async function runMultipart(middleware: RequestHandler, req: Request, res: Response, refusal: PartRefusal): Promise<void> {
  const parsed = new Promise<void>((resolve, reject) => middleware(req, res, (err?: unknown) => (err ? reject(err) : resolve())));
  parsed.catch(() => undefined);
  try {
    await Promise.race([parsed, refusal.refused]);
  } catch (err) {
    if (!req.complete) res.setHeader('Connection', 'close');
    throw err;
  }
}

/** An idle upload ends like a refused one: answered at once, its file streams (and so its write into the volume) stopped. */
function cutUpload(err: AppError, refusal: PartRefusal, streams: Iterable<Readable>): void {
  refusal.refuse(err);
  for (const stream of streams) stream.destroy(err);
}

class ImportStorage implements StorageEngine {
  constructor(
    private readonly run: (req: Request, source: Readable) => Promise<ImportTotals>,
    private readonly refusal: PartRefusal,
  ) {}

  _handleFile(req: Request, file: Express.Multer.File, callback: (error?: unknown, info?: Partial<Express.Multer.File>) => void): void {
    this.run(req, file.stream).then(
      (totals) => callback(null, { size: totals.bytes }),
      (err: unknown) => {
        this.refusal.refuse(err);
        file.stream.resume();
        callback(err);
      },
    );
  }

  _removeFile(_req: Request, _file: Express.Multer.File, callback: (error: Error | null) => void): void {
    callback(null);
  }
}

/**
 * The file endpoints for one user's workspace. The same router serves a member's own files
 * (`/files`) and any user's for admins (`/admin/users/:id/files`), where every call, reads
 * included, is written to the audit log.
 */
function fileEndpoints(deps: FileRouteDeps, userIdOf: (req: Request) => string, adminAccess: boolean): Router {
  const { files, audit } = deps;
  const traffic = deps.traffic ?? null;
  const { maxFileBytes, maxFilesPerUpload, maxRequestBytes, streamIdleMs } = files.settings;
  const router = Router({ mergeParams: true });
  const who = (req: Request): FileActor => ({ actor: actorOf(authOf(req).user), origin: originOf(req) });

  if (adminAccess) {
    router.use((req, _res, next) => {
      if (req.method === 'GET' || req.method === 'HEAD') {
        audit.record({
          action: 'files.admin-read',
          actor: actorOf(authOf(req).user),
          target: { type: 'files', id: userIdOf(req), label: null },
          origin: originOf(req),
          detail: { endpoint: req.path, path: typeof req.query.path === 'string' ? req.query.path.slice(0, 512) : '' },
        });
      }
      next();
    });
  }

  router.get('/', async (req, res) => {
    const query = parseInput(pathQuery, req.query, 'query');
    res.json((await files.list(userIdOf(req), parseWorkspacePath(query.path))) satisfies Api.FileListing);
  });

  router.get('/usage', async (req, res) => {
    const query = parseInput(usageQuery, req.query, 'query');
    res.json((await files.usage(userIdOf(req), { fresh: query.fresh })) satisfies Api.FilesUsage);
  });

  router.get('/download', async (req, res) => {
    await streamDownload(files, req, res, userIdOf(req), traffic);
  });

  router.get('/export', async (req, res) => {
    parseInput(z.strictObject({}), req.query, 'query');
    const archive = await files.exportArchive(userIdOf(req));
    lockDown(res);
    res.attachment(`workspace-${new Date().toISOString().slice(0, 10)}.tar.gz`);
    res.type('application/gzip');
    await sendFileBytes(archive, res, traffic).catch(() => res.destroy());
  });

  router.get('/text', async (req, res) => {
    const query = parseInput(pathQuery, req.query, 'query');
    const text = await files.readText(userIdOf(req), parseWorkspacePath(query.path, 'path', { allowRoot: false }));
    traffic?.('out', text.size);
    res.setHeader('ETag', text.etag);
    res.setHeader('Cache-Control', 'no-store');
    res.json(text satisfies Api.TextFile);
  });

  router.put('/text', express.raw({ type: () => true, limit: files.settings.textMaxBytes }), async (req, res) => {
    const query = parseInput(pathQuery, req.query, 'query');
    const path = parseWorkspacePath(query.path, 'path', { allowRoot: false });
    const ifMatch = req.get('if-match') ?? null;
    const ifNoneMatch = req.get('if-none-match') === '*';
    if (ifMatch === null && !ifNoneMatch) {
      throw new AppError(428, 'PRECONDITION_REQUIRED', 'Send If-Match with the ETag you read (or If-None-Match: * to create a new file), so nobody\'s changes are overwritten unseen.');
    }
    const content = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const saved = await files.writeText(who(req), userIdOf(req), path, content, { ifMatch, ifNoneMatch });
    traffic?.('in', content.length);
    res.setHeader('ETag', saved.etag);
    res.json(saved satisfies Api.SavedText);
  });

  router.post('/mkdir', ...json, async (req, res) => {
    const input = parseInput(mkdirBody, req.body ?? {});
    res.status(201).json(await files.mkdir(who(req), userIdOf(req), parseWorkspacePath(input.path, 'path', { allowRoot: false }), input.parents));
  });

  router.post('/move', ...json, async (req, res) => {
    const input = parseInput(moveBody, req.body ?? {});
    const from = parseWorkspacePath(input.from, 'from', { allowRoot: false });
    const to = parseWorkspacePath(input.to, 'to', { allowRoot: false });
    res.json(await files.move(who(req), userIdOf(req), from, to, input.overwrite));
  });

  router.delete('/', async (req, res) => {
    const query = parseInput(deleteQuery, req.query, 'query');
    res.json(await files.remove(who(req), userIdOf(req), parseWorkspacePath(query.path, 'path', { allowRoot: false }), query.recursive));
  });

  const uploadFiles = uploadMiddleware({ maxFileBytes, maxFiles: maxFilesPerUpload });
  router.post('/upload', async (req, res) => {
    const query = parseInput(writeQuery, req.query, 'query');
    const dir = parseWorkspacePath(query.path);
    requireMultipart(req);
    checkRequestSize(req, maxRequestBytes);
    const userId = userIdOf(req);
    const actor = who(req);
    const streams = new Set<Readable>();
    failStreamsOnDisconnect(req, () => streams);
    const refusal = new PartRefusal();
    cutWhenIdle(req, streamIdleMs, (err) => cutUpload(err, refusal, streams));
    setUploadState(req, {
      refusal,
      index: 0,
      session: null,
      streams,
      spoolDir: deps.spoolDir,
      spool: deps.spool,
      open: (manifest) =>
        files.beginUpload(actor, userId, dir, {
          overwrite: query.overwrite,
          declaredBytes: manifest ? manifest.reduce((sum, f) => sum + f.size, 0) : null,
          paths: manifest ? manifest.map((f) => f.path) : null,
        }),
    });
    try {
      await runMultipart(uploadFiles, req, res, refusal);
    } catch (err) {
      const session = await uploadStateOf(req)?.session?.catch(() => null);
      await session?.abort(err as Error);
      throw uploadError(err, { maxFileBytes, maxFiles: maxFilesPerUpload });
    }
    const session = await uploadStateOf(req)?.session;
    if (!session) throw new AppError(400, 'NO_FILES', 'The upload carried no files.');
    const written = await session.commit();
    traffic?.('in', written.reduce((sum, file) => sum + file.size, 0));
    res.status(201).json({ path: dir, files: written });
  });

  router.post('/import', async (req, res) => {
    const query = parseInput(writeQuery, req.query, 'query');
    const dir = parseWorkspacePath(query.path);
    requireMultipart(req);
    checkRequestSize(req, maxRequestBytes);
    let result: (ImportTotals & { path: string }) | null = null;
    const streams = new Set<Readable>();
    failStreamsOnDisconnect(req, () => streams);
    const refusal = new PartRefusal();
    cutWhenIdle(req, streamIdleMs, (err) => cutUpload(err, refusal, streams));
    const importer = multer({
      storage: new ImportStorage(async (_req, source) => {
        streams.add(source);
        result = await files.importArchive(who(req), userIdOf(req), dir, source, query.overwrite);
        return result;
      }, refusal),
      limits: { files: 1, fields: 5, parts: 6, fileSize: maxRequestBytes },
    }).single('archive');
    try {
      await runMultipart(importer, req, res, refusal);
    } catch (err) {
      if (err instanceof multer.MulterError && err.code === 'LIMIT_UNEXPECTED_FILE') {
        throw new AppError(400, 'MALFORMED_UPLOAD', 'Send one archive in the form field "archive".');
      }
      throw uploadError(err, { maxFileBytes, maxFiles: 1 });
    }
    if (!result) throw new AppError(400, 'NO_FILES', 'Send the archive in the form field "archive".');
    traffic?.('in', (result as ImportTotals).bytes);
    res.status(201).json(result);
  });

  return router;
}

/** `/api/v1/files`: the signed-in user's own workspace. */
export function ownFilesRouter(deps: FileRouteDeps): Router {
  const router = Router();
  router.use(requireAuth());
  router.use('/', fileEndpoints(deps, (req) => authOf(req).user.id, false));
  return router;
}

/** `/api/v1/admin/users/:id/files`: any user's workspace, audited. Mount behind the admin guard. */
export function adminFilesRouter(deps: FileRouteDeps): Router {
  const router = Router({ mergeParams: true });
  router.use('/', fileEndpoints(deps, (req) => parseInput(z.object({ id: idParam }), req.params, 'path').id, true));
  return router;
}

