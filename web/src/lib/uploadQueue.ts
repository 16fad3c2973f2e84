/**
 * The upload queue of the Files page, free of the DOM so it is tested in Node: the transport
 * (XMLHttpRequest in the browser), the clock and the frame scheduler are handed in.
 *
 * - Small files travel together: one multipart request carries up to `maxBatchFiles` files and
 *   `maxBatchBytes` bytes, so 200 small files cost 4 requests, not 200 (each request has a fixed
 *   cost of a few hundred milliseconds on the server). A file over `aloneBytes` travels alone.
 * - Every request starts with a manifest (`[{path, size}]` in file order) so the server checks
 *   quota and name conflicts before any byte is sent.
 * - At most `maxInFlight` requests run at once.
 * - A file's progress is derived from the bytes of its request sent so far: files are sent in
 *   order, so file i has `sent - start(i)` of its bytes through.
 * - Cancelling a file of a running request aborts the request and queues its other files again;
 *   a refused request fails only the files it names (409 conflicts, 413 too large) and sends the
 *   others again.
 * - Subscribers are told of changes at most once per scheduled frame, from one snapshot whose
 *   unchanged rows keep their identity (cheap memoised rendering).
 */

export type TransferState = 'queued' | 'uploading' | 'done' | 'failed' | 'cancelled';
export type ConflictReason = 'exists' | 'is-directory' | 'blocked-by-file';

export interface TransferError {
  /** HTTP status; 0 when no answer arrived. */
  status: number;
  code: string;
  /** The server's words. */
  message: string;
  /** The rest of the server's error object, e.g. `conflicts`, `limitBytes`, `availableBytes`. */
  details: Record<string, unknown>;
  /** Set when this file's name is taken: `exists` can be overwritten, the others cannot. */
  conflict?: ConflictReason;
}

export interface TransferRow {
  readonly id: number;
  /** The path as picked or dropped, relative to `dir` (`photos/a.jpg`). */
  readonly name: string;
  /** The workspace folder it goes into ('' = the workspace). */
  readonly dir: string;
  /** The full workspace path it will have. */
  readonly path: string;
  readonly size: number;
  /** Bytes of this file sent so far. */
  readonly loaded: number;
  /** Bytes per second while it moves; its average once done. */
  readonly rate: number;
  readonly state: TransferState;
  readonly overwrite: boolean;
  /** Cancelled because the user chose to skip a name that was taken. */
  readonly skipped: boolean;
  readonly error: TransferError | null;
}

export interface TransferSnapshot {
  readonly rows: readonly TransferRow[];
  readonly counts: Readonly<Record<TransferState, number>>;
  /** Over the rows not cancelled. */
  readonly bytesDone: number;
  readonly bytesTotal: number;
  /** All running requests together, bytes per second. */
  readonly rate: number;
  /** Failed rows whose name exists and could be overwritten. */
  readonly conflicts: number;
  /** Rows queued or uploading. */
  readonly active: number;
}

export interface BatchFile<F> {
  id: number;
  /** Relative to the batch's `dir`, as the manifest says it. */
  path: string;
  size: number;
  file: F;
}

export interface UploadBatch<F> {
  id: number;
  dir: string;
  overwrite: boolean;
  files: BatchFile<F>[];
  bytes: number;
}

export type BatchResult = { ok: true } | { ok: false; error: TransferError };

export interface RunningSend {
  abort(): void;
  /** Settles once; an aborted send may settle any way (the queue has let go of it already). */
  done: Promise<BatchResult>;
}

export interface UploadTransport<F> {
  /** Sends the batch; `onProgress` gets the bytes of file content sent so far (files in order). */
  send(batch: UploadBatch<F>, onProgress: (fileBytesSent: number) => void): RunningSend;
}

export interface UploadQueueOptions<F> {
  transport: UploadTransport<F>;
  /** Milliseconds, monotonic. */
  now: () => number;
  /** Runs `flush` once soon (the page passes requestAnimationFrame). */
  schedule: (flush: () => void) => void;
  maxInFlight?: number;
  maxBatchFiles?: number;
  maxBatchBytes?: number;
  /** Files larger than this are sent alone. */
  aloneBytes?: number;
}

