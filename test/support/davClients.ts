/**
 * The WebDAV clients no one here wrote, as the tests drive them: Debian's `litmus` compliance suite
 * and `rclone` (scripts/ensure-webdav-clients.sh installs both). Shared by the runs over the
 * volume port's fake (test/http) and through the real engine (test/integration).
 */
import { execFile } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export const LITMUS = ['/usr/bin/litmus', '/usr/local/bin/litmus'].find((p) => fs.existsSync(p)) ?? null;
export const RCLONE = ['/usr/bin/rclone', '/usr/local/bin/rclone'].find((p) => fs.existsSync(p)) ?? null;
export const LITMUS_GROUPS = ['basic', 'copymove', 'props', 'locks'] as const;
export type LitmusGroup = (typeof LITMUS_GROUPS)[number];

export interface LitmusResult {
  group: string;
  test: string;
  outcome: 'pass' | 'FAIL' | 'WARNING' | 'SKIPPED';
  detail: string;
}

export function parseLitmus(group: string, output: string): LitmusResult[] {
  const results: LitmusResult[] = [];
  for (const line of output.split('\n')) {
    // Without a terminal litmus prints each test's name twice: "3. put_get.....  3. put_get..... pass".
    const match = /\b\d+\.\s+([\w-]+)\.+\s+(pass|FAIL|WARNING|SKIPPED)\b\s*(.*)$/.exec(line);
    if (match) results.push({ group, test: match[1] as string, outcome: match[2] as LitmusResult['outcome'], detail: (match[3] ?? '').trim() });
    else if (results.length > 0 && /^\s{4,}/.test(line) && !/^\s*\d+\./.test(line)) {
      const last = results[results.length - 1] as LitmusResult;
      last.detail = `${last.detail} ${line.trim()}`.trim();
    }
  }
  return results;
}

function litmusGroup(url: string, username: string, secret: string, group: LitmusGroup, timeoutMs: number): Promise<LitmusResult[]> {
  return new Promise((resolve) => {
    execFile(LITMUS as string, [url, username, secret], { env: { ...process.env, TESTS: group }, timeout: timeoutMs }, (_err, stdout, stderr) => {
      const output = `${stdout}${stderr}`;
      const results = parseLitmus(group, output);
      if (results.length === 0) process.stdout.write(`litmus ${group} printed no results:\n${output}\n`);
      resolve(results);
    });
  });
}

/**
 * Runs the groups of litmus against `url` and returns every result in group order (a group that
 * printed none is reported on stdout). `atOnce`: each group in a folder of its own under `url`
 * (made here), all of them at the same time: through the real engine every request waits on a
 * few `docker exec`s, so four clients at once take about the time of the longest group.
 */
export async function runLitmus(url: string, username: string, secret: string, groups: readonly LitmusGroup[] = LITMUS_GROUPS, timeoutMs = 300_000, options: { atOnce?: boolean } = {}): Promise<LitmusResult[]> {
  if (!options.atOnce) {
    const all: LitmusResult[] = [];
    for (const group of groups) all.push(...(await litmusGroup(url, username, secret, group, timeoutMs)));
    return all;
  }
  const authorization = `Basic ${Buffer.from(`${username}:${secret}`).toString('base64')}`;
  for (const group of groups) {
    const made = await fetch(`${url}${group}/`, { method: 'MKCOL', headers: { authorization } });
    if (made.status !== 201 && made.status !== 405) throw new Error(`MKCOL ${url}${group}/ answered ${made.status}`);
  }
  const results = await Promise.all(groups.map((group) => litmusGroup(`${url}${group}/`, username, secret, group, timeoutMs)));
  return results.flat();
}

