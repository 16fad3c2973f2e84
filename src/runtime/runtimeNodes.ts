import type { RuntimeOwner } from './provisioner';

/**
 * The machines runtimes run on, for a provisioner that has more than one (the swarm's): what
 * each node holds, where each runtime is pinned, and moving a runtime's data to another node.
 * The single-host provisioner has none (null in the composition root).
 */

export interface NodeView {
  id: string;
  hostname: string;
  role: 'manager' | 'worker';
  state: 'ready' | 'down' | 'disconnected' | 'unknown';
  availability: 'active' | 'pause' | 'drain';
  memoryBytes: number;
  /** Memory set aside for runtimes that run, or are meant to run, there. */
  reservedBytes: number;
  /** Runtimes whose data is on this node. */
  runtimes: number;
  running: number;
}

export interface MoveProgress {
  message: string;
  bytesDone: number | null;
  bytesTotal: number | null;
}

export interface MoveResult {
  from: string;
  to: string;
  /** Bytes copied; null when the data was not copied (its node is lost). */
  bytes: number | null;
}

export interface RuntimeNodes {
  nodes(): Promise<NodeView[]>;
  /** The node each placed runtime is pinned to, by runtime id ('any' with shared storage). */
  placements(): Promise<Map<string, string>>;
  /** Refuses (a 409 AppError saying why) a move that cannot be done now; `move` checks again. */
  checkMove(owner: RuntimeOwner, node: string, options: { copy: boolean }): Promise<void>;
  /**
   * Pins a stopped runtime to another node. With `copy`, its data is copied there first (its old
   * node must be up) and removed from the old node only once the copy is in place; without, the
   * runtime starts on an empty volume there (its node is lost: restore it from a backup).
   */
  move(owner: RuntimeOwner, node: string, options: { copy: boolean }, onProgress: (progress: MoveProgress) => void): Promise<MoveResult>;
}
