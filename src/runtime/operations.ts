import { EventEmitter } from 'node:events';
import { newId } from '../lib/secrets';

export type OperationKind = 'start' | 'stop' | 'restart' | 'delete' | 'purge' | 'restore' | 'move';
export type OperationStatus = 'queued' | 'running' | 'succeeded' | 'failed';
export type OperationStep =
  | 'queued'
  | 'pulling'
  | 'preparing'
  | 'creating'
  | 'configuring'
  | 'starting'
  | 'waiting-for-health'
  | 'ready'
  | 'stopping'
  | 'removing'
  | 'restoring'
  | 'moving'
  | 'done'
  | 'failed';

export interface OperationView {
  id: string;
  runtimeId: string;
  kind: OperationKind;
  status: OperationStatus;
  step: OperationStep;
  percent: number;
  message: string;
  /** While queued: operations of other users ahead of this one. */
  queuePosition: number | null;
  bytesDone: number | null;
  bytesTotal: number | null;
  error: { code: string; message: string } | null;
  startedAt: string;
  finishedAt: string | null;
}

export interface StepUpdate {
  step: OperationStep;
  percent: number;
  message: string;
  queuePosition?: number | null;
  bytesDone?: number | null;
  bytesTotal?: number | null;
}

/** A failure a user can act on: the code is stable, the message says what happened and why. */
export class OperationError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'OperationError';
  }
}

export class Operation {
  readonly id = newId();
  private view: OperationView;
  readonly done: Promise<OperationView>;
  private settle!: (view: OperationView) => void;

  constructor(
    readonly runtimeId: string,
    readonly userId: string,
    readonly kind: OperationKind,
    private readonly publish: (view: OperationView) => void,
    now: number,
  ) {
    this.view = {
      id: this.id,
      runtimeId,
      kind,
      status: 'queued',
      step: 'queued',
      percent: 0,
      message: 'Waiting to begin',
      queuePosition: null,
      bytesDone: null,
      bytesTotal: null,
      error: null,
      startedAt: new Date(now).toISOString(),
      finishedAt: null,
    };
    this.done = new Promise((resolve) => (this.settle = resolve));
  }

  get snapshot(): OperationView {
    return this.view;
  }

  get finished(): boolean {
    return this.view.finishedAt !== null;
  }

  update(update: StepUpdate): void {
    if (this.finished) return;
    const percent = Math.max(0, Math.min(100, Math.round(update.percent)));
    const v = this.view;
    // Readiness probing updates many times a second; streams only hear about real changes.
    const unchanged =
      v.step === update.step &&
      v.percent === percent &&
      v.message === update.message &&
      v.queuePosition === (update.queuePosition ?? null) &&
      v.bytesDone === (update.bytesDone ?? null) &&
      v.bytesTotal === (update.bytesTotal ?? null) &&
      v.status !== 'queued';
    if (unchanged) return;
    this.view = {
      ...this.view,
      status: update.step === 'queued' ? 'queued' : 'running',
      step: update.step,
      percent,
      message: update.message,
      queuePosition: update.queuePosition ?? null,
      bytesDone: update.bytesDone ?? null,
      bytesTotal: update.bytesTotal ?? null,
    };
    this.publish(this.view);
  }

  succeed(message: string, now: number): void {
    this.finish({ status: 'succeeded', step: this.kind === 'start' || this.kind === 'restart' ? 'ready' : 'done', percent: 100, message, error: null }, now);
  }

  fail(error: { code: string; message: string }, now: number): void {
    this.finish({ status: 'failed', step: 'failed', message: error.message, error }, now);
  }

  private finish(change: Partial<OperationView>, now: number): void {
    if (this.finished) return;
    this.view = { ...this.view, queuePosition: null, ...change, finishedAt: new Date(now).toISOString() };
    this.publish(this.view);
    this.settle(this.view);
  }
}

export type RuntimeStreamEvent = { type: 'progress'; operation: OperationView } | { type: 'state'; runtimeId: string };

/** Not a runtime id (those are UUIDs): the event every state change is also told under. */
const ANY_STATE = 'state:any';

/**
 * Fan-out of what happens to each runtime, for the progress streams. It keeps each runtime's
 * latest operation so a client that connects mid-operation (or just after) sees where it is.
 */
export class RuntimeEventHub {
  private readonly emitter = new EventEmitter();
  private readonly latest = new Map<string, Operation>();

  constructor() {
    // One listener per open browser tab; a team's worth is far above the default warning at 10.
    this.emitter.setMaxListeners(0);
  }

  track(operation: Operation): void {
    this.latest.set(operation.runtimeId, operation);
    this.emitter.emit('launched', operation);
  }

  /** Every operation as it is launched (before it runs): stops end workspace sessions at once. */
  subscribeLaunched(listener: (operation: Operation) => void): () => void {
    this.emitter.on('launched', listener);
    return () => this.emitter.off('launched', listener);
  }

  latestOperation(runtimeId: string): Operation | null {
    return this.latest.get(runtimeId) ?? null;
  }

  publishProgress(view: OperationView): void {
    this.emitter.emit(view.runtimeId, { type: 'progress', operation: view } satisfies RuntimeStreamEvent);
  }

  publishState(runtimeId: string): void {
    this.emitter.emit(runtimeId, { type: 'state', runtimeId } satisfies RuntimeStreamEvent);
    this.emitter.emit(ANY_STATE, runtimeId);
  }

  /** Every state change of any runtime (the figures kept for the admin's list follow them). */
  subscribeStates(listener: (runtimeId: string) => void): () => void {
    this.emitter.on(ANY_STATE, listener);
    return () => this.emitter.off(ANY_STATE, listener);
  }

  subscribe(runtimeId: string, listener: (event: RuntimeStreamEvent) => void): () => void {
    this.emitter.on(runtimeId, listener);
    return () => this.emitter.off(runtimeId, listener);
  }

  publishCreated(userId: string, runtimeId: string): void {
    this.emitter.emit(`created:${userId}`, runtimeId);
  }

  /** For streams opened before the user had a runtime: told the id when the first start creates it. */
  subscribeCreated(userId: string, listener: (runtimeId: string) => void): () => void {
    this.emitter.on(`created:${userId}`, listener);
    return () => this.emitter.off(`created:${userId}`, listener);
  }

  forget(runtimeId: string): void {
    this.latest.delete(runtimeId);
  }
}
