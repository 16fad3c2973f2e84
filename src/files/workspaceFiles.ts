import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { Actor, AuditLog, RequestOrigin } from '../domain/audit';
import type { Clock } from '../lib/clock';
import { AppError, badRequest } from '../lib/errors';
import type { Logger } from '../lib/logger';
import type { AgentConflict, AgentEntry } from './agent/protocol';
import { FileAgentClient } from './agentClient';
import { repackArchive, type ImportTotals } from './archiveImport';
import { conflictError, quotaError, RUNTIME_CHANGED, volumeFault } from './fileErrors';
import { bufferStream, cutWhenUnread, emptyTar, fileOf, gzipped, releaseWhenDone, type OpenedFile } from './fileStreams';
import type { FilesSettings } from './filesSettings';
import { importSink, STAGING_DIR, Staging } from './staging';
import { newId } from '../lib/secrets';
import { UploadSession, type Room } from './uploadSession';
import { baseName, joinPath, ROOT_PATH, type WorkspacePath } from './workspacePath';
import type { VolumeAccess, VolumeUse, WorkspaceVolumes } from './workspaceVolumes';

export type { OpenedFile } from './fileStreams';
export type { WrittenFile } from './uploadSession';

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

/** Who asks, for the audit log: the owner, or an admin acting on someone's files. */
export interface FileActor {
  actor: Actor;
  origin: RequestOrigin;
}

const collator = new Intl.Collator('en', { numeric: true, sensitivity: 'base' });
const USAGE_FRESH_MS = 10_000;

/**
 * The file manager: a user's files inside their runtime's volume, whatever state the runtime is
 * in, reached through the workspace-volume port (workspaceVolumes.ts). Bytes travel as tar
 * streams (nothing is held in memory whole); names are checked and moved by the file agent
 * (agent/), run where the volume is mounted. New content is always staged under
 * `.clawloops-staging/` in the volume and moved into place by rename or link, so no half-written
 * file ever appears under its final name. A download whose client reads
 * nothing for `streamIdleMs` is cut (the HTTP layer does the same for uploads).
 */
export class WorkspaceFiles {
  private readonly usageCache = new Map<string, { usage: Omit<Usage, 'quotaBytes'>; at: number }>();
  /** Bytes of uploads in flight, per user: two uploads at once cannot both take the last free space. */
  private readonly reserved = new Map<string, number>();
  private readonly agent: FileAgentClient;

  constructor(
    private readonly deps: {
      volumes: WorkspaceVolumes;
      settings: FilesSettings;
      audit: AuditLog;
      clock: Clock;
      logger: Logger;
      /** File work counts as activity for the runtime's idle stop. */
      onActivity: (userId: string) => void;
    },
  ) {
    this.agent = new FileAgentClient(deps.logger);
  }

  get settings(): FilesSettings {
    return this.deps.settings;
  }

  // ---- reading ----

