import { createHash } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import type { Readable} from 'node:stream';
import { PassThrough, Transform } from 'node:stream';
import { createGzip } from 'node:zlib';
import { pack } from 'tar-stream';
import type { ExecResult, RuntimeBackend } from '../docker/runtimeBackend';
import type { Actor, AuditLog, RequestOrigin } from '../domain/audit';
import type { Clock } from '../lib/clock';
import { AppError, badRequest } from '../lib/errors';
import type { Logger } from '../lib/logger';
import { newId } from '../lib/secrets';
import { RUNTIME_UID } from '../runtime/runtimeSettings';
import { repackArchive, type ImportSink, type ImportTotals } from './archiveImport';
import { firstTarFile, TAR_END, tarHeader, tarPadding } from './tarFraming';
import type { AgentConflict, AgentEntry, AgentRequest, AgentResponse, StagedFile } from './agent/protocol';
import { fileAgentScript } from './agentScript';
import { unavailable, type FileHostLease, type FileHostUse, type WorkspaceFileHosts } from './fileHosts';
import type { FilesSettings } from './filesSettings';
import { baseName, joinPath, ROOT_PATH, type WorkspacePath } from './workspacePath';

export interface FileEntryView {
  name: string;
  path: string;
  type: AgentEntry['type'];
  size: number;
  modifiedAt: string;
  /** Permission bits in octal, e.g. "0644". */
  mode: string;
  target?: string;
  targetType?: AgentEntry['type'] | null;
}

export interface Usage {
  bytes: number;
  files: number;
  quotaBytes: number;
  measuredAt: string;
}

export interface OpenedFile {
  name: string;
  size: number;
  modifiedAt: Date;
  body: Readable;
}

export interface WrittenFile {
  path: string;
  size: number;
}

/** Who asks, for the audit log: the owner, or an admin acting on someone's files. */
export interface FileActor {
  actor: Actor;
  origin: RequestOrigin;
}

const STAGING_DIR = '.clawloops-staging';
const AGENT_MAX_OUTPUT = 64 * 1024 ** 2;
const AGENT_TIMEOUT_MS = 5 * 60_000;
const USAGE_FRESH_MS = 10_000;
const CLEANUP_WAIT_MS = 2_000;
const RUNTIME_CHANGED = 'RUNTIME_CHANGED';

const STATUS_OF: Record<string, number> = {
  NOT_FOUND: 404,
  PATH_OUTSIDE_ROOT: 403,
  PERMISSION_DENIED: 403,
  NOT_A_DIRECTORY: 400,
  NOT_A_FILE: 400,
  INVALID_PATH: 400,
  INVALID_MOVE: 400,
  NAME_TOO_LONG: 400,
  ALREADY_EXISTS: 409,
  CONFLICT: 409,
  RECURSIVE_REQUIRED: 409,
  ROOT_UNAVAILABLE: 409,
  PRECONDITION_FAILED: 412,
  NO_SPACE: 507,
};

const collator = new Intl.Collator('en', { numeric: true, sensitivity: 'base' });
const stagingHeader = { uid: RUNTIME_UID, gid: RUNTIME_UID, type: 'directory' as const, mode: 0o700 };

/** True when the container went away between choosing it and using it (stopped meanwhile). */
const hostGone = (err: unknown) => err instanceof Error && /is not running|No such container|is restarting/i.test(err.message);

/**
 * The file manager: a user's files inside their runtime's volume, whatever state the runtime is
 * in. Bytes travel as tar streams through the Docker archive API (nothing is held in memory
 * whole), always through the user's file helper, never through the runtime (fileHosts.ts says
 * why); names are checked and moved by the in-container agent (fileAgent.ts). New content is
 * always staged under `.clawloops-staging/` in the volume and moved into place by rename or
 * link, so no half-written file ever appears under its final name. A download whose client reads
 * nothing for `streamIdleMs` is cut (the HTTP layer does the same for uploads).
 */
export class WorkspaceFiles {
  private readonly usageCache = new Map<string, { usage: Omit<Usage, 'quotaBytes'>; at: number }>();
  /** Bytes of uploads in flight, per user: two uploads at once cannot both take the last free space. */
  private readonly reserved = new Map<string, number>();

  constructor(
    private readonly deps: {
      hosts: WorkspaceFileHosts;
      backend: RuntimeBackend;
      settings: FilesSettings;
      audit: AuditLog;
      clock: Clock;
      logger: Logger;
      /** File work counts as activity for the runtime's idle stop. */
      onActivity: (userId: string) => void;
    },
  ) {}

