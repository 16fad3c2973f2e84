import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { Readable } from 'node:stream';
import { LABELS } from '../docker/runtimeBackend';
import { ownerLabels, runtimeNames } from '../docker/runtimeContainer';
import { engineFault } from '../docker/engineFaults';
import { FILES_AUTH_HEADER, filesKeyFrom, signRequest } from '../files/agent/requestSigning';
import type { AgentLimits, AgentRun, VolumeAccess } from '../files/workspaceVolumes';
import { infraGone, infraNotFound, infraUnavailable, isInfraError } from '../lib/infraErrors';
import type { Logger } from '../lib/logger';
import type { SettingsSource } from '../lib/settingsStore';
import { IdleLeases } from '../lib/idleLeases';
import type { RuntimeOwner } from '../runtime/provisioner';
import { OPENCLAW_HOME, RUNTIME_UID, type RuntimeSettings } from '../runtime/runtimeSettings';
import { NO_NEW_PRIVILEGES, placementConstraints, volumeMount } from './runtimeService';
import { removeSecretWhenFree } from './swarmSecrets';
import type { SwarmEngine, TaskSnapshot } from './swarmEngine';

export const FILES_ROLE = 'files';
const FILES_PORT = 7070;
const KEY_FILE = 'clawloops-files-key';
const NS = 1_000_000;
const READY_WAIT_MS = 90_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export interface SwarmFileAgentsDeps {
  engine: SwarmEngine;
  /** The runtime's overlay and node (SwarmRuntimeProvisioner.place). */
  place: (owner: RuntimeOwner) => Promise<{ name: string; node: string }>;
  settings: SettingsSource<Pick<RuntimeSettings, 'image'>>;
  sharedVolumeOptions: Record<string, string> | null;
  /** The bundled file server (files/agent/server.ts). */
  serverScript: () => Promise<string>;
  logger: Logger;
  /** How long an unused file agent lives. */
  idleMs: number;
  /** What its agents' names begin with: a command-line run beside the server names its own apart. */
  namePrefix?: string;
}

/** A running file agent: where it listens, the key it checks, and what to remove when it goes. */
interface AgentEndpoint {
  url: string;
  key: Buffer;
  serviceId: string;
  secretId: string;
}

/** One authenticated HTTP conversation with a file agent. */
export class FileAgentConnection {
  constructor(
    readonly url: string,
    private readonly key: Buffer,
    readonly signal: AbortSignal,
  ) {}

  private request(method: string, path: string, signal: AbortSignal): http.ClientRequest {
    const target = new URL(path, this.url);
    return http.request(target, {
      method,
      headers: { [FILES_AUTH_HEADER]: signRequest(this.key, method, `${target.pathname}${target.search}`, Date.now()) },
      signal,
    });
  }

  private response(req: http.ClientRequest, what: string): Promise<http.IncomingMessage> {
    return new Promise((resolve, reject) => {
      req.once('response', (res) => {
        // The agent may answer (a refusal) before it has read the whole body and close the
        // connection: the rest of the upload then fails to send, which is expected.
        req.on('error', () => undefined);
        resolve(res);
      });
      req.once('error', (err) => reject(this.signal.aborted ? (this.signal.reason as Error) : infraGone(`the file agent went away while ${what} (${err.message})`, err)));
    });
  }

  private static async failure(res: http.IncomingMessage, what: string): Promise<Error> {
    const chunks: Buffer[] = [];
    for await (const chunk of res) if (chunks.length < 64) chunks.push(chunk as Buffer);
    let message = Buffer.concat(chunks).toString('utf8').slice(0, 2000);
    try {
      const body = JSON.parse(message) as { error?: { message?: string } };
      message = body.error?.message ?? message;
    } catch {
      // not JSON: keep the text
    }
    if (res.statusCode === 404) return infraNotFound(`${what}: ${message}`);
    if (res.statusCode === 503) return infraUnavailable(`the file agent is busy (${message})`);
    return new Error(`${what} failed in the file agent (${res.statusCode}): ${message}`);
  }

