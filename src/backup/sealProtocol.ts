/** What the control plane and its sealing worker (sealWorker.ts) say to each other. */

export interface SealResult {
  /** Before encryption. */
  plainBytes: number;
  /** The file on disk, and its SHA-256. */
  bytes: number;
  sha256: string;
}

/** One part: `begin` (its file, created by the worker and never overwritten, and the age recipient's raw X25519 key), chunks, then `end` or `abort`. */
export type SealerRequest =
  | { type: 'begin'; file: string; recipient: Uint8Array }
  | { type: 'chunk'; data: Uint8Array }
  | { type: 'end' }
  | { type: 'abort' };

export type SealerMessage = { type: 'ack' } | { type: 'done'; result: SealResult } | { type: 'failed'; message: string };
