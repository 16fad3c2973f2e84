import * as fs from 'node:fs';
import * as http from 'node:http';
import { posix } from 'node:path';
import { AgentQueue, isAgentRun, ownAgentCommand, spawnAgent, type AgentLimits, type AgentRunner } from './agentRunner';
import { packArchive } from './archiveRead';
import { ClientGone, unpackArchive } from './archiveWrite';
import { bundledServerStart } from './bundledServer';
import { FILES_AUTH_HEADER, RequestVerifier } from './requestSigning';
import { badRequest, ServerRefusal } from './serverErrors';
import { isInside, resolveDir, resolveEntry } from './serverPaths';
import { runAgentOverStdio } from './stdio';

/**
 * The file server: what reaches a user's workspace volume where the control plane cannot reach it
 * through a container engine's own API (a Docker Swarm node other than the manager's). It runs in
 * a per-user "files" container beside the volume, as uid 1000, and serves what the engine's API
 * serves on a single host: runs of the file agent (what `docker exec node -e <agent>` does) and
 * tar streams into and out of the volume (what putArchive and getArchive do). The build bundles it
 * into one script (build.ts), started as `node -e <script>` with:
 *
 * - CLAWLOOPS_FILES_ROOT: the volume's mount point; nothing outside it is read or written;
 * - CLAWLOOPS_FILES_KEY_FILE: a file holding the key requests are signed with (read once);
 * - CLAWLOOPS_FILES_PORT: where it listens on 0.0.0.0 (7070).
 *
 * HTTP contract (every error answer is JSON `{"error":{"code","message"}}`):
 *
 * - `GET /healthz` → 200 `ok` (text/plain), no signature needed.
 * - Everything else needs FILES_AUTH_HEADER (requestSigning.ts) signed over the method and the
 *   request target exactly as sent; 401 UNAUTHORIZED otherwise.
 * - `POST /agent?maxOutputBytes=N&timeoutMs=N`, body: one agent request (JSON, at most 1 MiB) →
 *   200 `{"exitCode","stdout","stderr"}`; 413 OUTPUT_TOO_LARGE, 504 AGENT_TIMEOUT, 503 AGENT_BUSY,
 *   413 REQUEST_TOO_LARGE, 400 INVALID_REQUEST / INVALID_LIMITS / PATH_OUTSIDE_ROOT.
 * - `PUT /archive?dir=<absolute path>`, body: a tar stream → 204 once all of it is unpacked
 *   (archiveWrite.ts); 400 for a refused or broken archive, 404 NOT_FOUND when `dir` is not
 *   there, 403 / 409 / 507 for what the file system said, 503 TOO_MANY_STREAMS.
 * - `GET /archive?path=<absolute path>` → 200 application/x-tar (archiveRead.ts); 404 NOT_FOUND
 *   when nothing is there, 400 PATH_OUTSIDE_ROOT, 503 TOO_MANY_STREAMS.
 *
 * An answer given before the request's body was read to its end closes the connection.
 */

export interface FileServerOptions {
  /** The volume's mount point. */
  root: string;
  key: Buffer;
  /** Runs one agent request (spawnAgent in production: a child process per run). */
  agent: AgentRunner;
  clock?: { now(): number };
  /** Archive streams at once, reads and writes together. */
  maxStreams?: number;
  /** Agent runs at once, and how many more may wait. */
  maxAgentRuns?: number;
  maxAgentWaiting?: number;
  /** An idle keep-alive connection is closed after this long. */
  keepAliveMs?: number;
  /** A connection on which nothing moves for this long is cut (a stalled stream, a peer gone without a word). */
  socketIdleMs?: number;
  log?: (message: string) => void;
}

export const DEFAULT_PORT = 7070;
export const MAX_AGENT_REQUEST_BYTES = 1024 * 1024;
export const DEFAULT_AGENT_LIMITS: AgentLimits = { maxOutputBytes: 64 * 1024 ** 2, timeoutMs: 5 * 60_000 };
const MAX_AGENT_LIMITS: AgentLimits = { maxOutputBytes: 256 * 1024 ** 2, timeoutMs: 10 * 60_000 };

const ROUTES: Record<string, string[]> = { '/healthz': ['GET', 'HEAD'], '/agent': ['POST'], '/archive': ['GET', 'PUT'] };