/** One line per group (passed of run) with every failure and warning and its reason: the record a closing note quotes. */
export function litmusReport(all: LitmusResult[], known: Record<string, string>, groups: readonly LitmusGroup[] = LITMUS_GROUPS): string {
  return groups.map((group) => {
    const mine = all.filter((r) => r.group === group);
    const passed = mine.filter((r) => r.outcome === 'pass').length;
    const failures = mine.filter((r) => r.outcome === 'FAIL').map((r) => `    FAIL ${r.test}: ${r.detail}${known[`${group}/${r.test}`] ? ` (known: ${known[`${group}/${r.test}`]})` : ''}`);
    const warnings = mine.filter((r) => r.outcome === 'WARNING').map((r) => `    WARNING ${r.test}: ${r.detail}`);
    return [`${group}: ${passed}/${mine.length} passed`, ...failures, ...warnings].join('\n');
  }).join('\n');
}

export function rclone(args: string[], env: Record<string, string> = {}, timeoutMs = 120_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(RCLONE as string, args, { env: { ...process.env, ...env }, timeout: timeoutMs, maxBuffer: 16 * 1024 ** 2 }, (err, stdout, stderr) =>
      err ? reject(new Error(`rclone ${args[0]} failed: ${stderr}`)) : resolve(stdout.trim()),
    );
  });
}

/** rclone's environment for a remote named `dav` at `url` (its config file made empty in `work`). */
export async function rcloneRemote(work: string, url: string, username: string, secret: string): Promise<Record<string, string>> {
  const config = path.join(work, 'rclone.conf');
  fs.writeFileSync(config, '');
  return {
    RCLONE_CONFIG: config,
    RCLONE_CONFIG_DAV_TYPE: 'webdav',
    RCLONE_CONFIG_DAV_URL: url,
    RCLONE_CONFIG_DAV_VENDOR: 'other',
    RCLONE_CONFIG_DAV_USER: username,
    RCLONE_CONFIG_DAV_PASS: await rclone(['obscure', secret]),
  };
}

/** Every file (relative path → SHA-256, streamed) and every folder of a tree. */
export function snapshotTree(root: string): { files: Record<string, string>; dirs: string[] } {
  const files: Record<string, string> = {};
  const dirs: string[] = [];
  const walk = (rel: string) => {
    for (const entry of fs.readdirSync(path.join(root, rel), { withFileTypes: true })) {
      const child = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.isDirectory()) {
        dirs.push(child);
        walk(child);
      } else files[child] = sha256OfFile(path.join(root, child));
    }
  };
  walk('');
  return { files, dirs: dirs.sort() };
}