  async runAgent(input: string, limits: AgentLimits): Promise<AgentRun> {
    const req = this.request('POST', `/agent?maxOutputBytes=${limits.maxOutputBytes}&timeoutMs=${limits.timeoutMs}`, this.signal);
    req.setHeader('content-type', 'application/json');
    req.end(input);
    const res = await this.response(req, 'running a file operation');
    if (res.statusCode !== 200) throw await FileAgentConnection.failure(res, 'running a file operation');
    const chunks: Buffer[] = [];
    for await (const chunk of res) chunks.push(chunk as Buffer);
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as AgentRun;
  }

  async writeArchive(dir: string, archive: Readable | Buffer, signal: AbortSignal = this.signal): Promise<void> {
    const both = AbortSignal.any([signal, this.signal]);
    const req = this.request('PUT', `/archive?dir=${encodeURIComponent(dir)}`, both);
    req.setHeader('content-type', 'application/x-tar');
    const answered = this.response(req, 'writing into the workspace volume');
    if (Buffer.isBuffer(archive)) req.end(archive);
    else {
      archive.on('error', (err) => req.destroy(err));
      archive.pipe(req);
    }
    let res: http.IncomingMessage;
    try {
      res = await answered;
    } catch (err) {
      if (both.aborted) throw both.reason as Error;
      throw err;
    }
    if (res.statusCode !== 204 && res.statusCode !== 200) throw await FileAgentConnection.failure(res, 'writing into the workspace volume');
    res.resume();
  }

  async readArchive(path: string, signal: AbortSignal = this.signal): Promise<Readable | null> {
    if (signal.aborted) throw signal.reason as Error;
    const both = AbortSignal.any([signal, this.signal]);
    const req = this.request('GET', `/archive?path=${encodeURIComponent(path)}`, both);
    req.end();
    const res = await this.response(req, 'reading from the workspace volume');
    if (res.statusCode === 404) {
      res.resume();
      return null;
    }
    if (res.statusCode !== 200) throw await FileAgentConnection.failure(res, 'reading from the workspace volume');
    return res;
  }
}

/**
 * The file agents of a swarm: per runtime, a small service beside its volume on its node (the
 * runtime image, as uid 1000, no capabilities, on the runtime's overlay) that serves the
 * workspace-volume port's three calls over HTTP (files/agent/server.ts). The engine's archive
 * and exec calls reach only this node's containers; this reaches the volume wherever it is.
 *
 * Each agent gets a fresh 256-bit key as a swarm secret (never in its environment or spec) and
 * checks an HMAC of every request with it: the runtime shares the overlay and may reach the
 * agent's port, but not sign. Like the Docker file helpers, agents start on first use, serve
 * while the runtime is stopped, and go a while after their last use.
 */
export class SwarmFileAgents {
  private readonly agents: IdleLeases<AgentEndpoint>;

  constructor(private readonly deps: SwarmFileAgentsDeps) {
    this.agents = new IdleLeases<AgentEndpoint>({
      stop: async (runtimeId, agent) => {
        try {
          await this.removeAgent(agent);
        } catch (err) {
          this.deps.logger.warn({ runtimeId, err: (err as Error).message }, 'removing a file agent failed');
        }
      },
      idleMs: deps.idleMs,
      revoked: () => infraGone("The workspace's files were taken offline (the runtime is being removed, or the server is shutting down) during the transfer."),
    });
  }

  runtimeIds(): string[] {
    return this.agents.keys();
  }

  /** A lease on the runtime's file agent; release it when done. */
  async acquire(owner: RuntimeOwner): Promise<{ connection: FileAgentConnection; release: () => void }> {
    const lease = await this.agents.acquire(owner.runtimeId, () => this.startAgent(owner));
    return { connection: new FileAgentConnection(lease.value.url, lease.value.key, lease.signal), release: lease.release };
  }

