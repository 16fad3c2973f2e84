/**
 * Workspace files: what the file manager API costs next to the Docker archive API it is built on,
 * each figure next to a baseline measured in the same run, on the same volume, interleaved. API
 * transfers go through the member's file helper (a second container on the runtime's volume: the
 * file manager never streams through the runtime itself); the raw baseline goes straight into the
 * running runtime container.
 *
 *   One member with a running stand-in runtime (clawloops/runtime-standin:1, the product's default
 *   memory and CPUs), files limits raised through the environment (quota 64 GiB, 8 GiB per file,
 *   16 GiB per request) so a 1 GiB file is an ordinary upload.
 *
 *   part "transfer": a BENCH_FILE_MIB file (1024: 1 GiB; one random MiB repeated, each MiB stamped
 *   with its index) made in os.tmpdir(), read from disk by every upload, deleted at the end:
 *     raw upload     tar-stream pack, one entry of the file's size streamed from disk, into
 *                    dockerode container.putArchive at /home/node/.openclaw until the engine
 *                    answers: THE baseline
 *     raw download   container.getArchive of that file, consumed fully (bytes counted)
 *     API upload     POST /api/v1/files/upload?path=bench&overwrite=1, multipart/form-data built
 *                    as a stream (field `manifest` first, `[{"path":"big.bin","size":N}]`, then the
 *                    file part `files`, streamed from disk) with an exact Content-Length, until
 *                    the 201 (the file is in place: staging, then the agent's rename)
 *     API download   GET /api/v1/files/download?path=bench/big.bin, consumed fully, byte count checked
 *     - after an unmeasured 1 MiB warm-up of each path, BENCH_FILE_ROUNDS rounds alternating API
 *       and raw (who goes first alternates too); MB/s (10^6 B/s) each way, the median of the
 *       rounds, and API/raw (target: ≥ 70 % both ways)
 *     - control-plane RSS: process.memoryUsage() of this process (the control plane) every
 *       50 ms during each API transfer; the growth is the peak over the value just before the
 *       transfer (target: < 64 MiB), next to the peak growth of ArrayBuffers (Buffers in flight or
 *       awaiting GC) and of the JS heap. Sampled during the raw transfers too, which do not touch
 *       this process: the noise floor.
 *     - context: one API upload WITHOUT the manifest (the server spools the file to disk first,
 *       then streams it into the container), with its RSS growth too; one raw upload written in
 *       64 KiB pieces (what the server's socket reads hand its putArchive; the baseline writes 1 MiB)
 *     - where the time goes: the fixed cost of a request (median of 5 transfers of 1 MiB each way:
 *       for the API, the agent execs around the bytes) and the rate net of it; an upload's tail
 *       (last byte sent → answer: staging finished, the agent's commit) and a download's time to
 *       first byte; CPU of the control plane, of the client, of dockerd (with its waited-for
 *       children, e.g. the docker-untar that unpacks a putArchive) and of the whole machine, also
 *       as machine CPU-seconds per GB moved
 *     - the first transfer with no file helper: a 1 MiB API upload right after the helper was
 *       removed (so it starts one, as the first transfer after a minute without any does), median
 *       of 3, next to the warm 1 MiB upload
 *   part "list": GET /api/v1/files?path=list-small (BENCH_LIST_ENTRIES empty files, 10,000) vs
 *   list-big (as many files of ~1 GiB apparent size in all, sparse: made by a `node` exec'd in the
 *   runtime as uid 1000 with fs.truncateSync), BENCH_LIST_SAMPLES listings each (10) alternating,
 *   p50 and big/small (should be ~1: listing must not read file contents). Context: the same
 *   listing in-process (platform.files.list: the agent's exec + sort, no HTTP/JSON), an exec of
 *   `node -e 0` in the runtime (the agent's floor), and readdir + lstat of every entry timed
 *   inside the container (the agent's own work).
 *
 *   part "webdav": the same BENCH_FILE_MIB file through /dav/ (Basic auth with a files-scoped app
 *   password), next to the file API and raw putArchive/getArchive, all measured in this part:
 *     WebDAV PUT     PUT /dav/bench/dav-big.bin with an exact Content-Length, streamed from disk,
 *                    until the 201/204 (the file is in place: same staging and commit as the API)
 *     WebDAV GET     GET /dav/bench/dav-big.bin, consumed fully, byte count checked
 *     - after an unmeasured 1 MiB warm-up of each path, BENCH_FILE_ROUNDS rounds rotating who
 *       goes first among raw, API and WebDAV; MB/s each way (median of the rounds), WebDAV/API and
 *       WebDAV/raw, and the control plane's RSS growth during the WebDAV transfers
 *     - PROPFIND Depth: 1 of a folder of BENCH_LIST_ENTRIES (10,000) empty files vs GET
 *       /api/v1/files of the same folder (same agent listing underneath; the difference is the
 *       multistatus XML), alternating, p50/p95 and the size of each answer
 *
 * Where things run: the control plane is this process (its main thread; nothing else runs here
 * while measuring, apart from the 50 ms RSS sampler). Every client, the HTTP requests and the raw
 * dockerode calls alike, is a CHILD process (fork of this file), so its buffers, its file reads and
 * its CPU are not counted as the control plane's: the RSS figure is the server's own.
 *
 * Usage: npx tsx bench/workspaceFiles.ts [transfer] [list] [webdav]   (transfer and list when none is named)
 * Env: BENCH_FILE_MIB (1024), BENCH_FILE_ROUNDS (2), BENCH_LIST_ENTRIES (10000), BENCH_LIST_SAMPLES (10), BENCH_INSTANCE.
 */
