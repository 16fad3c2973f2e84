import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { Writable } from 'node:stream';
import { createLogger, loggablePath, stdoutDestination } from '../../src/lib/logger';
import { formatLogLine } from '../../src/lib/prettyLogDestination';

const SECRETS = { password: 'hunter2-password', token: 'tok-abcdef', headers: { cookie: 'clawloops_session=s3cr3t' } };
const SECRET_VALUES = ['hunter2-password', 'tok-abcdef', 's3cr3t'];

/** A fake standard output that records what is written to it. */
function fakeStdout(isTTY: boolean): { isTTY: boolean; text: string[]; write(t: string): boolean } {
  const text: string[] = [];
  return { isTTY, text, write: (t: string) => (text.push(t), true) };
}

describe('logs at a terminal', () => {
  test('are readable lines: clock time, level, message, then the fields', () => {
    const out = fakeStdout(true);
    const logger = createLogger('info', undefined, out);
    logger.info({ userId: 'u1', reason: 'idle for 30m', count: 3 }, 'runtime stopped');
    logger.warn('engine slow');
    expect(out.text).toHaveLength(2);
    expect(out.text[0]).toMatch(/^\d\d:\d\d:\d\d\.\d{3} .*INFO.* runtime stopped {2}userId=u1 reason="idle for 30m" count=3\n$/);
    expect(out.text[1]).toMatch(/WARN.* engine slow\n$/);
    expect(out.text.join('')).not.toMatch(/^\{/m);
  });

  test('never show a secret: redaction applies before formatting', () => {
    const out = fakeStdout(true);
    createLogger('info', undefined, out).info({ ...SECRETS, body: { token: 'tok-abcdef' } }, 'login');
    const text = out.text.join('');
    for (const secret of SECRET_VALUES) expect(text).not.toContain(secret);
    expect(text).toContain('password=[redacted]');
  });

  test("an error's stack goes on the lines below, indented", () => {
    const out = fakeStdout(true);
    createLogger('info', undefined, out).error({ err: new Error('engine gone') }, 'start failed');
    const [first, ...rest] = out.text.join('').split('\n');
    expect(first).toMatch(/ERROR.* start failed {2}err=\{"type":"Error","message":"engine gone"\}$/);
    expect(rest[0]).toBe('    Error: engine gone');
    expect(rest[1]).toMatch(/^ {4} {4}at /);
  });

  test('the level is coloured unless NO_COLOR is set', () => {
    const colored = formatLogLine(JSON.stringify({ level: 50, time: '2026-12-06T17:34:50.123Z', msg: 'x' }), true);
    expect(colored).toBe('17:34:50.123 \u001b[31mERROR\u001b[0m x');
    expect(formatLogLine(JSON.stringify({ level: 30, time: '2026-12-06T17:34:50.123Z', msg: 'x', service: 'clawloops' }), false)).toBe('17:34:50.123 INFO  x');
  });

  test('what is not a JSON object passes unchanged', () => {
    expect(formatLogLine('plain text', false)).toBe('plain text');
    expect(formatLogLine('[1,2]', false)).toBe('[1,2]');
  });
});

describe('logs anywhere else', () => {
  test('go to pino’s own JSON writer when standard output is not a terminal', () => {
    expect(stdoutDestination(fakeStdout(false))).toBeUndefined();
    expect(stdoutDestination(fakeStdout(true))).toBeDefined();
  });

  test('an explicit destination gets JSON lines, with secrets redacted', () => {
    const lines: string[] = [];
    const logger = createLogger('info', new Writable({ write: (chunk, _enc, done) => (lines.push(String(chunk)), done()) }), fakeStdout(true));
    logger.info({ ...SECRETS }, 'login');
    const entry = JSON.parse(lines[0] ?? '') as Record<string, unknown>;
    expect(entry).toMatchObject({ msg: 'login', password: '[redacted]', token: '[redacted]', headers: { cookie: '[redacted]' }, service: 'clawloops' });
    for (const secret of SECRET_VALUES) expect(lines.join('')).not.toContain(secret);
  });

  test('a process whose standard output is a pipe writes one JSON object per line', () => {
    const script = `require(${JSON.stringify(path.resolve(__dirname, '../../src/lib/logger.ts'))}).createLogger('info').info({ password: 'hunter2-password', userId: 'u1' }, 'hello')`;
    const r = spawnSync(process.execPath, ['--require', 'tsx/cjs', '-e', script], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0] ?? '')).toMatchObject({ level: 30, msg: 'hello', userId: 'u1', password: '[redacted]' });
  });
});

describe('loggablePath', () => {
  test('drops the query and masks secret-looking segments, keeps ids', () => {
    expect(loggablePath('/api/v1/invitations/AbCdEfGhIjKlMnOpQrStUvWxYz012345/accept?token=x')).toBe('/api/v1/invitations/:secret/accept');
    expect(loggablePath('/api/v1/admin/users/123e4567-e89b-12d3-a456-426614174000')).toBe('/api/v1/admin/users/123e4567-e89b-12d3-a456-426614174000');
  });
});