  get settings(): FilesSettings {
    return this.deps.settings;
  }

  // ---- reading ----

  async list(userId: string, path: WorkspacePath): Promise<{ path: string; entries: FileEntryView[] }> {
    const result = await this.withHost(userId, 'exec', (lease) => this.agent<{ entries: AgentEntry[] }>(lease, { op: 'list', root: this.deps.settings.root, path }));
    const entries = result.entries
      .map((e) => ({
        name: e.name,
        path: joinPath(path, e.name as WorkspacePath),
        type: e.type,
        size: e.size,
        modifiedAt: new Date(e.mtimeMs).toISOString(),
        mode: `0${e.mode.toString(8).padStart(3, '0')}`,
        ...(e.target !== undefined ? { target: e.target, targetType: e.targetType ?? null } : {}),
      }))
      .sort((a, b) => Number(b.type === 'dir') - Number(a.type === 'dir') || collator.compare(a.name, b.name) || (a.name < b.name ? -1 : 1));
    return { path, entries };
  }

  async usage(userId: string, options: { fresh?: boolean } = {}): Promise<Usage> {
    const cached = this.usageCache.get(userId);
    if (cached && !options.fresh && this.deps.clock.now() - cached.at < USAGE_FRESH_MS) return { ...cached.usage, quotaBytes: this.deps.settings.quotaBytes };
    const totals = await this.withHost(userId, 'exec', (lease) => this.agent<{ bytes: number; files: number }>(lease, { op: 'usage', root: this.deps.settings.root }));
    const usage = { bytes: totals.bytes, files: totals.files, measuredAt: new Date(this.deps.clock.now()).toISOString() };
    this.usageCache.set(userId, { usage, at: this.deps.clock.now() });
    return { ...usage, quotaBytes: this.deps.settings.quotaBytes };
  }

  /**
   * A file's bytes, or a folder as a .tar.gz built while it streams. The lease on the container
   * is held until the body ends or is destroyed; a body nobody reads for `streamIdleMs` is
   * destroyed.
   */
  async open(userId: string, path: WorkspacePath): Promise<({ kind: 'file' } & OpenedFile) | { kind: 'directory'; name: string; body: Readable }> {
    const lease = await this.acquire(userId, 'stream');
    try {
      const stat = await this.agent<{ realPath: string; type: string }>(lease, { op: 'stat', root: this.deps.settings.root, path });
      if (stat.type === 'dir') {
        const archive = await this.archiveOf(lease, stat.realPath);
        if (!archive) throw new AppError(404, 'NOT_FOUND', `"${path}" does not exist.`);
        const body = gzipped(archive);
        this.cutWhenUnread(userId, archive, body);
        releaseWhenDone(body, lease);
        return { kind: 'directory', name: path === ROOT_PATH ? 'workspace' : baseName(path), body };
      }
      if (stat.type !== 'file') throw badRequest('NOT_A_FILE', `"${path}" is not a regular file.`);
      const archive = await this.archiveOf(lease, stat.realPath);
      if (!archive) throw new AppError(404, 'NOT_FOUND', `"${path}" does not exist.`);
      const file = await fileOf(archive, path);
      this.cutWhenUnread(userId, archive, file.body);
      releaseWhenDone(file.body, lease);
      return { kind: 'file', ...file };
    } catch (err) {
      lease.release();
      throw err;
    }
  }