import { fork, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { pack } from 'tar-stream';
import { LABELS } from '../src/docker/runtimeBackend';
import { parseWorkspacePath } from '../src/files/workspacePath';
import { OPENCLAW_HOME, RUNTIME_UID } from '../src/runtime/runtimeSettings';
import { benchInstance, docker, machineNote, mib, machineCpu, machineCoresBusySince, percentile, processCpuMs, ratio, startBenchPlatform, STANDIN_IMAGE, sweep, sweepOnSignal, table, knob, type BenchPlatform, type Member } from './support';

const ROLE_ENV = 'BENCH_FILES_ROLE';
const CLIENT_ROLE = 'client';

const FILE_MIB = Math.round(knob('BENCH_FILE_MIB', 1024));
const ROUNDS = Math.round(knob('BENCH_FILE_ROUNDS', 2));
const LIST_ENTRIES = Math.round(knob('BENCH_LIST_ENTRIES', 10_000));
const LIST_SAMPLES = Math.round(knob('BENCH_LIST_SAMPLES', 10));
const MiB = 1024 ** 2;
const FILE_BYTES = FILE_MIB * MiB;
const WARMUP_BYTES = MiB;
/** Read size of the source file, the same for the API client and the raw baseline. */
const READ_CHUNK = MiB;
const RSS_EVERY_MS = 50;
const SMALL_SAMPLES = 5;
const COLD_SAMPLES = 3;
/** What a socket read gives the server, hence what its multipart parser passes on to putArchive. */
const SERVER_CHUNK = 64 * 1024;
const RSS_TARGET = 64 * MiB;
const RATIO_TARGET = 0.7;
const MEMBER = 'alice';
/** The API's folder (under the files root, <volume>/workspace) and the raw baseline's (the volume itself). */
const API_DIR = 'bench';
const RAW_DIR = OPENCLAW_HOME;
const FILES_ROOT = `${OPENCLAW_HOME}/workspace`;

// ---- what the client process does ----

interface HttpTarget {
  baseUrl: string;
  cookie: string;
  origin: string;
  /** `Basic …` with the member's username and a files-scoped app password: what /dav/ accepts. */
  davAuthorization: string;
}

type Task =
  | { kind: 'api-upload'; http: HttpTarget; file: string; size: number; dir: string; name: string; manifest: boolean }
  | { kind: 'api-download'; http: HttpTarget; path: string; size: number }
  | { kind: 'raw-upload'; containerId: string; file: string; size: number; dir: string; name: string; chunk: number }
  | { kind: 'raw-download'; containerId: string; path: string; size: number }
  | { kind: 'list'; http: HttpTarget; paths: string[]; entries: number; warmup: number; samples: number }
  | { kind: 'dav-upload'; http: HttpTarget; file: string; size: number; path: string }
  | { kind: 'dav-download'; http: HttpTarget; path: string; size: number }
  | { kind: 'dav-vs-api-listing'; http: HttpTarget; path: string; entries: number; warmup: number; samples: number };

interface Transfer {
  ms: number;
  /** File bytes moved (the download's body; a raw download's tar framing not counted). */
  bytes: number;
  /** CPU the client process used, ms. */
  clientCpuMs: number;
  /** Uploads: from the last byte handed to the socket to the answer (the server's or engine's tail). Downloads: time to the first body byte. */
  edgeMs: number;
}

function source(file: string, size: number, chunk = READ_CHUNK): Readable {
  return fs.createReadStream(file, { start: 0, end: size - 1, highWaterMark: chunk });
}

function collectText(res: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    res.on('error', reject);
  });
}

/** The multipart body as a stream: preamble, the file from disk, epilogue; its exact length. */
function multipart(file: string, size: number, name: string, manifest: boolean): { boundary: string; length: number; body: () => Readable } {
  const boundary = `----clawloops-bench-${randomBytes(12).toString('hex')}`;
  const manifestPart = manifest
    ? `--${boundary}\r\nContent-Disposition: form-data; name="manifest"\r\n\r\n${JSON.stringify([{ path: name, size }])}\r\n`
    : '';
  const preamble = Buffer.from(`${manifestPart}--${boundary}\r\nContent-Disposition: form-data; name="files"; filename="${name}"\r\nContent-Type: application/octet-stream\r\n\r\n`);
  const epilogue = Buffer.from(`\r\n--${boundary}--\r\n`);
  async function* parts(): AsyncGenerator<Buffer> {
    yield preamble;
    for await (const chunk of source(file, size)) yield chunk as Buffer;
    yield epilogue;
  }
  return { boundary, length: preamble.length + size + epilogue.length, body: () => Readable.from(parts(), { objectMode: false }) };
}

/** Streams `body` into `req`; the answer, when the last byte went out, and a send error (an early refusal cuts the upload short: the answer says why, not the broken pipe). */
async function sendStreamed(req: http.ClientRequest, body: Readable): Promise<{ status: number; text: string; sentAt: number; answeredAt: number; sendError: Error | null }> {
  const answer = new Promise<{ status: number; text: string }>((resolve, reject) => {
    req.on('response', (res) => collectText(res).then((text) => resolve({ status: res.statusCode ?? 0, text }), reject));
    req.on('error', reject);
  });
  let sentAt = NaN;
  const sent = pipeline(body, req).then(
    () => {
      sentAt = performance.now();
      return null;
    },
    (err: unknown) => err as Error,
  );
  const { status, text } = await answer;
  const answeredAt = performance.now();
  return { status, text, sentAt, answeredAt, sendError: await sent };
}

async function apiUpload(t: Extract<Task, { kind: 'api-upload' }>): Promise<Transfer> {
  const cpu = processCpuMs();
  const started = performance.now();
  const form = multipart(t.file, t.size, t.name, t.manifest);
  const req = http.request(`${t.http.baseUrl}/api/v1/files/upload?path=${encodeURIComponent(t.dir)}&overwrite=1`, {
    method: 'POST',
    agent: false,
    headers: {
      cookie: t.http.cookie,
      origin: t.http.origin,
      'content-type': `multipart/form-data; boundary=${form.boundary}`,
      'content-length': String(form.length),
    },
  });
  const { status, text, sentAt, answeredAt, sendError } = await sendStreamed(req, form.body());
  if (status !== 201) throw new Error(`upload answered ${status}: ${text.slice(0, 500)}`);
  if (sendError) throw sendError;
  const written = (JSON.parse(text) as { files: { path: string; size: number }[] }).files;
  if (written.length !== 1 || written[0]?.size !== t.size) throw new Error(`upload wrote ${JSON.stringify(written)}, expected one file of ${t.size} bytes`);
  return { ms: answeredAt - started, bytes: t.size, clientCpuMs: processCpuMs() - cpu, edgeMs: answeredAt - sentAt };
}

function apiDownload(t: Extract<Task, { kind: 'api-download' }>): Promise<Transfer> {
  return streamedGet(`${t.http.baseUrl}/api/v1/files/download?path=${encodeURIComponent(t.path)}`, { cookie: t.http.cookie, origin: t.http.origin }, t.size);
}

async function rawUpload(t: Extract<Task, { kind: 'raw-upload' }>): Promise<Transfer> {
  const cpu = processCpuMs();
  const started = performance.now();
  const archive = pack();
  const put = docker.getContainer(t.containerId).putArchive(archive as unknown as Readable, { path: t.dir });
  put.catch(() => undefined); // awaited below; a failed entry must not leave it unhandled
  await new Promise<void>((resolve, reject) => {
    const entry = archive.entry({ name: t.name, size: t.size, mode: 0o644, uid: RUNTIME_UID, gid: RUNTIME_UID, mtime: new Date() }, (err) => (err ? reject(err) : resolve()));
    pipeline(source(t.file, t.size, t.chunk), entry).catch(reject);
  });
  archive.finalize();
  const sentAt = performance.now();
  await put;
  const answeredAt = performance.now();
  return { ms: answeredAt - started, bytes: t.size, clientCpuMs: processCpuMs() - cpu, edgeMs: answeredAt - sentAt };
}

async function rawDownload(t: Extract<Task, { kind: 'raw-download' }>): Promise<Transfer> {
  const cpu = processCpuMs();
  const started = performance.now();
  const stream = (await docker.getContainer(t.containerId).getArchive({ path: t.path })) as Readable;
  let bytes = 0;
  let firstByte = NaN;
  stream.on('data', (chunk: Buffer) => {
    if (bytes === 0) firstByte = performance.now() - started;
    bytes += chunk.length;
  });
  await finished(stream);
  const ms = performance.now() - started;
  // One 512-byte header, the file padded to 512, two empty blocks at least.
  if (bytes < t.size + 512) throw new Error(`raw download of ${t.path}: ${bytes} bytes of tar for a ${t.size}-byte file`);
  return { ms, bytes: t.size, clientCpuMs: processCpuMs() - cpu, edgeMs: firstByte };
}

