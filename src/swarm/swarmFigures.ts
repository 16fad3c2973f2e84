import type { RuntimeStats } from '../runtime/provisioner';
import { MAX_CONTAINERS, type NodeReading, type NodeStatsAnswer } from './nodeStats/protocol';
import type { TaskSnapshot } from './swarmEngine';

/** Reads the figures of containers on one node (its node-stats server: swarmNodeStats.ts). */
export interface NodeStatsSource {
  /** `tasks` is the listing the containers were found in: where the node's server is, when it lists it. */
  read(node: string, containerIds: string[], tasks: TaskSnapshot[]): Promise<NodeStatsAnswer>;
}

export interface SwarmFiguresDeps {
  listTasks: () => Promise<TaskSnapshot[]>;
  /** Whether a task is one of this installation's runtimes: the containers a node is asked about. */
  isRuntime: (task: TaskSnapshot) => boolean;
  source: NodeStatsSource;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  /** How long one round (a listing, one request per node) answers for: about a sampling round of the figures. */
  maxAgeMs?: number;
  /** A container measured for the first time is read again this much later for its CPU figure. */
  firstWindowMs?: number;
}

/** A CPU figure needs this much time between its two readings: shorter is mostly noise. */
const MIN_WINDOW_US = 500_000;

interface Round {
  at: number;
  tasks: Promise<TaskSnapshot[]>;
  /** Per node, the figures of every runtime running there, by container id. */
  nodes: Map<string, Promise<Map<string, RuntimeStats>>>;
}

interface Previous {
  node: string;
  clock: string;
  atUs: number;
  cpuNs: number;
  /** The CPU figure computed with this reading; null for a first reading. */
  cpuPercent: number | null;
}

/**
 * A task whose container runs: `running`, or `starting` (the swarm's word until the first health
 * check passes, which for a runtime may take a while after it answers).
 */
const isUp = (t: TaskSnapshot): boolean => (t.state === 'running' || t.state === 'starting') && t.nodeId !== null && t.containerId !== null;

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * The figures of runtimes on every node of a swarm. The admin's figures sample every running
 * runtime every few seconds, one `stats` call each; here the calls of a round share one listing
 * of the swarm's tasks (where each runtime runs, in which container) and one request per node
 * to that node's node-stats server, which reads the figures of all the runtimes running there.
 * A listing per runtime per sample was most of what the swarm backend cost at rest beyond the
 * Docker backend (bench/swarm.ts); a request per runtime would have been the next.
 *
 * The CPU figure is the CPU time a container used between two readings over the time between
 * them (100% = one CPU busy, as Docker shows it): the previous reading of each container is kept.
 * A container read for the first time is read again `firstWindowMs` later (an extra request
 * for its node, that round only), so a runtime has its figures from its first sample on.
 */
export class SwarmFigures {
  private round: Round | null = null;
  private readonly previous = new Map<string, Previous>();
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly maxAgeMs: number;
  private readonly firstWindowMs: number;

  constructor(private readonly deps: SwarmFiguresDeps) {
    this.now = deps.now ?? Date.now;
    this.sleep = deps.sleep ?? defaultSleep;
    this.maxAgeMs = deps.maxAgeMs ?? 2_000;
    this.firstWindowMs = deps.firstWindowMs ?? 1_000;
  }

  /** The figures of the service's running task, wherever it runs; null when it has none running. */
  async stats(serviceId: string): Promise<RuntimeStats | null> {
    const round = this.currentRound();
    const tasks = await round.tasks;
    const task = tasks.find((t) => t.serviceId === serviceId && isUp(t));
    if (!task?.nodeId || !task.containerId) return null;
    let figures = round.nodes.get(task.nodeId);
    if (!figures) {
      figures = this.measure(task.nodeId, tasks, task.containerId);
      round.nodes.set(task.nodeId, figures);
    }
    return (await figures).get(task.containerId) ?? null;
  }

  private currentRound(): Round {
    if (!this.round || this.now() - this.round.at > this.maxAgeMs) {
      const round: Round = { at: this.now(), tasks: this.deps.listTasks(), nodes: new Map() };
      this.round = round;
      // A failed listing is not kept: the next caller asks again.
      round.tasks.catch(() => {
        if (this.round === round) this.round = null;
      });
    }
    return this.round;
  }

  /** The figures of every runtime running on the node (and of `asked`, whatever the listing's labels say). */
  private async measure(node: string, tasks: TaskSnapshot[], asked: string): Promise<Map<string, RuntimeStats>> {
    const containers = new Set([asked]);
    for (const t of tasks) if (t.nodeId === node && isUp(t) && t.containerId && this.deps.isRuntime(t)) containers.add(t.containerId);
    for (const [id, previous] of this.previous) if (previous.node === node && !containers.has(id)) this.previous.delete(id);
    const figures = new Map<string, RuntimeStats>();
    const unmeasured: string[] = [];
    for (const [id, reading] of await this.readAll(node, [...containers], tasks)) {
      const figure = this.figureOf(id, node, reading);
      if (figure) figures.set(id, figure);
      else unmeasured.push(id);
    }
    if (unmeasured.length === 0) return figures;
    await this.sleep(this.firstWindowMs);
    for (const [id, reading] of await this.readAll(node, unmeasured, tasks)) {
      const figure = this.figureOf(id, node, reading);
      if (figure) figures.set(id, figure);
    }
    return figures;
  }

  /** The node's readings of the containers it has, MAX_CONTAINERS a request. */
  private async readAll(node: string, ids: string[], tasks: TaskSnapshot[]): Promise<Map<string, NodeReading & { clock: string }>> {
    const readings = new Map<string, NodeReading & { clock: string }>();
    for (let i = 0; i < ids.length; i += MAX_CONTAINERS) {
      const answer = await this.deps.source.read(node, ids.slice(i, i + MAX_CONTAINERS), tasks);
      for (const [id, reading] of Object.entries(answer.containers)) if (reading) readings.set(id, { ...reading, clock: answer.clock });
    }
    return readings;
  }

  /** The figures from this reading and the container's previous one; null while there is no CPU figure yet. */
  private figureOf(id: string, node: string, reading: NodeReading & { clock: string }): RuntimeStats | null {
    const previous = this.previous.get(id);
    const comparable = previous !== undefined && previous.clock === reading.clock && reading.cpuNs >= previous.cpuNs && reading.atUs > previous.atUs;
    let cpuPercent: number | null = null;
    if (comparable && reading.atUs - previous.atUs < MIN_WINDOW_US) {
      // Too soon after the last reading for a figure of its own: the last figure stands, the older reading stays the base.
      if (previous.cpuPercent === null) return null;
      cpuPercent = previous.cpuPercent;
    } else {
      if (comparable) cpuPercent = ((reading.cpuNs - previous.cpuNs) / 1000 / (reading.atUs - previous.atUs)) * 100;
      this.previous.set(id, { node, clock: reading.clock, atUs: reading.atUs, cpuNs: reading.cpuNs, cpuPercent });
    }
    return cpuPercent === null ? null : { memoryBytes: reading.memoryBytes, memoryLimitBytes: reading.memoryLimitBytes, cpuPercent };
  }
}
