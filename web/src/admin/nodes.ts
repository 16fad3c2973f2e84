/**
 * The Nodes page and the move of a runtime to another node, as pure logic: what each node's
 * status, memory and runtimes read as, where each runtime is, which nodes can take a runtime, and
 * the move dialog's steps (the request it sends, and the refusal that offers a move without the
 * data). No DOM and no React here, so jest checks it in node (test/web/nodes.test.ts); the
 * components (NodesPage.tsx, MoveRuntime.tsx) only lay these out.
 */
import { ApiError } from '../api/apiError';
import type { OperationView } from '../api/types';
import type { MessageKey } from '../i18n/en';
import { formatBytes, formatNumber, share } from '../lib/format';
import type { MoveRuntimeBody, NodesOverview, NodeView, StartedOperation } from './adminTypes';

// The console's `Translate`, named structurally: this module stays free of React.
type Translate = (key: MessageKey, params?: Record<string, string | number>) => string;

/** The placement of a runtime on shared storage (src/swarm/runtimeService.ts ANY_NODE). */
export const ANY_NODE = 'any';

export type Tone = 'ok' | 'warn' | 'bad' | 'neutral';

/** A badge's look and words: the symbol repeats what the colour says, for those who cannot tell colours apart. */
export interface Marker {
  tone: Tone;
  symbol: string;
  text: string;
}

// U+FE0E asks for the text form of the symbols some systems draw as coloured emoji.
const STATE_MARKERS: Record<NodeView['state'], { tone: Tone; symbol: string; key: MessageKey }> = {
  ready: { tone: 'ok', symbol: '✓', key: 'admin.nodes.state.ready' },
  down: { tone: 'bad', symbol: '✕', key: 'admin.nodes.state.down' },
  disconnected: { tone: 'bad', symbol: '!', key: 'admin.nodes.state.disconnected' },
  unknown: { tone: 'warn', symbol: '?', key: 'admin.nodes.state.unknown' },
};

const AVAILABILITY_MARKERS: Record<NodeView['availability'], { tone: Tone; symbol: string; key: MessageKey }> = {
  active: { tone: 'ok', symbol: '▶\uFE0E', key: 'admin.nodes.availability.active' },
  pause: { tone: 'warn', symbol: '‖', key: 'admin.nodes.availability.pause' },
  drain: { tone: 'warn', symbol: '■', key: 'admin.nodes.availability.drain' },
};

/** A node can take a runtime (a new one, a start, a move) only when it is ready and active. */
export function isUsable(node: Pick<NodeView, 'state' | 'availability'>): boolean {
  return node.state === 'ready' && node.availability === 'active';
}

export function stateMarker(t: Translate, node: Pick<NodeView, 'state'>): Marker {
  const { tone, symbol, key } = STATE_MARKERS[node.state];
  return { tone, symbol, text: t(key) };
}

export function availabilityMarker(t: Translate, node: Pick<NodeView, 'availability'>): Marker {
  const { tone, symbol, key } = AVAILABILITY_MARKERS[node.availability];
  return { tone, symbol, text: t(key) };
}

/** What the node's state and availability mean for the runtimes pinned to it, in one sentence. */
export function nodeSummary(t: Translate, node: Pick<NodeView, 'state' | 'availability'>): string {
  if (node.state === 'down') return t('admin.nodes.isDown');
  if (node.state === 'disconnected') return t('admin.nodes.isDisconnected');
  if (node.state === 'unknown') return t('admin.nodes.isUnknown');
  if (node.availability === 'drain') return t('admin.nodes.drained');
  if (node.availability === 'pause') return t('admin.nodes.paused');
  return t('admin.nodes.takes');
}

export interface MemoryFigures {
  /** 0..1 for the bar (full when more is reserved than the node has). */
  share: number;
  text: string;
  /** More is reserved than the node has. */
  over: boolean;
}

export function memoryFigures(t: Translate, node: Pick<NodeView, 'memoryBytes' | 'reservedBytes'>, locale: string): MemoryFigures {
  const reserved = formatBytes(node.reservedBytes, locale);
  if (!(node.memoryBytes > 0)) return { share: 0, text: t('admin.nodes.memoryUnknown', { reserved }), over: false };
  const total = formatBytes(node.memoryBytes, locale);
  const over = node.reservedBytes > node.memoryBytes;
  const percent = formatNumber(Math.round((node.reservedBytes / node.memoryBytes) * 100), locale);
  return { share: share(node.reservedBytes, node.memoryBytes), text: t(over ? 'admin.nodes.memoryOver' : 'admin.nodes.memoryOf', { reserved, total, percent }), over };
}

// ---- Where a runtime is ----

export type Placement = { kind: 'node'; node: NodeView } | { kind: 'any' } | { kind: 'unplaced' } | { kind: 'gone'; id: string };

