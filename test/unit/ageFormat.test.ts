/**
 * Our age writer and reader against the reference: Debian's `age` and `age-keygen` (the tool a
 * person restores a backup with when ClawLoops is gone) decrypt what we encrypt and encrypt what
 * we decrypt, at sizes around the 64 KiB chunk boundary; and every kind of damage is refused.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AgeDecrypt, AgeEncrypt, AgeError, generateIdentity, parseIdentity } from '../../src/backup/ageFormat';

const AGE = ['/usr/bin/age', '/usr/local/bin/age'].find((p) => fs.existsSync(p));
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'age-test-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

async function run(source: Buffer, transform: NodeJS.ReadWriteStream, pieces = 7919): Promise<Buffer> {
  const out: Buffer[] = [];
  // Odd-sized writes: the chunking must not depend on how the input arrives.
  const input = Readable.from((function* () {
    for (let i = 0; i < source.length; i += pieces) yield source.subarray(i, i + pieces);
  })());
  await pipeline(input, transform, new Writable({ write: (c: Buffer, _e, done) => (out.push(c), done()) }));
  return Buffer.concat(out);
}

const encrypt = (plain: Buffer, recipient: Buffer) => run(plain, new AgeEncrypt(recipient));
const decrypt = (sealed: Buffer, identityText: string) => run(sealed, new AgeDecrypt(parseIdentity(identityText)));
const SIZES = [0, 1, 65535, 65536, 65537, 131072, 300_001];

describe('interoperability with the age reference tool', () => {
  if (!AGE) {
    test.skip('age is not installed (scripts/test.sh installs it)', () => {});
    return;
  }

  test.each(SIZES)('a %d-byte file we encrypt, age -d decrypts to the same bytes', async (size) => {
    const { text, identity } = generateIdentity();
    const keyFile = path.join(dir, `key-${size}.txt`);
    fs.writeFileSync(keyFile, text, { mode: 0o600 });
    const plain = randomBytes(size);
    const sealed = await encrypt(plain, identity.publicRaw);
    const result = spawnSync(AGE, ['-d', '-i', keyFile], { input: sealed, maxBuffer: 1 << 24 });
    expect(result.stderr.toString()).toBe('');
    expect(createHash('sha256').update(result.stdout).digest('hex')).toBe(createHash('sha256').update(plain).digest('hex'));
  });

  test.each(SIZES)('a %d-byte file age -r encrypts, we decrypt to the same bytes', async (size) => {
    const keyFile = path.join(dir, `ref-${size}.txt`);
    execFileSync(`${AGE}-keygen`, ['-o', keyFile], { stdio: 'ignore' });
    const text = fs.readFileSync(keyFile, 'utf8');
    const plain = randomBytes(size);
    const sealed = execFileSync(AGE, ['-r', parseIdentity(text).recipient], { input: plain, maxBuffer: 1 << 24 });
    expect((await decrypt(sealed, text)).equals(plain)).toBe(true);
  });

  test('input that arrives in pieces larger than a chunk (1 MiB writes) is chunked the same way, both directions', async () => {
    const { text, identity } = generateIdentity();
    const keyFile = path.join(dir, 'big-pieces.txt');
    fs.writeFileSync(keyFile, text, { mode: 0o600 });
    const plain = randomBytes(3 * 1024 * 1024 + 5);
    const sealed = await run(plain, new AgeEncrypt(identity.publicRaw), 1024 * 1024);
    const result = spawnSync(AGE, ['-d', '-i', keyFile], { input: sealed, maxBuffer: 1 << 24 });
    expect(result.stdout.equals(plain)).toBe(true);
    expect((await run(sealed, new AgeDecrypt(identity), 1024 * 1024)).equals(plain)).toBe(true);
  });

  test('our recipient string is the one age-keygen derives from the same key', () => {
    const { text, identity } = generateIdentity();
    const keyFile = path.join(dir, 'derive.txt');
    fs.writeFileSync(keyFile, text, { mode: 0o600 });
    expect(execFileSync(`${AGE}-keygen`, ['-y', keyFile]).toString().trim()).toBe(identity.recipient);
  });
});

describe('damage is refused, never half-read', () => {
  const { text, identity } = generateIdentity();
  const plain = randomBytes(200_000);
  let sealed: Buffer;
  beforeAll(async () => {
    sealed = await encrypt(plain, identity.publicRaw);
  });

  test('the right key reads it back', async () => {
    expect((await decrypt(sealed, text)).equals(plain)).toBe(true);
  });

  test('another key is told apart from damage', async () => {
    await expect(decrypt(sealed, generateIdentity().text)).rejects.toThrow(/not encrypted to the configured key/);
  });

  test.each([
    ['a flipped byte in the payload', (b: Buffer) => Buffer.concat([b.subarray(0, 1000), Buffer.from([b[1000]! ^ 1]), b.subarray(1001)]), /altered/],
    ['a flipped byte in the header', (b: Buffer) => Buffer.concat([b.subarray(0, 40), Buffer.from([b[40] === 65 ? 66 : 65]), b.subarray(41)]), /./],
    ['the last chunk cut off', (b: Buffer) => b.subarray(0, b.length - 1000), /cut short|altered/],
    ['whole chunks cut off at a chunk boundary', (b: Buffer) => b.subarray(0, b.length - (200_000 - 131072) - 16), /cut short|altered/],
    ['bytes appended', (b: Buffer) => Buffer.concat([b, Buffer.from('more')]), /./],
    ['not an age file at all', () => Buffer.from('PK\u0003\u0004 a zip file, say'), /not an age|header/],
  ])('%s', async (_what, damage, message) => {
    await expect(decrypt(damage(sealed), text)).rejects.toThrow(message);
    await expect(decrypt(damage(sealed), text)).rejects.toBeInstanceOf(AgeError);
  });

  test('a key file that is not one is refused with a reason', () => {
    expect(() => parseIdentity('hello')).toThrow(/AGE-SECRET-KEY-1/);
    expect(() => parseIdentity('AGE-SECRET-KEY-1QQQQ')).toThrow(AgeError);
  });
});