  async readText(userId: string, path: WorkspacePath): Promise<{ path: string; content: string; etag: string; size: number; modifiedAt: string }> {
    const { textMaxBytes } = this.deps.settings;
    // Read to the end by the control plane itself, not by a client; through the helper all the same,
    // so that no archive call ever reaches a runtime.
    return this.withHost(userId, 'stream', async (lease) => {
      const stat = await this.agent<{ realPath: string; type: string; size: number }>(lease, { op: 'stat', root: this.deps.settings.root, path });
      if (stat.type !== 'file') throw badRequest('NOT_A_FILE', `"${path}" is not a file.`);
      if (stat.size > textMaxBytes) {
        throw new AppError(413, 'TEXT_TOO_LARGE', `"${path}" is ${stat.size} bytes; files up to ${textMaxBytes} bytes can be edited here. Download it instead.`);
      }
      const archive = await this.archiveOf(lease, stat.realPath);
      if (!archive) throw new AppError(404, 'NOT_FOUND', `"${path}" does not exist.`);
      const file = await fileOf(archive, path);
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of file.body as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > textMaxBytes) {
          file.body.destroy();
          throw new AppError(413, 'TEXT_TOO_LARGE', `"${path}" grew past ${textMaxBytes} bytes while it was read.`);
        }
        chunks.push(chunk);
      }
      const content = Buffer.concat(chunks);
      let text: string;
      try {
        text = new TextDecoder('utf-8', { fatal: true }).decode(content);
      } catch {
        throw new AppError(415, 'NOT_TEXT', `"${path}" is not UTF-8 text; download it instead.`);
      }
      return { path, content: text, etag: etagOf(content), size: content.length, modifiedAt: file.modifiedAt.toISOString() };
    });
  }

  /** Streams the whole workspace as .tar.gz (entries under `workspace/`). */
  async exportArchive(userId: string): Promise<Readable> {
    const lease = await this.acquire(userId, 'stream');
    try {
      const archive = await this.archiveOf(lease, this.deps.settings.root);
      // No workspace folder yet: an empty archive is the honest answer.
      const body = gzipped(archive ?? emptyTar());
      if (archive) this.cutWhenUnread(userId, archive, body);
      releaseWhenDone(body, lease);
      return body;
    } catch (err) {
      lease.release();
      throw err;
    }
  }

  // ---- writing ----

  async mkdir(who: FileActor, userId: string, path: WorkspacePath, parents: boolean): Promise<{ path: string }> {
    await this.withHost(userId, 'exec', (lease) => this.agent(lease, { op: 'mkdir', root: this.deps.settings.root, path, parents }));
    this.audit(who, userId, 'files.mkdir', { path });
    return { path };
  }

  async move(who: FileActor, userId: string, from: WorkspacePath, to: WorkspacePath, overwrite: boolean): Promise<{ from: string; to: string }> {
    await this.withHost(userId, 'exec', (lease) => this.agent(lease, { op: 'move', root: this.deps.settings.root, from, to, overwrite }));
    this.audit(who, userId, 'files.move', { from, to, overwrite });
    return { from, to };
  }

  async remove(who: FileActor, userId: string, path: WorkspacePath, recursive: boolean): Promise<{ path: string; bytes: number; files: number; dirs: number }> {
    const totals = await this.withHost(userId, 'exec', (lease) =>
      this.agent<{ bytes: number; files: number; dirs: number }>(lease, { op: 'remove', root: this.deps.settings.root, path, recursive }),
    );
    this.adjustUsage(userId, -totals.bytes);
    this.audit(who, userId, 'files.delete', { path, bytes: totals.bytes, files: totals.files, dirs: totals.dirs });
    return { path, ...totals };
  }

  /**
   * Saves a text file only if it is still what the editor loaded (`ifMatch`, an ETag from
   * readText) or, with `ifNoneMatch`, only if it does not exist yet. A mismatch is a 412 that
   * carries the current ETag: nobody's change is overwritten silently.
   */
  async writeText(
    who: FileActor,
    userId: string,
    path: WorkspacePath,
    content: Buffer,
    precondition: { ifMatch: string | null; ifNoneMatch: boolean },
  ): Promise<{ path: string; etag: string; size: number }> {
    const { textMaxBytes, root } = this.deps.settings;
    if (content.length > textMaxBytes) throw new AppError(413, 'TEXT_TOO_LARGE', `The text is ${content.length} bytes; files up to ${textMaxBytes} bytes can be edited here.`);
    const result = await this.withHost(userId, 'stream', async (lease) => {
      const upload = this.stage(lease);
      const name = 'text';
      try {
        await upload.add(name, content.length, () => bufferStream(content));
        await upload.finish();
      } catch (err) {
        await this.discard(lease, upload.staging);
        throw err;
      }
      return this.agent<{ etag: string; size: number }>(lease, { op: 'replaceText', root, staging: upload.staging, name, path, ...precondition });
    });
    this.invalidateUsage(userId);
    this.audit(who, userId, 'files.edit', { path, size: result.size });
    return { path, ...result };
  }

  /**
   * Starts an upload into `dir`: files are added one by one as they arrive and streamed into a
   * staging folder; `commit` moves them all into place, `abort` leaves nothing behind.
   * `declaredBytes` (the sum of the sizes the client announced) lets the quota refuse the
   * upload before a byte is sent.
   */
  async beginUpload(who: FileActor, userId: string, dir: WorkspacePath, options: { overwrite: boolean; declaredBytes: number | null; paths: WorkspacePath[] | null }): Promise<UploadSession> {
    const room = await this.reserveRoom(userId, options.declaredBytes ?? 0);
    let lease: FileHostLease;
    try {
      lease = await this.acquire(userId, 'stream');
    } catch (err) {
      room.release();
      throw err;
    }
    try {
      if (options.paths) {
        // Refused before any bytes are sent when the client said which names it brings.
        const { conflicts } = await this.agent<{ conflicts: AgentConflict[] }>(lease, { op: 'conflicts', root: this.deps.settings.root, dir, paths: options.paths, overwrite: options.overwrite });
        if (conflicts.length > 0) throw conflictError(conflicts);
      }
    } catch (err) {
      lease.release();
      room.release();
      throw err;
    }
    return new UploadSession({
      files: this,
      stage: this.stage(lease),
      lease,
      room,
      dir,
      overwrite: options.overwrite,
      maxFileBytes: this.deps.settings.maxFileBytes,
      onCommitted: (written) => {
        const bytes = written.reduce((sum, f) => sum + f.size, 0);
        this.adjustUsage(userId, bytes);
        this.audit(who, userId, 'files.upload', { path: dir, files: written.length, bytes, names: written.slice(0, 20).map((f) => f.path) });
      },
    });
  }

  /** Unpacks an uploaded .tar/.tar.gz into `dir` after checking every entry (archiveImport.ts). */
  async importArchive(who: FileActor, userId: string, dir: WorkspacePath, source: Readable, overwrite: boolean): Promise<ImportTotals & { path: string }> {
    const { settings } = this.deps;
    // Declared bytes are reserved as each header arrives: concurrent imports and uploads see them.
    const room = await this.reserveRoom(userId, 0);
    const lease = await this.acquire(userId, 'stream').catch((err: unknown) => {
      room.release();
      throw err;
    });
    const upload = this.stage(lease);
    let result: ImportTotals & { path: string };
    try {
      const totals = await repackArchive(
        source,
        await importSink(upload, 'tree'),
        {
          maxEntries: settings.importMaxEntries,
          maxTotalBytes: settings.maxRequestBytes,
          maxFileBytes: settings.maxFileBytes,
          totalLimitReason: 'the request size limit',
        },
        (declared) => room.take(declared),
      );
      await upload.finish();
      const placed = await this.agent<{ files: number; dirs: number; bytes: number }>(lease, { op: 'commitTree', root: settings.root, staging: upload.staging, dir, overwrite });
      this.adjustUsage(userId, placed.bytes);
      this.audit(who, userId, 'files.import', { path: dir, entries: totals.entries, files: placed.files, bytes: placed.bytes, overwrite });
      result = { path: dir, ...totals };
    } catch (err) {
      upload.cancel(err as Error);
      room.release();
      await this.cleanUp(lease, upload.staging);
      throw err;
    }
    room.release();
    lease.release();
    return result;
  }

  // ---- internals shared with UploadSession ----

  /** Runs the agent in the lease's container; its refusals become AppErrors with the right status. */
  async agent<T>(lease: FileHostLease, request: AgentRequest): Promise<T> {
    let result: ExecResult;
    try {
      result = await this.deps.backend.exec(lease.containerId, ['node', '-e', await fileAgentScript()], {
        user: `${RUNTIME_UID}:${RUNTIME_UID}`,
        stdin: JSON.stringify(request),
        maxOutputBytes: AGENT_MAX_OUTPUT,
        timeoutMs: AGENT_TIMEOUT_MS,
      });
    } catch (err) {
      if (hostGone(err)) throw new AppError(503, RUNTIME_CHANGED, 'The runtime was stopped or started during the file operation; try again.');
      throw unavailable(`The Docker engine did not run the file operation: ${(err as Error).message}`);
    }
    let response: AgentResponse;
    try {
      response = JSON.parse(result.stdout) as AgentResponse;
    } catch {
      this.deps.logger.error({ op: request.op, exitCode: result.exitCode, stderr: result.stderr.slice(-2000) }, 'file agent failed inside the container');
      const why = result.exitCode === 137 ? ' (it ran out of memory)' : '';
      throw new AppError(500, 'FILES_AGENT_FAILED', `The file operation failed inside the runtime${why}. The error was logged.`);
    }
    if (response.ok) return response.result as T;
    if (response.code === 'CONFLICT' && response.conflicts) throw conflictError(response.conflicts);
    const details = response.etag ? { etag: response.etag } : {};
    const headers: Record<string, string> = response.etag ? { ETag: response.etag } : {};
    throw new AppError(STATUS_OF[response.code] ?? 500, response.code, response.message, headers, details);
  }

  /** A staging folder in the volume and the tar stream that fills it. */
  stage(lease: FileHostLease): Staging {
    return new Staging(this.deps.backend, lease.containerId, this.deps.settings.volumeRoot, lease.signal);
  }

  async discard(lease: FileHostLease, staging: string): Promise<void> {
    try {
      await this.agent(lease, { op: 'discard', staging });
    } catch (err) {
      this.deps.logger.warn({ staging, err: (err as Error).message }, 'could not remove a staging folder; it goes with the next one');
    }
  }

  /**
   * Removes a refused write's staging folder, then releases the lease. Waits for that at most
   * CLEANUP_WAIT_MS: the engine may be busy with another write into the same container (it
   * serialises them), and a refusal must reach the client without waiting for that one.
   */
  async cleanUp(lease: FileHostLease, staging: string): Promise<void> {
    const removed = this.discard(lease, staging).finally(() => lease.release());
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([removed, new Promise<void>((resolve) => (timer = setTimeout(resolve, CLEANUP_WAIT_MS)))]);
    clearTimeout(timer);
  }

  private async acquire(userId: string, use: FileHostUse): Promise<FileHostLease> {
    const lease = await this.deps.hosts.acquire(userId, use);
    this.deps.onActivity(userId);
    return lease;
  }

  /** Runs `work` on a container holding the user's volume; once more on a fresh one if it stopped meanwhile. */
  private async withHost<T>(userId: string, use: FileHostUse, work: (lease: FileHostLease) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const lease = await this.acquire(userId, use);
      try {
        return await work(lease);
      } catch (err) {
        // The container went away between choosing it and using it: the next lease picks the right one.
        if (attempt > 0 || !(err instanceof AppError && err.code === RUNTIME_CHANGED)) throw err;
      } finally {
        lease.release();
      }
    }
  }

  /**
   * A claim on the user's free quota for one write. Every claim is checked against what every
   * other write in flight holds at that moment, so concurrent uploads and imports cannot each
   * take the same free bytes.
   */
  private async reserveRoom(userId: string, bytes: number): Promise<Room> {
    const { quotaBytes } = this.deps.settings;
    const used = (await this.usage(userId)).bytes;
    const free = () => Math.max(0, quotaBytes - used - (this.reserved.get(userId) ?? 0));
    if (bytes > free()) throw quotaError(quotaBytes, free());
    let held = 0;
    const hold = (n: number) => {
      held += n;
      this.reserved.set(userId, (this.reserved.get(userId) ?? 0) + n);
    };
    hold(bytes);
    return {
      take: (n: number) => {
        if (n <= held) return;
        const room = free();
        if (n - held > room) throw quotaError(quotaBytes, held + room);
        hold(n - held);
      },
      release: () => {
        const left = (this.reserved.get(userId) ?? 0) - held;
        held = 0;
        if (left <= 0) this.reserved.delete(userId);
        else this.reserved.set(userId, left);
      },
    };
  }

  private adjustUsage(userId: string, delta: number): void {
    const cached = this.usageCache.get(userId);
    if (cached) cached.usage = { ...cached.usage, bytes: Math.max(0, cached.usage.bytes + delta) };
  }

  private invalidateUsage(userId: string): void {
    this.usageCache.delete(userId);
  }

  private audit(who: FileActor, userId: string, action: string, detail: Record<string, unknown>): void {
    this.deps.audit.record({ action, actor: who.actor, target: { type: 'files', id: userId, label: null }, origin: who.origin, detail });
  }

  /** A getArchive through the lease: it ends when the lease is revoked (the helper is going away). */
  private archiveOf(lease: FileHostLease, realPath: string): Promise<Readable | null> {
    if (lease.signal.aborted) return Promise.reject(lease.signal.reason as Error);
    return this.deps.backend.getArchive(lease.containerId, realPath, lease.signal);
  }

  /**
   * Destroys `body` once no byte has come out of `archive` for `streamIdleMs`. The engine sends
   * only as fast as the client reads (backpressure all the way), so that means nobody is reading,
   * and the engine keeps the container's lock for as long as the archive stays open.
   */
  private cutWhenUnread(userId: string, archive: Readable, body: Readable): void {
    const { streamIdleMs } = this.deps.settings;
    const timer = setTimeout(() => {
      this.deps.logger.info({ userId, idleMs: streamIdleMs }, 'a download was cut: its client read nothing for too long');
      body.destroy(new AppError(408, 'DOWNLOAD_IDLE', `Nothing of the download was read for ${Math.round(streamIdleMs / 1000)} s, so it was cut off.`));
    }, streamIdleMs);
    timer.unref();
    // Observing 'data' of a stream that is already piped neither resumes it nor changes its pace.
    archive.on('data', () => timer.refresh());
    const stop = () => clearTimeout(timer);
    archive.once('close', stop);
    body.once('close', stop);
  }
}

