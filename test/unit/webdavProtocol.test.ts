import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runFileAgent } from '../../src/files/agent/operations';
import { parseBasic } from '../../src/webdav/davAuth';
import { davPathOf } from '../../src/webdav/davHandler';
import { DavLocks, MAX_TIMEOUT_S, parseIf, parseTimeout, tokensOf } from '../../src/webdav/davLocks';
import { parseXml } from '../../src/webdav/davXml';
import { ManualClock } from '../support/harness';

describe('If header', () => {
  test('tagged and untagged lists, Not, entity tags and state tokens', () => {
    expect(parseIf('(<urn:uuid:a> ["e1"]) (Not <DAV:no-lock> ["e1"])')).toEqual([
      { resource: null, conditions: [{ not: false, token: 'urn:uuid:a' }, { not: false, etag: '"e1"' }] },
      { resource: null, conditions: [{ not: true, token: 'DAV:no-lock' }, { not: false, etag: '"e1"' }] },
    ]);
    const tagged = parseIf('<http://h/dav/x> (<urn:uuid:b>)');
    expect(tagged?.[0]?.resource).toBe('http://h/dav/x');
    expect(tokensOf(tagged ?? [])).toEqual(['urn:uuid:b']);
  });

  test.each(['', '(', '()', '(<a>', 'x', '([e1)', '<r>'])('malformed: %j', (header) => {
    expect(parseIf(header)).toBeNull();
  });
});

test('Timeout is bounded; garbage falls back to the default', () => {
  expect(parseTimeout('Second-60')).toBe(60);
  expect(parseTimeout('Infinite, Second-4100000000')).toBe(MAX_TIMEOUT_S);
  expect(parseTimeout('Second-99999999999')).toBe(3600);
  expect(parseTimeout('soon')).toBe(3600);
});

describe('locks', () => {
  test('exclusive excludes everything, shared joins shared, depth infinity covers descendants, expiry frees', () => {
    const clock = new ManualClock();
    const locks = new DavLocks(clock);
    const base = { userId: 'u', ownerXml: '', timeoutSeconds: 10 } as const;
    const coll = locks.create({ ...base, path: 'a', depth: 'infinity', scope: 'shared' });
    expect(coll).not.toBeNull();
    expect(locks.create({ ...base, path: 'a/b', depth: '0', scope: 'shared' })).not.toBeNull();
    expect(locks.create({ ...base, path: 'a/b', depth: '0', scope: 'exclusive' })).toBeNull();
    expect(locks.affecting('u', 'a/b/c', false).map((l) => l.path)).toEqual(['a']);
    expect(locks.affecting('other', 'a/b', false)).toEqual([]);
    clock.advance(11_000);
    expect(locks.affecting('u', 'a', true)).toEqual([]);
    expect(locks.create({ ...base, path: '', depth: 'infinity', scope: 'exclusive' })).not.toBeNull();
  });
});

test('Basic credentials: anything malformed is null, never a throw', () => {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  expect(parseBasic(`Basic ${b64('ann:clt_x:y')}`)).toEqual({ username: 'ann', secret: 'clt_x:y' });
  for (const header of [undefined, '', 'Basic', 'Basic !!!', `Basic ${b64(':secret')}`, `Basic ${b64('nocolon')}`, `Bearer ${b64('a:b')}`, `Basic ${'A'.repeat(5000)}`]) {
    expect(parseBasic(header)).toBeNull();
  }
});

test('URL paths: decoded per segment; traversal, encoded slashes and bad encodings refused', () => {
  expect(davPathOf('/dav/')).toBe('');
  expect(davPathOf('/dav/a%20b/%C3%A9.txt')).toBe('a b/é.txt');
  for (const bad of ['/dav/../x', '/dav/%2e%2e/x', '/dav/a%2Fb', '/dav/a%5Cb', '/dav/%ff', '/dav/a%00b']) expect(() => davPathOf(bad)).toThrow();
  expect(() => davPathOf('/other')).toThrow();
});

test('XML: DOCTYPE and entities refused, namespaces resolved, empty prefix bindings refused', () => {
  expect(() => parseXml(Buffer.from('<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>'))).toThrow();
  expect(() => parseXml(Buffer.from('<D:propfind xmlns:D="DAV:"><D:prop><b:foo xmlns:b=""/></D:prop></D:propfind>'))).toThrow();
  expect(() => parseXml(Buffer.from('<D:propfind>'))).toThrow();
  const node = parseXml(Buffer.from('<propfind xmlns="DAV:"><prop><x:a xmlns:x="urn:x"/></prop></propfind>'));
  expect(node?.children[0]?.children[0]).toMatchObject({ ns: 'urn:x', local: 'a' });
  expect(parseXml(Buffer.from('  '))).toBeNull();
});

describe('the file agent copies', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'clawloops-copy-'));
    fs.mkdirSync(path.join(dir, 'root/a/sub'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'root/a/sub/f.txt'), '12345');
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));
  const copy = (from: string, to: string, extra: { overwrite?: boolean; shallow?: boolean; maxBytes?: number } = {}) =>
    runFileAgent({ op: 'copy', root: path.join(dir, 'root'), from, to, overwrite: false, shallow: false, maxBytes: 1000, staging: path.join(dir, '.clawloops-staging', 'x'), ...extra });

  test('a tree, built in staging and moved into place; nothing of staging stays', () => {
    expect(copy('a', 'b')).toMatchObject({ ok: true, result: { bytes: 5, files: 1, replaced: false } });
    expect(fs.readFileSync(path.join(dir, 'root/b/sub/f.txt'), 'utf8')).toBe('12345');
    expect(fs.readdirSync(path.join(dir, '.clawloops-staging'))).toEqual([]);
  });

  test('refusals: no overwrite, into itself, past the free quota, a missing source', () => {
    copy('a', 'b');
    expect(copy('a', 'b')).toMatchObject({ ok: false, code: 'ALREADY_EXISTS' });
    expect(copy('a', 'a/sub/inner')).toMatchObject({ ok: false, code: 'INVALID_MOVE' });
    expect(copy('a', 'c', { maxBytes: 4 })).toMatchObject({ ok: false, code: 'QUOTA_EXCEEDED' });
    expect(fs.existsSync(path.join(dir, 'root/c'))).toBe(false);
    expect(copy('nothing', 'd')).toMatchObject({ ok: false, code: 'NOT_FOUND' });
  });

  test('overwrite replaces a folder whole; shallow copies a folder without its content', () => {
    fs.mkdirSync(path.join(dir, 'root/b/old'), { recursive: true });
    expect(copy('a', 'b', { overwrite: true })).toMatchObject({ ok: true, result: { replaced: true } });
    expect(fs.readdirSync(path.join(dir, 'root/b'))).toEqual(['sub']);
    expect(copy('a', 'e', { shallow: true })).toMatchObject({ ok: true });
    expect(fs.readdirSync(path.join(dir, 'root/e'))).toEqual([]);
  });
});
