import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * How the control plane proves to a file server (server.ts) that a request is its own: every
 * request but the health check carries FILES_AUTH_HEADER = `<ts>.<nonce>.<hexsig>`, where `ts` is
 * the sender's clock in milliseconds since the epoch, `nonce` 16 random bytes in hex, and `sig`
 * HMAC-SHA256(key, `${METHOD} ${url} ${ts} ${nonce}`) in hex; `url` is the request target exactly
 * as it goes on the request line (path and query, e.g. `/archive?path=%2Fhome%2Fnode%2F.openclaw`).
 * A signature is good for SIGNATURE_WINDOW_MS either side of the server's clock, and once: the
 * server remembers every nonce it accepted for as long as it would still accept its timestamp.
 *
 * Built into the file server's bundle and imported by the control plane: node:crypto only.
 */

export const FILES_AUTH_HEADER = 'x-clawloops-files-auth';
export const SIGNATURE_WINDOW_MS = 60_000;
/** Nonces remembered at most: past this the server refuses new requests rather than forget one still in its window. */
export const MAX_REMEMBERED_NONCES = 10_000;
/** A key shorter than this is refused (by the server at start-up, and here). */
export const MIN_KEY_BYTES = 32;

const HEADER_PATTERN = /^(\d{1,16})\.([0-9a-f]{32})\.([0-9a-f]{64})$/;

export type VerifyFailure = 'missing' | 'malformed' | 'stale' | 'bad-signature' | 'replayed' | 'too-many-requests';

function signature(key: Buffer, method: string, url: string, ts: string, nonce: string): Buffer {
  return createHmac('sha256', key).update(`${method.toUpperCase()} ${url} ${ts} ${nonce}`, 'utf8').digest();
}

function checkKey(key: Buffer): void {
  if (key.length < MIN_KEY_BYTES) throw new Error(`the file server key must be at least ${MIN_KEY_BYTES} bytes`);
}

/** The header value for one request: sign right before sending, a signature is good for SIGNATURE_WINDOW_MS. */
export function signRequest(key: Buffer, method: string, url: string, nowMs: number): string {
  checkKey(key);
  const ts = String(Math.floor(nowMs));
  const nonce = randomBytes(16).toString('hex');
  return `${ts}.${nonce}.${signature(key, method, url, ts, nonce).toString('hex')}`;
}

/**
 * The key as a key file holds it: its text without surrounding white space (a trailing newline is
 * not part of the key). The server reads CLAWLOOPS_FILES_KEY_FILE through this; whoever writes
 * that file signs with `filesKeyFrom(<the same content>)`.
 */
export function filesKeyFrom(content: Buffer | string): Buffer {
  const key = Buffer.from(content.toString('utf8').trim(), 'utf8');
  checkKey(key);
  return key;
}

/** Checks signatures for one server: one instance per key, it remembers the nonces it accepted. */
export class RequestVerifier {
  /** Nonce → when it may be forgotten (its timestamp leaves the window). Insertion order ≈ time order. */
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly key: Buffer,
    private readonly clock: { now(): number } = { now: () => Date.now() },
    private readonly maxNonces = MAX_REMEMBERED_NONCES,
  ) {
    checkKey(key);
  }

  verify(method: string, url: string, header: string | string[] | undefined): 'ok' | VerifyFailure {
    if (header === undefined || header === '') return 'missing';
    if (typeof header !== 'string') return 'malformed';
    const match = HEADER_PATTERN.exec(header);
    if (!match) return 'malformed';
    const [, ts = '', nonce = '', sig = ''] = match;
    const now = this.clock.now();
    const stamp = Number(ts);
    if (Math.abs(stamp - now) > SIGNATURE_WINDOW_MS) return 'stale';
    const expected = signature(this.key, method, url, ts, nonce);
    if (!timingSafeEqual(expected, Buffer.from(sig, 'hex'))) return 'bad-signature';
    // Only a request that is really ours gets this far: nobody else can fill the memory of nonces.
    this.forgetExpired(now, false);
    if (this.seen.has(nonce)) return 'replayed';
    if (this.seen.size >= this.maxNonces) {
      this.forgetExpired(now, true);
      if (this.seen.size >= this.maxNonces) return 'too-many-requests';
    }
    this.seen.set(nonce, stamp + SIGNATURE_WINDOW_MS);
    return 'ok';
  }

  /** How many nonces are remembered now (tests). */
  get remembered(): number {
    return this.seen.size;
  }

  /** Drops nonces whose timestamps are out of the window: from the oldest on, or (`all`) wherever they are. */
  private forgetExpired(now: number, all: boolean): void {
    for (const [nonce, until] of this.seen) {
      if (until < now) this.seen.delete(nonce);
      else if (!all) return;
    }
  }
}