/** The single regular file a getArchive holds, with its size from the tar header. */
async function fileOf(archive: Readable, path: WorkspacePath): Promise<OpenedFile> {
  const { head, body } = await firstTarFile(archive);
  if (head.type !== 'file') {
    body.destroy();
    throw badRequest('NOT_A_FILE', `"${path}" is not a regular file.`);
  }
  return { name: baseName(path), size: head.size, modifiedAt: head.mtime, body };
}

interface Room {
  /** Claims `n` bytes in total for this write; a 413 when other writes in flight and the files stored leave less. */
  take(n: number): void;
  release(): void;
}

/** An entry of a staging folder; `name` is relative to it. */
export interface StagedEntry {
  name: string;
  type: 'file' | 'directory' | 'symlink';
  /** Files only: exactly this many bytes must come from the body. */
  size?: number;
  mode: number;
  mtime?: Date;
  linkname?: string;
}

/**
 * One staging folder, `<volume>/.clawloops-staging/<id>/`, and the putArchive request filling
 * it. This is the only writer of that request, and it frames every entry itself (tarFraming.ts):
 * the engine reads whatever arrives as tar, so a body byte past an entry's declared size would be
 * read as a header the client chose (any path in the volume, any owner, mode or type). A body
 * that brings more or fewer bytes than declared therefore stops the archive on the spot: the
 * surplus never leaves, nothing else is written, and the request to the engine is aborted.
 * Entries go in strictly one after another (tar has no interleaving); file bytes pass straight
 * from the request to the engine.
 */