/** A runtime's node as the overview gives it (a node id, 'any', or null) against the nodes listed. */
export function placementOf(node: string | null | undefined, nodes: readonly NodeView[]): Placement {
  if (node === null || node === undefined) return { kind: 'unplaced' };
  if (node === ANY_NODE) return { kind: 'any' };
  const found = nodes.find((n) => n.id === node);
  return found ? { kind: 'node', node: found } : { kind: 'gone', id: node };
}

export function placementText(t: Translate, placement: Placement): string {
  switch (placement.kind) {
    case 'node':
      return placement.node.hostname;
    case 'any':
      return t('admin.nodes.anyNode');
    case 'unplaced':
      return t('admin.nodes.notPlaced');
    case 'gone':
      return t('admin.nodes.goneNode', { id: placement.id });
  }
}

/** A runtime pinned where it cannot run now: its node is not usable, or it left the swarm. */
export function isStranded(placement: Placement): boolean {
  return placement.kind === 'gone' || (placement.kind === 'node' && !isUsable(placement.node));
}

// ---- The page ----

export interface NodeRow {
  id: string;
  hostname: string;
  role: string;
  manager: boolean;
  state: Marker;
  availability: Marker;
  summary: string;
  usable: boolean;
  memory: MemoryFigures;
  memoryLabel: string;
  runtimes: string;
}

export interface RuntimeRow {
  runtimeId: string;
  userId: string;
  username: string;
  placement: Placement;
  where: string;
  /** The node's status when it cannot run the runtime now (null when it can, or is not one node). */
  markers: Marker[];
  stranded: boolean;
}

export type NodesPageView =
  | { backend: 'docker'; title: string; body: string }
  | { backend: 'swarm'; summary: string; nodes: NodeRow[]; runtimes: RuntimeRow[]; stranded: string | null };

/** Everything the Nodes page shows, in words: one machine (docker), or the swarm's nodes and runtimes. */
export function nodesPageView(overview: NodesOverview, t: Translate, locale: string): NodesPageView {
  if (overview.backend === 'docker') return { backend: 'docker', title: t('admin.nodes.singleTitle'), body: t('admin.nodes.singleBody') };
  const n = (value: number) => formatNumber(value, locale);
  const nodes = [...overview.nodes]
    .sort((a, b) => Number(b.role === 'manager') - Number(a.role === 'manager') || a.hostname.localeCompare(b.hostname))
    .map<NodeRow>((node) => ({
      id: node.id,
      hostname: node.hostname,
      role: t(node.role === 'manager' ? 'admin.nodes.role.manager' : 'admin.nodes.role.worker'),
      manager: node.role === 'manager',
      state: stateMarker(t, node),
      availability: availabilityMarker(t, node),
      summary: nodeSummary(t, node),
      usable: isUsable(node),
      memory: memoryFigures(t, node, locale),
      memoryLabel: t('admin.nodes.memoryLabel', { hostname: node.hostname }),
      runtimes: t('admin.nodes.pinnedRunning', { pinned: n(node.runtimes), running: n(node.running) }),
    }));
  const runtimes = [...overview.runtimes]
    .sort((a, b) => a.username.localeCompare(b.username))
    .map<RuntimeRow>((r) => {
      const placement = placementOf(r.node, overview.nodes);
      const stranded = isStranded(placement);
      return {
        runtimeId: r.runtimeId,
        userId: r.userId,
        username: r.username,
        placement,
        where: placementText(t, placement),
        markers: placement.kind === 'node' && stranded ? nodeMarkers(t, placement.node) : [],
        stranded,
      };
    });
  const stuck = runtimes.filter((r) => r.stranded);
  return {
    backend: 'swarm',
    summary: t('admin.nodes.summary', { count: n(nodes.length), usable: n(nodes.filter((row) => row.usable).length) }),
    nodes,
    runtimes,
    stranded: stuck.length === 0 ? null : t('admin.nodes.stranded', { count: n(stuck.length), names: stuck.map((r) => r.username).join(', ') }),
  };
}

/** A node's badges where it matters that it cannot take runtimes: the state unless ready, the availability unless active. */
export function nodeMarkers(t: Translate, node: Pick<NodeView, 'state' | 'availability'>): Marker[] {
  const markers: Marker[] = [];
  if (node.state !== 'ready') markers.push(stateMarker(t, node));
  if (node.availability !== 'active') markers.push(availabilityMarker(t, node));
  return markers;
}

// ---- Moving a runtime ----

/** The nodes a runtime can move to: ready and active, not its own; the most free memory first. */
export function moveTargets(nodes: readonly NodeView[], current: Placement): NodeView[] {
  const here = current.kind === 'node' ? current.node.id : null;
  const free = (node: NodeView) => node.memoryBytes - node.reservedBytes;
  return nodes.filter((node) => isUsable(node) && node.id !== here).sort((a, b) => free(b) - free(a) || a.hostname.localeCompare(b.hostname));
}

/** A target as the dialog's list offers it: its name, free memory and how many runtimes it holds. */
export function targetLabel(t: Translate, node: NodeView, locale: string): string {
  return t('admin.move.targetOption', {
    hostname: node.hostname,
    free: formatBytes(Math.max(0, node.memoryBytes - node.reservedBytes), locale),
    total: formatBytes(node.memoryBytes, locale),
    count: formatNumber(node.runtimes, locale),
  });
}