export interface NewUpload<F> {
  file: F;
  /** Path relative to the target folder; may hold folders (`a/b.txt`). */
  relativePath: string;
  size: number;
}

export interface FinishedBatch {
  dir: string;
  paths: string[];
}

const MiB = 1024 * 1024;
export const UPLOAD_DEFAULTS = { maxInFlight: 2, maxBatchFiles: 50, maxBatchBytes: 32 * MiB, aloneBytes: 8 * MiB } as const;
const RATE_WINDOW_MS = 3000;

export const joinPath = (dir: string, name: string): string => (dir === '' ? name : name === '' ? dir : `${dir}/${name}`);

/** `a//b/./c/` → `a/b/c`: the form the server compares conflicts in. */
export function normalizePath(path: string): string {
  return path
    .split('/')
    .filter((s) => s !== '' && s !== '.')
    .join('/');
}

interface Item<F> {
  row: TransferRow;
  file: F;
  running: Running<F> | null;
}

interface Running<F> {
  batch: UploadBatch<F>;
  items: Item<F>[];
  starts: number[];
  send: RunningSend | null;
  startedAt: number;
  samples: { t: number; bytes: number }[];
  sent: number;
  rate: number;
  settled: boolean;
}

const EMPTY_COUNTS: Record<TransferState, number> = { queued: 0, uploading: 0, done: 0, failed: 0, cancelled: 0 };

export class UploadQueue<F> {
  private readonly options: Required<UploadQueueOptions<F>>;
  private readonly items = new Map<number, Item<F>>();
  /** Queued items in sending order. */
  private queued = new Set<Item<F>>();
  private readonly running = new Set<Running<F>>();
  private readonly listeners = new Set<() => void>();
  private readonly finishedListeners = new Set<(batch: FinishedBatch) => void>();
  private nextId = 1;
  private nextBatchId = 1;
  private scheduled = false;
  private snapshot: TransferSnapshot = { rows: [], counts: EMPTY_COUNTS, bytesDone: 0, bytesTotal: 0, rate: 0, conflicts: 0, active: 0 };

  constructor(options: UploadQueueOptions<F>) {
    this.options = { ...UPLOAD_DEFAULTS, ...options };
  }

  // ---- what the page reads ----

  /** For useSyncExternalStore: called at most once per scheduled frame. */
  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  /** The state as of the last frame: the same object until something changed. */
  getSnapshot = (): TransferSnapshot => this.snapshot;

  /** Called right after a request's files are in place (to reload the listing and the usage). */
  onFinished(listener: (batch: FinishedBatch) => void): () => void {
    this.finishedListeners.add(listener);
    return () => this.finishedListeners.delete(listener);
  }

  // ---- what the user does ----

  /** Queues files for `dir` and starts sending; returns their row ids. */
  add(files: readonly NewUpload<F>[], dir: string, options: { overwrite?: boolean } = {}): number[] {
    const target = normalizePath(dir);
    const ids: number[] = [];
    for (const upload of files) {
      const name = normalizePath(upload.relativePath);
      if (name === '') continue;
      const id = this.nextId++;
      const item: Item<F> = {
        file: upload.file,
        running: null,
        row: {
          id,
          name,
          dir: target,
          path: joinPath(target, name),
          size: upload.size,
          loaded: 0,
          rate: 0,
          state: 'queued',
          overwrite: options.overwrite ?? false,
          skipped: false,
          error: null,
        },
      };
      this.items.set(id, item);
      this.queued.add(item);
      ids.push(id);
    }
    this.pump();
    this.changed();
    return ids;
  }

  /** Stops one file: a queued one is dropped; a sending one aborts its request, whose other files go again. */
  cancel(id: number): void {
    const item = this.items.get(id);
    if (!item) return;
    if (item.row.state === 'queued') {
      this.queued.delete(item);
      this.update(item, { state: 'cancelled', rate: 0 });
    } else if (item.row.state === 'uploading' && item.running) {
      const running = item.running;
      this.abort(running);
      this.update(item, { state: 'cancelled', rate: 0 });
      this.requeue(running.items.filter((other) => other !== item));
    } else return;
    this.pump();
    this.changed();
  }