export class Staging {
  readonly id = newId();
  readonly entryPrefix = `${STAGING_DIR}/${this.id}`;
  readonly staging: string;
  private readonly archive = new PassThrough({ highWaterMark: 1024 * 1024 });
  private readonly abort = new AbortController();
  private readonly put: Promise<void>;
  private queue: Promise<void> = Promise.resolve();
  private failure: Error | null = null;

  /** `revoked`: the container is going away (fileHosts.ts); the write is cancelled with its reason. */
  constructor(backend: RuntimeBackend, containerId: string, volumeRoot: string, revoked?: AbortSignal) {
    this.staging = `${volumeRoot}/${this.entryPrefix}`;
    const mtime = new Date();
    this.archive.on('error', () => undefined); // a cancel destroys it with the reason; callers hear it from their own promise
    this.archive.write(tarHeader({ ...stagingHeader, name: STAGING_DIR, size: 0, mtime }));
    this.archive.write(tarHeader({ ...stagingHeader, name: this.entryPrefix, size: 0, mtime }));
    this.put = backend.putArchive(containerId, volumeRoot, this.archive, this.abort.signal);
    // The engine refusing or dropping the write must stop the writers, not leave them waiting for a drain.
    this.put.catch((err: unknown) => this.cancel(err instanceof Error ? err : new Error(String(err))));
    if (revoked) {
      const onRevoked = () => this.cancel(revoked.reason instanceof Error ? revoked.reason : new Error(String(revoked.reason)));
      if (revoked.aborted) onRevoked();
      else {
        revoked.addEventListener('abort', onRevoked, { once: true });
        this.put.catch(() => undefined).finally(() => revoked.removeEventListener('abort', onRevoked));
      }
    }
  }

