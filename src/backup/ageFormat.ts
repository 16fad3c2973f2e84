import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  randomBytes,
  timingSafeEqual,
  type KeyObject,
} from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { bech32 } from 'bech32';

/**
 * The age file format (https://age-encryption.org/v1, C2SP), X25519 recipients, written with
 * node's own crypto: X25519, HKDF-SHA-256, HMAC-SHA-256 and ChaCha20-Poly1305 in 64 KiB chunks
 * (STREAM), so a file of any size is encrypted and decrypted in constant memory, and every chunk
 * is authenticated (a cut, reordered or altered file is refused, never half-read). Chosen so that
 * a backup can be read without ClawLoops: `age -d -i key.txt part.age` (Debian's `age` package)
 * decrypts every part. test/unit/ageFormat.test.ts checks both directions against that tool.
 */

const VERSION_LINE = 'age-encryption.org/v1';
const X25519_INFO = 'age-encryption.org/v1/X25519';
const CHUNK = 64 * 1024;
const TAG = 16;
const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_X25519 = Buffer.from('302a300506032b656e032100', 'hex');
/** A header longer than this is not one we wrote (one stanza); refusing bounds what we buffer. */
const MAX_HEADER_BYTES = 16 * 1024;

export class AgeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AgeError';
  }
}

/** An X25519 identity: the secret key (AGE-SECRET-KEY-1…) and the recipient it encrypts to (age1…). */
export interface AgeIdentity {
  privateKey: KeyObject;
  publicRaw: Buffer;
  recipient: string;
}

const b64 = (data: Buffer) => data.toString('base64').replace(/=+$/, '');
function unb64(text: string): Buffer {
  // age's base64 is canonical and unpadded: anything else is a file we did not write.
  if (!/^[A-Za-z0-9+/]*$/.test(text) || text.length % 4 === 1) throw new AgeError('malformed base64 in the header');
  const data = Buffer.from(text, 'base64');
  if (b64(data) !== text) throw new AgeError('non-canonical base64 in the header');
  return data;
}

const hkdf = (ikm: Buffer, salt: Buffer, info: string) => Buffer.from(hkdfSync('sha256', ikm, salt, info, 32));

function chacha(key: Buffer, nonce: Buffer, data: Buffer): Buffer {
  const cipher = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG });
  return Buffer.concat([cipher.update(data), cipher.final(), cipher.getAuthTag()]);
}

function unchacha(key: Buffer, nonce: Buffer, sealed: Buffer): Buffer | null {
  if (sealed.length < TAG) return null;
  const decipher = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG });
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG));
  try {
    return Buffer.concat([decipher.update(sealed.subarray(0, sealed.length - TAG)), decipher.final()]);
  } catch {
    return null;
  }
}

const privateFromRaw = (raw: Buffer) => createPrivateKey({ key: Buffer.concat([PKCS8_X25519, raw]), format: 'der', type: 'pkcs8' });
const publicFromRaw = (raw: Buffer) => createPublicKey({ key: Buffer.concat([SPKI_X25519, raw]), format: 'der', type: 'spki' });
const rawPublic = (key: KeyObject) => Buffer.from((createPublicKey(key).export({ format: 'der', type: 'spki' }) as Buffer).subarray(-32));
const rawPrivate = (key: KeyObject) => Buffer.from((key.export({ format: 'der', type: 'pkcs8' }) as Buffer).subarray(-32));

function sharedSecret(privateKey: KeyObject, publicRaw: Buffer): Buffer {
  const shared = diffieHellman({ privateKey, publicKey: publicFromRaw(publicRaw) });
  // A low-order point gives all zeroes: the spec says to refuse it.
  if (shared.every((b) => b === 0)) throw new AgeError('X25519 produced the zero secret');
  return shared;
}

function fromBech32(text: string, prefix: string): Buffer {
  let decoded;
  try {
    decoded = bech32.decode(text.toLowerCase(), 100);
  } catch {
    throw new AgeError(`not a valid ${prefix === 'age' ? 'recipient (age1…)' : 'key (AGE-SECRET-KEY-1…)'}`);
  }
  if (decoded.prefix !== prefix) throw new AgeError(`expected a ${prefix} key, got ${decoded.prefix}`);
  const raw = Buffer.from(bech32.fromWords(decoded.words));
  if (raw.length !== 32) throw new AgeError('an X25519 key has 32 bytes');
  return raw;
}

