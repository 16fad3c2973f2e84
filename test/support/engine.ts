/**
 * Helpers for tests against the REAL Docker engine: a harness wired to it, with a unique
 * instance label per run so parallel runs (and a developer's own ClawLoops) never see each
 * other's containers, a sweep that removes everything the run created, and log dumps on failure.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import Docker from 'dockerode';
import { DockerodeRuntimeBackend } from '../../src/docker/dockerodeRuntimeBackend';
import { LABELS } from '../../src/docker/runtimeBackend';
import { newSecret } from '../../src/lib/secrets';
import { DEFAULT_RUNTIME_IMAGE, type RuntimeSettings } from '../../src/runtime/runtimeSettings';
import { SseParser } from './sseParser';

export { eventually } from './eventually';
import { createHarness, RealTimeClock, STRONG_PASSWORD, type Harness, type HarnessOptions } from './harness';

export const SOCKET = process.env.CLAWLOOPS_DOCKER_SOCKET ?? '/var/run/docker.sock';
export const STANDIN_IMAGE = process.env.STANDIN_IMAGE ?? 'clawloops/runtime-standin:1';
export const docker = new Docker({ socketPath: SOCKET });

export const newInstanceId = () => `test-${newSecret().replace(/[^a-z0-9]/gi, '').slice(0, 10).toLowerCase()}`;

/** Small and quick: the stand-in needs ~40 MiB and answers in well under a second. */
export const STANDIN_SETTINGS: Partial<RuntimeSettings> = {
  image: STANDIN_IMAGE,
  memoryBytes: 256 * 1024 ** 2,
  nanoCpus: 0.5e9,
  pidsLimit: 128,
  readyTimeoutMs: 30_000,
  stopTimeoutSeconds: 3,
  maxParallelOperations: 4,
  models: ['test-model'],
};

/** The product's defaults for the REAL OpenClaw image (2 GiB, 2 CPUs), not the stand-in's. */
export const OPENCLAW_SETTINGS: Partial<RuntimeSettings> = {
  image: DEFAULT_RUNTIME_IMAGE,
  memoryBytes: 2 * 1024 ** 3,
  nanoCpus: 2e9,
  pidsLimit: 512,
  readyTimeoutMs: 180_000,
  stopTimeoutSeconds: 10,
};

export interface EngineHarness extends Harness {
  instance: string;
  backend: DockerodeRuntimeBackend;
}

/** `dockerSocket`: reach the engine through another socket (a proxy a test can cut). */
export function engineHarness(options: HarnessOptions & { instance?: string; dockerSocket?: string } = {}): EngineHarness {
  const instance = options.instance ?? newInstanceId();
  const backend = new DockerodeRuntimeBackend(options.dockerSocket ? new Docker({ socketPath: options.dockerSocket }) : docker, instance);
  const h = createHarness({
    clock: new RealTimeClock(),
    ...options,
    env: { CLAWLOOPS_INSTANCE: instance, ...options.env },
    runtimeBackend: backend,
    runtimeSettings: { ...STANDIN_SETTINGS, ...options.runtimeSettings },
  });
  return Object.assign(h, { instance, backend });
}

const instanceFilter = (instance: string) => JSON.stringify({ label: [`${LABELS.instance}=${instance}`] });

/** Removes every container, network and volume carrying the run's instance label. */
export async function sweep(instance: string): Promise<{ containers: number; networks: number; volumes: number }> {
  const filters = instanceFilter(instance);
  const containers = await docker.listContainers({ all: true, filters });
  await Promise.all(containers.map((c) => docker.getContainer(c.Id).remove({ force: true, v: true }).catch(() => undefined)));
  const networks = await docker.listNetworks({ filters });
  for (const n of networks) {
    const info = await docker.getNetwork(n.Id).inspect().catch(() => null);
    for (const id of Object.keys(info?.Containers ?? {})) await docker.getNetwork(n.Id).disconnect({ Container: id, Force: true }).catch(() => undefined);
    await docker.getNetwork(n.Id).remove().catch(() => undefined);
  }
  const { Volumes } = await docker.listVolumes({ filters });
  await Promise.all((Volumes ?? []).map((v) => docker.getVolume(v.Name).remove({ force: true }).catch(() => undefined)));
  return { containers: containers.length, networks: networks.length, volumes: (Volumes ?? []).length };
}

