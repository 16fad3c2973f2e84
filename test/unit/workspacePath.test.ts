import { AppError } from '../../src/lib/errors';
import { baseName, joinPath, MAX_NAME_BYTES, MAX_PATH_BYTES, parseWorkspacePath, ROOT_PATH, type WorkspacePath } from '../../src/files/workspacePath';

/** The AppError `parseWorkspacePath` throws for `raw`; fails the test when it throws nothing. */
function refusalOf(raw: unknown, options?: { allowRoot?: boolean }): AppError {
  try {
    parseWorkspacePath(raw, 'path', options);
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    return err as AppError;
  }
  throw new Error(`parseWorkspacePath accepted ${JSON.stringify(raw)}`);
}

describe('workspace paths', () => {
  test.each([
    ['a//b/./c', 'a/b/c'],
    ['a/b/', 'a/b'],
    ['./a', 'a'],
    ['notes.md', 'notes.md'],
    ['a b/ümlaut €.txt', 'a b/ümlaut €.txt'],
  ])('normalises "%s" to "%s"', (raw, expected) => {
    expect(parseWorkspacePath(raw)).toBe(expected);
  });

  test.each([[''], ['.'], ['./'], ['.//'], ['././.']])('reads "%s" as the workspace root', (raw) => {
    expect(parseWorkspacePath(raw)).toBe(ROOT_PATH);
  });

  test('reads a missing value (undefined or null) as the workspace root', () => {
    expect(parseWorkspacePath(undefined)).toBe(ROOT_PATH);
    expect(parseWorkspacePath(null)).toBe(ROOT_PATH);
  });

  test.each([
    ['/etc', 'INVALID_PATH'],
    ['/', 'INVALID_PATH'],
    ['../x', 'PATH_TRAVERSAL'],
    ['..', 'PATH_TRAVERSAL'],
    ['a/../../b', 'PATH_TRAVERSAL'],
    ['a/..', 'PATH_TRAVERSAL'],
    ['a/b/..', 'PATH_TRAVERSAL'],
  ])('refuses "%s" with %s and status 400', (raw, code) => {
    const err = refusalOf(raw);
    expect(err.code).toBe(code);
    expect(err.status).toBe(400);
  });

  test('refuses a path with a NUL byte in it', () => {
    const err = refusalOf('a\0b');
    expect(err.code).toBe('INVALID_PATH');
    expect(err.status).toBe(400);
  });

  test('refuses ".." even where it arrived percent-encoded, since Express has decoded it by then', () => {
    expect(refusalOf(decodeURIComponent('a/%2e%2e/b')).code).toBe('PATH_TRAVERSAL');
  });

  test('accepts a literal "%2e%2e" segment: that is a legitimate file name, not a way up', () => {
    expect(parseWorkspacePath('a/%2e%2e/b')).toBe('a/%2e%2e/b');
    expect(parseWorkspacePath('%2e%2e')).toBe('%2e%2e');
  });

  test('names the field in its message', () => {
    expect(() => parseWorkspacePath('../x', 'destination')).toThrow(/destination/);
  });

  test('accepts a name of exactly 255 bytes and refuses one of 256 bytes', () => {
    expect(MAX_NAME_BYTES).toBe(255);
    const longest = 'a'.repeat(255);
    expect(parseWorkspacePath(`dir/${longest}`)).toBe(`dir/${longest}`);
    const err = refusalOf(`dir/${'a'.repeat(256)}`);
    expect(err.code).toBe('NAME_TOO_LONG');
    expect(err.status).toBe(400);
  });

  test('counts a name in UTF-8 bytes, not in characters', () => {
    // 128 × "é" is 128 characters but 256 bytes.
    const err = refusalOf('é'.repeat(128));
    expect(err.code).toBe('NAME_TOO_LONG');
    expect(err.status).toBe(400);
    // 127 × "é" + "a" is 255 bytes.
    const longest = `${'é'.repeat(127)}a`;
    expect(parseWorkspacePath(longest)).toBe(longest);
  });

  test('refuses a path longer than 4096 bytes even when every name in it is short', () => {
    expect(MAX_PATH_BYTES).toBe(4096);
    const segment = 'a'.repeat(99);
    const justFits = Array.from({ length: 40 }, () => segment).join('/') + '/' + 'b'.repeat(4096 - 40 * 100);
    expect(Buffer.byteLength(justFits)).toBe(4096);
    expect(parseWorkspacePath(justFits)).toBe(justFits);
    const err = refusalOf(`${justFits}c`);
    expect(err.code).toBe('INVALID_PATH');
    expect(err.status).toBe(400);
  });

  test.each([[42], [['a', 'b']], [{ path: 'a' }], [true]])('refuses a value that is not a string (%p)', (raw) => {
    const err = refusalOf(raw);
    expect(err.code).toBe('INVALID_PATH');
    expect(err.status).toBe(400);
  });

  test('refuses the root itself where something inside it must be named (allowRoot: false)', () => {
    for (const raw of ['', '.', './/', undefined]) {
      const err = refusalOf(raw, { allowRoot: false });
      expect(err.code).toBe('INVALID_PATH');
      expect(err.status).toBe(400);
    }
    expect(parseWorkspacePath('a', 'path', { allowRoot: false })).toBe('a');
  });

  test('joins paths without doubling or leaving slashes at the root', () => {
    const p = (raw: string): WorkspacePath => parseWorkspacePath(raw);
    expect(joinPath(p('a/b'), p('c/d.txt'))).toBe('a/b/c/d.txt');
    expect(joinPath(ROOT_PATH, p('c'))).toBe('c');
    expect(joinPath(p('a'), ROOT_PATH)).toBe('a');
    expect(joinPath(ROOT_PATH, ROOT_PATH)).toBe(ROOT_PATH);
  });

  test('gives the last name of a path as its base name', () => {
    expect(baseName(parseWorkspacePath('a/b/c.txt'))).toBe('c.txt');
    expect(baseName(parseWorkspacePath('top'))).toBe('top');
    expect(baseName(ROOT_PATH)).toBe('');
  });
});