  cancelAll(): void {
    for (const item of this.queued) this.update(item, { state: 'cancelled', rate: 0 });
    this.queued.clear();
    for (const running of [...this.running]) {
      this.abort(running);
      for (const item of running.items) this.update(item, { state: 'cancelled', rate: 0 });
    }
    this.changed();
  }

  /** Sends a failed or cancelled file again, as it was. */
  retry(id: number): void {
    this.again([id], false);
  }

  /** Sends a file whose name was taken again, replacing what is there. */
  overwrite(id: number): void {
    this.again([id], true);
  }

  /** Leaves a file whose name was taken as it is. */
  skip(id: number): void {
    const item = this.items.get(id);
    if (!item || item.row.state !== 'failed') return;
    this.update(item, { state: 'cancelled', skipped: true });
    this.changed();
  }

  overwriteAllConflicts(): void {
    this.again(this.conflictIds(), true);
  }

  skipAllConflicts(): void {
    for (const id of this.conflictIds()) this.skip(id);
  }

  /** Removes the rows that are done, failed or cancelled. */
  clearFinished(): void {
    for (const [id, item] of this.items) {
      if (item.row.state !== 'queued' && item.row.state !== 'uploading') this.items.delete(id);
    }
    this.changed();
  }

  // ---- internals ----

  private conflictIds(): number[] {
    return [...this.items.values()].filter((item) => item.row.state === 'failed' && item.row.error?.conflict === 'exists').map((item) => item.row.id);
  }

  private again(ids: number[], overwrite: boolean): void {
    const items: Item<F>[] = [];
    for (const id of ids) {
      const item = this.items.get(id);
      if (!item || (item.row.state !== 'failed' && item.row.state !== 'cancelled')) continue;
      this.update(item, { overwrite: overwrite || item.row.overwrite, skipped: false });
      items.push(item);
    }
    if (items.length === 0) return;
    // Behind the files already waiting: what the user asked for first goes first.
    for (const item of items) {
      this.update(item, { state: 'queued', loaded: 0, rate: 0, error: null });
      this.queued.add(item);
    }
    this.pump();
    this.changed();
  }

  /** Puts files of an aborted or refused request back at the front of the queue. */
  private requeue(items: Item<F>[]): void {
    if (items.length === 0) return;
    for (const item of items) {
      item.running = null;
      this.update(item, { state: 'queued', loaded: 0, rate: 0, error: null });
    }
    this.queued = new Set([...items, ...this.queued]);
  }

  private abort(running: Running<F>): void {
    running.settled = true;
    this.running.delete(running);
    for (const item of running.items) item.running = null;
    running.send?.abort();
  }

  private pump(): void {
    while (this.running.size < this.options.maxInFlight) {
      const items = this.nextBatch();
      if (items.length === 0) return;
      this.start(items);
    }
  }

  /** The next request's files: the first queued file, and the queued ones after it that fit with it. */
  private nextBatch(): Item<F>[] {
    const { maxBatchFiles, maxBatchBytes, aloneBytes } = this.options;
    let first: Item<F> | null = null;
    for (const item of this.queued) {
      first = item;
      break;
    }
    if (!first) return [];
    if (first.row.size > aloneBytes) return [first];
    const batch = [first];
    const paths = new Set([first.row.path]);
    let bytes = first.row.size;
    for (const item of this.queued) {
      if (batch.length >= maxBatchFiles) break;
      if (item === first) continue;
      const row = item.row;
      // A request goes to one folder with one overwrite choice; a name may appear once in it.
      if (row.dir !== first.row.dir || row.overwrite !== first.row.overwrite || row.size > aloneBytes || paths.has(row.path)) continue;
      if (bytes + row.size > maxBatchBytes) continue;
      batch.push(item);
      paths.add(row.path);
      bytes += row.size;
    }
    return batch;
  }