  /** Runs `work` with a lease, released after it. */
  async withAgent<T>(owner: RuntimeOwner, work: (agent: FileAgentConnection) => Promise<T>): Promise<T> {
    const { connection, release } = await this.acquire(owner);
    try {
      return await work(connection);
    } finally {
      release();
    }
  }

  /** A tar stream of one entry; the lease is released when the stream ends. */
  async readOnce(owner: RuntimeOwner, path: string, signal?: AbortSignal): Promise<Readable | null> {
    const { connection, release } = await this.acquire(owner);
    try {
      const stream = await connection.readArchive(path, signal ?? connection.signal);
      if (!stream) release();
      else stream.once('close', release);
      return stream;
    } catch (err) {
      release();
      throw err;
    }
  }

  async removeForRuntime(runtimeId: string): Promise<void> {
    if (await this.agents.remove(runtimeId)) return;
    await this.removeLabelled((labels) => labels[LABELS.runtimeId] === runtimeId);
  }

  /** Start-up and shutdown: agents (and their keys) never outlive the process that made them. */
  async removeAll(): Promise<number> {
    this.agents.forgetAll();
    return this.removeLabelled(() => true);
  }

  /**
   * Empties a volume on another node (volumes are per-engine: no manager can remove it there): a
   * one-off task on that node removes everything in it; the empty volume stays listed there.
   */
  async wipe(runtimeId: string, node: string): Promise<void> {
    const { engine } = this.deps;
    const volume = runtimeNames(runtimeId).volume;
    const script = "const fs=require('fs'),p=require('path');for(const n of fs.readdirSync('/data'))fs.rmSync(p.join('/data',n),{recursive:true,force:true})";
    const serviceId = await typed(
      engine.createService({
        Name: `clawloops-wipe-${runtimeId.slice(0, 8)}-${randomBytes(3).toString('hex')}`,
        Labels: engine.stamp({ [LABELS.runtimeId]: runtimeId, [LABELS.role]: FILES_ROLE }),
        TaskTemplate: {
          ContainerSpec: {
            Image: this.deps.settings.get().image,
            Command: [...NO_NEW_PRIVILEGES, 'node', '-e', script],
            User: `${RUNTIME_UID}:${RUNTIME_UID}`,
            Init: true,
            CapabilityDrop: ['ALL'],
            Mounts: [{ Type: 'volume', Source: volume, Target: '/data' }],
          },
          RestartPolicy: { Condition: 'none' },
          Placement: { Constraints: placementConstraints(node) },
        },
        Mode: { Replicated: { Replicas: 1 } },
      } as Parameters<SwarmEngine['createService']>[0]),
      'emptying a workspace volume on its node',
    );
    try {
      const task = await this.waitForTask(serviceId, (t) => t.state === 'complete' || t.state === 'failed' || t.state === 'rejected');
      if (task.state !== 'complete') throw new Error(`emptying the volume ${volume} on its node failed: ${task.error ?? task.state}`);
    } finally {
      await engine.removeService(serviceId).catch(() => undefined);
    }
  }

  private async removeLabelled(match: (labels: Record<string, string>) => boolean): Promise<number> {
    const { engine } = this.deps;
    const services = (await typed(engine.listServices(), 'listing file agents')).filter((s) => s.labels[LABELS.role] === FILES_ROLE && match(s.labels));
    await Promise.all(services.map((s) => engine.removeService(s.id)));
    const secrets = (await typed(engine.listSecrets(), 'listing file agent keys')).filter((s) => s.labels[LABELS.role] === FILES_ROLE && match(s.labels));
    // A secret cannot go while a task still uses it: the removed services' tasks end first.
    await Promise.all(secrets.map((s) => removeSecretWhenFree(this.deps.engine, s.id, this.deps.logger, 'a file agent key')));
    return services.length;
  }


