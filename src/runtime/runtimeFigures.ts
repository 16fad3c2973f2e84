import type { Clock } from '../lib/clock';
import type { Logger } from '../lib/logger';
import type { RuntimeProvisioner, RuntimeStats } from './provisioner';

/** Which runtimes have a process up right now, and which incarnation: the registry's picture. */
export interface FigureTargets {
  /** Every runtime whose process is up, with its incarnation. */
  up(): { runtimeId: string; instanceId: string }[];
  /** The incarnation of the runtime if its process is up, else null. */
  upInstance(runtimeId: string): string | null;
}

/** Runs `task` after `ms`; the answer cancels it. Injected so tests drive the loop by hand. */
export type Schedule = (task: () => void, ms: number) => () => void;

export interface RuntimeFigure {
  stats: RuntimeStats;
  /** How old the figures are, by the platform's clock. */
  ageMs: number;
  /** The last attempt to renew them failed (engine error or no answer in time): they are the last known ones. */
  stale: boolean;
}

export interface RuntimeFiguresDeps {
  provisioner: Pick<RuntimeProvisioner, 'stats'>;
  targets: FigureTargets;
  /** Tells of every change of a runtime's state (the event hub's state events). */
  subscribeStates: (listener: (runtimeId: string) => void) => () => void;
  clock: Clock;
  logger: Logger;
  /** Pause between the end of one poll cycle and the start of the next. */
  intervalMs?: number;
  /** At most this many stats calls to the provisioner at once, cycles and out-of-cycle samples together. */
  concurrency?: number;
  /** A sample not answered by then makes the runtime's figures stale (the call itself still holds its slot). */
  sampleTimeoutMs?: number;
  schedule?: Schedule;
}

const realSchedule: Schedule = (task, ms) => {
  const timer = setTimeout(task, ms);
  timer.unref();
  return () => clearTimeout(timer);
};

interface Kept {
  instanceId: string;
  stats: RuntimeStats;
  sampledAt: number;
  stale: boolean;
}

/**
 * The latest CPU and memory figures of every running runtime, kept current in the background so
 * the admin's runtime list answers from memory instead of asking the engine once per runtime on
 * every load (2.3 s for 50 runtimes). A poll cycle samples every running runtime through the
 * provisioner's one-shot `stats`, a bounded number at a time; the next cycle starts `intervalMs`
 * after the previous one ended, so cycles never overlap however slow the engine is. A runtime
 * that starts is sampled at once (state events), one that stops or goes away loses its figures at
 * once. An engine error or a hung call never throws out of here: it marks that runtime's figures
 * stale and they keep ageing, which the list shows.
 */
export class RuntimeFigures {
  private readonly figures = new Map<string, Kept>();
  /** Runtimes with a stats call outstanding: never a second one for the same runtime (no pile-up on a hung engine). */
  private readonly sampling = new Set<string>();
  private readonly waiting: (() => void)[] = [];
  private active = 0;
  private cycleInFlight: Promise<void> | null = null;
  private cancelTimer: (() => void) | null = null;
  private unsubscribe: (() => void) | null = null;
  private running = false;
  /** Bumped by close(): answers to calls made before are dropped. */
  private epoch = 0;
  private failingSince: number | null = null;
  private readonly intervalMs: number;
  private readonly concurrency: number;
  private readonly sampleTimeoutMs: number;
  private readonly schedule: Schedule;

  constructor(private readonly deps: RuntimeFiguresDeps) {
    this.intervalMs = deps.intervalMs ?? 5_000;
    // Docker's one-shot stats waits for its next samples (~2 s per call on Docker 20.10 here) but
    // calls overlap freely (8 at once also take ~2 s): the bound is about open requests, not engine
    // work. 32 at a time renews 200 runtimes in ~7 waves, ~14 s.
    this.concurrency = Math.max(1, deps.concurrency ?? 32);
    this.sampleTimeoutMs = deps.sampleTimeoutMs ?? 15_000;
    this.schedule = deps.schedule ?? realSchedule;
  }

  /** Starts following state changes and polling; the first cycle runs at once. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.unsubscribe = this.deps.subscribeStates((runtimeId) => this.stateChanged(runtimeId));
    this.loop();
  }

  close(): void {
    this.running = false;
    this.cancelTimer?.();
    this.cancelTimer = null;
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.epoch++;
    this.figures.clear();
  }

  /** The runtime's figures, if its current incarnation is up and has been measured. */
  figureOf(runtimeId: string): RuntimeFigure | null {
    const kept = this.figures.get(runtimeId);
    if (!kept || this.deps.targets.upInstance(runtimeId) !== kept.instanceId) return null;
    return { stats: kept.stats, ageMs: Math.max(0, this.deps.clock.now() - kept.sampledAt), stale: kept.stale };
  }

