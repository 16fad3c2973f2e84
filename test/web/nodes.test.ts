/**
 * The Nodes page and the move of a runtime between nodes (web/src/admin/nodes.ts, which
 * NodesPage.tsx and MoveRuntime.tsx lay out): the page in words with one machine and on a swarm,
 * the nodes a runtime may move to, the request the move dialog sends, and the refusal to copy
 * from a node that is down, which leads to a move without the data only once confirmed.
 */
import { ApiError } from '../../web/src/api/apiError';
import type { OperationView } from '../../web/src/api/types';
import type { MoveRuntimeBody, NodesOverview, NodeView, StartedOperation } from '../../web/src/admin/adminTypes';
import {
  initialMove,
  moveProgress,
  moveReducer,
  moveRequest,
  moveSubmission,
  moveTargets,
  nodesPageView,
  placementOf,
  sendMove,
  targetLabel,
  type MoveEvent,
  type MoveState,
} from '../../web/src/admin/nodes';
import type { MessageKey } from '../../web/src/i18n/en';
import { en } from '../../web/src/i18n/en';
import { interpolate } from '../../web/src/i18n/interpolate';
import { zh } from '../../web/src/i18n/zh';
import { runtimeView } from './fixtures';

const GiB = 1024 ** 3;
const translator = (messages: Record<MessageKey, string>, locale: string) => (key: MessageKey, params?: Record<string, string | number>) => interpolate(messages[key], params, locale);
const t = translator(en, 'en');

const node = (id: string, extra: Partial<NodeView> = {}): NodeView => ({
  id,
  hostname: `${id}-host`,
  role: 'worker',
  state: 'ready',
  availability: 'active',
  memoryBytes: 8 * GiB,
  reservedBytes: 0,
  runtimes: 0,
  running: 0,
  ...extra,
});

const swarm: NodesOverview = {
  backend: 'swarm',
  nodes: [
    node('w2', { hostname: 'beta', state: 'down', reservedBytes: 4 * GiB, runtimes: 1, running: 0 }),
    node('w1', { hostname: 'alpha', availability: 'drain', memoryBytes: 4 * GiB, reservedBytes: 6 * GiB, runtimes: 3, running: 0 }),
    node('m1', { hostname: 'manager', role: 'manager', reservedBytes: 2 * GiB, runtimes: 2, running: 1 }),
    node('w3', { hostname: 'gamma', availability: 'pause', memoryBytes: 0, reservedBytes: GiB }),
  ],
  runtimes: [
    { runtimeId: 'r-erin', userId: 'u-erin', username: 'erin', node: 'gone-node' },
    { runtimeId: 'r-alice', userId: 'u-alice', username: 'alice', node: 'm1' },
    { runtimeId: 'r-bob', userId: 'u-bob', username: 'bob', node: 'any' },
    { runtimeId: 'r-carol', userId: 'u-carol', username: 'carol', node: null },
    { runtimeId: 'r-dave', userId: 'u-dave', username: 'dave', node: 'w2' },
  ],
};

test('nodes page, one machine: says runtimes run on this machine and where to read about adding machines', () => {
  const view = nodesPageView({ backend: 'docker', nodes: [], runtimes: [] }, t, 'en');
  expect(view).toEqual({
    backend: 'docker',
    title: 'Runtimes run on this one machine.',
    body: expect.stringContaining('See docs/swarm.md to add machines.') as unknown as string,
  });
  // Chinese says the same, in Chinese.
  const inChinese = nodesPageView({ backend: 'docker', nodes: [], runtimes: [] }, translator(zh, 'zh-CN'), 'zh-CN');
  expect(inChinese.backend === 'docker' && inChinese.body).toContain('docs/swarm.md');
  expect(inChinese.backend === 'docker' && inChinese.title).not.toBe(view.backend === 'docker' && view.title);
});