  private async removeAgent(agent: { serviceId: string | null; secretId: string | null }): Promise<void> {
    if (agent.serviceId) await typed(this.deps.engine.removeService(agent.serviceId), 'removing a file agent');
    if (agent.secretId) await removeSecretWhenFree(this.deps.engine, agent.secretId, this.deps.logger, 'a file agent key');
  }

  /**
   * A file agent of its own on a given node, beside whatever volume of the runtime's name is
   * there (moving a runtime reads one node's and writes another's); removed when released.
   */
  async acquireOn(owner: RuntimeOwner, node: string, purpose: string): Promise<{ connection: FileAgentConnection; release: () => Promise<void> }> {
    const agent = await this.startAgent(owner, { name: runtimeNames(owner.runtimeId).network, node }, purpose);
    return { connection: new FileAgentConnection(agent.url, agent.key, new AbortController().signal), release: () => this.removeAgent(agent) };
  }

  /** Starts an agent; one that fails to start leaves nothing behind. */
  private async startAgent(owner: RuntimeOwner, at?: { name: string; node: string }, purpose?: string): Promise<AgentEndpoint> {
    const made: { serviceId: string | null; secretId: string | null } = { serviceId: null, secretId: null };
    try {
      return await this.makeAgent(owner, made, at, purpose);
    } catch (err) {
      await this.removeAgent(made).catch(() => undefined);
      throw err;
    }
  }

  private async makeAgent(owner: RuntimeOwner, made: { serviceId: string | null; secretId: string | null }, at?: { name: string; node: string }, purpose?: string): Promise<AgentEndpoint> {
    const { engine, settings } = this.deps;
    const overlay = at ?? (await this.deps.place(owner));
    // Text, as the agent reads its key file (filesKeyFrom): 64 hex characters, 256 bits.
    const keyText = randomBytes(32).toString('hex');
    const key = filesKeyFrom(keyText);
    const suffix = randomBytes(4).toString('hex');
    const labels = { ...ownerLabels(owner, 'runtime'), [LABELS.role]: FILES_ROLE };
    const secretId = await typed(engine.createSecret(`clawloops-files-${owner.runtimeId.slice(0, 8)}-${suffix}`, Buffer.from(keyText), labels), 'creating a file agent key');
    made.secretId = secretId;
    const image = settings.get().image;
    const create = async (): Promise<string> =>
      engine.createService({
        Name: `${this.deps.namePrefix ?? 'clawloops-files'}-${owner.username}-${owner.runtimeId.slice(0, 8)}${purpose ? `-${purpose}` : ''}`,
        Labels: engine.stamp(labels),
        TaskTemplate: {
          ContainerSpec: {
            Image: image,
            Labels: engine.stamp(labels),
            Command: [...NO_NEW_PRIVILEGES, 'node', '-e', await this.deps.serverScript()],
            Env: [`CLAWLOOPS_FILES_ROOT=${OPENCLAW_HOME}`, `CLAWLOOPS_FILES_KEY_FILE=/run/secrets/${KEY_FILE}`, `CLAWLOOPS_FILES_PORT=${FILES_PORT}`],
            User: `${RUNTIME_UID}:${RUNTIME_UID}`,
            Init: true,
            CapabilityDrop: ['ALL'],
            Mounts: [volumeMount(owner, OPENCLAW_HOME, this.deps.sharedVolumeOptions, (l) => engine.stamp(l))],
            Secrets: [{ SecretID: secretId, SecretName: `clawloops-files-${owner.runtimeId.slice(0, 8)}-${suffix}`, File: { Name: KEY_FILE, UID: String(RUNTIME_UID), GID: String(RUNTIME_UID), Mode: 0o400 } }],
            StopGracePeriod: 5_000 * NS,
          },
          // The server and up to four agent runs at once, each its own Node process.
          Resources: { Limits: { MemoryBytes: 512 * 1024 ** 2, Pids: 160 } },
          RestartPolicy: { Condition: 'on-failure', Delay: 2_000 * NS, MaxAttempts: 3 },
          Placement: { Constraints: placementConstraints(overlay.node) },
          Networks: [{ Target: overlay.name }],
        },
        Mode: { Replicated: { Replicas: 1 } },
        EndpointSpec: { Mode: 'dnsrr' },
      } as Parameters<SwarmEngine['createService']>[0]);
    try {
      made.serviceId = await typed(create(), 'creating a file agent');
    } catch (err) {
      // An agent a crashed control plane left behind still holds the name.
      if (!isInfraError(err, 'conflict')) throw err;
      await this.removeLabelled((labels) => labels[LABELS.runtimeId] === owner.runtimeId && labels[LABELS.role] === FILES_ROLE);
      made.serviceId = await typed(create(), 'creating a file agent');
    }
    const serviceId = made.serviceId;
    const task = await this.waitForTask(serviceId, (t) => t.state === 'running' || t.state === 'rejected' || t.state === 'failed');
    if (task.state !== 'running') {
      throw infraNotFound(`Files cannot be reached: the file agent for ${owner.username} did not start on its node (${task.error ?? task.state}). If the runtime image ${image} is missing there, load it onto that node.`);
    }
    const address = task.addresses[overlay.name];
    if (!address) throw infraUnavailable(`the file agent for ${owner.username} has no address on its network`);
    const url = `http://${address}:${FILES_PORT}`;
    await this.waitForHealth(url);
    this.deps.logger.debug({ runtimeId: owner.runtimeId, node: task.nodeId }, 'file agent started');
    return { url, key, serviceId, secretId };
  }