function sendJson(req: http.IncomingMessage, res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  // The rest of a body nobody will read is not waited for: the connection goes with the answer.
  if (!req.complete) headers.connection = 'close';
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': String(Buffer.byteLength(text)), ...headers });
  res.end(text);
}

function limitParam(url: URL, name: keyof AgentLimits): number {
  const raw = url.searchParams.get(name);
  if (raw === null || raw === '') return DEFAULT_AGENT_LIMITS[name];
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(value) || value < 1 || value > MAX_AGENT_LIMITS[name]) {
    throw badRequest('INVALID_LIMITS', `${name} must be a whole number from 1 to ${MAX_AGENT_LIMITS[name]}.`);
  }
  return value;
}

async function readBody(req: http.IncomingMessage, limit: number): Promise<string> {
  const declared = Number(req.headers['content-length'] ?? 0);
  const tooLarge = () => new ServerRefusal(413, 'REQUEST_TOO_LARGE', `An agent request may have at most ${limit} bytes.`);
  if (declared > limit) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw tooLarge();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * A guard, not the agent's own checks: the folders an agent request names (its file root, a
 * staging folder, the volume's root) must lie in the server's root, as far as their names say.
 */
function checkAgentRequest(body: string, root: string): void {
  let request: unknown;
  try {
    request = JSON.parse(body);
  } catch {
    throw badRequest('INVALID_REQUEST', 'The agent request is not JSON.');
  }
  if (typeof request !== 'object' || request === null || typeof (request as { op?: unknown }).op !== 'string') {
    throw badRequest('INVALID_REQUEST', 'The agent request has no operation.');
  }
  const trimmed = (p: string) => {
    const normal = posix.normalize(p);
    return normal.length > 1 ? normal.replace(/\/+$/, '') : normal;
  };
  const base = trimmed(root);
  for (const field of ['root', 'staging', 'volumeRoot']) {
    const value = (request as Record<string, unknown>)[field];
    if (value === undefined) continue;
    if (typeof value !== 'string' || !value.startsWith('/') || !isInside(base, trimmed(value))) {
      throw badRequest('PATH_OUTSIDE_ROOT', `The agent request's ${field} is not inside the file root.`);
    }
  }
}

/** The file server, not listening yet (tests run it in-process; main() below starts the real one). */
export function createFileServer(options: FileServerOptions): http.Server {
  const log = options.log ?? ((message: string) => process.stderr.write(`${new Date().toISOString()} ${message}\n`));
  const verifier = new RequestVerifier(options.key, options.clock);
  const agents = new AgentQueue(options.maxAgentRuns ?? 4, options.maxAgentWaiting ?? 32);
  const maxStreams = options.maxStreams ?? 8;
  let streams = 0;

  /** A stream slot, held until the work is done and the answer closed; 503 when all are taken. */
  function streamSlot(res: http.ServerResponse, work: () => Promise<void>): Promise<void> {
    if (streams >= maxStreams) throw new ServerRefusal(503, 'TOO_MANY_STREAMS', `${maxStreams} archive streams are open; try again when one has ended.`);
    streams++;
    const closed = new Promise<void>((resolve) => res.once('close', resolve));
    const working = work();
    void Promise.allSettled([working, closed]).then(() => streams--);
    return working;
  }

  async function agent(req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void> {
    const limits = { maxOutputBytes: limitParam(url, 'maxOutputBytes'), timeoutMs: limitParam(url, 'timeoutMs') };
    const body = await readBody(req, MAX_AGENT_REQUEST_BYTES);
    checkAgentRequest(body, options.root);
    const gone = new AbortController();
    res.once('close', () => gone.abort());
    const run = await agents.run(() => options.agent(body, limits), gone.signal);
    sendJson(req, res, 200, run);
  }

  async function putArchive(req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void> {
    const dir = await resolveDir(options.root, url.searchParams.get('dir'));
    await unpackArchive(req, dir);
    res.writeHead(204);
    res.end();
  }

  async function getArchive(res: http.ServerResponse, url: URL): Promise<void> {
    const entry = await resolveEntry(options.root, url.searchParams.get('path'));
    const stopped = new AbortController();
    res.once('close', () => stopped.abort());
    res.writeHead(200, { 'content-type': 'application/x-tar' });
    await packArchive(entry.real, entry.name, entry.stats, {
      signal: stopped.signal,
      sink: res,
      onSkipped: (path, err) => log(`archive read: left out ${path}: ${(err as NodeJS.ErrnoException).code ?? err.message}`),
    });
  }

  async function route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const target = req.url ?? '/';
    const url = new URL(target, 'http://files.invalid');
    const methods = ROUTES[url.pathname];
    const method = req.method ?? 'GET';
    if (!methods) throw new ServerRefusal(404, 'NOT_FOUND', 'No such endpoint.');
    if (!methods.includes(method)) {
      res.setHeader('allow', methods.join(', '));
      throw new ServerRefusal(405, 'METHOD_NOT_ALLOWED', `${url.pathname} answers ${methods.join(', ')}.`);
    }
    if (url.pathname === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': '2' });
      res.end(method === 'HEAD' ? undefined : 'ok');
      return;
    }
    const verdict = verifier.verify(method, target, req.headers[FILES_AUTH_HEADER]);
    if (verdict !== 'ok') throw new ServerRefusal(401, 'UNAUTHORIZED', `The request is not signed by the control plane (${verdict}).`);
    if (url.pathname === '/agent') return agent(req, res, url);
    if (method === 'PUT') return streamSlot(res, () => putArchive(req, res, url));
    return streamSlot(res, () => getArchive(res, url));
  }

  const server = http.createServer((req, res) => {
    route(req, res).catch((err: unknown) => {
      if (err instanceof ClientGone || res.destroyed) {
        res.destroy();
        return;
      }
      if (res.headersSent) {
        // Mid-stream: the only way left to say it failed is to cut the stream.
        log(`${req.method} ${pathOf(req)}: failed while streaming: ${(err as Error).message}`);
        res.destroy();
        return;
      }
      let refusal: ServerRefusal;
      if (err instanceof ServerRefusal) refusal = err;
      else {
        log(`${req.method} ${pathOf(req)}: ${(err as Error).message}`);
        refusal = new ServerRefusal(500, 'FILE_SERVER_FAILED', `The file server failed: ${(err as NodeJS.ErrnoException).code ?? 'unexpected error'}.`);
      }
      sendJson(req, res, refusal.status, { error: { code: refusal.code, message: refusal.message } });
    });
  });
  server.keepAliveTimeout = options.keepAliveMs ?? 5_000;
  // An upload or a download may take as long as its bytes take; stalls are cut by `timeout`.
  server.requestTimeout = 0;
  server.headersTimeout = 20_000;
  server.timeout = options.socketIdleMs ?? 15 * 60_000;
  server.on('connection', (socket) => socket.setKeepAlive(true, 30_000));
  return server;
}

/** The request's path without its query (which may name the user's files) for the log. */
const pathOf = (req: http.IncomingMessage): string => (req.url ?? '').split('?')[0] ?? '';

function main(): void {
  if (isAgentRun()) {
    runAgentOverStdio();
    return;
  }
  const start = bundledServerStart('file server');
  const root = process.env.CLAWLOOPS_FILES_ROOT ?? '';
  if (!root.startsWith('/')) start.fatal('CLAWLOOPS_FILES_ROOT must be the absolute path of the volume');
  if (!fs.existsSync(root) || !fs.statSync(root).isDirectory()) start.fatal(`CLAWLOOPS_FILES_ROOT (${root}) is not a folder`);
  const key = start.keyFrom('CLAWLOOPS_FILES_KEY_FILE');
  const port = start.portFrom('CLAWLOOPS_FILES_PORT', DEFAULT_PORT);
  start.listenUntilStopped(createFileServer({ root, key, agent: spawnAgent(ownAgentCommand()) }), port, root, 5_000);
}

/** Set to true by the bundler (build.ts): the bundle starts; an import of this module (tests) does not. */
declare const CLAWLOOPS_FILE_SERVER_MAIN: boolean | undefined;
if (typeof CLAWLOOPS_FILE_SERVER_MAIN !== 'undefined' && CLAWLOOPS_FILE_SERVER_MAIN) main();
