import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

// scripts/images/lib.sh's detect_mirror: the Debian mirror comes from apt's own sources, or the
// build stops with a message; no host is ever assumed. Hosts below are placeholders (.example).
const LIB = path.resolve(__dirname, '../../scripts/images/lib.sh');

function detect(aptDir: string, env: Record<string, string> = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('bash', ['-c', 'source "$0" && detect_mirror "$1"', LIB, aptDir], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
  });
  return { status: r.status, stdout: r.stdout.trim(), stderr: r.stderr.trim() };
}

describe('detect_mirror (scripts/images/lib.sh)', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'apt-'));
    fs.mkdirSync(path.join(dir, 'sources.list.d'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('no sources: fails with a message naming DEBIAN_MIRROR, prints no mirror', () => {
    const r = detect(dir);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/no Debian mirror found in apt's sources/);
    expect(r.stderr).toMatch(/DEBIAN_MIRROR/);
  });

  test('one-line format, with [options]', () => {
    fs.writeFileSync(path.join(dir, 'sources.list'), '# a comment\ndeb [arch=amd64 signed-by=/k.gpg] https://one.example/debian bookworm main\n');
    expect(detect(dir)).toMatchObject({ status: 0, stdout: 'https://one.example/debian' });
  });

  test('deb822: skips other suites and disabled paragraphs, prefers the base suite', () => {
    fs.writeFileSync(
      path.join(dir, 'sources.list.d', 'a.sources'),
      [
        'Types: deb\nURIs: https://vendor.example/apt\nSuites: nodistro\nComponents: main',
        'Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\nEnabled: no',
        'Types: deb deb-src\n# a comment inside\nURIs: http://trixie.example/debian\nSuites: trixie trixie-updates',
        'Types: deb\nURIs: http://bookworm.example/debian\nSuites: bookworm bookworm-updates',
      ].join('\n\n'),
    );
    expect(detect(dir)).toMatchObject({ status: 0, stdout: 'http://bookworm.example/debian' });
  });

  test('another Debian release only: its mirror (a Debian mirror carries every release)', () => {
    fs.writeFileSync(path.join(dir, 'sources.list.d', 'debian.sources'), 'Types: deb\nURIs: http://trixie.example/debian\nSuites: trixie\n');
    expect(detect(dir)).toMatchObject({ status: 0, stdout: 'http://trixie.example/debian' });
  });

  test('DEBIAN_MIRROR wins over the sources', () => {
    expect(detect(dir, { DEBIAN_MIRROR: 'http://given.example/debian' })).toMatchObject({ status: 0, stdout: 'http://given.example/debian' });
  });

  test('this machine: whatever apt uses, when it names a Debian mirror', () => {
    const r = detect('/etc/apt');
    if (r.status === 0) expect(r.stdout).toMatch(/^https?:\/\/\S+$/);
    else expect(r.stderr).toMatch(/no Debian mirror found/);
  });
});