/** Prints the logs of every container of the run: called when a test fails. */
export async function dumpContainerLogs(instance: string): Promise<void> {
  const containers = await docker.listContainers({ all: true, filters: instanceFilter(instance) });
  for (const c of containers) {
    const buf = (await docker.getContainer(c.Id).logs({ stdout: true, stderr: true, tail: 50 }).catch(() => Buffer.from(''))) as Buffer;
    process.stderr.write(`--- ${c.Names.join(',')} (${c.State}: ${c.Status})\n${buf.toString('utf8').replace(/[^\t\n\x20-\uffff]/g, '')}\n`);
  }
}

/** Wraps a test body: on failure, dumps container logs and the platform's own log before rethrowing. */
export function withDiagnostics(instance: () => string, logs: () => string, body: () => Promise<void>): () => Promise<void> {
  return async () => {
    try {
      await body();
    } catch (err) {
      await dumpContainerLogs(instance()).catch(() => undefined);
      process.stderr.write(`--- platform log (last 40 lines)\n${logs().split('\n').slice(-40).join('\n')}\n`);
      throw err;
    }
  };
}

/** Runs a command in a container (of this machine's engine, or of `engine`) and returns its exit code and output. */
export async function execIn(containerId: string, cmd: string[], user = '1000:1000', engine: Docker = docker): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const exec = await engine.getContainer(containerId).exec({ Cmd: cmd, User: user, AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({ hijack: true, stdin: false });
  const out = new PassThrough();
  const err = new PassThrough();
  const chunks = { out: [] as Buffer[], err: [] as Buffer[] };
  out.on('data', (c: Buffer) => chunks.out.push(c));
  err.on('data', (c: Buffer) => chunks.err.push(c));
  engine.modem.demuxStream(stream, out, err);
  await new Promise<void>((resolve) => stream.on('end', resolve));
  const info = await exec.inspect();
  return { exitCode: info.ExitCode ?? -1, stdout: Buffer.concat(chunks.out).toString('utf8'), stderr: Buffer.concat(chunks.err).toString('utf8') };
}

// ---- a listening platform, for streams (SSE) that supertest cannot read incrementally ----

export interface Listening {
  baseUrl: string;
  /** The platform's configured origin: state-changing requests must carry it. */
  origin: string;
  close(): Promise<void>;
}

export async function listen(h: Harness): Promise<Listening> {
  const server = http.createServer(h.platform.app).listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    origin: h.config.publicOrigin,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Signs in over HTTP and returns the session cookie. */
export async function signIn(server: Listening, username: string, password = STRONG_PASSWORD): Promise<string> {
  const res = await fetch(`${server.baseUrl}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', origin: server.origin },
    body: JSON.stringify({ username, password }),
  });
  if (res.status !== 200) throw new Error(`sign-in failed: ${res.status} ${await res.text()}`);
  const cookie = res.headers.get('set-cookie');
  if (!cookie) throw new Error('no session cookie');
  return cookie.split(';')[0] ?? '';
}

export interface SseEvent {
  event: string;
  data: unknown;
}

/**
 * Reads a Server-Sent Events stream until `done` says so (or the server ends it), then closes it.
 * `onOpen` runs once the response headers arrived, to trigger what the stream should report.
 */
export function readEvents(
  url: string,
  cookie: string,
  done: (event: SseEvent, all: SseEvent[]) => boolean,
  onOpen: () => void = () => {},
  timeoutMs = 30_000,
): Promise<SseEvent[]> {
  return new Promise((resolve, reject) => {
    const events: SseEvent[] = [];
    const req = http.get(url, { headers: { cookie, accept: 'text/event-stream' } }, (res) => {
      if (res.statusCode !== 200) {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => reject(new Error(`stream answered ${res.statusCode}: ${body}`)));
        return;
      }
      onOpen();
      const parser = new SseParser();
      res.on('data', (chunk: Buffer) => {
        for (const { event, data } of parser.push(chunk.toString('utf8'))) {
          const parsed = { event, data: JSON.parse(data) as unknown };
          events.push(parsed);
          if (done(parsed, events)) {
            clearTimeout(timer);
            req.destroy();
            resolve(events);
            return;
          }
        }
      });
      res.on('end', () => {
        clearTimeout(timer);
        resolve(events);
      });
    });
    req.on('error', (err) => {
      if (!req.destroyed) reject(err);
    });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`stream did not finish within ${timeoutMs} ms; got ${JSON.stringify(events.map((e) => e.event))}`));
    }, timeoutMs);
  });
}

export { STRONG_PASSWORD };
export type { Harness };

export interface VolumeEntry {
  /** Relative to the volume's root ("" for the root itself). */
  path: string;
  type: 'file' | 'dir' | 'symlink' | 'other';
  uid: number;
  gid: number;
  /** Full mode bits, set-id and sticky included. */
  mode: number;
}

const WALK_VOLUME = `
const fs = require('fs'), path = require('path');
const out = [];
const walk = (rel) => {
  const st = fs.lstatSync(path.join('/v', rel));
  const type = st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'other';
  out.push({ path: rel, type, uid: st.uid, gid: st.gid, mode: st.mode & 0o7777 });
  if (type === 'dir') for (const name of fs.readdirSync(path.join('/v', rel)).sort()) walk(rel ? rel + '/' + name : name);
};
walk('');
// Not bare JSON: the engine client would parse a JSON log body itself.
process.stdout.write('entries ' + JSON.stringify(out));
`;

/**
 * Every entry of a volume as a separate container sees it: root, no network, the volume mounted
 * read-only. Independent of the platform's own file agent, so a test can check what really landed
 * (owners, set-id bits, names) after something the platform refused.
 */
export async function volumeEntries(volume: string, instance: string): Promise<VolumeEntry[]> {
  const container = await docker.createContainer({
    Image: STANDIN_IMAGE,
    User: '0:0',
    Cmd: ['/usr/local/bin/node', '-e', WALK_VOLUME],
    // The instance label lets the run's sweep find it; not marked managed, so the platform ignores it.
    Labels: { [LABELS.instance]: instance, 'io.clawloops.test': 'volume-inspector' },
    // A TTY: the output comes back as written, not multiplexed.
    Tty: true,
    Healthcheck: { Test: ['NONE'] },
    HostConfig: { NetworkMode: 'none', Mounts: [{ Type: 'volume', Source: volume, Target: '/v', ReadOnly: true }] },
  });
  try {
    await container.start();
    const { StatusCode } = (await container.wait()) as { StatusCode: number };
    const output = ((await container.logs({ stdout: true, stderr: true })) as Buffer).toString('utf8');
    if (StatusCode !== 0) throw new Error(`volume inspector exited ${StatusCode}: ${output}`);
    return JSON.parse(output.slice(output.indexOf('entries ') + 8)) as VolumeEntry[];
  } finally {
    await container.remove({ force: true }).catch(() => undefined);
  }
}

/** The end of an engine test file: no watcher, no operation in flight, no helper, no stream, nothing of the run left on the engine. */
export async function tearDown(h: EngineHarness): Promise<void> {
  h.platform.watcher.close();
  h.platform.streams.endAll('test over');
  await h.platform.runtimes.drain(30_000);
  await h.platform.volumes.closeAll();
  h.close();
  await sweep(h.instance);
}