/** The request that moves a user's runtime. */
export function moveRequest(userId: string, body: MoveRuntimeBody): { path: string; body: MoveRuntimeBody } {
  return { path: `/admin/users/${encodeURIComponent(userId)}/runtime/move`, body: { node: body.node, copy: body.copy } };
}

/**
 * The move dialog's steps. `choose`: pick a node (copy on by default); `sending`: the request is
 * out; `withoutData`: the server refused to copy (SOURCE_NODE_DOWN) and offers the move without
 * the data, which waits for the administrator to confirm the workspace starts empty; `started`:
 * the operation runs, its progress comes from the runtime's event stream.
 */
export type MovePhase = 'choose' | 'sending' | 'withoutData' | 'started';

export interface MoveState {
  phase: MovePhase;
  /** The node picked, by id ('' when none can be picked). */
  node: string;
  copy: boolean;
  /** The administrator confirmed the workspace starts empty there: needed whenever copy is off. */
  acknowledged: boolean;
  /** The server's words why the data cannot be copied, once it refused to (SOURCE_NODE_DOWN). */
  sourceDown: string | null;
  /** The last refusal, shown in the dialog. */
  error: unknown;
  /** Where a refusal sends the dialog back to. */
  from: 'choose' | 'withoutData';
  /** The move's operation once started (null when the server had nothing to do). */
  operationId: string | null;
}

export type MoveEvent =
  | { type: 'pick'; node: string }
  | { type: 'copy'; copy: boolean }
  | { type: 'acknowledge'; acknowledged: boolean }
  | { type: 'send' }
  | { type: 'refused'; error: unknown }
  | { type: 'started'; operationId: string | null };

export function initialMove(targets: readonly NodeView[]): MoveState {
  return { phase: 'choose', node: targets[0]?.id ?? '', copy: true, acknowledged: false, sourceDown: null, error: null, from: 'choose', operationId: null };
}

export function moveReducer(state: MoveState, event: MoveEvent): MoveState {
  switch (event.type) {
    case 'pick':
      return state.phase === 'choose' ? { ...state, node: event.node, error: null } : state;
    case 'copy':
      // Turning the copy off (or on again) always asks for the confirmation anew.
      return state.phase === 'choose' ? { ...state, copy: event.copy, acknowledged: false, error: null } : state;
    case 'acknowledge':
      return state.phase === 'choose' || state.phase === 'withoutData' ? { ...state, acknowledged: event.acknowledged } : state;
    case 'send':
      if (moveSubmission(state) === null) return state;
      return { ...state, phase: 'sending', from: state.phase === 'withoutData' ? 'withoutData' : 'choose', error: null };
    case 'refused':
      if (state.phase !== 'sending') return state;
      if (state.copy && errorCode(event.error) === 'SOURCE_NODE_DOWN') {
        return { ...state, phase: 'withoutData', copy: false, acknowledged: false, sourceDown: (event.error as Error).message, error: null };
      }
      return { ...state, phase: state.from, error: event.error };
    case 'started':
      return state.phase === 'sending' ? { ...state, phase: 'started', operationId: event.operationId, error: null } : state;
  }
}

/** The body the dialog sends now, or null when it cannot: no node, or no data copied without the confirmation. */
export function moveSubmission(state: MoveState): MoveRuntimeBody | null {
  if (state.phase !== 'choose' && state.phase !== 'withoutData') return null;
  if (state.node === '') return null;
  if (!state.copy && !state.acknowledged) return null;
  return { node: state.node, copy: state.copy };
}

/**
 * Sends a move (what the dialog does once the administrator clicks it) and says what became of it:
 * the event for the dialog, and the started operation for the runtime's card.
 */
export async function sendMove(
  userId: string,
  body: MoveRuntimeBody,
  post: (path: string, body: MoveRuntimeBody) => Promise<StartedOperation>,
): Promise<{ event: MoveEvent; started: StartedOperation | null }> {
  const request = moveRequest(userId, body);
  try {
    const started = await post(request.path, request.body);
    return { event: { type: 'started', operationId: started.operation?.id ?? null }, started };
  } catch (error) {
    return { event: { type: 'refused', error }, started: null };
  }
}

function errorCode(error: unknown): string | null {
  return error instanceof ApiError ? error.code : null;
}

/** A started move as the runtime's event stream shows it: running, failed (its operation says why), or done. */
export function moveProgress(state: Pick<MoveState, 'phase' | 'operationId'>, operation: OperationView | null): 'running' | 'failed' | 'done' | null {
  if (state.phase !== 'started') return null;
  if (state.operationId === null) return 'done';
  // The card drops an operation that succeeded: ours gone from it is ours done.
  if (!operation || operation.id !== state.operationId) return 'done';
  if (operation.status === 'failed') return 'failed';
  return operation.status === 'succeeded' ? 'done' : 'running';
}
