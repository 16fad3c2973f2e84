/** What the control plane and its sealing worker (sealWorker.ts) say to each other. */

export interface SealRequest {
  /** The part's file, created by the worker (never overwritten). */
  file: string;
  /** The age recipient's raw X25519 public key. */
  recipient: Uint8Array;
}

export interface SealResult {
  /** Before encryption. */
  plainBytes: number;
  /** The file on disk, and its SHA-256. */
  bytes: number;
  sha256: string;
}

export type SealerMessage = { type: 'ack' } | { type: 'done'; result: SealResult } | { type: 'failed'; message: string };