test('nodes page, swarm: each node with its status in words and symbols, memory reserved of total, runtimes pinned and running', () => {
  const view = nodesPageView(swarm, t, 'en');
  if (view.backend !== 'swarm') throw new Error('expected the swarm view');
  expect(view.summary).toBe('4 nodes, 1 taking runtimes.');
  // The manager first, then by name.
  expect(view.nodes.map((n) => n.hostname)).toEqual(['manager', 'alpha', 'beta', 'gamma']);
  const [manager, alpha, beta, gamma] = view.nodes;

  expect(manager).toMatchObject({
    role: 'manager',
    manager: true,
    usable: true,
    summary: 'Takes runtimes.',
    memory: { share: 0.25, text: '2 GiB of 8 GiB (25%)', over: false },
    memoryLabel: 'Memory reserved on manager',
    runtimes: '2 pinned, 1 running',
  });
  expect(manager?.state).toEqual({ tone: 'ok', symbol: '✓', text: 'Ready' });
  expect(manager?.availability.text).toBe('Active');

  // Drained, and more memory reserved than the node has: the bar is full and the words say so.
  expect(alpha).toMatchObject({ role: 'worker', usable: false, summary: 'Drained: runtimes pinned here cannot run until it is active again.' });
  expect(alpha?.availability).toEqual({ tone: 'warn', symbol: '■', text: 'Drained' });
  expect(alpha?.memory).toEqual({ share: 1, text: '6 GiB of 4 GiB (150%): more than the node has', over: true });

  expect(beta).toMatchObject({ usable: false, summary: 'Down: runtimes pinned here cannot run until it is back.', runtimes: '1 pinned, 0 running' });
  expect(beta?.state).toEqual({ tone: 'bad', symbol: '✕', text: 'Down' });

  expect(gamma?.summary).toBe('Paused: runtimes running there keep running, but none can start there.');
  expect(gamma?.availability.text).toBe('Paused');
  expect(gamma?.memory).toEqual({ share: 0, text: '1 GiB reserved, total unknown', over: false });

  // Not by colour alone: every state and availability has its own symbol besides its words.
  const markers = view.nodes.flatMap((n) => [n.state, n.availability]);
  for (const marker of markers) {
    expect(marker.symbol.trim()).not.toBe('');
    expect(marker.text.trim()).not.toBe('');
  }
  expect(new Set([manager, beta].map((n) => n?.state.symbol)).size).toBe(2);
  expect(new Set([manager, alpha, gamma].map((n) => n?.availability.symbol)).size).toBe(3);
});

test('nodes page, swarm: each runtime with its node, shared storage, not placed yet, or a node that left', () => {
  const view = nodesPageView(swarm, t, 'en');
  if (view.backend !== 'swarm') throw new Error('expected the swarm view');
  expect(view.runtimes.map((r) => [r.username, r.where])).toEqual([
    ['alice', 'manager'],
    ['bob', 'any node (shared storage)'],
    ['carol', 'not placed yet'],
    ['dave', 'beta'],
    ['erin', 'a node no longer in the swarm (gone-node)'],
  ]);
  const byName = new Map(view.runtimes.map((r) => [r.username, r]));
  expect(byName.get('alice')).toMatchObject({ stranded: false, markers: [] });
  expect(byName.get('bob')).toMatchObject({ stranded: false, markers: [] });
  expect(byName.get('dave')).toMatchObject({ stranded: true, markers: [{ tone: 'bad', symbol: '✕', text: 'Down' }] });
  expect(byName.get('erin')?.stranded).toBe(true);
  expect(view.stranded).toBe("2 runtimes are pinned to nodes that cannot run them now: dave, erin. Bring the nodes back, or move the runtimes from their users' pages.");

  const healthy = nodesPageView({ ...swarm, runtimes: swarm.runtimes.slice(1, 4) }, t, 'en');
  expect(healthy.backend === 'swarm' && healthy.stranded).toBeNull();
});

test('a runtime moves only to a ready and active node other than its own, the most free memory first', () => {
  const nodes = [
    node('a', { reservedBytes: 6 * GiB }),
    node('b', { reservedBytes: GiB, runtimes: 1 }),
    node('c', { state: 'down' }),
    node('d', { availability: 'drain' }),
    node('e', { availability: 'pause' }),
    node('here'),
  ];
  const current = placementOf('here', nodes);
  expect(moveTargets(nodes, current).map((n) => n.id)).toEqual(['b', 'a']);
  // Not placed yet (or on a node that left): every usable node.
  expect(moveTargets(nodes, placementOf(null, nodes)).map((n) => n.id)).toEqual(['here', 'b', 'a']);
  expect(moveTargets(nodes, placementOf('gone', nodes)).map((n) => n.id)).toEqual(['here', 'b', 'a']);
  expect(targetLabel(t, nodes[1] as NodeView, 'en')).toBe('b-host — 7 GiB free of 8 GiB, 1 runtime');
  expect(initialMove(moveTargets(nodes, current)).node).toBe('b');
  expect(initialMove([]).node).toBe('');
  expect(moveSubmission(initialMove([]))).toBeNull();
});

