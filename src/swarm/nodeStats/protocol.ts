import type { CgroupReading } from './cgroupReadings';

/**
 * What the control plane and a node-stats server (server.ts) say to each other. Requests are
 * signed as the file servers' are (files/agent/requestSigning.ts, FILES_AUTH_HEADER).
 *
 * - `GET /healthz` → 200 `ok`, unsigned.
 * - `GET /stats?containers=<id>,<id>,…` (full container ids, at most MAX_CONTAINERS) → 200
 *   NodeStatsAnswer; 400 for anything but full ids, 401 unsigned.
 */

export const NODE_STATS_PORT = 7071;
/** Container ids per request: keeps the request line well under the server's header limit. */
export const MAX_CONTAINERS = 100;

export interface NodeReading extends CgroupReading {
  /** When the CPU time was read, on the server's monotonic clock, in microseconds. */
  atUs: number;
}

export interface NodeStatsAnswer {
  /** Which server's clock `atUs` is on: two readings are comparable only on the same one. */
  clock: string;
  /** Each container asked for; null when the node has no such container (any more). */
  containers: Record<string, NodeReading | null>;
}

const isCount = (value: unknown): value is number => typeof value === 'number' && Number.isFinite(value) && value >= 0;

/** The answer as the control plane trusts it: well-formed, and only the containers it asked for. */
export function parseAnswer(body: unknown, asked: readonly string[]): NodeStatsAnswer {
  const answer = body as Partial<NodeStatsAnswer> | null;
  if (typeof answer !== 'object' || answer === null || typeof answer.clock !== 'string' || typeof answer.containers !== 'object' || answer.containers === null) {
    throw new Error('the node-stats server answered something else than figures');
  }
  const containers: Record<string, NodeReading | null> = {};
  for (const id of asked) {
    const reading = (answer.containers as Record<string, unknown>)[id] as Partial<NodeReading> | null | undefined;
    if (reading === null || reading === undefined) containers[id] = null;
    else if (isCount(reading.memoryBytes) && isCount(reading.memoryLimitBytes) && isCount(reading.cpuNs) && isCount(reading.atUs)) {
      containers[id] = { memoryBytes: reading.memoryBytes, memoryLimitBytes: reading.memoryLimitBytes, cpuNs: reading.cpuNs, atUs: reading.atUs };
    } else throw new Error(`the node-stats server's figures of ${id.slice(0, 12)} are malformed`);
  }
  return { clock: answer.clock, containers };
}
