/**
 * The runtime card's handling of its event stream (web/src/lib/runtimeEvents.ts): what the
 * member sees while a start runs, when events arrive late or out of order, and which buttons
 * are allowed.
 */
import type { OperationView, RuntimeView } from '../../web/src/api/types';
import { allowedActions, applyRuntimeEvent, INITIAL_STATUS, type RuntimeStatus } from '../../web/src/lib/runtimeEvents';
import { runtimeView } from './fixtures';

const runtime = (state: RuntimeView['state'], operation: OperationView | null = null): RuntimeView => runtimeView(state, { operation });
const op = (id: string, status: OperationView['status'], percent: number, startedAt = '2026-11-25T10:00:00Z'): OperationView => ({
  id,
  runtimeId: 'r1',
  kind: 'start',
  status,
  step: 'waiting-for-health',
  percent,
  message: `step at ${percent}`,
  queuePosition: null,
  bytesDone: null,
  bytesTotal: null,
  error: status === 'failed' ? { code: 'READY_TIMEOUT', message: 'OpenClaw did not become ready' } : null,
  startedAt,
  finishedAt: null,
});

test('a start: progress moves the bar forward and a success clears it once the state says running', () => {
  let s: RuntimeStatus = applyRuntimeEvent(INITIAL_STATUS, { type: 'state', runtime: runtime('stopped') });
  expect(s.operation).toBeNull();
  s = applyRuntimeEvent(s, { type: 'progress', operation: op('a', 'running', 10) });
  s = applyRuntimeEvent(s, { type: 'progress', operation: op('a', 'running', 60) });
  expect(s.operation?.percent).toBe(60);
  s = applyRuntimeEvent(s, { type: 'progress', operation: op('a', 'succeeded', 100) });
  expect(s.operation).toBeNull();
  s = applyRuntimeEvent(s, { type: 'state', runtime: runtime('running') });
  expect(s).toMatchObject({ runtime: { state: 'running' }, operation: null });
});

test('a runtime that reports its last, successful operation shows no bar', () => {
  const s = applyRuntimeEvent(INITIAL_STATUS, { type: 'state', runtime: runtime('running', op('a', 'succeeded', 100)) });
  expect(s.operation).toBeNull();
});

test('a state snapshot taken earlier never rolls the bar back', () => {
  let s = applyRuntimeEvent(INITIAL_STATUS, { type: 'progress', operation: op('a', 'running', 70) });
  s = applyRuntimeEvent(s, { type: 'state', runtime: runtime('starting', op('a', 'running', 40)) });
  expect(s.operation?.percent).toBe(70);
});

test('a failure stays on screen with its reason after the state arrives, until the next operation', () => {
  let s = applyRuntimeEvent(INITIAL_STATUS, { type: 'progress', operation: op('a', 'failed', 80) });
  s = applyRuntimeEvent(s, { type: 'state', runtime: runtime('failed') });
  expect(s.operation?.error?.message).toBe('OpenClaw did not become ready');
  s = applyRuntimeEvent(s, { type: 'progress', operation: op('b', 'running', 5, '2026-11-25T10:05:00Z') });
  expect(s.operation?.id).toBe('b');
});

test('the same operation reported twice (the action\'s answer and the stream) never moves the bar back', () => {
  let s = applyRuntimeEvent(INITIAL_STATUS, { type: 'progress', operation: op('a', 'running', 2) });
  s = applyRuntimeEvent(s, { type: 'progress', operation: op('a', 'queued', 0) });
  expect(s.operation?.percent).toBe(2);
  s = applyRuntimeEvent(s, { type: 'progress', operation: op('a', 'failed', 0) });
  expect(s.operation?.status).toBe('failed');
});

test('a late event of an older operation is ignored', () => {
  let s = applyRuntimeEvent(INITIAL_STATUS, { type: 'progress', operation: op('b', 'running', 5, '2026-11-25T10:05:00Z') });
  s = applyRuntimeEvent(s, { type: 'progress', operation: op('a', 'running', 90, '2026-11-25T10:00:00Z') });
  expect(s.operation?.id).toBe('b');
});

test('buttons: none while an operation runs; otherwise what the state allows', () => {
  expect([...allowedActions(runtime('stopped'), null)]).toEqual(['start']);
  expect([...allowedActions(runtime('absent'), null)]).toEqual(['start']);
  expect([...allowedActions(runtime('running'), null)].sort()).toEqual(['restart', 'stop']);
  expect([...allowedActions(runtime('failed'), null)].sort()).toEqual(['restart', 'start']);
  expect(allowedActions(runtime('running'), op('a', 'running', 10)).size).toBe(0);
  expect([...allowedActions(runtime('failed'), op('a', 'failed', 80))].sort()).toEqual(['restart', 'start']);
  expect(allowedActions(null, null).size).toBe(0);
});