// ---- The move dialog, driven as MoveRuntime.tsx drives it ----

const moveOperation = (id: string, status: OperationView['status']): OperationView => ({
  id,
  runtimeId: 'r-alice',
  kind: 'move',
  status,
  step: status === 'failed' ? 'failed' : 'moving',
  percent: 40,
  message: 'Copying the workspace',
  queuePosition: null,
  bytesDone: 10,
  bytesTotal: 100,
  error: status === 'failed' ? { code: 'MOVE_FAILED', message: 'the copy broke off' } : null,
  startedAt: '2026-06-01T12:00:00.000Z',
  finishedAt: null,
});

/** A fake POST: records each request, answers with the next of `answers` (an error is thrown). */
function fakePost(answers: (StartedOperation | Error)[]) {
  const calls: { path: string; body: MoveRuntimeBody }[] = [];
  const post = async (path: string, body: MoveRuntimeBody): Promise<StartedOperation> => {
    calls.push({ path, body });
    const answer = answers.shift();
    if (!answer) throw new Error('unexpected request');
    if (answer instanceof Error) throw answer;
    return answer;
  };
  return { calls, post };
}

/** What the dialog's Move button does: send what may be sent, then apply the answer. */
async function clickMove(state: MoveState, post: ReturnType<typeof fakePost>['post'], userId = 'u-alice'): Promise<MoveState> {
  const body = moveSubmission(state);
  if (!body) return moveReducer(state, { type: 'send' });
  const sending = moveReducer(state, { type: 'send' });
  expect(sending.phase).toBe('sending');
  const { event } = await sendMove(userId, body, post);
  return moveReducer(sending, event);
}

const apply = (state: MoveState, ...events: MoveEvent[]) => events.reduce(moveReducer, state);
const started = (op: OperationView): StartedOperation => ({ operation: op, runtime: runtimeView('stopped', { id: 'r-alice', userId: 'u-alice', operation: op }) });

test('move dialog, happy path: the picked node with its data copied (the default), then the progress of the operation', async () => {
  const nodes = [node('m1', { hostname: 'manager', role: 'manager' }), node('w1', { hostname: 'alpha', reservedBytes: GiB }), node('w2', { hostname: 'beta' })];
  const targets = moveTargets(nodes, placementOf('m1', nodes));
  let state = initialMove(targets);
  expect(state).toMatchObject({ phase: 'choose', node: 'w2', copy: true });
  state = apply(state, { type: 'pick', node: 'w1' });

  const op = moveOperation('op-1', 'running');
  const { calls, post } = fakePost([started(op)]);
  state = await clickMove(state, post, 'u/alice');
  expect(calls).toEqual([{ path: '/admin/users/u%2Falice/runtime/move', body: { node: 'w1', copy: true } }]);
  expect(state).toMatchObject({ phase: 'started', operationId: 'op-1', copy: true, error: null });

  // The progress is the runtime's operation, as its card has it from the event stream.
  expect(moveProgress(state, op)).toBe('running');
  expect(moveProgress(state, { ...op, percent: 90 })).toBe('running');
  expect(moveProgress(state, moveOperation('op-1', 'failed'))).toBe('failed');
  // The card drops an operation that succeeded.
  expect(moveProgress(state, null)).toBe('done');
  expect(moveProgress(initialMove(targets), op)).toBeNull();
  expect(moveRequest('u1', { node: 'w1', copy: true })).toEqual({ path: '/admin/users/u1/runtime/move', body: { node: 'w1', copy: true } });
});