  /** Streams exactly `size` bytes from `open()` as the staged file `name`; resolves once all are written. */
  add(name: string, size: number, open: () => Readable): Promise<void> {
    return this.entry({ name, type: 'file', size, mode: 0o644 }, open);
  }

  /**
   * Appends one entry. A file's body (`open` is called only when its turn comes) must bring
   * exactly `size` bytes; otherwise the whole staging is cancelled with a 400 SIZE_MISMATCH.
   * Owners are always the runtime user's; modes keep only permission bits.
   */
  entry(entry: StagedEntry, open?: () => Readable): Promise<void> {
    return this.enqueue(async () => {
      const size = entry.type === 'file' ? (entry.size ?? 0) : 0;
      this.archive.write(
        tarHeader({
          name: `${this.entryPrefix}/${entry.name}`,
          type: entry.type,
          size,
          mode: entry.mode,
          uid: RUNTIME_UID,
          gid: RUNTIME_UID,
          mtime: entry.mtime ?? new Date(),
          ...(entry.linkname !== undefined ? { linkname: entry.linkname } : {}),
        }),
      );
      if (entry.type !== 'file') return;
      await this.copyExactly(open ? open() : bufferStream(Buffer.alloc(0)), size);
      this.archive.write(tarPadding(size));
    });
  }