  private start(items: Item<F>[]): void {
    const first = items[0] as Item<F>;
    const starts: number[] = [];
    let offset = 0;
    const files = items.map((item) => {
      starts.push(offset);
      offset += item.row.size;
      return { id: item.row.id, path: item.row.name, size: item.row.size, file: item.file };
    });
    const batch: UploadBatch<F> = { id: this.nextBatchId++, dir: first.row.dir, overwrite: first.row.overwrite, files, bytes: offset };
    const running: Running<F> = { batch, items, starts, send: null, startedAt: this.options.now(), samples: [], sent: 0, rate: 0, settled: false };
    for (const item of items) {
      this.queued.delete(item);
      item.running = running;
      this.update(item, { state: 'uploading', loaded: 0, rate: 0, error: null });
    }
    this.running.add(running);
    let send: RunningSend;
    try {
      send = this.options.transport.send(batch, (sent) => this.progress(running, sent));
    } catch (err) {
      this.finish(running, { ok: false, error: { status: 0, code: 'SEND_FAILED', message: err instanceof Error ? err.message : String(err), details: {} } });
      return;
    }
    running.send = send;
    if (running.settled) send.abort();
    send.done.then(
      (result) => this.finish(running, result),
      (err: unknown) => this.finish(running, { ok: false, error: { status: 0, code: 'NETWORK', message: err instanceof Error ? err.message : String(err), details: {} } }),
    );
  }

  private progress(running: Running<F>, sent: number): void {
    if (running.settled) return;
    const t = this.options.now();
    running.sent = sent;
    const samples = running.samples;
    samples.push({ t, bytes: sent });
    while (samples.length > 2 && t - (samples[0] as { t: number }).t > RATE_WINDOW_MS) samples.shift();
    const oldest = samples.length > 1 ? (samples[0] as { t: number; bytes: number }) : { t: running.startedAt, bytes: 0 };
    const elapsed = t - oldest.t;
    if (elapsed > 0) running.rate = ((sent - oldest.bytes) * 1000) / elapsed;
    running.items.forEach((item, i) => {
      const loaded = Math.min(item.row.size, Math.max(0, sent - (running.starts[i] ?? 0)));
      const moving = loaded > 0 && loaded < item.row.size;
      const rate = moving ? running.rate : 0;
      if (loaded !== item.row.loaded || rate !== item.row.rate) this.update(item, { loaded, rate });
    });
    this.changed();
  }

  private finish(running: Running<F>, result: BatchResult): void {
    if (running.settled) return;
    running.settled = true;
    this.running.delete(running);
    for (const item of running.items) item.running = null;
    if (result.ok) {
      const seconds = Math.max(0.001, (this.options.now() - running.startedAt) / 1000);
      const rate = running.batch.bytes / seconds;
      for (const item of running.items) this.update(item, { state: 'done', loaded: item.row.size, rate });
      const finished = { dir: running.batch.dir, paths: running.items.map((item) => item.row.path) };
      for (const listener of this.finishedListeners) listener(finished);
    } else this.refused(running, result.error);
    this.pump();
    this.changed();
  }

  /** A refused request: the files it names fail, the others go again; if it names none, all fail. */
  private refused(running: Running<F>, error: TransferError): void {
    const failures = new Map<Item<F>, TransferError>();
    const conflicts = conflictsOf(error);
    if (conflicts) {
      for (const item of running.items) {
        const path = item.row.path;
        const hit = conflicts.find((c) => c.path === path) ?? conflicts.find((c) => path.startsWith(`${c.path}/`));
        if (hit) failures.set(item, { ...error, conflict: hit.path === path ? hit.reason : 'blocked-by-file' });
      }
    } else if (error.status === 413 && error.code === 'FILE_TOO_LARGE' && typeof error.details.limitBytes === 'number') {
      const limit = error.details.limitBytes;
      for (const item of running.items) if (item.row.size > limit) failures.set(item, error);
    }
    if (failures.size === 0) {
      for (const item of running.items) this.update(item, { state: 'failed', rate: 0, error });
      return;
    }
    for (const [item, itemError] of failures) this.update(item, { state: 'failed', rate: 0, error: itemError });
    this.requeue(running.items.filter((item) => !failures.has(item)));
  }