test('move dialog: a refusal other than SOURCE_NODE_DOWN is shown with its message and the choice stays as it was', async () => {
  const targets = [node('w1')];
  const refusal = new ApiError(409, 'NODE_UNAVAILABLE', 'The node w1-host is set to drain: a runtime cannot move there now.');
  const { calls, post } = fakePost([refusal]);
  const state = await clickMove(initialMove(targets), post);
  expect(calls).toHaveLength(1);
  expect(state).toMatchObject({ phase: 'choose', copy: true, node: 'w1', sourceDown: null });
  expect(state.error).toBe(refusal);
  // Picking again clears it.
  expect(apply(state, { type: 'pick', node: 'w1' }).error).toBeNull();
});

test('move dialog: SOURCE_NODE_DOWN offers the move without the data, sent with copy:false only once the empty workspace is confirmed', async () => {
  const targets = [node('w1', { hostname: 'alpha' })];
  const message = "The runtime's data is on beta, which is down: it cannot be copied. Move it without its data and restore it from a backup, or bring the node back.";
  const op = moveOperation('op-2', 'running');
  const { calls, post } = fakePost([new ApiError(409, 'SOURCE_NODE_DOWN', message), started(op)]);

  let state = await clickMove(initialMove(targets), post);
  expect(calls.map((c) => c.body)).toEqual([{ node: 'w1', copy: true }]);
  expect(state).toMatchObject({ phase: 'withoutData', node: 'w1', copy: false, acknowledged: false, sourceDown: message, error: null });

  // Not without the confirmation: the button is disabled and a click sends nothing.
  expect(moveSubmission(state)).toBeNull();
  state = await clickMove(state, post);
  expect(calls).toHaveLength(1);
  expect(state.phase).toBe('withoutData');
  // The copy cannot be switched back on from here: the data's node is down.
  expect(apply(state, { type: 'copy', copy: true }).copy).toBe(false);

  // What the confirmation says.
  expect(t('admin.move.emptyWarning', { username: 'alice', hostname: 'alpha' })).toContain("alice's workspace starts EMPTY on alpha");
  expect(t('admin.move.emptyWarning', { username: 'alice', hostname: 'alpha' })).toContain('Restore the workspace from a backup');
  expect(t('admin.move.acknowledge', { hostname: 'alpha' })).toBe('I understand: the workspace starts empty on alpha and should be restored from a backup.');

  state = apply(state, { type: 'acknowledge', acknowledged: true });
  expect(moveSubmission(state)).toEqual({ node: 'w1', copy: false });
  state = await clickMove(state, post);
  expect(calls.map((c) => c.body)).toEqual([
    { node: 'w1', copy: true },
    { node: 'w1', copy: false },
  ]);
  expect(calls[1]?.path).toBe('/admin/users/u-alice/runtime/move');
  expect(state).toMatchObject({ phase: 'started', operationId: 'op-2', copy: false });
  expect(moveProgress(state, op)).toBe('running');
});

test('move dialog: a refusal of the move without data keeps the dialog on it, with the message', async () => {
  const busy = new ApiError(409, 'RUNTIME_BUSY', 'A start of this runtime is in progress; try again when it has finished.');
  const { post } = fakePost([new ApiError(409, 'SOURCE_NODE_DOWN', 'down'), busy]);
  let state = await clickMove(initialMove([node('w1')]), post);
  state = await clickMove(apply(state, { type: 'acknowledge', acknowledged: true }), post);
  expect(state).toMatchObject({ phase: 'withoutData', copy: false, sourceDown: 'down' });
  expect(state.error).toBe(busy);
});

test('move dialog: turning the copy off up front asks for the same confirmation', async () => {
  let state = apply(initialMove([node('w1')]), { type: 'copy', copy: false });
  expect(moveSubmission(state)).toBeNull();
  state = apply(state, { type: 'acknowledge', acknowledged: true });
  expect(moveSubmission(state)).toEqual({ node: 'w1', copy: false });
  // On again, then off again: the confirmation is asked anew.
  state = apply(state, { type: 'copy', copy: true }, { type: 'copy', copy: false });
  expect(moveSubmission(state)).toBeNull();

  const { calls, post } = fakePost([started(moveOperation('op-3', 'queued'))]);
  state = await clickMove(apply(state, { type: 'acknowledge', acknowledged: true }), post);
  expect(calls.map((c) => c.body)).toEqual([{ node: 'w1', copy: false }]);
  expect(state.phase).toBe('started');
});