/** Reads an identity as `age-keygen` writes it (comment lines and blank lines are skipped). */
export function parseIdentity(text: string): AgeIdentity {
  const line = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .find((l) => l !== '' && !l.startsWith('#'));
  if (!line || !line.startsWith('AGE-SECRET-KEY-1')) throw new AgeError('no AGE-SECRET-KEY-1… line found');
  const privateKey = privateFromRaw(fromBech32(line, 'age-secret-key-'));
  const publicRaw = rawPublic(privateKey);
  return { privateKey, publicRaw, recipient: bech32.encode('age', bech32.toWords(publicRaw)) };
}

/** A new identity, in `age-keygen`'s file format (with the recipient as a comment). */
export function generateIdentity(now = new Date()): { text: string; identity: AgeIdentity } {
  const { privateKey } = generateKeyPairSync('x25519');
  const secret = bech32.encode('age-secret-key-', bech32.toWords(rawPrivate(privateKey)), 100).toUpperCase();
  const identity = parseIdentity(secret);
  return { text: `# created: ${now.toISOString()}\n# public key: ${identity.recipient}\n${secret}\n`, identity };
}

function header(fileKey: Buffer, recipientRaw: Buffer): Buffer {
  const { privateKey: ephemeral } = generateKeyPairSync('x25519');
  const share = rawPublic(ephemeral);
  const wrapKey = hkdf(sharedSecret(ephemeral, recipientRaw), Buffer.concat([share, recipientRaw]), X25519_INFO);
  const body = b64(chacha(wrapKey, Buffer.alloc(12), fileKey));
  const lines = [VERSION_LINE, `-> X25519 ${b64(share)}`];
  for (let i = 0; i <= body.length; i += 64) lines.push(body.slice(i, i + 64));
  const unsigned = `${lines.join('\n')}\n---`;
  const mac = createHmac('sha256', hkdf(fileKey, Buffer.alloc(0), 'header')).update(unsigned).digest();
  return Buffer.from(`${unsigned} ${b64(mac)}\n`);
}

function chunkNonce(counter: number, last: boolean): Buffer {
  const nonce = Buffer.alloc(12);
  nonce.writeUIntBE(counter, 5, 6);
  nonce[11] = last ? 1 : 0;
  return nonce;
}

/**
 * Encrypts to one recipient, push by push: `update` and `final` return the age file's next
 * bytes. Full chunks are sealed straight from the input; only a chunk's tail that waits for more
 * input (the last chunk carries the final flag, so a full chunk is sealed only once more data
 * follows it) is copied, into one 64 KiB buffer kept for the whole file. Fresh large buffers are
 * what a stream of 1 GiB pays most for (page faults: ~0.45 s per GiB of new 1 MiB buffers on our
 * machines, against 0.01 s for a reused one).
 */
export class AgeSealing {
  private readonly payloadKey: Buffer;
  private readonly carry = Buffer.allocUnsafe(CHUNK);
  private carried = 0;
  private counter = 0;
  private started: Buffer[] | null;

  constructor(recipient: AgeIdentity['publicRaw']) {
    const fileKey = randomBytes(16);
    const nonce = randomBytes(16);
    this.payloadKey = hkdf(fileKey, nonce, 'payload');
    this.started = [header(fileKey, recipient), nonce];
  }

  /** The file's bytes that `plain` completes (none may be kept: `plain` can be reused once this returns). */
  update(plain: Uint8Array): Buffer[] {
    const out = this.takeStart();
    let offset = 0;
    while (offset < plain.length) {
      if (this.carried === CHUNK) {
        this.seal(this.carry, false, out);
        this.carried = 0;
      }
      if (this.carried === 0 && plain.length - offset > CHUNK) {
        this.seal(plain.subarray(offset, offset + CHUNK), false, out);
        offset += CHUNK;
        continue;
      }
      const n = Math.min(CHUNK - this.carried, plain.length - offset);
      this.carry.set(plain.subarray(offset, offset + n), this.carried);
      this.carried += n;
      offset += n;
    }
    return out;
  }

  /** The last chunk (possibly empty: an empty file is one empty final chunk). */
  final(): Buffer[] {
    const out = this.takeStart();
    this.seal(this.carry.subarray(0, this.carried), true, out);
    this.carried = 0;
    return out;
  }

  private takeStart(): Buffer[] {
    const out = this.started ?? [];
    this.started = null;
    return out;
  }

  /** One chunk: its ciphertext and tag as they come (no copy to join them). */
  private seal(plain: Uint8Array, last: boolean, out: Buffer[]): void {
    const cipher = createCipheriv('chacha20-poly1305', this.payloadKey, chunkNonce(this.counter++, last), { authTagLength: TAG });
    const sealed = cipher.update(plain);
    if (sealed.length > 0) out.push(sealed);
    cipher.final();
    out.push(cipher.getAuthTag());
  }
}

