import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { generateIdentity } from '../../src/backup/ageFormat';
import { PartSealer } from '../../src/backup/sealedParts';

/**
 * Backup parts sealed in a worker thread: what comes out is an age file the reference tool
 * decrypts to exactly the input, with the sizes and hash reported; a failing source or a file
 * that exists already fails the part without hanging, and nothing is held in memory beyond a
 * few pieces (the sender waits for the worker).
 */
let dir: string;
const key = generateIdentity();
const sealer = new PartSealer();
const writePart = (source: Readable, file: string, recipient: Buffer) => sealer.seal(source, file, recipient);
afterAll(() => sealer.close());
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sealed-parts-'));
  fs.writeFileSync(path.join(dir, 'key.txt'), key.text, { mode: 0o600 });
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

test('a part sealed in the worker decrypts with age to exactly what went in; sizes and SHA-256 as reported', async () => {
  const plain = randomBytes(9 * 1024 * 1024 + 123);
  // Odd-sized pieces, as an engine's stream delivers them.
  const pieces = [plain.subarray(0, 1), plain.subarray(1, 70_001), plain.subarray(70_001)];
  const file = path.join(dir, 'part.age');
  const result = await writePart(Readable.from(pieces), file, key.identity.publicRaw);
  const sealed = fs.readFileSync(file);
  expect(result).toEqual({ plainBytes: plain.length, bytes: sealed.length, sha256: createHash('sha256').update(sealed).digest('hex') });
  const decrypted = execFileSync('age', ['-d', '-i', path.join(dir, 'key.txt'), file], { maxBuffer: 1 << 26 });
  expect(decrypted.equals(plain)).toBe(true);
});

test('a source that fails mid-way fails the part with its error', async () => {
  async function* failing() {
    yield randomBytes(3 * 1024 * 1024);
    throw new Error('the engine dropped the stream');
  }
  await expect(writePart(Readable.from(failing()), path.join(dir, 'part.age'), key.identity.publicRaw)).rejects.toThrow('the engine dropped the stream');
  // The worker seals the next part as if nothing had happened.
  const next = randomBytes(1024 * 1024 + 1);
  expect((await writePart(Readable.from([next]), path.join(dir, 'next.age'), key.identity.publicRaw)).plainBytes).toBe(next.length);
});

test('a part file that exists already is never overwritten', async () => {
  const file = path.join(dir, 'part.age');
  fs.writeFileSync(file, 'earlier');
  await expect(writePart(Readable.from([randomBytes(4 * 1024 * 1024)]), file, key.identity.publicRaw)).rejects.toThrow(/EEXIST/);
  expect(fs.readFileSync(file, 'utf8')).toBe('earlier');
});

test('parts sealed one after another by the same worker, even when asked for at once, and after a failed one', async () => {
  const contents = [randomBytes(2 * 1024 * 1024), randomBytes(3 * 1024 * 1024 + 5)];
  const results = await Promise.all(contents.map((c, i) => writePart(Readable.from([c]), path.join(dir, `p${i}.age`), key.identity.publicRaw)));
  for (const [i, c] of contents.entries()) {
    expect(results[i]?.plainBytes).toBe(c.length);
    expect(execFileSync('age', ['-d', '-i', path.join(dir, 'key.txt'), path.join(dir, `p${i}.age`)], { maxBuffer: 1 << 26 }).equals(c)).toBe(true);
  }
});
