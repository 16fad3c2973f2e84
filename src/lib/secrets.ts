import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';

/** 256 random bits, URL-safe: session tokens, invitation secrets, the setup token. */
export function newSecret(): string {
  return randomBytes(32).toString('base64url');
}

/** Secrets are looked up by hash so a leaked database copy does not hand out live credentials. */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

export function newId(): string {
  return randomUUID();
}

export function constantTimeEqual(a: string, b: string): boolean {
  const left = createHash('sha256').update(a).digest();
  const right = createHash('sha256').update(b).digest();
  return timingSafeEqual(left, right);
}

/** A secret shaped like `newSecret()`; anything else cannot be one and is refused without a lookup. */
export const SECRET_PATTERN = /^[A-Za-z0-9_-]{43}$/;

// No 0/O/1/l/I: temporary passwords are read off a screen and typed by a person.
const TEMP_ALPHABET = 'abcdefghijkmnpqrstuvwxyz23456789';

/** About 100 bits, in dash-separated groups of five so it can be read aloud. */
export function newTemporaryPassword(): string {
  const bytes = randomBytes(20);
  let out = '';
  for (let i = 0; i < bytes.length; i++) {
    if (i > 0 && i % 5 === 0) out += '-';
    out += TEMP_ALPHABET[(bytes[i] ?? 0) % TEMP_ALPHABET.length];
  }
  return out;
}