  private update(item: Item<F>, patch: Partial<TransferRow>): void {
    item.row = { ...item.row, ...patch };
  }

  private changed(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    this.options.schedule(() => this.flush());
  }

  private flush(): void {
    this.scheduled = false;
    const counts = { ...EMPTY_COUNTS };
    const rows: TransferRow[] = [];
    let bytesDone = 0;
    let bytesTotal = 0;
    let conflicts = 0;
    for (const item of this.items.values()) {
      const row = item.row;
      rows.push(row);
      counts[row.state]++;
      if (row.state !== 'cancelled') {
        bytesDone += row.loaded;
        bytesTotal += row.size;
      }
      if (row.state === 'failed' && row.error?.conflict === 'exists') conflicts++;
    }
    let rate = 0;
    // A request whose bytes are all through is waiting for the server, not moving.
    for (const running of this.running) if (running.sent < running.batch.bytes) rate += running.rate;
    this.snapshot = { rows, counts, bytesDone, bytesTotal, rate, conflicts, active: counts.queued + counts.uploading };
    for (const listener of this.listeners) listener();
  }
}

function conflictsOf(error: TransferError): { path: string; reason: ConflictReason }[] | null {
  if (error.status !== 409) return null;
  const list = error.details.conflicts;
  if (!Array.isArray(list)) return null;
  const conflicts: { path: string; reason: ConflictReason }[] = [];
  for (const entry of list as unknown[]) {
    if (typeof entry !== 'object' || entry === null) continue;
    const { path, reason } = entry as { path?: unknown; reason?: unknown };
    if (typeof path !== 'string') continue;
    conflicts.push({ path: normalizePath(path), reason: reason === 'is-directory' || reason === 'blocked-by-file' ? reason : 'exists' });
  }
  return conflicts.length > 0 ? conflicts : null;
}

// ---- the request body ----

export interface MultipartLayout<F> {
  /** Header bytes and files, in order: a Blob of these is the body. */
  parts: (Uint8Array | F)[];
  contentType: string;
  /** Where each file's content starts in the body. */
  fileStarts: number[];
  fileSizes: number[];
  totalBytes: number;
}

/** `"` and line breaks escaped the way browsers do in form data. */
const quoted = (value: string) => value.replace(/"/g, '%22').replace(/\r/g, '%0D').replace(/\n/g, '%0A');

/**
 * The multipart body of a batch: the `manifest` field first, then each file under its relative
 * path. Built by hand (not FormData) so the position of every file in the body is known and
 * the request's progress can be told per file.
 */
export function multipartLayout<F>(batch: UploadBatch<F>, boundary: string): MultipartLayout<F> {
  const encoder = new TextEncoder();
  const parts: (Uint8Array | F)[] = [];
  const fileStarts: number[] = [];
  let offset = 0;
  const text = (value: string) => {
    const bytes = encoder.encode(value);
    parts.push(bytes);
    offset += bytes.length;
  };
  const manifest = JSON.stringify(batch.files.map((f) => ({ path: f.path, size: f.size })));
  text(`--${boundary}\r\nContent-Disposition: form-data; name="manifest"\r\nContent-Type: application/json\r\n\r\n${manifest}\r\n`);
  for (const file of batch.files) {
    text(`--${boundary}\r\nContent-Disposition: form-data; name="files"; filename="${quoted(file.path)}"\r\nContent-Type: application/octet-stream\r\n\r\n`);
    fileStarts.push(offset);
    parts.push(file.file);
    offset += file.size;
    text('\r\n');
  }
  text(`--${boundary}--\r\n`);
  return { parts, contentType: `multipart/form-data; boundary=${boundary}`, fileStarts, fileSizes: batch.files.map((f) => f.size), totalBytes: offset };
}

/** Bytes of file content among the first `loaded` bytes of the body. */
export function fileBytesSent(layout: Pick<MultipartLayout<unknown>, 'fileStarts' | 'fileSizes'>, loaded: number): number {
  let sent = 0;
  layout.fileStarts.forEach((start, i) => {
    sent += Math.min(layout.fileSizes[i] ?? 0, Math.max(0, loaded - start));
  });
  return sent;
}
