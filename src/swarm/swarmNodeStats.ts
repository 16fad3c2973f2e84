import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { LABELS } from '../docker/runtimeBackend';
import { engineFault } from '../docker/engineFaults';
import { FILES_AUTH_HEADER, filesKeyFrom, signRequest } from '../files/agent/requestSigning';
import { IdleLeases } from '../lib/idleLeases';
import { infraGone, infraUnavailable, isInfraError } from '../lib/infraErrors';
import type { Logger } from '../lib/logger';
import type { SettingsSource } from '../lib/settingsStore';
import { RUNTIME_UID, type RuntimeSettings } from '../runtime/runtimeSettings';
import { NODE_STATS_PORT, parseAnswer, type NodeStatsAnswer } from './nodeStats/protocol';
import { NO_NEW_PRIVILEGES } from './runtimeService';
import type { NodeStatsSource } from './swarmFigures';
import { removeSecretWhenFree } from './swarmSecrets';
import type { OverlayInfo, SwarmEngine, TaskSnapshot } from './swarmEngine';

export const NODE_STATS_ROLE = 'node-stats';
const KEY_FILE = 'clawloops-node-stats-key';
/** Where each node's /sys/fs/cgroup is, inside the service's containers. */
const CGROUP_MOUNT = '/host/cgroup';
const LEASE = 'node-stats';
const NS = 1_000_000;
/** How long a new service's tasks are waited for. */
const TASK_WAIT_MS = 30_000;
const REQUEST_TIMEOUT_MS = 10_000;
/** A task just started may not listen yet: refused connections are tried again for this long. */
const LISTEN_WAIT_MS = 5_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export interface SwarmNodeStatsDeps {
  engine: SwarmEngine;
  /** The service's overlay, which only the control plane joins besides it. */
  overlayName: string;
  /** Joins the control plane's container to that overlay (idempotent). */
  join: (overlay: OverlayInfo) => Promise<void>;
  settings: SettingsSource<Pick<RuntimeSettings, 'image'>>;
  /** The bundled server (swarm/nodeStats/server.ts). */
  serverScript: () => Promise<string>;
  logger: Logger;
  /** How long the service lives after its last request. */
  idleMs: number;
  /** Where its servers listen (NODE_STATS_PORT; tests run one on a free port). */
  port?: number;
}

/** The running service: what it checks requests with, and what to remove when it goes. */
interface StatsService {
  serviceId: string;
  startedAt: number;
  secretId: string;
  key: Buffer;
  overlay: string;
}

function typed<T>(work: Promise<T>, what: string): Promise<T> {
  return work.catch((err: unknown) => {
    throw isInfraError(err) ? err : engineFault(err, what);
  });
}

/**
 * The figures of containers on any node of the swarm: a global service (one task per node) of
 * the node-stats server (nodeStats/server.ts), which reads the cgroup files of the containers the
 * control plane names. Docker's stats call answers only for containers of the engine it is made
 * on; this answers for every node, one request per node for all of its runtimes.
 *
 * Least privilege: the runtime image, as uid 1000, every capability dropped, no-new-privileges
 * (setpriv), a read-only root file system, no socket, 128 MiB and 32 pids, and the node's
 * /sys/fs/cgroup mounted read-only. It is on an internal overlay of its own that only the control
 * plane joins (no runtime is on it), and every request but the health check is signed with a
 * 256-bit key handed over as a swarm secret, as the file agents' are. It starts on first use and
 * goes `idleMs` after the last request: while runtimes run, the figures' samples keep it.
 */
