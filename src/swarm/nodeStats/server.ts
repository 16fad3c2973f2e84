import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import { bundledServerStart } from '../../files/agent/bundledServer';
import { FILES_AUTH_HEADER, RequestVerifier } from '../../files/agent/requestSigning';
import { CgroupReader, CONTAINER_ID } from './cgroupReadings';
import { MAX_CONTAINERS, NODE_STATS_PORT, type NodeReading, type NodeStatsAnswer } from './protocol';

/**
 * The node-stats server: the memory and CPU figures of containers on one swarm node, which the
 * control plane's engine cannot give for a node other than its own. A global swarm service runs
 * it on every node (swarm/swarmNodeStats.ts) with the node's /sys/fs/cgroup mounted read-only; it
 * reads the cgroup files of the containers the control plane names (cgroupReadings.ts) and keeps
 * nothing between requests: the control plane turns two readings into a CPU figure. The build
 * bundles it into one script (files/agent/build.ts), started as `node -e <script>` with:
 *
 * - CLAWLOOPS_NODE_STATS_CGROUP: where the node's /sys/fs/cgroup is mounted;
 * - CLAWLOOPS_NODE_STATS_KEY_FILE: a file holding the key requests are signed with (read once);
 * - CLAWLOOPS_NODE_STATS_PORT: where it listens on 0.0.0.0 (NODE_STATS_PORT).
 *
 * The HTTP contract is in protocol.ts; an error answer is JSON `{"error":{"code","message"}}`.
 */

export interface NodeStatsServerOptions {
  /** The node's cgroup tree. */
  cgroupRoot: string;
  key: Buffer;
  /** The node's memory (a container without a limit is reported against it, as the engine does). */
  nodeMemoryBytes: number;
  /** A monotonic clock in microseconds. */
  monotonicUs?: () => number;
  clock?: { now(): number };
  log?: (message: string) => void;
}

class Refusal extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const monotonicMicroseconds = (): number => Number(process.hrtime.bigint() / 1000n);

function send(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': String(Buffer.byteLength(text)) });
  res.end(text);
}

function containersOf(url: URL): string[] {
  const raw = url.searchParams.get('containers') ?? '';
  const ids = raw === '' ? [] : raw.split(',');
  if (ids.length > MAX_CONTAINERS) throw new Refusal(400, 'TOO_MANY_CONTAINERS', `At most ${MAX_CONTAINERS} containers per request.`);
  if (!ids.every((id) => CONTAINER_ID.test(id))) throw new Refusal(400, 'INVALID_CONTAINER', 'containers must be full container ids (64 hexadecimal digits), separated by commas.');
  return [...new Set(ids)];
}

/** The server, not listening yet (tests run it in-process; main() below starts the real one). */
export function createNodeStatsServer(options: NodeStatsServerOptions): http.Server {
  const log = options.log ?? ((message: string) => process.stderr.write(`${new Date().toISOString()} ${message}\n`));
  const verifier = new RequestVerifier(options.key, options.clock);
  const reader = new CgroupReader(options.cgroupRoot, options.nodeMemoryBytes);
  const now = options.monotonicUs ?? monotonicMicroseconds;
  // Readings of another run of this server are on another clock as far as the control plane knows.
  const clock = randomBytes(8).toString('hex');

  async function stats(url: URL): Promise<NodeStatsAnswer> {
    const ids = containersOf(url);
    reader.keepOnly(ids);
    const containers: Record<string, NodeReading | null> = {};
    // One after another: each CPU time is read right before its own moment is noted.
    for (const id of ids) {
      try {
        const reading = await reader.read(id);
        containers[id] = reading && { ...reading, atUs: now() };
      } catch (err) {
        log(`reading the figures of ${id.slice(0, 12)} failed: ${(err as Error).message}`);
        containers[id] = null;
      }
    }
    return { clock, containers };
  }

  async function route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const target = req.url ?? '/';
    const url = new URL(target, 'http://node-stats.invalid');
    const method = req.method ?? 'GET';
    if (url.pathname !== '/healthz' && url.pathname !== '/stats') throw new Refusal(404, 'NOT_FOUND', 'No such endpoint.');
    if (method !== 'GET' && method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      throw new Refusal(405, 'METHOD_NOT_ALLOWED', `${url.pathname} answers GET.`);
    }
    if (url.pathname === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': '2' });
      res.end(method === 'HEAD' ? undefined : 'ok');
      return;
    }
    const verdict = verifier.verify(method, target, req.headers[FILES_AUTH_HEADER]);
    if (verdict !== 'ok') throw new Refusal(401, 'UNAUTHORIZED', `The request is not signed by the control plane (${verdict}).`);
    send(res, 200, await stats(url));
  }

  const server = http.createServer((req, res) => {
    // Nothing here takes a body: whatever comes with a request is not read.
    req.resume();
    route(req, res).catch((err: unknown) => {
      if (res.headersSent) return void res.destroy();
      const refusal = err instanceof Refusal ? err : new Refusal(500, 'NODE_STATS_FAILED', 'The node-stats server failed.');
      if (!(err instanceof Refusal)) log(`${req.method} ${(req.url ?? '').split('?')[0]}: ${(err as Error).message}`);
      send(res, refusal.status, { error: { code: refusal.code, message: refusal.message } });
    });
  });
  server.keepAliveTimeout = 10_000;
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  return server;
}

function main(): void {
  const start = bundledServerStart('node-stats server');
  const cgroupRoot = process.env.CLAWLOOPS_NODE_STATS_CGROUP ?? '';
  if (!cgroupRoot.startsWith('/') || !fs.existsSync(cgroupRoot)) start.fatal(`CLAWLOOPS_NODE_STATS_CGROUP (${cgroupRoot}) must be the folder the node's /sys/fs/cgroup is mounted at`);
  const key = start.keyFrom('CLAWLOOPS_NODE_STATS_KEY_FILE');
  const port = start.portFrom('CLAWLOOPS_NODE_STATS_PORT', NODE_STATS_PORT);
  start.listenUntilStopped(createNodeStatsServer({ cgroupRoot, key, nodeMemoryBytes: os.totalmem() }), port, cgroupRoot, 2_000);
}

/** Set to true by the bundler (files/agent/build.ts): the bundle starts; an import of this module (tests) does not. */
declare const CLAWLOOPS_NODE_STATS_MAIN: boolean | undefined;
if (typeof CLAWLOOPS_NODE_STATS_MAIN !== 'undefined' && CLAWLOOPS_NODE_STATS_MAIN) main();
