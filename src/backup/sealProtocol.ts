/** What the control plane and its sealing worker (sealWorker.ts) say to each other. */

export interface SealResult {
  /** Before encryption. */
  plainBytes: number;
  /** The file on disk, and its SHA-256. */
  bytes: number;
  sha256: string;
}

/**
 * One part: `begin` (its file, created by the worker and never overwritten, the age recipient's
 * raw X25519 key, and the folders of the tar to leave out), chunks of the tar, then `end` or
 * `abort`. A chunk's buffer is transferred, and comes back with its `ack` once the worker is done
 * with it, to be filled again: the two threads pass the same few buffers back and forth instead
 * of making new ones. A part that fails or is abandoned leaves no file.
 */
export type SealerRequest =
  | { type: 'begin'; file: string; recipient: Uint8Array; leaveOut: string[] }
  | { type: 'chunk'; data: Uint8Array<ArrayBuffer>; length: number }
  | { type: 'end' }
  | { type: 'abort' };

export type SealerMessage = { type: 'ack'; data: Uint8Array<ArrayBuffer> } | { type: 'done'; result: SealResult } | { type: 'failed'; message: string };