  private async waitForTask(serviceId: string, done: (task: TaskSnapshot) => boolean): Promise<TaskSnapshot> {
    const deadline = Date.now() + READY_WAIT_MS;
    for (;;) {
      const [latest] = await typed(this.deps.engine.listTasks([serviceId]), 'waiting for a file agent');
      if (latest && done(latest)) return latest;
      if (Date.now() > deadline) throw infraUnavailable(`the swarm did not run the file agent within ${READY_WAIT_MS / 1000} s (${latest ? `${latest.state}: ${latest.error ?? latest.message}` : 'no task yet'})`);
      await sleep(200);
    }
  }

  private async waitForHealth(url: string): Promise<void> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const ok = await new Promise<boolean>((resolve) => {
        const req = http.get(new URL('/healthz', url), { timeout: 2_000 }, (res) => {
          res.resume();
          resolve(res.statusCode === 200);
        });
        req.on('error', () => resolve(false));
        req.on('timeout', () => req.destroy());
      });
      if (ok) return;
      if (Date.now() > deadline) throw infraUnavailable(`the file agent at ${url} did not answer within 30 s`);
      await sleep(200);
    }
  }
}

function typed<T>(work: Promise<T>, what: string): Promise<T> {
  return work.catch((err: unknown) => {
    throw isInfraError(err) ? err : engineFault(err, what);
  });
}


/** The workspace-volume port's access, on a file agent lease. */
export class SwarmVolumeAccess implements VolumeAccess {
  constructor(
    readonly runtimeId: string,
    private readonly connection: FileAgentConnection,
    private readonly done: () => void,
  ) {}

  get signal(): AbortSignal {
    return this.connection.signal;
  }

  runAgent(input: string, limits: AgentLimits): Promise<AgentRun> {
    return this.connection.runAgent(input, limits);
  }

  writeArchive(dir: string, archive: Readable, signal: AbortSignal): Promise<void> {
    return this.connection.writeArchive(dir, archive, signal);
  }

  readArchive(path: string): Promise<Readable | null> {
    return this.connection.readArchive(path);
  }

  /** The volume is on some node's file agent, reached over the network: read on this thread. */
  archiveRequest(): null {
    return null;
  }

  release(): void {
    this.done();
  }
}