/** One request answered in full: its time to the last byte and its text, or an error naming `what` when the status is not `expected`. */
function timedRequest(url: string, options: http.RequestOptions, body: string | null, expected: number, what: string): Promise<{ ms: number; text: string }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.request(url, { agent: false, ...options }, (res) => {
      collectText(res).then((text) => {
        const ms = performance.now() - started;
        if (res.statusCode !== expected) reject(new Error(`${what} answered ${res.statusCode}: ${text.slice(0, 500)}`));
        else resolve({ ms, text });
      }, reject);
    });
    req.on('error', reject);
    req.end(body ?? undefined);
  });
}

function listOnce(h: HttpTarget, dirPath: string): Promise<{ ms: number; text: string }> {
  return timedRequest(`${h.baseUrl}/api/v1/files?path=${encodeURIComponent(dirPath)}`, { headers: { cookie: h.cookie, origin: h.origin } }, null, 200, `listing ${dirPath}`);
}

/** Listings alternating between the paths (who goes first rotates); ms per path, plus each one's total apparent size. */
async function listings(t: Extract<Task, { kind: 'list' }>): Promise<{ ms: number[][]; totalBytes: number[]; answerBytes: number[] }> {
  const ms = t.paths.map(() => [] as number[]);
  const totalBytes = t.paths.map(() => 0);
  const answerBytes = t.paths.map(() => 0);
  for (let i = 0; i < t.warmup + t.samples; i++) {
    for (let j = 0; j < t.paths.length; j++) {
      const k = (i + j) % t.paths.length;
      const answer = await listOnce(t.http, t.paths[k]!);
      // Checked outside the timing.
      const entries = (JSON.parse(answer.text) as { entries: { size: number }[] }).entries;
      if (entries.length !== t.entries) throw new Error(`listing ${t.paths[k]} has ${entries.length} entries, expected ${t.entries}`);
      totalBytes[k] = entries.reduce((sum, e) => sum + e.size, 0);
      answerBytes[k] = Buffer.byteLength(answer.text);
      if (i >= t.warmup) ms[k]!.push(answer.ms);
    }
  }
  return { ms, totalBytes, answerBytes };
}

/** `/dav/` + the path, each segment percent-encoded. */
const davUrl = (h: HttpTarget, p: string) => `${h.baseUrl}/dav/${p.split('/').map(encodeURIComponent).join('/')}`;

async function davUpload(t: Extract<Task, { kind: 'dav-upload' }>): Promise<Transfer> {
  const cpu = processCpuMs();
  const started = performance.now();
  const req = http.request(davUrl(t.http, t.path), { method: 'PUT', agent: false, headers: { authorization: t.http.davAuthorization, 'content-type': 'application/octet-stream', 'content-length': String(t.size) } });
  const { status, text, sentAt, answeredAt, sendError } = await sendStreamed(req, source(t.file, t.size));
  if (status !== 201 && status !== 204) throw new Error(`PUT ${t.path} answered ${status}: ${text.slice(0, 500)}`);
  if (sendError) throw sendError;
  return { ms: answeredAt - started, bytes: t.size, clientCpuMs: processCpuMs() - cpu, edgeMs: answeredAt - sentAt };
}

function streamedGet(url: string, headers: http.OutgoingHttpHeaders, size: number): Promise<Transfer> {
  const cpu = processCpuMs();
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, headers }, (res) => {
      if (res.statusCode !== 200) {
        collectText(res).then((text) => reject(new Error(`GET ${url} answered ${res.statusCode}: ${text.slice(0, 500)}`)), reject);
        return;
      }
      let bytes = 0;
      let firstByte = NaN;
      res.on('data', (chunk: Buffer) => {
        if (bytes === 0) firstByte = performance.now() - started;
        bytes += chunk.length;
      });
      res.on('error', reject);
      res.on('end', () => {
        const ms = performance.now() - started;
        if (bytes !== size || res.headers['content-length'] !== String(size)) {
          reject(new Error(`GET ${url}: ${bytes} bytes, Content-Length ${res.headers['content-length']}, expected ${size}`));
        } else resolve({ ms, bytes, clientCpuMs: processCpuMs() - cpu, edgeMs: firstByte });
      });
    });
    req.on('error', reject);
  });
}

const PROPFIND_BODY = '<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>';

function propfindOnce(h: HttpTarget, p: string): Promise<{ ms: number; text: string }> {
  const headers = { authorization: h.davAuthorization, depth: '1', 'content-type': 'application/xml; charset=utf-8', 'content-length': String(Buffer.byteLength(PROPFIND_BODY)) };
  return timedRequest(davUrl(h, `${p}/`), { method: 'PROPFIND', headers }, PROPFIND_BODY, 207, `PROPFIND ${p}`);
}

/** PROPFIND Depth 1 and GET /api/v1/files of one folder, alternating (who goes first rotates). */
async function davVsApiListing(t: Extract<Task, { kind: 'dav-vs-api-listing' }>): Promise<{ ms: [number[], number[]]; answerBytes: [number, number] }> {
  const out: { ms: [number[], number[]]; answerBytes: [number, number] } = { ms: [[], []], answerBytes: [0, 0] };
  for (let i = 0; i < t.warmup + t.samples; i++) {
    for (let j = 0; j < 2; j++) {
      const k = (i + j) % 2;
      const answer = k === 0 ? await propfindOnce(t.http, t.path) : await listOnce(t.http, t.path);
      // Checked outside the timing: the folder plus every entry, or every entry.
      const count = k === 0 ? answer.text.split('<D:response>').length - 1 : (JSON.parse(answer.text) as { entries: unknown[] }).entries.length;
      if (count !== (k === 0 ? t.entries + 1 : t.entries)) throw new Error(`${k === 0 ? 'PROPFIND' : 'listing'} of ${t.path}: ${count} entries`);
      out.answerBytes[k] = Buffer.byteLength(answer.text);
      if (i >= t.warmup) (k === 0 ? out.ms[0] : out.ms[1]).push(answer.ms);
    }
  }
  return out;
}

function runTask(task: Task): Promise<unknown> {
  switch (task.kind) {
    case 'api-upload':
      return apiUpload(task);
    case 'api-download':
      return apiDownload(task);
    case 'raw-upload':
      return rawUpload(task);
    case 'raw-download':
      return rawDownload(task);
    case 'list':
      return listings(task);
    case 'dav-upload':
      return davUpload(task);
    case 'dav-download':
      return streamedGet(davUrl(task.http, task.path), { authorization: task.http.davAuthorization }, task.size);
    case 'dav-vs-api-listing':
      return davVsApiListing(task);
  }
}

function clientProcess(): void {
  process.on('disconnect', () => process.exit(0));
  process.on('message', (message: { id: number; task: Task }) => {
    runTask(message.task).then(
      (result) => process.send?.({ id: message.id, result }),
      (err: unknown) => process.send?.({ id: message.id, error: err instanceof Error ? (err.stack ?? err.message) : String(err) }),
    );
  });
}

/** The client as seen from the control plane's process: tasks sent over IPC, answers awaited. */
class ClientProcess {
  private readonly child: ChildProcess;
  private nextId = 0;
  private readonly waiting = new Map<number, { resolve: (value: unknown) => void; reject: (err: Error) => void }>();

