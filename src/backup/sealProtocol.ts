import type { EngineArchiveRequest } from '../files/workspaceVolumes';

/** What the control plane and its sealing worker (sealWorker.ts) say to each other. */

export interface SealResult {
  /** Before encryption. */
  plainBytes: number;
  /** The file on disk, and its SHA-256. */
  bytes: number;
  sha256: string;
}

/**
 * One part: `begin` (its file, created by the worker and never overwritten, and the age
 * recipient's raw X25519 key), chunks, then `end` or `abort`. A chunk's buffer is transferred,
 * and comes back with its `ack` once the worker is done with it, to be filled again: the two
 * threads pass the same few buffers back and forth instead of making new ones.
 */
export type SealerRequest =
  | { type: 'begin'; file: string; recipient: Uint8Array }
  /**
   * A part whose plaintext the worker reads itself: the engine's archive of a path, with the
   * entries in `leaveOut` folders left out; then `done`, `failed` or `missing`. `abort` stops it.
   */
  | { type: 'read'; file: string; recipient: Uint8Array; archive: EngineArchiveRequest; leaveOut: string[] }
  | { type: 'chunk'; data: Uint8Array<ArrayBuffer>; length: number }
  | { type: 'end' }
  | { type: 'abort' };

export type SealerMessage =
  | { type: 'ack'; data: Uint8Array<ArrayBuffer> }
  | { type: 'done'; result: SealResult }
  | { type: 'failed'; message: string }
  /** The engine has no such container or path: no file was made. */
  | { type: 'missing' };