function sha256OfFile(file: string): string {
  const hash = createHash('sha256');
  const fd = fs.openSync(file, 'r');
  try {
    const buffer = Buffer.alloc(1024 ** 2);
    for (let n = fs.readSync(fd, buffer); n > 0; n = fs.readSync(fd, buffer)) hash.update(buffer.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest('hex');
}

/** Writes a tree of unicode names, awkward characters, empty folders and one file of `largeBytes` (random). */
export function writeAwkwardTree(root: string, largeBytes: number): void {
  const files: Record<string, Buffer> = {
    'héllo wörld/日本語のファイル.txt': Buffer.from('こんにちは\n'),
    'émoji 🚀/naïve café.md': Buffer.from('# ünïcödé\n'),
    'odd names/100% #1 & more [x].txt': Buffer.from('odd'),
    'deep/a/b/c/d.bin': Buffer.from(Array.from({ length: 1000 }, (_, i) => (i * 7) % 256)),
    'empty.txt': Buffer.alloc(0),
  };
  for (const [rel, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), content);
  }
  // The large file in 1 MiB pieces of random bytes: no buffer of its whole size.
  const fd = fs.openSync(path.join(root, 'large.bin'), 'w');
  try {
    const piece = Buffer.alloc(1024 ** 2);
    for (let left = largeBytes; left > 0; left -= piece.length) {
      randomFillSync(piece);
      fs.writeSync(fd, piece, 0, Math.min(piece.length, left));
    }
  } finally {
    fs.closeSync(fd);
  }
  for (const empty of ['empty folder', 'deep/a/also empty', '空のフォルダ']) fs.mkdirSync(path.join(root, empty), { recursive: true });
}

// ---- mounts: ordinary programs reading and writing through /dav/ ----

export const MOUNT_DAVFS = ['/usr/sbin/mount.davfs', '/sbin/mount.davfs'].find((p) => fs.existsSync(p)) ?? null;
export const FUSERMOUNT = ['/usr/bin/fusermount3', '/bin/fusermount3', '/usr/bin/fusermount'].find((p) => fs.existsSync(p)) ?? null;
/** Mounting takes root (davfs2) and the kernel's FUSE device (both clients). */
export const CAN_MOUNT = process.getuid?.() === 0 && fs.existsSync('/dev/fuse');

export interface ProgramRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * A program run as a child process. Anything that touches a mount of /dav/ must go through here
 * when the server is this process: a synchronous fs call on the mount would block the event loop
 * that has to answer it.
 */
export function program(file: string, args: string[], options: { env?: Record<string, string>; timeoutMs?: number } = {}): Promise<ProgramRun> {
  return new Promise((resolve) => {
    execFile(file, args, { env: { ...process.env, ...options.env }, timeout: options.timeoutMs ?? 120_000, maxBuffer: 16 * 1024 ** 2 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

function mounted(mountpoint: string): boolean {
  return fs.readFileSync('/proc/mounts', 'utf8').split('\n').some((line) => line.split(' ')[1] === mountpoint);
}

async function waitUntilMounted(mountpoint: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!mounted(mountpoint)) {
    if (Date.now() > deadline) throw new Error(`${mountpoint} was not mounted within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * Mounts `url` with davfs2 at `mountpoint` (credentials in a secrets file of `work`, never on a
 * command line) and returns its unmount, which waits until davfs2 has uploaded what it cached.
 */
export async function mountDavfs(url: string, username: string, secret: string, work: string, mountpoint: string): Promise<() => Promise<void>> {
  const secrets = path.join(work, 'davfs2.secrets');
  const conf = path.join(work, 'davfs2.conf');
  fs.writeFileSync(secrets, `${url} ${username} ${secret}\n`, { mode: 0o600 });
  // ask_auth 0: fail rather than prompt; use_locks: what Finder and Explorer do too.
  fs.writeFileSync(conf, `secrets ${secrets}\nask_auth 0\nuse_locks 1\n`);
  fs.mkdirSync(mountpoint, { recursive: true });
  const run = await program(MOUNT_DAVFS as string, [url, mountpoint, '-o', `conf=${conf},rw`], { timeoutMs: 60_000 });
  if (run.code !== 0) throw new Error(`mount.davfs exited ${run.code}: ${run.stderr}`);
  await waitUntilMounted(mountpoint, 10_000);
  return async () => {
    if (!mounted(mountpoint)) return;
    const done = await program('umount', [mountpoint], { timeoutMs: 300_000 });
    if (done.code !== 0) throw new Error(`umount ${mountpoint} exited ${done.code}: ${done.stderr}`);
  };
}

/**
 * Mounts the rclone remote `dav:` (rcloneRemote's environment) at `mountpoint`. Writes are cached
 * and uploaded when a file is closed, at once (no write-back delay), so an unmount loses nothing.
 */
export async function mountRclone(env: Record<string, string>, mountpoint: string): Promise<() => Promise<void>> {
  fs.mkdirSync(mountpoint, { recursive: true });
  const run = await program(RCLONE as string, ['mount', 'dav:', mountpoint, '--daemon', '--vfs-cache-mode', 'writes', '--vfs-write-back', '0s', '--dir-cache-time', '1s'], { env, timeoutMs: 60_000 });
  if (run.code !== 0) throw new Error(`rclone mount exited ${run.code}: ${run.stderr}`);
  await waitUntilMounted(mountpoint, 30_000);
  return async () => {
    if (!mounted(mountpoint)) return;
    const done = await program(FUSERMOUNT as string, ['-u', mountpoint], { timeoutMs: 60_000 });
    if (done.code !== 0) throw new Error(`fusermount -u ${mountpoint} exited ${done.code}: ${done.stderr}`);
  };
}