  /** Ends the archive and waits until the engine has unpacked all of it. */
  async finish(): Promise<void> {
    await this.queue;
    if (this.failure) throw this.failure;
    this.archive.end(TAR_END);
    await this.put;
    if (this.failure) throw this.failure;
  }

  cancel(reason: Error): void {
    this.failure ??= reason;
    this.abort.abort(reason);
    this.archive.destroy(reason);
  }

  private enqueue(step: () => Promise<void>): Promise<void> {
    const run = this.queue.then(() => {
      // Once cancelled, nothing more is written: not even a header.
      if (this.failure) throw this.failure;
      return step();
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Copies exactly `size` bytes of `source` into the archive, with backpressure. A chunk that
   * would go past `size` is cut at the boundary before anything of it is written past it; a
   * source that ends early or fails leaves the entry short. Either way the staging is cancelled
   * at once, so the engine never sees a byte that is not part of our framing.
   */
  private copyExactly(source: Readable, size: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let written = 0;
      let settled = false;
      const settle = (err: Error | null) => {
        if (settled) return;
        settled = true;
        // The source may still report its own failure later (it is destroyed below): nobody listens for it any more.
        source.on('error', () => undefined);
        source.off('data', onData);
        source.off('end', onEnd);
        source.off('error', settle);
        source.off('close', onClose);
        this.archive.off('drain', onDrain);
        this.archive.off('close', onArchiveClose);
        if (!err) return resolve();
        this.cancel(err);
        source.destroy();
        reject(err);
      };
      const onData = (chunk: Buffer) => {
        const room = size - written;
        if (chunk.length > room) {
          if (room > 0) this.archive.write(chunk.subarray(0, room));
          written = size;
          settle(badRequest('SIZE_MISMATCH', `The upload sent more than the ${size} bytes it announced for a file.`));
          return;
        }
        written += chunk.length;
        if (!this.archive.write(chunk)) source.pause();
      };
      const onDrain = () => source.resume();
      const onEnd = () =>
        settle(written === size ? null : badRequest('SIZE_MISMATCH', `The upload announced ${size} bytes for a file but sent ${written}.`));
      const onClose = () => settle(badRequest('UPLOAD_CUT_OFF', `A file of the upload was cut off after ${written} of its ${size} bytes.`));
      const onArchiveClose = () => settle(this.failure ?? new Error('the write into the runtime ended early'));
      if (this.failure) return settle(this.failure);
      if (source.readableEnded) return onEnd();
      if (source.destroyed) return source.errored ? settle(source.errored) : onClose();
      source.on('data', onData);
      source.once('end', onEnd);
      source.once('error', settle);
      source.once('close', onClose);
      this.archive.on('drain', onDrain);
      this.archive.once('close', onArchiveClose);
    });
  }
}

/** An import's checked entries, written under `folder` of the staging folder (created here). */
export async function importSink(stage: Staging, folder: string): Promise<ImportSink> {
  await stage.entry({ name: folder, type: 'directory', mode: 0o700 });
  return {
    directory: (path, mode, mtime) => stage.entry({ name: `${folder}/${path}`, type: 'directory', mode, mtime }),
    symlink: (path, target, mtime) => stage.entry({ name: `${folder}/${path}`, type: 'symlink', linkname: target, mode: 0o777, mtime }),
    file: (path, size, mode, mtime, body) => stage.entry({ name: `${folder}/${path}`, type: 'file', size, mode, mtime }, () => body),
  };
}

/** Files arriving one by one (multipart) into one staging folder, moved into place at commit. */
export class UploadSession {
  private readonly staged: StagedFile[] = [];
  private readonly seen = new Set<string>();
  private readonly folders = new Set<string>();
  private bytes = 0;
  private settled = false;

  constructor(
    private readonly s: {
      files: WorkspaceFiles;
      stage: Staging;
      lease: FileHostLease;
      room: Room;
      dir: WorkspacePath;
      overwrite: boolean;
      maxFileBytes: number;
      onCommitted: (written: WrittenFile[]) => void;
    },
  ) {}

  get fileCount(): number {
    return this.staged.length;
  }

  /**
   * Claims `size` bytes of quota for a file of this upload that is still arriving (spooled to
   * disk first), before its bytes are written anywhere: a 413 as soon as it passes what is free.
   */
  reserve(path: WorkspacePath, size: number): void {
    if (size > this.s.maxFileBytes) throw fileTooLarge(path, this.s.maxFileBytes);
    this.s.room.take(this.bytes + size);
  }

