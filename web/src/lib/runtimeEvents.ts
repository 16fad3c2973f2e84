import type { ObservedState, OperationView, RuntimeView } from '../api/types';

/**
 * What the runtime card shows, built from the runtime's event stream: `state` events carry the
 * whole runtime (with the operation in flight), `progress` events only the operation. Pure, so
 * the ordering rules are tested without a browser.
 */
export interface RuntimeStatus {
  runtime: RuntimeView | null;
  /** The operation to show a progress bar for: the one in flight, or the last one that failed. */
  operation: OperationView | null;
}

export type RuntimeEvent = { type: 'state'; runtime: RuntimeView } | { type: 'progress'; operation: OperationView };

export const INITIAL_STATUS: RuntimeStatus = { runtime: null, operation: null };

const isFinished = (op: OperationView) => op.status === 'succeeded' || op.status === 'failed';

export function applyRuntimeEvent(status: RuntimeStatus, event: RuntimeEvent): RuntimeStatus {
  if (event.type === 'state') {
    const inFlight = event.runtime.operation;
    if (inFlight && inFlight.status !== 'succeeded') return { runtime: event.runtime, operation: newer(status.operation, inFlight) };
    // No operation in flight: keep a failed one on screen (its error is the reason), drop a finished success.
    const keep = status.operation && status.operation.status === 'failed' ? status.operation : null;
    return { runtime: event.runtime, operation: keep };
  }
  const op = event.operation;
  // A late progress event of an older operation must not replace a newer one.
  if (status.operation && status.operation.id !== op.id && Date.parse(status.operation.startedAt) > Date.parse(op.startedAt)) return status;
  // The same operation reaches the page twice (the action's answer and the stream): keep the furthest.
  const next = status.operation?.id === op.id ? newer(status.operation, op) : op;
  if (next === status.operation) return status;
  return { ...status, operation: next.status === 'succeeded' ? null : next };
}

function newer(current: OperationView | null, incoming: OperationView): OperationView {
  if (!current || current.id !== incoming.id) return incoming;
  // Events of one operation only move forward: never let an earlier snapshot roll the bar back.
  if (isFinished(current)) return current;
  return incoming.percent >= current.percent || isFinished(incoming) ? incoming : current;
}

export type RuntimeAction = 'start' | 'stop' | 'restart';

/** What the buttons allow now: nothing while an operation runs, else what makes sense in the state. */
export function allowedActions(runtime: RuntimeView | null, operation: OperationView | null): Set<RuntimeAction> {
  const busy = operation !== null && !isFinished(operation);
  if (!runtime || busy) return new Set();
  const byState: Record<ObservedState, RuntimeAction[]> = {
    absent: ['start'],
    creating: [],
    starting: ['stop'],
    running: ['stop', 'restart'],
    unhealthy: ['stop', 'restart'],
    stopping: [],
    stopped: ['start'],
    failed: ['start', 'restart'],
  };
  return new Set(byState[runtime.state]);
}
