/**
 * The control plane as it runs in production on a swarm manager: in a container, joined to every
 * runtime network. It runs this checkout's build (dist/, node_modules, web/dist mounted read-only
 * into the local Node base image, the same Node and glibc as the host), so no image is rebuilt
 * per change. Tests drive it over HTTP on a port published on 127.0.0.1.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type Docker from 'dockerode';
import supertest from 'supertest';
import type TestAgent from 'supertest/lib/agent';
import { docker, eventually, newInstanceId, SOCKET } from './engine';
import { freePort } from './processes';

export const NODE_BASE_IMAGE = 'clawloops/node:20-bookworm-slim';
const ROOT = path.resolve(__dirname, '..', '..');
export const ADMIN = { username: 'admin', password: 'Correct-Horse-Battery-9' };

export interface ControlPlane {
  instance: string;
  containerId: string;
  url: string;
  dataDir: string;
  client(): TestAgent;
  /** Signs the administrator in (the initial admin from the environment). */
  admin(): Promise<TestAgent>;
  logs(tail?: number): Promise<string>;
  restart(): Promise<void>;
  remove(): Promise<void>;
}

export interface ControlPlaneOptions {
  /** The engine it runs on (default: this machine's); a swarm's manager for the cluster tests. */
  engine?: Docker;
  /** Where this checkout is as that engine sees it (default: its path here). */
  checkout?: string;
  /** The address the test reaches it at (default 127.0.0.1) and the port published there (default: a free one). */
  address?: string;
  port?: number;
  /** The container's name (default clawloops-cp-<instance>). */
  name?: string;
  /** A data folder of an earlier control plane to go on with (kept on remove; the caller owns it). */
  dataDir?: string;
}

export async function startControlPlane(env: Record<string, string>, instance = newInstanceId(), options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const engine = options.engine ?? docker;
  const onThisEngine = engine === docker;
  const port = options.port ?? (await freePort());
  const url = `http://${options.address ?? '127.0.0.1'}:${port}`;
  // A folder here for this engine; another engine keeps the data in memory.
  const dataDir = options.dataDir ?? (onThisEngine ? fs.mkdtempSync(path.join(os.tmpdir(), 'clawloops-cp-')) : '');
  const container = await engine.createContainer({
    name: options.name ?? `clawloops-cp-${instance}`,
    Image: NODE_BASE_IMAGE,
    Cmd: ['node', '/app/dist/main.js'],
    WorkingDir: '/app',
    User: '0:0',
    Labels: { 'io.clawloops.instance': instance, 'io.clawloops.test': 'control-plane' },
    Env: Object.entries({
      CLAWLOOPS_DATA_DIR: '/data',
      CLAWLOOPS_HOST: '0.0.0.0',
      CLAWLOOPS_PORT: '8080',
      CLAWLOOPS_PUBLIC_URL: url,
      CLAWLOOPS_INSTANCE: instance,
      CLAWLOOPS_CONTROL_PLANE_CONTAINER: 'self',
      CLAWLOOPS_ADMIN_USERNAME: ADMIN.username,
      CLAWLOOPS_ADMIN_PASSWORD: ADMIN.password,
      CLAWLOOPS_LOG_LEVEL: 'info',
      ...env,
    }).map(([k, v]) => `${k}=${v}`),
    ExposedPorts: { '8080/tcp': {} },
    HostConfig: {
      Binds: [`${options.checkout ?? ROOT}:/app:ro`, ...(dataDir ? [`${dataDir}:/data`] : []), `${onThisEngine ? SOCKET : '/var/run/docker.sock'}:/var/run/docker.sock`],
      ...(dataDir ? {} : { Tmpfs: { '/data': '' } }),
      PortBindings: { '8080/tcp': [{ HostIp: onThisEngine ? '127.0.0.1' : '', HostPort: String(port) }] },
      Init: true,
    },
  });
  await container.start();
  const plane: ControlPlane = {
    instance,
    containerId: container.id,
    url,
    dataDir,
    client: () => supertest.agent(url).set('Origin', url),
    async admin() {
      const agent = plane.client();
      const res = await agent.post('/api/v1/auth/login').send(ADMIN);
      if (res.status !== 200) throw new Error(`admin sign-in failed: ${res.status} ${JSON.stringify(res.body)}`);
      return agent;
    },
    async logs(tail = 80) {
      const buf = (await container.logs({ stdout: true, stderr: true, tail })) as Buffer;
      return buf.toString('utf8').replace(/[^\t\n\x20-\uffff]/g, '');
    },
    async restart() {
      await container.restart({ t: 10 });
      await waitForHealth(url);
    },
    async remove() {
      await container.remove({ force: true }).catch(() => undefined);
      if (dataDir && !options.dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
  try {
    await waitForHealth(url);
  } catch (err) {
    process.stderr.write(`--- control plane log\n${await plane.logs()}\n`);
    throw err;
  }
  return plane;
}

async function waitForHealth(url: string): Promise<void> {
  await eventually(async () => ((await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(3_000) }).catch(() => null))?.status === 200 ? true : undefined), 'the control plane to answer /healthz', 60_000, 250);
}

/** Runs `docker swarm init` unless the engine is in a swarm already; resolves with whether it did. */
export async function ensureSwarm(): Promise<boolean> {
  const info = (await docker.info()) as { Swarm?: { LocalNodeState?: string } };
  if (info.Swarm?.LocalNodeState === 'active') return false;
  await docker.swarmInit({ ListenAddr: '127.0.0.1:2377', AdvertiseAddr: '127.0.0.1' });
  return true;
}

/** Leaves the swarm, and removes the bridge the swarm made for its tasks' way out (the engine keeps it). */
export async function leaveSwarm(): Promise<void> {
  await docker.swarmLeave({ force: true });
  await docker.getNetwork('docker_gwbridge').remove().catch(() => undefined);
}

/** Removes every service, secret, container, network and volume of a test instance. */
export async function sweepSwarm(instance: string): Promise<void> {
  const filters = JSON.stringify({ label: [`io.clawloops.instance=${instance}`] });
  const services = (await docker.listServices({ filters }).catch(() => [])) as { ID: string }[];
  await Promise.all(services.map((s) => docker.getService(s.ID).remove().catch(() => undefined)));
  for (const service of services) {
    const filter = JSON.stringify({ label: [`com.docker.swarm.service.id=${service.ID}`] });
    await eventually(async () => ((await docker.listContainers({ all: true, filters: filter })).length === 0 ? true : undefined), 'service tasks to go', 60_000, 500).catch(() => undefined);
  }
  const secrets = (await docker.listSecrets({ filters }).catch(() => [])) as { ID: string }[];
  await Promise.all(secrets.map((s) => docker.getSecret(s.ID).remove().catch(() => undefined)));
}