  constructor() {
    // The same file again, with tsx's loader (fork keeps process.execArgv).
    this.child = fork(__filename, [], { env: { ...process.env, [ROLE_ENV]: CLIENT_ROLE }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.child.on('message', (message: { id: number; result?: unknown; error?: string }) => {
      const waiter = this.waiting.get(message.id);
      this.waiting.delete(message.id);
      if (message.error !== undefined) waiter?.reject(new Error(`client process: ${message.error}`));
      else waiter?.resolve(message.result);
    });
    this.child.on('exit', (code, signal) => {
      for (const waiter of this.waiting.values()) waiter.reject(new Error(`the client process exited (${signal ?? code})`));
      this.waiting.clear();
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  run<T>(task: Task): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const id = this.nextId++;
      this.waiting.set(id, { resolve: resolve as (value: unknown) => void, reject });
      this.child.send({ id, task });
    });
  }

  close(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill();
  }
}

// ---- measuring around a task: RSS of this process, CPU of everyone ----

interface RssTrace {
  before: number;
  peak: number;
  after: number;
  samples: number;
  /** Peak growth of Buffer/ArrayBuffer memory (in flight, or garbage until a GC) and of the JS heap. */
  arrayBuffersGrowth: number;
  heapUsedGrowth: number;
}

function rssSampler(): { stop: () => RssTrace } {
  const first = process.memoryUsage();
  let peak = first.rss;
  let arrayBuffers = first.arrayBuffers;
  let heapUsed = first.heapUsed;
  let samples = 0;
  const sample = () => {
    const m = process.memoryUsage();
    peak = Math.max(peak, m.rss);
    arrayBuffers = Math.max(arrayBuffers, m.arrayBuffers);
    heapUsed = Math.max(heapUsed, m.heapUsed);
    return m;
  };
  const timer = setInterval(() => {
    sample();
    samples++;
  }, RSS_EVERY_MS);
  return {
    stop() {
      clearInterval(timer);
      const last = sample();
      return { before: first.rss, peak, after: last.rss, samples, arrayBuffersGrowth: arrayBuffers - first.arrayBuffers, heapUsedGrowth: heapUsed - first.heapUsed };
    },
  };
}

const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** dockerd's CPU ms, its waited-for children included (docker-untar unpacks a putArchive), or null. */
const dockerdPid = (() => {
  try {
    for (const entry of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        if (fs.readFileSync(`/proc/${entry}/comm`, 'utf8').trim() === 'dockerd') return Number(entry);
      } catch {
        // gone meanwhile
      }
    }
  } catch {
    // no /proc
  }
  return null;
})();

function dockerdCpuMs(): number | null {
  if (dockerdPid === null) return null;
  try {
    const stat = fs.readFileSync(`/proc/${dockerdPid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ').map(Number);
    // utime, stime, cutime, cstime are fields 14-17: indexes 11-14 after "pid (comm) ".
    return (((f[11] ?? 0) + (f[12] ?? 0) + (f[13] ?? 0) + (f[14] ?? 0)) * 1000) / CLOCK_TICKS;
  } catch {
    return null;
  }
}

interface Measured extends Transfer {
  rss: RssTrace;
  /** In cores over the transfer. */
  cpu: { controlPlane: number; client: number; dockerd: number | null; machine: number };
}

async function measured(client: ClientProcess, task: Task): Promise<Measured> {
  const before = { main: processCpuMs(), dockerd: dockerdCpuMs(), machine: machineCpu() };
  const sampler = rssSampler();
  const result = await client.run<Transfer>(task);
  const rss = sampler.stop();
  const wall = result.ms;
  const dockerdAfter = dockerdCpuMs();
  const machine = machineCoresBusySince(before.machine);
  return {
    ...result,
    rss,
    cpu: {
      controlPlane: (processCpuMs() - before.main) / wall,
      client: result.clientCpuMs / wall,
      dockerd: dockerdAfter !== null && before.dockerd !== null ? (dockerdAfter - before.dockerd) / wall : null,
      machine,
    },
  };
}

// ---- output helpers ----

const mbps = (t: Transfer) => t.bytes / 1e6 / (t.ms / 1000);
/** The true median (mean of the middle two for an even count): with 2 rounds, their mean. */
function median(values: number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
const fixed = (v: number, digits = 0) => (Number.isFinite(v) ? v.toFixed(digits) : '-');
const pct = (a: number, b: number) => (b > 0 ? `${((a / b) * 100).toFixed(0)} %` : '-');
const ms = (v: number) => (v >= 100 ? `${v.toFixed(0)} ms` : `${v.toFixed(1)} ms`);
const growth = (r: RssTrace) => r.peak - r.before;
const signedMib = (bytes: number) => `${bytes >= 0 ? '+' : '−'}${(Math.abs(bytes) / MiB).toFixed(1)} MiB`;
const kib = (bytes: number) => `${Math.round(bytes / 1024)} KiB`;
const cores = (v: number | null) => (v === null || !Number.isFinite(v) ? '-' : v.toFixed(2));

// ---- the setup ----

interface Setup {
  bench: BenchPlatform;
  member: Member;
  containerId: string;
  http: HttpTarget;
  client: ClientProcess;
  sourceFile: string;
}

const instance = benchInstance();

/** One random MiB repeated, each copy stamped with its index (no two MiB alike), written once. */
function makeSourceFile(file: string, mibs: number): void {
  const block = randomBytes(MiB);
  const fd = fs.openSync(file, 'w', 0o600);
  try {
    for (let i = 0; i < mibs; i++) {
      block.writeUInt32BE(i, 0);
      fs.writeSync(fd, block);
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** `node -e script` in the container as the runtime's user; stdout, checked exit code, wall time. */
async function execNode(containerId: string, script: string): Promise<{ stdout: string; ms: number }> {
  const started = performance.now();
  const exec = await docker.getContainer(containerId).exec({ Cmd: ['node', '-e', script], User: `${RUNTIME_UID}:${RUNTIME_UID}`, AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({ hijack: true, stdin: false });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const stdout = new PassThrough().on('data', (c: Buffer) => out.push(c));
  const stderr = new PassThrough().on('data', (c: Buffer) => err.push(c));
  docker.modem.demuxStream(stream, stdout, stderr);
  await finished(stream);
  const took = performance.now() - started;
  const info = await exec.inspect();
  if (info.ExitCode !== 0) throw new Error(`exec in the runtime exited ${info.ExitCode}: ${Buffer.concat(err).toString('utf8').slice(-1000)}`);
  return { stdout: Buffer.concat(out).toString('utf8'), ms: took };
}

/** A files-scoped app password for the member, made as the console makes one, as a Basic header for /dav/. */
async function appPassword(bench: BenchPlatform, member: Member): Promise<string> {
  const res = await fetch(`${bench.baseUrl}/api/v1/account/tokens`, {
    method: 'POST',
    headers: { cookie: member.cookie, origin: bench.origin, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'bench', scopes: ['files'], expiresInDays: 1 }),
  });
  if (res.status !== 201) throw new Error(`creating an app password answered ${res.status}: ${(await res.text()).slice(0, 500)}`);
  const { secret } = (await res.json()) as { secret: string };
  return `Basic ${Buffer.from(`${member.username}:${secret}`).toString('base64')}`;
}

async function setUp(): Promise<Setup> {
  const bench = await startBenchPlatform({
    instance,
    env: { CLAWLOOPS_FILES_QUOTA: '64gb', CLAWLOOPS_FILES_MAX_FILE_SIZE: '8gb', CLAWLOOPS_FILES_MAX_REQUEST_SIZE: '16gb' },
    runtimeSettings: { image: STANDIN_IMAGE, readyTimeoutMs: 60_000, stopTimeoutSeconds: 3 },
  });
  let client: ClientProcess | null = null;
  try {
    const member = await bench.newMember(MEMBER);
    const started = await bench.operate(member, 'start');
    if (started.status !== 'succeeded') throw new Error(`the runtime did not start: ${started.status} ${started.error}`);
    const filters = JSON.stringify({ label: [`${LABELS.instance}=${instance}`, `${LABELS.role}=runtime`], status: ['running'] });
    const [container] = await docker.listContainers({ filters });
    if (!container) throw new Error('no running runtime container carries the instance label');
    client = new ClientProcess();
    const davAuthorization = await appPassword(bench, member);
    const sourceFile = path.join(os.tmpdir(), `clawloops-${instance}-${FILE_MIB}mib.bin`);
    return { bench, member, containerId: container.Id, http: { baseUrl: bench.baseUrl, cookie: member.cookie, origin: bench.origin, davAuthorization }, client, sourceFile };
  } catch (err) {
    client?.close();
    await bench.close();
    throw err;
  }
}

interface Summary {
  lines: string[];
}

/** A folder under the files root of `entries` files of `size` bytes each (sparse: truncated, no data written), made in the runtime as uid 1000; ms taken. */
async function makeFolderOfFiles(containerId: string, dir: string, entries: number, size: number): Promise<number> {
  const script = `
    const fs = require('fs');
    const dir = ${JSON.stringify(`${FILES_ROOT}/${dir}`)};
    fs.mkdirSync(dir, { recursive: true });
    for (let i = 0; i < ${entries}; i++) {
      const file = dir + '/file-' + String(i).padStart(6, '0') + '.bin';
      fs.writeFileSync(file, '');
      if (${size} > 0) fs.truncateSync(file, ${size});
    }`;
  return (await execNode(containerId, script)).ms;
}

// ---- part "transfer" ----

async function transferPart(s: Setup, summary: Summary): Promise<void> {
  const made = performance.now();
  makeSourceFile(s.sourceFile, FILE_MIB);
  const madeMs = performance.now() - made;
  const apiPath = `${API_DIR}/big.bin`;
  const rawPath = `${RAW_DIR}/raw-big.bin`;
  const up = {
    api: (size: number, name: string, manifest = true): Task => ({ kind: 'api-upload', http: s.http, file: s.sourceFile, size, dir: API_DIR, name, manifest }),
    raw: (size: number, name: string, chunk = READ_CHUNK): Task => ({ kind: 'raw-upload', containerId: s.containerId, file: s.sourceFile, size, dir: RAW_DIR, name, chunk }),
  };
  const down = {
    api: (size: number, p: string): Task => ({ kind: 'api-download', http: s.http, path: p, size }),
    raw: (size: number, p: string): Task => ({ kind: 'raw-download', containerId: s.containerId, path: p, size }),
  };

  console.log(`\n## Transfer: a ${mib(FILE_BYTES)} file through the API (file helper) vs the Docker archive API (runtime container), same volume (${await machineNote()})`);
  console.log(`source: ${s.sourceFile} (${mib(FILE_BYTES)}, written in ${ms(madeMs)}; read from the page cache by every upload); API: ${API_DIR}/big.bin under ${FILES_ROOT}; raw: ${rawPath}`);

  // Unmeasured warm-up: folders created, code paths loaded, connections to the engine opened.
  await s.client.run(up.api(WARMUP_BYTES, 'warm.bin'));
  await s.client.run(up.raw(WARMUP_BYTES, 'raw-warm.bin'));
  await s.client.run(down.api(WARMUP_BYTES, `${API_DIR}/warm.bin`));
  await s.client.run(down.raw(WARMUP_BYTES, `${RAW_DIR}/raw-warm.bin`));
  // The fixed cost of one request: 1 MiB each way, alternating, where the bytes cost next to nothing.
  const small = { apiUp: [] as number[], rawUp: [] as number[], apiDown: [] as number[], rawDown: [] as number[] };
  for (let i = 0; i < SMALL_SAMPLES; i++) {
    small.apiUp.push((await s.client.run<Transfer>(up.api(WARMUP_BYTES, 'warm.bin'))).ms);
    small.rawUp.push((await s.client.run<Transfer>(up.raw(WARMUP_BYTES, 'raw-warm.bin'))).ms);
    small.apiDown.push((await s.client.run<Transfer>(down.api(WARMUP_BYTES, `${API_DIR}/warm.bin`))).ms);
    small.rawDown.push((await s.client.run<Transfer>(down.raw(WARMUP_BYTES, `${RAW_DIR}/raw-warm.bin`))).ms);
  }
  // The first transfer after the member's file helper went away starts one.
  const { runtimeId } = s.bench.platform.runtimes.fileTarget(s.member.userId);
  const cold: number[] = [];
  for (let i = 0; i < COLD_SAMPLES; i++) {
    await s.bench.platform.volumes.closeRuntime(runtimeId);
    cold.push((await s.client.run<Transfer>(up.api(WARMUP_BYTES, 'warm.bin'))).ms);
  }

  const runs = { apiUp: [] as Measured[], rawUp: [] as Measured[], apiDown: [] as Measured[], rawDown: [] as Measured[] };
  for (let round = 0; round < ROUNDS; round++) {
    const apiFirst = round % 2 === 0;
    const uploads: [Measured[], Task][] = [
      [runs.apiUp, up.api(FILE_BYTES, 'big.bin')],
      [runs.rawUp, up.raw(FILE_BYTES, 'raw-big.bin')],
    ];
    const downloads: [Measured[], Task][] = [
      [runs.apiDown, down.api(FILE_BYTES, apiPath)],
      [runs.rawDown, down.raw(FILE_BYTES, rawPath)],
    ];
    if (!apiFirst) {
      uploads.reverse();
      downloads.reverse();
    }
    for (const [into, task] of [...uploads, ...downloads]) into.push(await measured(s.client, task));
  }
  // Context: the same upload without the manifest, so the server spools it to disk first.
  const spooled = await measured(s.client, up.api(FILE_BYTES, 'big.bin', false));
  // Context: the raw baseline fed in 64 KiB pieces, the size the server's socket reads hand to its putArchive.
  const rawSmallWrites = await measured(s.client, up.raw(FILE_BYTES, 'raw-big.bin', SERVER_CHUNK));

  const rows: (string | number)[][] = [['path', 'direction', ...runs.apiUp.map((_, i) => `round ${i + 1} MB/s`), 'median MB/s', 'vs raw', 'tail / first byte', `${mib(WARMUP_BYTES)} request`, `MB/s net of it`, 'machine CPU-s/GB', 'CPU cores: control plane', 'client', 'dockerd', 'machine']];
  const row = (name: string, direction: string, list: Measured[], baseline: Measured[] | null, fixedMs: number[] | null) => {
    const value = median(list.map(mbps));
    const pick = (f: (m: Measured) => number | null) => {
      const values = list.map(f).filter((v): v is number => v !== null && Number.isFinite(v));
      return values.length > 0 ? median(values) : null;
    };
    rows.push([
      name,
      direction,
      ...list.map((m) => fixed(mbps(m))),
      ...Array.from({ length: runs.apiUp.length - list.length }, () => ''),
      fixed(value),
      baseline ? pct(value, median(baseline.map(mbps))) : '[baseline]',
      ms(median(list.map((m) => m.edgeMs))),
      fixedMs ? ms(median(fixedMs)) : '',
      fixedMs ? fixed(median(list.map((m) => m.bytes / 1e6 / ((m.ms - median(fixedMs)) / 1000)))) : '',
      fixed(median(list.map((m) => (m.cpu.machine * m.ms) / 1000 / (m.bytes / 1e9))), 2),
      cores(pick((m) => m.cpu.controlPlane)),
      cores(pick((m) => m.cpu.client)),
      cores(pick((m) => m.cpu.dockerd)),
      cores(pick((m) => m.cpu.machine)),
    ]);
  };
  row('raw putArchive', 'upload', runs.rawUp, null, small.rawUp);
  row('API, with manifest (streamed)', 'upload', runs.apiUp, runs.rawUp, small.apiUp);
  row('context: API, no manifest (spooled)', 'upload', [spooled], runs.rawUp, null);
  row(`context: raw putArchive, ${SERVER_CHUNK / 1024} KiB writes`, 'upload', [rawSmallWrites], runs.rawUp, null);
  row('raw getArchive', 'download', runs.rawDown, null, small.rawDown);
  row('API', 'download', runs.apiDown, runs.rawDown, small.apiDown);
  console.log(`\n### Throughput, ${mib(FILE_BYTES)}, ${ROUNDS} round${ROUNDS === 1 ? '' : 's'} alternating API and raw (MB/s = 10^6 B/s; CPU: medians, in cores over the transfer)\n`);
  console.log(table(rows));
  console.log(
    [
      `tail = from the last byte handed to the socket to the answer (uploads); first byte = time to the first body byte (downloads).`,
      `${mib(WARMUP_BYTES)} request = median of ${SMALL_SAMPLES} transfers of ${mib(WARMUP_BYTES)} (the fixed cost of a request: for the API, agent execs for usage/conflicts/commit or stat);`,
      'MB/s net of it = the big transfer with that fixed cost taken off: the streaming rate proper.',
      `machine CPU-s/GB = CPU seconds the whole machine spent per GB moved (client, control plane, dockerd, kernel). Raw writes are ${READ_CHUNK / 1024} KiB reads`,
      `of the file; the server hands putArchive what its socket reads give it (${SERVER_CHUNK / 1024} KiB), hence the context row.`,
      'control plane = this process (the server); client = the forked client process (file reads, multipart framing, HTTP or',
      `dockerode); dockerd = the engine with its waited-for children (${dockerdPid === null ? 'not found in /proc: -' : `pid ${dockerdPid}`}); machine = all CPUs busy, of ${os.cpus().length}.`,
    ].join('\n'),
  );

  const rssRows: (string | number)[][] = [['transfer', 'RSS before', 'peak', 'growth (peak − before)', 'after', 'peak growth: ArrayBuffers', 'JS heap used', 'samples']];
  const rssRow = (name: string, m: Measured) =>
    rssRows.push([name, mib(m.rss.before), mib(m.rss.peak), signedMib(growth(m.rss)), mib(m.rss.after), signedMib(m.rss.arrayBuffersGrowth), signedMib(m.rss.heapUsedGrowth), m.rss.samples]);
  runs.apiUp.forEach((m, i) => rssRow(`API upload, round ${i + 1}`, m));
  rssRow('API upload without manifest (spooled)', spooled);
  runs.apiDown.forEach((m, i) => rssRow(`API download, round ${i + 1}`, m));
  runs.rawUp.forEach((m, i) => rssRow(`noise floor: raw upload, round ${i + 1} (not through this process)`, m));
  runs.rawDown.forEach((m, i) => rssRow(`noise floor: raw download, round ${i + 1}`, m));
  rssRow(`noise floor: raw upload, ${SERVER_CHUNK / 1024} KiB writes`, rawSmallWrites);
  console.log(`\n### Control-plane RSS (this process, sampled every ${RSS_EVERY_MS} ms)\n`);
  console.log(table(rssRows));
  console.log(
    'ArrayBuffers: Buffer memory not yet reclaimed (in flight, or garbage until the next GC); JS heap used: objects. RSS also keeps what the allocator and V8 grew to,\nwhich is why a first transfer raises it and later ones mostly reuse it.',
  );

  const upRatio = median(runs.apiUp.map(mbps)) / median(runs.rawUp.map(mbps));
  const downRatio = median(runs.apiDown.map(mbps)) / median(runs.rawDown.map(mbps));
  const maxUp = Math.max(...runs.apiUp.map((m) => growth(m.rss)));
  const maxDown = Math.max(...runs.apiDown.map((m) => growth(m.rss)));
  const floor = Math.max(...[...runs.rawUp, ...runs.rawDown, rawSmallWrites].map((m) => growth(m.rss)));
  const met = (ok: boolean) => (ok ? 'met' : 'MISSED');
  summary.lines.push(
    `upload ${mib(FILE_BYTES)}: API ${fixed(median(runs.apiUp.map(mbps)))} MB/s vs raw putArchive ${fixed(median(runs.rawUp.map(mbps)))} MB/s = ${ratio(upRatio, 1)} (target ≥ ${RATIO_TARGET}: ${met(upRatio >= RATIO_TARGET)}); without the manifest (spooled) ${fixed(mbps(spooled))} MB/s = ${ratio(mbps(spooled), median(runs.rawUp.map(mbps)))}; raw with ${SERVER_CHUNK / 1024} KiB writes ${fixed(mbps(rawSmallWrites))} MB/s = ${ratio(mbps(rawSmallWrites), median(runs.rawUp.map(mbps)))}`,
    `download ${mib(FILE_BYTES)}: API ${fixed(median(runs.apiDown.map(mbps)))} MB/s vs raw getArchive ${fixed(median(runs.rawDown.map(mbps)))} MB/s = ${ratio(downRatio, 1)} (target ≥ ${RATIO_TARGET}: ${met(downRatio >= RATIO_TARGET)})`,
    `control-plane RSS growth, peak over the value before: upload ${signedMib(maxUp)}, download ${signedMib(maxDown)} (worst round; target < ${mib(RSS_TARGET)}: ${met(Math.max(maxUp, maxDown) < RSS_TARGET)}); spooled upload ${signedMib(growth(spooled.rss))}; noise floor during raw transfers ${signedMib(floor)}`,
    `first transfer with no file helper (it starts one): ${mib(WARMUP_BYTES)} API upload ${ms(median(cold))} (median of ${COLD_SAMPLES}: ${cold.map(ms).join(', ')}) vs ${ms(median(small.apiUp))} warm: the helper start adds ~${ms(median(cold) - median(small.apiUp))}`,
  );
}

// ---- part "list" ----

async function listPart(s: Setup, summary: Summary): Promise<void> {
  const small = 'list-small';
  const big = 'list-big';
  const bigFileBytes = Math.floor(1024 ** 3 / LIST_ENTRIES);
  console.log(`\n## Listing a folder of ${LIST_ENTRIES} entries: empty files vs ~1 GiB of (sparse) files (${await machineNote()})`);
  const madeSmall = await makeFolderOfFiles(s.containerId, small, LIST_ENTRIES, 0);
  const madeBig = await makeFolderOfFiles(s.containerId, big, LIST_ENTRIES, bigFileBytes);
  console.log(`made ${small}/ (${LIST_ENTRIES} empty files) and ${big}/ (${LIST_ENTRIES} × ${bigFileBytes} bytes, sparse) inside the runtime in ${ms(madeSmall + madeBig)}`);

  const listed = await s.client.run<{ ms: number[][]; totalBytes: number[]; answerBytes: number[] }>({ kind: 'list', http: s.http, paths: [small, big], entries: LIST_ENTRIES, warmup: 2, samples: LIST_SAMPLES });
  const [smallMs, bigMs] = listed.ms as [number[], number[]];

  // In-process: the same call the route makes (agent exec, mapping, sort), without HTTP and JSON.
  const inProcess: [number[], number[]] = [[], []];
  const paths = [parseWorkspacePath(small), parseWorkspacePath(big)];
  for (let i = 0; i < 2 + LIST_SAMPLES; i++) {
    for (let j = 0; j < 2; j++) {
      const k = (i + j) % 2;
      const started = performance.now();
      const result = await s.bench.platform.files.list(s.member.userId, paths[k]!);
      const took = performance.now() - started;
      if (result.entries.length !== LIST_ENTRIES) throw new Error(`files.list(${paths[k]}) has ${result.entries.length} entries`);
      if (i >= 2) inProcess[k]!.push(took);
    }
  }

  // The agent's floor: an exec of a node that does nothing.
  const floor: number[] = [];
  for (let i = 0; i < 2 + LIST_SAMPLES; i++) {
    const { ms: took } = await execNode(s.containerId, '0');
    if (i >= 2) floor.push(took);
  }

  // The agent's own work, timed inside the container: readdir + lstat of every entry.
  const readdirScript = `
    const fs = require('fs');
    const dirs = [${JSON.stringify(`${FILES_ROOT}/${small}`)}, ${JSON.stringify(`${FILES_ROOT}/${big}`)}];
    const out = [[], []];
    for (let i = 0; i < ${2 + LIST_SAMPLES}; i++) {
      for (let j = 0; j < 2; j++) {
        const k = (i + j) % 2;
        const started = process.hrtime.bigint();
        let n = 0;
        for (const d of fs.readdirSync(dirs[k], { withFileTypes: true })) { fs.lstatSync(dirs[k] + '/' + d.name); n++; }
        if (n !== ${LIST_ENTRIES}) throw new Error(dirs[k] + ': ' + n + ' entries');
        if (i >= 2) out[k].push(Number(process.hrtime.bigint() - started) / 1e6);
      }
    }
    process.stdout.write(JSON.stringify(out));`;
  const inContainer = JSON.parse((await execNode(s.containerId, readdirScript)).stdout) as [number[], number[]];

  const p50 = (v: number[]) => percentile(v, 50);
  const p95 = (v: number[]) => percentile(v, 95);
  const rows: (string | number)[][] = [
    ['what', `${small}: p50`, 'p95', `${big}: p50`, 'p95', 'big/small (p50)'],
    ['GET /api/v1/files (HTTP, from the client process)', ms(p50(smallMs)), ms(p95(smallMs)), ms(p50(bigMs)), ms(p95(bigMs)), ratio(p50(bigMs), p50(smallMs))],
    ['context: platform.files.list in-process (exec + map + sort)', ms(p50(inProcess[0])), ms(p95(inProcess[0])), ms(p50(inProcess[1])), ms(p95(inProcess[1])), ratio(p50(inProcess[1]), p50(inProcess[0]))],
    ['context: readdir + lstat of each entry, timed in the runtime', ms(p50(inContainer[0])), ms(p95(inContainer[0])), ms(p50(inContainer[1])), ms(p95(inContainer[1])), ratio(p50(inContainer[1]), p50(inContainer[0]))],
    ['context: exec of `node -e 0` in the runtime (the agent\'s floor)', ms(p50(floor)), ms(p95(floor)), '', '', ''],
  ];
  console.log(`\n### ${LIST_SAMPLES} listings per folder after 2 warm-up, alternating; answers: ${small} ${kib(listed.answerBytes[0] ?? 0)} of JSON, its files ${listed.totalBytes[0]} bytes in all; ${big} ${kib(listed.answerBytes[1] ?? 0)}, its files ${mib(listed.totalBytes[1] ?? 0)}\n`);
  console.log(table(rows));

  summary.lines.push(
    `listing ${LIST_ENTRIES} entries: ${small} p50 ${ms(p50(smallMs))}, ${big} (${mib(listed.totalBytes[1] ?? 0)} in all) p50 ${ms(p50(bigMs))}: big/small ${ratio(p50(bigMs), p50(smallMs))} (should be ~1); in-process files.list ${ms(p50(inProcess[0]))} / ${ms(p50(inProcess[1]))}, in-container readdir + lstat ${ms(p50(inContainer[0]))} / ${ms(p50(inContainer[1]))}, exec floor ${ms(p50(floor))}`,
  );
}

// ---- part "webdav" ----

async function webdavPart(s: Setup, summary: Summary): Promise<void> {
  if (!fs.existsSync(s.sourceFile) || fs.statSync(s.sourceFile).size !== FILE_BYTES) makeSourceFile(s.sourceFile, FILE_MIB);
  const apiPath = `${API_DIR}/big.bin`;
  const davPath = `${API_DIR}/dav-big.bin`;
  const rawPath = `${RAW_DIR}/raw-big.bin`;
  const tasks = {
    up: {
      raw: (size: number, name: string): Task => ({ kind: 'raw-upload', containerId: s.containerId, file: s.sourceFile, size, dir: RAW_DIR, name, chunk: READ_CHUNK }),
      api: (size: number, name: string): Task => ({ kind: 'api-upload', http: s.http, file: s.sourceFile, size, dir: API_DIR, name, manifest: true }),
      dav: (size: number, p: string): Task => ({ kind: 'dav-upload', http: s.http, file: s.sourceFile, size, path: p }),
    },
    down: {
      raw: (size: number, p: string): Task => ({ kind: 'raw-download', containerId: s.containerId, path: p, size }),
      api: (size: number, p: string): Task => ({ kind: 'api-download', http: s.http, path: p, size }),
      dav: (size: number, p: string): Task => ({ kind: 'dav-download', http: s.http, path: p, size }),
    },
  };
  console.log(`\n## WebDAV: a ${mib(FILE_BYTES)} PUT and GET through /dav/ vs the file API vs the Docker archive API, same volume (${await machineNote()})`);

  // Unmeasured warm-up of every path (folders, code paths, the file helper, engine connections).
  await s.client.run(tasks.up.raw(WARMUP_BYTES, 'raw-warm.bin'));
  await s.client.run(tasks.up.api(WARMUP_BYTES, 'warm.bin'));
  await s.client.run(tasks.up.dav(WARMUP_BYTES, `${API_DIR}/dav-warm.bin`));
  await s.client.run(tasks.down.raw(WARMUP_BYTES, `${RAW_DIR}/raw-warm.bin`));
  await s.client.run(tasks.down.api(WARMUP_BYTES, `${API_DIR}/warm.bin`));
  await s.client.run(tasks.down.dav(WARMUP_BYTES, `${API_DIR}/dav-warm.bin`));

  const kinds = ['raw', 'api', 'dav'] as const;
  const runs = { up: { raw: [] as Measured[], api: [] as Measured[], dav: [] as Measured[] }, down: { raw: [] as Measured[], api: [] as Measured[], dav: [] as Measured[] } };
  for (let round = 0; round < ROUNDS; round++) {
    // Who goes first rotates, so neither a warm page cache nor a tired engine favours one path.
    const order = kinds.map((_, i) => kinds[(i + round) % kinds.length] as (typeof kinds)[number]);
    for (const kind of order) {
      const task = kind === 'raw' ? tasks.up.raw(FILE_BYTES, 'raw-big.bin') : kind === 'api' ? tasks.up.api(FILE_BYTES, 'big.bin') : tasks.up.dav(FILE_BYTES, davPath);
      runs.up[kind].push(await measured(s.client, task));
    }
    for (const kind of order) {
      const task = kind === 'raw' ? tasks.down.raw(FILE_BYTES, rawPath) : kind === 'api' ? tasks.down.api(FILE_BYTES, apiPath) : tasks.down.dav(FILE_BYTES, davPath);
      runs.down[kind].push(await measured(s.client, task));
    }
  }
  const names = { raw: 'raw putArchive / getArchive', api: 'file API', dav: 'WebDAV PUT / GET' };
  const rows: (string | number)[][] = [['path', 'direction', ...Array.from({ length: ROUNDS }, (_, i) => `round ${i + 1} MB/s`), 'median MB/s', 'vs raw', 'vs file API', 'control-plane RSS growth (worst)']];
  for (const direction of ['up', 'down'] as const) {
    const rawMbps = median(runs[direction].raw.map(mbps));
    const apiMbps = median(runs[direction].api.map(mbps));
    for (const kind of kinds) {
      const list = runs[direction][kind];
      const value = median(list.map(mbps));
      rows.push([
        names[kind],
        direction === 'up' ? 'upload' : 'download',
        ...list.map((m) => fixed(mbps(m))),
        fixed(value),
        kind === 'raw' ? '[baseline]' : pct(value, rawMbps),
        kind === 'dav' ? pct(value, apiMbps) : '',
        kind === 'raw' ? `${signedMib(Math.max(...list.map((m) => growth(m.rss))))} (noise floor)` : signedMib(Math.max(...list.map((m) => growth(m.rss)))),
      ]);
    }
  }
  console.log(`\n### Throughput, ${mib(FILE_BYTES)}, ${ROUNDS} round${ROUNDS === 1 ? '' : 's'}, the order of raw, API and WebDAV rotating each round (MB/s = 10^6 B/s)\n`);
  console.log(table(rows));

  // PROPFIND of a folder of LIST_ENTRIES files, next to the file API's listing of the same folder.
  const folder = 'dav-list';
  const made = await makeFolderOfFiles(s.containerId, folder, LIST_ENTRIES, 0);
  const listed = await s.client.run<{ ms: [number[], number[]]; answerBytes: [number, number] }>({ kind: 'dav-vs-api-listing', http: s.http, path: folder, entries: LIST_ENTRIES, warmup: 2, samples: LIST_SAMPLES });
  const [propfindMs, apiMs] = listed.ms;
  console.log(`\n### A folder of ${LIST_ENTRIES} empty files (made in the runtime in ${ms(made)}): ${LIST_SAMPLES} listings each after 2 warm-up, alternating\n`);
  console.log(
    table([
      ['what', 'p50', 'p95', 'answer', 'vs file API (p50)'],
      ['PROPFIND Depth: 1, allprop (/dav/)', ms(percentile(propfindMs, 50)), ms(percentile(propfindMs, 95)), kib(listed.answerBytes[0]), ratio(percentile(propfindMs, 50), percentile(apiMs, 50))],
      ['GET /api/v1/files (JSON): the baseline', ms(percentile(apiMs, 50)), ms(percentile(apiMs, 95)), kib(listed.answerBytes[1]), '[baseline]'],
    ]),
  );

  const line = (direction: 'up' | 'down', verb: string) => {
    const dav = median(runs[direction].dav.map(mbps));
    const api = median(runs[direction].api.map(mbps));
    const raw = median(runs[direction].raw.map(mbps));
    return `WebDAV ${verb} ${mib(FILE_BYTES)}: ${fixed(dav)} MB/s = ${pct(dav, api)} of the file API (${fixed(api)} MB/s), ${pct(dav, raw)} of raw (${fixed(raw)} MB/s); control-plane RSS growth ${signedMib(Math.max(...runs[direction].dav.map((m) => growth(m.rss))))} (worst round)`;
  };
  summary.lines.push(
    line('up', 'PUT'),
    line('down', 'GET'),
    `PROPFIND Depth 1 of ${LIST_ENTRIES} entries: p50 ${ms(percentile(propfindMs, 50))} (${kib(listed.answerBytes[0])} of XML) vs the file API's listing ${ms(percentile(apiMs, 50))} (${kib(listed.answerBytes[1])} of JSON): ${ratio(percentile(propfindMs, 50), percentile(apiMs, 50))}×`,
  );
}

// ---- main ----

async function main(): Promise<void> {
  const requested = process.argv.slice(2);
  const parts = new Set(requested.length > 0 ? requested : ['transfer', 'list']);
  for (const part of parts) if (part !== 'transfer' && part !== 'list' && part !== 'webdav') throw new Error(`unknown part "${part}" (transfer, list, webdav)`);

  sweepOnSignal(instance);
  console.log(`instance label ${instance}; engine ${(await docker.version()).Version}; ${new Date().toISOString()}; ${await machineNote()}`);
  const s = await setUp();
  // Also on Ctrl-C (sweepOnSignal exits the process): the source file does not stay behind.
  const removeSource = () => fs.rmSync(s.sourceFile, { force: true });
  process.once('exit', removeSource);
  const summary: Summary = { lines: [] };
  try {
    console.log(
      [
        `control plane: this process (pid ${process.pid}); client: a forked Node process (pid ${s.client.pid}) for the HTTP requests and the raw dockerode calls alike`,
        `runtime: ${STANDIN_IMAGE}, container ${s.containerId.slice(0, 12)}, ${mib(s.bench.platform.runtimes.settings.memoryBytes)}, ${(s.bench.platform.runtimes.settings.nanoCpus / 1e9).toFixed(1)} CPUs (product defaults); ${os.cpus().length} CPUs shared by client, control plane, dockerd and runtime`,
      ].join('\n'),
    );
    if (parts.has('transfer')) await transferPart(s, summary);
    if (parts.has('list')) await listPart(s, summary);
    if (parts.has('webdav')) await webdavPart(s, summary);
    console.log(`\n## Summary\n\n${summary.lines.join('\n')}`);
  } catch (err) {
    console.error(`--- platform log (last lines)\n${s.bench.logText().split('\n').slice(-30).join('\n')}`);
    throw err;
  } finally {
    s.client.close();
    removeSource();
    await s.bench.close();
  }
}

if (process.env[ROLE_ENV] === CLIENT_ROLE) {
  clientProcess();
} else {
  main()
    .catch((err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    })
    .finally(() => sweep(instance).catch(() => undefined));
}