  /** How many runtimes have figures kept (tests: nothing is kept for what does not run). */
  get size(): number {
    return this.figures.size;
  }

  /**
   * One pass over every running runtime; a call while a pass is under way joins it. Resolves when
   * every sample of the pass has answered or timed out; never rejects.
   */
  cycle(): Promise<void> {
    this.cycleInFlight ??= this.runCycle().finally(() => {
      this.cycleInFlight = null;
    });
    return this.cycleInFlight;
  }

  /** A runtime's state changed: drop what no longer runs, measure a new incarnation at once. */
  stateChanged(runtimeId: string): void {
    const instanceId = this.deps.targets.upInstance(runtimeId);
    const kept = this.figures.get(runtimeId);
    if (kept && kept.instanceId !== instanceId) this.figures.delete(runtimeId);
    if (instanceId && !this.figures.has(runtimeId)) void this.sample(runtimeId, instanceId);
  }

  private loop(): void {
    if (!this.running) return;
    void this.cycle().then(() => {
      if (!this.running) return;
      this.cancelTimer = this.schedule(() => {
        this.cancelTimer = null;
        this.loop();
      }, this.intervalMs);
    });
  }

  private async runCycle(): Promise<void> {
    const up = this.deps.targets.up();
    const current = new Map(up.map((t) => [t.runtimeId, t.instanceId]));
    for (const [runtimeId, kept] of this.figures) if (current.get(runtimeId) !== kept.instanceId) this.figures.delete(runtimeId);
    const results = await Promise.all(up.map((t) => this.sample(t.runtimeId, t.instanceId)));
    const failed = results.filter((ok) => !ok).length;
    if (failed > 0 && this.failingSince === null) {
      this.failingSince = this.deps.clock.now();
      this.deps.logger.warn({ failed, of: up.length }, 'runtime figures could not be renewed; the admin list shows the last known ones as stale');
    } else if (failed === 0 && this.failingSince !== null) {
      this.deps.logger.info({ afterMs: this.deps.clock.now() - this.failingSince }, 'runtime figures are renewed again');
      this.failingSince = null;
    }
  }

  /** Measures one runtime; resolves false when that failed (the figures are then stale), never rejects. */
  private async sample(runtimeId: string, instanceId: string): Promise<boolean> {
    if (this.sampling.has(runtimeId)) {
      // The previous call has not answered yet (a hung engine): that is a failure to renew too.
      this.markStale(runtimeId, instanceId);
      return false;
    }
    this.sampling.add(runtimeId);
    const epoch = this.epoch;
    const call = this.withSlot(() => this.deps.provisioner.stats(instanceId)).finally(() => this.sampling.delete(runtimeId));
    const outcome = await this.withinTimeout(call);
    if (epoch !== this.epoch) return true;
    if (outcome.kind === 'failed') {
      this.markStale(runtimeId, instanceId);
      return false;
    }
    // Only figures of the incarnation that is up now are kept: it may have stopped while we asked.
    if (this.deps.targets.upInstance(runtimeId) !== instanceId || outcome.stats === null) {
      if (this.figures.get(runtimeId)?.instanceId === instanceId) this.figures.delete(runtimeId);
      return true;
    }
    this.figures.set(runtimeId, { instanceId, stats: outcome.stats, sampledAt: this.deps.clock.now(), stale: false });
    return true;
  }

  private markStale(runtimeId: string, instanceId: string): void {
    const kept = this.figures.get(runtimeId);
    if (kept?.instanceId === instanceId) kept.stale = true;
  }

  private withinTimeout(call: Promise<RuntimeStats | null>): Promise<{ kind: 'answered'; stats: RuntimeStats | null } | { kind: 'failed' }> {
    return new Promise((resolve) => {
      const cancel = this.schedule(() => resolve({ kind: 'failed' }), this.sampleTimeoutMs);
      call.then(
        (stats) => {
          cancel();
          resolve({ kind: 'answered', stats });
        },
        () => {
          cancel();
          resolve({ kind: 'failed' });
        },
      );
    });
  }

  /** Runs `task` once fewer than `concurrency` calls are outstanding. */
  private async withSlot<T>(task: () => Promise<T>): Promise<T> {
    // A finished call hands its slot straight to the next waiter, so none is ever over the bound.
    if (this.active >= this.concurrency) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.active++;
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }
}