export class SwarmNodeStats implements NodeStatsSource {
  private readonly services: IdleLeases<StatsService>;
  /** Starting, sweeping and removing, one at a time. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly deps: SwarmNodeStatsDeps) {
    this.services = new IdleLeases<StatsService>({
      stop: (_key, service) => this.exclusive(() => this.remove(service)),
      idleMs: deps.idleMs,
      revoked: () => infraGone('the node-stats service was removed while it was asked'),
    });
  }

  async read(node: string, containerIds: string[], tasks: TaskSnapshot[]): Promise<NodeStatsAnswer> {
    const lease = await this.services.acquire(LEASE, () => this.exclusive(() => this.start()));
    try {
      const address = await this.addressOn(node, lease.value, tasks);
      return await this.ask(address, lease.value.key, containerIds, lease.signal);
    } finally {
      lease.release();
    }
  }

  /** Start-up: removes a service an earlier process left (unless this one has started its own meanwhile). */
  sweep(): Promise<void> {
    return this.exclusive(async () => {
      if (this.services.keys().length === 0) await this.removeLeftovers();
    });
  }

  /** Shutdown: the service and its key go with the process that made them. */
  async close(): Promise<void> {
    await this.services.remove(LEASE);
  }

  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work, work);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async start(): Promise<StatsService> {
    const { engine } = this.deps;
    const began = Date.now();
    await this.removeLeftovers();
    const overlay = await typed(engine.ensureOverlay(this.deps.overlayName, { [LABELS.role]: NODE_STATS_ROLE }), 'creating the node-stats network');
    await typed(this.deps.join(overlay), 'joining the node-stats network');
    const keyText = randomBytes(32).toString('hex');
    const suffix = randomBytes(4).toString('hex');
    const labels = { [LABELS.role]: NODE_STATS_ROLE };
    const secretName = `clawloops-node-stats-${suffix}`;
    const secretId = await typed(engine.createSecret(secretName, Buffer.from(keyText), labels), 'creating the node-stats key');
    try {
      const serviceId = await typed(
        engine.createService({
          Name: `clawloops-node-stats-${suffix}`,
          Labels: engine.stamp(labels),
          TaskTemplate: {
            ContainerSpec: {
              Image: this.deps.settings.get().image,
              Labels: engine.stamp(labels),
              Command: [...NO_NEW_PRIVILEGES, 'node', '-e', await this.deps.serverScript()],
              Env: [`CLAWLOOPS_NODE_STATS_CGROUP=${CGROUP_MOUNT}`, `CLAWLOOPS_NODE_STATS_KEY_FILE=/run/secrets/${KEY_FILE}`, `CLAWLOOPS_NODE_STATS_PORT=${this.deps.port ?? NODE_STATS_PORT}`],
              User: `${RUNTIME_UID}:${RUNTIME_UID}`,
              Init: true,
              CapabilityDrop: ['ALL'],
              ReadOnly: true,
              Mounts: [{ Type: 'bind', Source: '/sys/fs/cgroup', Target: CGROUP_MOUNT, ReadOnly: true }],
              Secrets: [{ SecretID: secretId, SecretName: secretName, File: { Name: KEY_FILE, UID: String(RUNTIME_UID), GID: String(RUNTIME_UID), Mode: 0o400 } }],
              StopGracePeriod: 3_000 * NS,
            },
            Resources: { Limits: { MemoryBytes: 128 * 1024 ** 2, Pids: 32 } },
            RestartPolicy: { Condition: 'on-failure', Delay: 2_000 * NS, MaxAttempts: 3 },
            Networks: [{ Target: overlay.name }],
          },
          Mode: { Global: {} },
          EndpointSpec: { Mode: 'dnsrr' },
        } as Parameters<SwarmEngine['createService']>[0]),
        'creating the node-stats service',
      );
      this.deps.logger.info({ serviceId: serviceId.slice(0, 12), ms: Date.now() - began }, 'node-stats service started');
      return { serviceId, startedAt: Date.now(), secretId, key: filesKeyFrom(keyText), overlay: overlay.name };
    } catch (err) {
      await removeSecretWhenFree(this.deps.engine, secretId, this.deps.logger, 'a node-stats key');
      throw err;
    }
  }

  private async remove(service: StatsService): Promise<void> {
    try {
      await typed(this.deps.engine.removeService(service.serviceId), 'removing the node-stats service');
      await removeSecretWhenFree(this.deps.engine, service.secretId, this.deps.logger, 'a node-stats key');
    } catch (err) {
      this.deps.logger.warn({ err: (err as Error).message }, 'removing the node-stats service failed; the next start removes it');
    }
  }

  /** Services and keys of this installation's node-stats that no lease holds (an earlier process's). */
  private async removeLeftovers(): Promise<void> {
    const { engine } = this.deps;
    const ours = (labels: Record<string, string>) => labels[LABELS.role] === NODE_STATS_ROLE;
    const services = (await typed(engine.listServices(), 'listing node-stats services')).filter((s) => ours(s.labels));
    await Promise.all(services.map((s) => engine.removeService(s.id)));
    const secrets = (await typed(engine.listSecrets(), 'listing node-stats keys')).filter((s) => ours(s.labels));
    await Promise.all(secrets.map((s) => removeSecretWhenFree(this.deps.engine, s.id, this.deps.logger, 'a node-stats key')));
  }

  /**
   * The address of the service's running task on the node, from the caller's listing. Failing
   * that, while the service is young (the listing may predate it, its task there may be starting),
   * from its own tasks until it runs; later, the node has none (paused, drained, or it failed).
   */
  private async addressOn(node: string, service: StatsService, tasks: TaskSnapshot[]): Promise<string> {
    const addressIn = (list: TaskSnapshot[]) => list.find((t) => t.serviceId === service.serviceId && t.nodeId === node && t.state === 'running' && t.addresses[service.overlay])?.addresses[service.overlay];
    const listed = addressIn(tasks);
    if (listed) return listed;
    for (;;) {
      // The engine answers a task listing of a service that is gone with 404.
      const own = await typed(this.deps.engine.listTasks([service.serviceId]), 'finding the node-stats task').catch((err: unknown) => {
        if (isInfraError(err, 'not_found')) return null;
        throw err;
      });
      const address = own && addressIn(own);
      if (address) return address;
      if (!own || (own.length === 0 && !(await typed(this.deps.engine.inspectService(service.serviceId), 'finding the node-stats service')))) {
        // Removed behind our back: the next read starts it again.
        void this.services.remove(LEASE);
        throw infraGone('the node-stats service is gone; it is started again at the next sample');
      }
      const latest = own.find((t) => t.nodeId === node);
      const failed = latest?.state === 'rejected' || latest?.state === 'failed';
      if (failed || Date.now() - service.startedAt > TASK_WAIT_MS) {
        throw infraUnavailable(`the node-stats service does not run on node ${node} (${latest ? `${latest.state}: ${latest.error ?? latest.message}` : 'no task there'})`);
      }
      await sleep(500);
    }
  }

  private async ask(address: string, key: Buffer, containerIds: string[], signal: AbortSignal): Promise<NodeStatsAnswer> {
    const target = `/stats?containers=${containerIds.join(',')}`;
    const port = this.deps.port ?? NODE_STATS_PORT;
    const deadline = Date.now() + LISTEN_WAIT_MS;
    for (;;) {
      try {
        return parseAnswer(await getJson(`http://${address}:${port}${target}`, signRequest(key, 'GET', target, Date.now()), signal), containerIds);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ECONNREFUSED' || Date.now() > deadline) throw err;
        await sleep(250);
      }
    }
  }
}

function getJson(url: string, signature: string, signal: AbortSignal): Promise<unknown> {
  return new Promise((resolve, reject) => {
    // A connection per request (one per node every few seconds): a kept-alive one may be closed by
    // the server, or belong to a task that has gone, by the time it is used again.
    const req = http.get(url, { headers: { [FILES_AUTH_HEADER]: signature }, signal, timeout: REQUEST_TIMEOUT_MS, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode !== 200) return reject(new Error(`the node-stats server answered ${res.statusCode}: ${text.slice(0, 300)}`));
        try {
          resolve(JSON.parse(text));
        } catch {
          reject(new Error('the node-stats server answered something else than JSON'));
        }
      });
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error(`the node-stats server at ${url.split('/stats')[0]} did not answer within ${REQUEST_TIMEOUT_MS / 1000} s`), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
  });
}