  /** Checks name and size against the limits, then streams the file into staging (`open` is called only then). */
  add(path: WorkspacePath, size: number, open: () => Readable): Promise<void> {
    if (path === ROOT_PATH) throw badRequest('INVALID_PATH', 'A file in the upload has no name.');
    if (this.seen.has(path)) throw badRequest('DUPLICATE_PATH', `"${path}" appears twice in this upload.`);
    // "a" and "a/b.txt" in one upload: one of them would have to be a file and a folder at once.
    if (this.folders.has(path)) throw badRequest('PATH_CONFLICT_IN_UPLOAD', `"${path}" is both a file and a folder in this upload.`);
    const parents = path.split('/').slice(0, -1).map((_, i, all) => all.slice(0, i + 1).join('/'));
    const clash = parents.find((parent) => this.seen.has(parent));
    if (clash) throw badRequest('PATH_CONFLICT_IN_UPLOAD', `"${clash}" is both a file and a folder in this upload.`);
    for (const parent of parents) this.folders.add(parent);
    if (size > this.s.maxFileBytes) throw fileTooLarge(path, this.s.maxFileBytes);
    this.s.room.take(this.bytes + size);
    this.seen.add(path);
    this.bytes += size;
    const name = String(this.staged.length);
    this.staged.push({ name, path });
    return this.s.stage.add(name, size, open);
  }

  async commit(): Promise<WrittenFile[]> {
    if (this.settled) throw new Error('upload already finished');
    this.settled = true;
    const { files, stage, lease, room } = this.s;
    let written: WrittenFile[];
    try {
      await stage.finish();
      ({ written } = await files.agent<{ written: WrittenFile[] }>(lease, {
        op: 'commit',
        root: files.settings.root,
        staging: stage.staging,
        dir: this.s.dir,
        files: this.staged,
        overwrite: this.s.overwrite,
      }));
      this.s.onCommitted(written);
    } catch (err) {
      stage.cancel(err as Error);
      room.release();
      await files.cleanUp(lease, stage.staging);
      throw err;
    }
    room.release();
    lease.release();
    return written;
  }

  /** Nothing of this upload stays: the stream is cut and the staging folder removed. */
  async abort(reason: Error): Promise<void> {
    if (this.settled) return;
    this.settled = true;
    const { files, stage, lease, room } = this.s;
    stage.cancel(reason);
    room.release();
    await files.cleanUp(lease, stage.staging);
  }
}

/** Same formula as the agent's, so an ETag from a read matches the one a write checks against. */
export const etagOf = (content: Buffer): string => `"sha256-${createHash('sha256').update(content).digest('base64url')}"`;

export const fileTooLarge = (path: string, limit: number) =>
  new AppError(413, 'FILE_TOO_LARGE', `"${path}" is larger than ${limit} bytes, the largest file allowed (CLAWLOOPS_FILES_MAX_FILE_SIZE).`, {}, { limitBytes: limit });

const quotaError = (quota: number, available: number) =>
  new AppError(413, 'QUOTA_EXCEEDED', `This would exceed your workspace quota of ${quota} bytes: ${available} bytes are free. Delete files or ask an admin for more space.`, {}, {
    quotaBytes: quota,
    availableBytes: available,
  });

const conflictError = (conflicts: AgentConflict[]) =>
  new AppError(
    409,
    'NAME_CONFLICT',
    `${conflicts.length === 1 ? 'A name is' : `${conflicts.length} names are`} already taken: ${conflicts
      .slice(0, 5)
      .map((c) => `"${c.path}"`)
      .join(', ')}${conflicts.length > 5 ? ', …' : ''}. Repeat with overwrite=1 to replace files.`,
    {},
    { conflicts },
  );

function gzipped(archive: Readable): Readable {
  const gzip = createGzip({ level: 3 });
  pipeline(archive, gzip).catch((err: Error) => gzip.destroy(err));
  return gzip;
}

function releaseWhenDone(body: Readable, lease: FileHostLease): void {
  body.once('close', () => lease.release());
  body.once('end', () => lease.release());
}

function emptyTar(): Readable {
  const archive = pack();
  archive.finalize();
  return archive as unknown as Readable;
}

function bufferStream(content: Buffer): Readable {
  const stream = new PassThrough();
  stream.end(content);
  return stream;
}

/** Passes only bytes [start, end] of a stream, then ends it (HTTP Range). */
export function byteRange(start: number, end: number): Transform {
  let offset = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      const from = Math.max(0, start - offset);
      const to = Math.min(chunk.length, end + 1 - offset);
      offset += chunk.length;
      if (to > from) this.push(chunk.subarray(from, to));
      if (offset > end) this.push(null);
      done();
    },
  });
}