/** AgeSealing as a stream: plaintext in, an age file out. */
export class AgeEncrypt extends Transform {
  private readonly sealing: AgeSealing;

  constructor(recipient: AgeIdentity['publicRaw']) {
    super({ highWaterMark: 4 * 1024 * 1024 });
    this.sealing = new AgeSealing(recipient);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    for (const piece of this.sealing.update(chunk)) this.push(piece);
    done();
  }

  override _flush(done: TransformCallback): void {
    for (const piece of this.sealing.final()) this.push(piece);
    done();
  }
}

/** Decrypts an age file for one identity; any tampering, truncation or a foreign key is an AgeError. */
export class AgeDecrypt extends Transform {
  private buffered: Buffer = Buffer.alloc(0);
  private payloadKey: Buffer | null = null;
  private counter = 0;
  private finished = false;

  constructor(private readonly identity: AgeIdentity) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    try {
      this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
      if (!this.payloadKey && !this.readHeader()) return done();
      let offset = 0;
      while (this.buffered.length - offset > CHUNK + TAG) {
        this.push(this.open(this.buffered.subarray(offset, offset + CHUNK + TAG), false));
        offset += CHUNK + TAG;
      }
      this.buffered = this.buffered.subarray(offset);
      done();
    } catch (err) {
      done(err as Error);
    }
  }

  override _flush(done: TransformCallback): void {
    try {
      if (!this.payloadKey) throw new AgeError('the file ends inside its header');
      if (this.buffered.length < TAG) throw new AgeError('the file is cut short');
      if (this.buffered.length === TAG && this.counter > 0) throw new AgeError('the file is cut short or was altered (an empty last chunk)');
      this.push(this.open(this.buffered, true));
      this.finished = true;
      done();
    } catch (err) {
      done(err as Error);
    }
  }

  private open(sealed: Buffer, last: boolean): Buffer {
    if (this.finished || !this.payloadKey) throw new AgeError('data after the last chunk');
    const plain = unchacha(this.payloadKey, chunkNonce(this.counter++, last), sealed);
    if (!plain) throw new AgeError(last ? 'the file is cut short or was altered' : 'the file was altered');
    return plain;
  }

  /** True once the header and the payload nonce were read (and consumed from the buffer). */
  private readHeader(): boolean {
    const end = this.buffered.indexOf('\n---');
    if (end < 0) {
      if (this.buffered.length > MAX_HEADER_BYTES) throw new AgeError('not an age file (no header end)');
      return false;
    }
    const lineEnd = this.buffered.indexOf('\n', end + 1);
    if (lineEnd < 0 || this.buffered.length < lineEnd + 1 + 16) return false;
    const text = this.buffered.subarray(0, lineEnd).toString('latin1');
    const lines = text.split('\n');
    if (lines[0] !== VERSION_LINE) throw new AgeError('not an age v1 file');
    const macLine = lines[lines.length - 1] ?? '';
    if (!macLine.startsWith('--- ')) throw new AgeError('malformed header');
    let fileKey: Buffer | null = null;
    for (let i = 1; i < lines.length - 1; ) {
      const args = (lines[i] ?? '').split(' ');
      if (args[0] !== '->') throw new AgeError('malformed stanza');
      let body = '';
      for (i++; i < lines.length - 1; i++) {
        const bodyLine = lines[i] ?? '';
        body += bodyLine;
        if (bodyLine.length < 64) {
          i++;
          break;
        }
      }
      if (args[1] === 'X25519' && args.length === 3 && !fileKey) fileKey = this.unwrap(unb64(args[2] ?? ''), unb64(body));
    }
    if (!fileKey) throw new AgeError('this backup was not encrypted to the configured key');
    const expected = createHmac('sha256', hkdf(fileKey, Buffer.alloc(0), 'header')).update(text.slice(0, text.length - macLine.length + 3)).digest();
    const mac = unb64(macLine.slice(4));
    if (mac.length !== expected.length || !timingSafeEqual(mac, expected)) throw new AgeError('the header was altered');
    const nonce = this.buffered.subarray(lineEnd + 1, lineEnd + 17);
    this.payloadKey = hkdf(fileKey, nonce, 'payload');
    this.buffered = this.buffered.subarray(lineEnd + 17);
    return true;
  }

  private unwrap(share: Buffer, body: Buffer): Buffer | null {
    if (share.length !== 32 || body.length !== 32) throw new AgeError('malformed X25519 stanza');
    const wrapKey = hkdf(sharedSecret(this.identity.privateKey, share), Buffer.concat([share, this.identity.publicRaw]), X25519_INFO);
    return unchacha(wrapKey, Buffer.alloc(12), body);
  }
}