  async list(userId: string, path: WorkspacePath): Promise<{ path: string; entries: FileEntryView[] }> {
    const result = await this.withAccess(userId, 'command', (access) => this.agent.run<{ entries: AgentEntry[] }>(access, { op: 'list', root: this.deps.settings.root, path }));
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

  /** One entry, links inside the root followed (one leading outside is refused). */
  async stat(userId: string, path: WorkspacePath): Promise<{ type: AgentEntry['type']; size: number; modifiedAt: Date }> {
    const st = await this.withAccess(userId, 'command', (access) =>
      this.agent.run<{ type: AgentEntry['type']; size: number; mtimeMs: number }>(access, { op: 'stat', root: this.deps.settings.root, path }),
    );
    return { type: st.type, size: st.size, modifiedAt: new Date(st.mtimeMs) };
  }

  /**
   * `anyAge`: a cached figure of any age will do (another write of the user's streams right now:
   * a measurement would run in the container its archive stream holds, and wait for it to end).
   */
  async usage(userId: string, options: { fresh?: boolean; anyAge?: boolean } = {}): Promise<Usage> {
    const cached = this.usageCache.get(userId);
    if (cached && !options.fresh && (options.anyAge || this.deps.clock.now() - cached.at < USAGE_FRESH_MS)) return { ...cached.usage, quotaBytes: this.deps.settings.quotaBytes };
    const totals = await this.withAccess(userId, 'command', (access) => this.agent.run<{ bytes: number; files: number }>(access, { op: 'usage', root: this.deps.settings.root }));
    const usage = { bytes: totals.bytes, files: totals.files, measuredAt: new Date(this.deps.clock.now()).toISOString() };
    this.usageCache.set(userId, { usage, at: this.deps.clock.now() });
    return { ...usage, quotaBytes: this.deps.settings.quotaBytes };
  }

  /**
   * A file's bytes, or a folder as a .tar.gz built while it streams. The access to the volume
   * is held until the body ends or is destroyed; a body nobody reads for `streamIdleMs` is
   * destroyed.
   */
  async open(userId: string, path: WorkspacePath): Promise<({ kind: 'file' } & OpenedFile) | { kind: 'directory'; name: string; body: Readable }> {
    const access = await this.acquire(userId, 'stream');
    try {
      const stat = await this.agent.run<{ realPath: string; type: string }>(access, { op: 'stat', root: this.deps.settings.root, path });
      if (stat.type === 'dir') {
        const archive = await this.archiveOf(access, stat.realPath);
        if (!archive) throw new AppError(404, 'NOT_FOUND', `"${path}" does not exist.`);
        const body = gzipped(archive);
        this.cutWhenUnread(userId, archive, body);
        releaseWhenDone(body, access);
        return { kind: 'directory', name: path === ROOT_PATH ? 'workspace' : baseName(path), body };
      }
      if (stat.type !== 'file') throw badRequest('NOT_A_FILE', `"${path}" is not a regular file.`);
      const archive = await this.archiveOf(access, stat.realPath);
      if (!archive) throw new AppError(404, 'NOT_FOUND', `"${path}" does not exist.`);
      const file = await fileOf(archive, path);
      this.cutWhenUnread(userId, archive, file.body);
      releaseWhenDone(file.body, access);
      return { kind: 'file', ...file };
    } catch (err) {
      access.release();
      throw err;
    }
  }

  async readText(userId: string, path: WorkspacePath): Promise<{ path: string; content: string; etag: string; size: number; modifiedAt: string }> {
    const { textMaxBytes } = this.deps.settings;
    // Read to the end by the control plane itself, not by a client; a stream access all the same,
    // so that the port keeps every archive read away from the runtime.
    return this.withAccess(userId, 'stream', async (access) => {
      const stat = await this.agent.run<{ realPath: string; type: string; size: number }>(access, { op: 'stat', root: this.deps.settings.root, path });
      if (stat.type !== 'file') throw badRequest('NOT_A_FILE', `"${path}" is not a file.`);
      if (stat.size > textMaxBytes) {
        throw new AppError(413, 'TEXT_TOO_LARGE', `"${path}" is ${stat.size} bytes; files up to ${textMaxBytes} bytes can be edited here. Download it instead.`);
      }
      const archive = await this.archiveOf(access, stat.realPath);
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
    const access = await this.acquire(userId, 'stream');
    try {
      const archive = await this.archiveOf(access, this.deps.settings.root);
      // No workspace folder yet: an empty archive is the honest answer.
      const body = gzipped(archive ?? emptyTar());
      if (archive) this.cutWhenUnread(userId, archive, body);
      releaseWhenDone(body, access);
      return body;
    } catch (err) {
      access.release();
      throw err;
    }
  }

  // ---- writing ----

  async mkdir(who: FileActor, userId: string, path: WorkspacePath, parents: boolean): Promise<{ path: string }> {
    await this.withAccess(userId, 'command', (access) => this.agent.run(access, { op: 'mkdir', root: this.deps.settings.root, path, parents }));
    this.audit(who, userId, 'files.mkdir', { path });
    return { path };
  }

  async move(who: FileActor, userId: string, from: WorkspacePath, to: WorkspacePath, overwrite: boolean): Promise<{ from: string; to: string }> {
    await this.withAccess(userId, 'command', (access) => this.agent.run(access, { op: 'move', root: this.deps.settings.root, from, to, overwrite }));
    this.audit(who, userId, 'files.move', { from, to, overwrite });
    return { from, to };
  }

  /**
   * Copies a file or folder (`shallow`: a folder without its content) inside the workspace; the
   * agent builds it in staging and moves it into place, and refuses it beyond the free quota.
   */
  async copy(who: FileActor, userId: string, from: WorkspacePath, to: WorkspacePath, options: { overwrite: boolean; shallow: boolean }): Promise<{ replaced: boolean; bytes: number }> {
    const room = await this.reserveRoom(userId, 0);
    try {
      const { quotaBytes } = this.deps.settings;
      const used = (await this.usage(userId, { anyAge: true })).bytes;
      const maxBytes = Math.max(0, quotaBytes - used - (this.reserved.get(userId) ?? 0));
      const staging = `${this.deps.settings.volumeRoot}/${STAGING_DIR}/${newId()}`;
      const result = await this.withAccess(userId, 'command', (access) =>
        this.agent.run<{ bytes: number; files: number; dirs: number; replaced: boolean }>(access, { op: 'copy', root: this.deps.settings.root, from, to, staging, maxBytes, ...options }),
      );
      this.invalidateUsage(userId);
      this.audit(who, userId, 'files.copy', { from, to, overwrite: options.overwrite, bytes: result.bytes, files: result.files });
      return { replaced: result.replaced, bytes: result.bytes };
    } catch (err) {
      if (err instanceof AppError && err.code === 'QUOTA_EXCEEDED') throw quotaError(this.deps.settings.quotaBytes, 0);
      throw err;
    } finally {
      room.release();
    }
  }

  async remove(who: FileActor, userId: string, path: WorkspacePath, recursive: boolean): Promise<{ path: string; bytes: number; files: number; dirs: number }> {
    const totals = await this.withAccess(userId, 'command', (access) =>
      this.agent.run<{ bytes: number; files: number; dirs: number }>(access, { op: 'remove', root: this.deps.settings.root, path, recursive }),
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
    const result = await this.withAccess(userId, 'stream', async (access) => {
      const upload = this.stage(access);
      const name = 'text';
      try {
        await upload.add(name, content.length, () => bufferStream(content));
        await upload.finish();
      } catch (err) {
        await this.agent.discard(access, upload.staging);
        throw err;
      }
      return this.agent.run<{ etag: string; size: number }>(access, { op: 'replaceText', root, staging: upload.staging, name, path, ...precondition });
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
    let access: VolumeAccess;
    try {
      access = await this.acquire(userId, 'stream');
    } catch (err) {
      room.release();
      throw err;
    }
    try {
      if (options.paths) {
        // Refused before any bytes are sent when the client said which names it brings.
        const { conflicts } = await this.agent.run<{ conflicts: AgentConflict[] }>(access, { op: 'conflicts', root: this.deps.settings.root, dir, paths: options.paths, overwrite: options.overwrite });
        if (conflicts.length > 0) throw conflictError(conflicts);
      }
    } catch (err) {
      access.release();
      room.release();
      throw err;
    }
    return new UploadSession({
      agent: this.agent,
      stage: this.stage(access),
      access,
      room,
      root: this.deps.settings.root,
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
    const access = await this.acquire(userId, 'stream').catch((err: unknown) => {
      room.release();
      throw err;
    });
    const upload = this.stage(access);
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
      const placed = await this.agent.run<{ files: number; dirs: number; bytes: number }>(access, { op: 'commitTree', root: settings.root, staging: upload.staging, dir, overwrite });
      this.adjustUsage(userId, placed.bytes);
      this.audit(who, userId, 'files.import', { path: dir, entries: totals.entries, files: placed.files, bytes: placed.bytes, overwrite });
      result = { path: dir, ...totals };
    } catch (err) {
      upload.cancel(err as Error);
      room.release();
      await this.agent.cleanUp(access, upload.staging);
      throw err;
    }
    room.release();
    access.release();
    return result;
  }

  // ---- internals ----

  /** A staging folder in the volume and the tar stream that fills it. */
  private stage(access: VolumeAccess): Staging {
    return new Staging(access, this.deps.settings.volumeRoot);
  }

  private async acquire(userId: string, use: VolumeUse): Promise<VolumeAccess> {
    let access: VolumeAccess;
    try {
      access = await this.deps.volumes.acquire(userId, use);
    } catch (err) {
      throw volumeFault(err);
    }
    this.deps.onActivity(userId);
    return access;
  }

  /** Runs `work` with access to the user's volume; once more with a fresh access if the runtime stopped or started meanwhile. */
  private async withAccess<T>(userId: string, use: VolumeUse, work: (access: VolumeAccess) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const access = await this.acquire(userId, use);
      try {
        return await work(access);
      } catch (err) {
        // What the access ran in went away between choosing it and using it: the next access picks the right one.
        if (attempt > 0 || !(err instanceof AppError && err.code === RUNTIME_CHANGED)) throw err;
      } finally {
        access.release();
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
    // With another write in flight, the figure it started from (kept up to date as writes land)
    // plus what is reserved is the bound: measuring now would wait behind that write's stream.
    const used = (await this.usage(userId, { anyAge: this.reserved.has(userId) })).bytes;
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

  /** An archive read through the access: it ends when the access is taken away. */
  private async archiveOf(access: VolumeAccess, realPath: string): Promise<Readable | null> {
    try {
      return await access.readArchive(realPath);
    } catch (err) {
      throw volumeFault(err);
    }
  }

  /** A download nobody reads for `streamIdleMs` is cut (fileStreams.cutWhenUnread). */
  private cutWhenUnread(userId: string, archive: Readable, body: Readable): void {
    const { streamIdleMs } = this.deps.settings;
    cutWhenUnread(archive, body, streamIdleMs, () => this.deps.logger.info({ userId, idleMs: streamIdleMs }, 'a download was cut: its client read nothing for too long'));
  }
}

/** Same formula as the agent's (agent/placing.ts), so an ETag from a read matches the one a write checks against. */
export const etagOf = (content: Buffer): string => `"sha256-${createHash('sha256').update(content).digest('base64url')}"`;
