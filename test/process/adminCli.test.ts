/**
 * The BUILT operator CLI (dist/cli/admin.js) against a data directory, with the server stopped
 * and with the built server (dist/main.js) running on the same directory. scripts/test.sh
 * builds before running jest.
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { DATABASE_FILE_NAME } from '../../src/db/database';
import { LATEST_SCHEMA_VERSION } from '../../src/db/migrations';
import { createHarness } from '../support/harness';
import {
  assertBuilt,
  call as httpCall,
  CLI,
  cleanUpProcesses,
  field,
  login,
  MAIN,
  processTest,
  reporting,
  sessionCookie,
  spawnNode,
  startServer,
  stopServer,
  tempDir,
  TEST_INSTANCE,
  TEST_TIMEOUT_MS,
  type Reply,
  type Server,
} from '../support/processes';

const ADMIN_PASSWORD = 'correct horse battery staple';
const MEMBER_PASSWORD = 'violet kangaroo piano 42';
const NEW_PASSWORD = 'a brand new passphrase 7';
/** What newTemporaryPassword() produces: four dash-separated groups of five, no look-alikes. */
const TEMPORARY_PASSWORD = /^[a-km-z2-9]{5}(?:-[a-km-z2-9]{5}){3}$/;
const STACK_FRAME = /^\s+at .+/m;

// ---------------------------------------------------------------------------------------------
// The CLI

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node dist/cli/admin.js <args>` on the data directory and waits for it to finish. */
async function runCli(dataDir: string, args: string[], vars: Record<string, string> = {}): Promise<CliResult> {
  const child = spawnNode(`admin CLI ${args.join(' ')}`, CLI, args, { CLAWLOOPS_DATA_DIR: dataDir, ...vars });
  const exit = await child.waitForExit();
  expect(exit.signal).toBeNull();
  return { code: exit.code, stdout: child.stdout, stderr: child.stderr };
}

/** The temporary password the CLI deliberately prints for `reset-password <username>`. */
function printedPassword(result: CliResult, username: string): string {
  const match = new RegExp(`^Temporary password for ${username}: (\\S+)$`, 'm').exec(result.stdout);
  if (!match?.[1]) throw new Error(`no temporary password in the CLI output:\n${result.stdout}`);
  return match[1];
}

/** A same-origin call from the platform's own page, optionally signed in. */
function call(server: Server, method: string, urlPath: string, options: { json?: unknown; cookie?: string } = {}): Promise<Reply> {
  const headers: Record<string, string> = { Origin: server.publicUrl };
  if (options.cookie) headers.Cookie = options.cookie;
  return httpCall(server, method, urlPath, { json: options.json, headers });
}

// ---------------------------------------------------------------------------------------------
// The data directory

interface Prepared {
  dataDir: string;
  adminId: string;
  memberId: string;
}

/**
 * A data directory with admin `admin`, member `bob` and optionally a second admin `backup`,
 * made in-process with the test harness (the server is not running).
 */
async function prepareDataDir(options: { disableMember?: boolean; secondAdmin?: 'active' | 'disabled' } = {}): Promise<Prepared> {
  const dataDir = tempDir();
  const h = createHarness({ dataDir, env: { CLAWLOOPS_INSTANCE: TEST_INSTANCE } });
  try {
    const { client: admin, userId: adminId } = await h.setupAdmin('admin', ADMIN_PASSWORD);
    const { userId: memberId } = await h.createMember(admin, 'bob', MEMBER_PASSWORD);
    if (options.disableMember) await admin.patch(`/api/v1/admin/users/${memberId}`).send({ status: 'disabled' }).expect(200);
    if (options.secondAdmin) {
      const created = await admin.post('/api/v1/admin/users').send({ username: 'backup', role: 'admin', displayName: 'Backup Admin' }).expect(201);
      const backupId = String(field(created.body, 'user.id'));
      if (options.secondAdmin === 'disabled') await admin.patch(`/api/v1/admin/users/${backupId}`).send({ status: 'disabled' }).expect(200);
    }
    return { dataDir, adminId, memberId };
  } finally {
    h.close();
  }
}

/** Reads the database directly (read-only), the way an auditor would. */
function inspect<T>(dataDir: string, read: (db: Database.Database) => T): T {
  const db = new Database(path.join(dataDir, DATABASE_FILE_NAME), { readonly: true, fileMustExist: true });
  try {
    return read(db);
  } finally {
    db.close();
  }
}

interface UserRow {
  username: string;
  status: string;
  must_change_password: number;
  password_hash: string;
}

function userRow(dataDir: string, username: string): UserRow {
  const row = inspect(dataDir, (db) => db.prepare('SELECT username, status, must_change_password, password_hash FROM users WHERE username = ?').get(username)) as
    | UserRow
    | undefined;
  if (!row) throw new Error(`no user ${username} in the database`);
  return row;
}

function sessionCount(dataDir: string, userId: string): number {
  return (inspect(dataDir, (db) => db.prepare('SELECT COUNT(*) AS n FROM sessions WHERE user_id = ?').get(userId)) as { n: number }).n;
}

/** Every stored secret-derived value: no CLI output may contain any of them. */
function storedSecrets(dataDir: string): string[] {
  return inspect(dataDir, (db) => {
    const hashes = db.prepare('SELECT password_hash AS v FROM users').all() as { v: string }[];
    const tokens = db.prepare('SELECT token_hash AS v FROM sessions').all() as { v: string }[];
    return [...hashes, ...tokens].map((r) => r.v);
  });
}

function expectNoSecrets(output: string, dataDir: string, extra: string[] = []): void {
  expect(output).not.toMatch(/scrypt\$/);
  for (const secret of [...storedSecrets(dataDir), ADMIN_PASSWORD, MEMBER_PASSWORD, NEW_PASSWORD, ...extra]) {
    expect(output).not.toContain(secret);
  }
}

// ---------------------------------------------------------------------------------------------

beforeAll(() => assertBuilt([CLI, MAIN]));
afterEach(cleanUpProcesses);

describe('reset-password with the server stopped', () => {
  processTest('prints a temporary password once; it signs in (change required), the old one does not; sessions end; audited', async () => {
    const { dataDir, adminId } = await prepareDataDir();
    expect(sessionCount(dataDir, adminId)).toBeGreaterThan(0);
    const hashBefore = userRow(dataDir, 'admin').password_hash;

    const result = await runCli(dataDir, ['reset-password', 'admin']);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe('');
    const temporary = printedPassword(result, 'admin');
    expect(temporary).toMatch(TEMPORARY_PASSWORD);
    expect(result.stdout.split(temporary)).toHaveLength(2); // printed exactly once
    expect(result.stdout).toMatch(/must be changed at the next sign-in/);
    expect(result.stdout).not.toMatch(/re-enabled/);
    expectNoSecrets(result.stdout, dataDir, [hashBefore]);

    const row = userRow(dataDir, 'admin');
    expect(row.password_hash).not.toBe(hashBefore);
    expect(row.must_change_password).toBe(1);
    expect(row.status).toBe('active');
    expect(sessionCount(dataDir, adminId)).toBe(0);
    const audit = inspect(dataDir, (db) => db.prepare("SELECT actor_username, target_label FROM audit_log WHERE action = 'password.reset'").all());
    expect(audit).toEqual([{ actor_username: '(cli)', target_label: 'admin' }]);

    const server = await startServer(dataDir);
    expect((await login(server, 'admin', ADMIN_PASSWORD)).status).toBe(401);
    const signedIn = await login(server, 'admin', temporary);
    expect(signedIn.status).toBe(200);
    expect(field(signedIn.body, 'user.mustChangePassword')).toBe(true);
    const cookie = sessionCookie(signedIn);
    const blocked = await call(server, 'GET', '/api/v1/admin/users', { cookie });
    expect([blocked.status, field(blocked.body, 'error.code')]).toEqual([403, 'PASSWORD_CHANGE_REQUIRED']);

    const changed = await call(server, 'POST', '/api/v1/account/password', { cookie, json: { currentPassword: temporary, newPassword: NEW_PASSWORD } });
    expect(changed.status).toBe(204);
    expect((await login(server, 'admin', temporary)).status).toBe(401);
    const after = await login(server, 'admin', NEW_PASSWORD);
    expect([after.status, field(after.body, 'user.mustChangePassword')]).toEqual([200, false]);
    await stopServer(server);
    expect(server.child.output).not.toContain(temporary);
  });

  processTest('re-enables a disabled account and says so', async () => {
    const { dataDir, memberId } = await prepareDataDir({ disableMember: true });
    expect(userRow(dataDir, 'bob').status).toBe('disabled');

    const result = await runCli(dataDir, ['reset-password', 'BOB']);
    expect(result.code).toBe(0);
    const temporary = printedPassword(result, 'bob');
    expect(result.stdout).toMatch(/The account was disabled and has been re-enabled\./);
    expectNoSecrets(result.stdout + result.stderr, dataDir);
    expect(userRow(dataDir, 'bob').status).toBe('active');
    expect(sessionCount(dataDir, memberId)).toBe(0);

    const server = await startServer(dataDir);
    expect((await login(server, 'bob', MEMBER_PASSWORD)).status).toBe(401);
    const signedIn = await login(server, 'bob', temporary);
    expect(signedIn.status).toBe(200);
    expect(field(signedIn.body, 'user')).toMatchObject({ username: 'bob', status: 'active', mustChangePassword: true });
  });

  processTest('an unknown user exits non-zero with a clear message and changes nothing', async () => {
    const { dataDir } = await prepareDataDir();
    const hashesBefore = storedSecrets(dataDir);
    const auditBefore = inspect(dataDir, (db) => db.prepare('SELECT COUNT(*) AS n FROM audit_log').get());

    const result = await runCli(dataDir, ['reset-password', 'ghost']);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain('No user named "ghost".');
    expect(result.stdout).toBe('');
    expect(result.stderr).not.toMatch(STACK_FRAME);
    expect(storedSecrets(dataDir)).toEqual(hashesBefore);
    expect(inspect(dataDir, (db) => db.prepare('SELECT COUNT(*) AS n FROM audit_log').get())).toEqual(auditBefore);
  });
});

describe('list-admins', () => {
  processTest('lists administrators with their status, not members, and no secrets', async () => {
    const { dataDir } = await prepareDataDir({ secondAdmin: 'disabled' });
    const result = await runCli(dataDir, ['list-admins']);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe('');
    expect(result.stdout.trim().split('\n').sort()).toEqual(['admin\tactive\tadmin', 'backup\tdisabled\tBackup Admin']);
    expectNoSecrets(result.stdout, dataDir);
  });

  processTest('says how to create the first administrator when there is none', async () => {
    const result = await runCli(path.join(tempDir(), 'fresh'), ['list-admins']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/No administrator exists yet/);
  });
});

describe('backup-keygen and restore', () => {
  processTest('backup-keygen writes an age key only its owner reads, and never overwrites one', async () => {
    const dir = tempDir();
    const file = `${dir}/backup-key.txt`;
    const made = await runCli(dir, ['backup-keygen', file]);
    expect(made.code).toBe(0);
    expect(made.stdout).toMatch(/public key age1[0-9a-z]{58}/);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    const key = fs.readFileSync(file, 'utf8');
    expect(key).toMatch(/^AGE-SECRET-KEY-1[0-9A-Z]{58}$/m);
    const again = await runCli(dir, ['backup-keygen', file]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('never overwritten');
    expect(fs.readFileSync(file, 'utf8')).toBe(key);
  });

  processTest('restore without a key, or of a folder that is no backup, says so and writes nothing', async () => {
    const dir = tempDir();
    const noKey = await runCli(`${dir}/data`, ['restore', dir]);
    expect(noKey.code).toBe(2);
    expect(noKey.stderr).toContain('CLAWLOOPS_BACKUP_KEY_FILE');
    const keyFile = `${dir}/key.txt`;
    expect((await runCli(dir, ['backup-keygen', keyFile])).code).toBe(0);
    const notABackup = await runCli(`${dir}/data`, ['restore', dir], { CLAWLOOPS_BACKUP_KEY_FILE: keyFile });
    expect(notABackup.code).toBe(1);
    expect(notABackup.stderr).toMatch(/holds no ClawLoops backup/);
    expect(notABackup.stderr).not.toMatch(/\n\s+at /);
    expect(fs.existsSync(`${dir}/data/clawloops.db`)).toBe(false);
  });
});

describe('backup from the command line', () => {
  processTest('backup without a key says how to make one; with one it writes the database part and the manifest into the backup folder', async () => {
    const dir = tempDir();
    const dataDir = `${dir}/data`;
    const seeded = await runCli(dataDir, ['list-admins']);
    expect(seeded.code).toBe(0);
    const noKey = await runCli(dataDir, ['backup']);
    expect([noKey.code, noKey.stderr]).toEqual([2, expect.stringContaining('backup-keygen')]);
    const keyFile = `${dir}/key.txt`;
    expect((await runCli(dir, ['backup-keygen', keyFile])).code).toBe(0);
    const vars = { CLAWLOOPS_BACKUP_KEY_FILE: keyFile, CLAWLOOPS_BACKUP_DIR: `${dir}/backups` };
    const made = await runCli(dataDir, ['backup'], vars);
    expect(made.stderr).toBe('');
    expect(made.code).toBe(0);
    expect(made.stdout).toMatch(/^Database …\n/);
    const id = /Backup (\d{8}T\d{6}Z-[0-9a-f]{6}) written to /.exec(made.stdout)?.[1] ?? '';
    expect(fs.readdirSync(`${dir}/backups`)).toEqual([id]);
    expect(fs.readdirSync(`${dir}/backups/${id}`).sort()).toEqual(['database.sqlite.age', 'manifest.json.age']);
    expect((await runCli(dataDir, ['backup', 'extra'], vars)).code).toBe(2);
  });
});

describe('with the server running on the same data directory', () => {
  processTest('reset-password ends the running session; the old password stops working and the new one works', async () => {
    const dataDir = tempDir();
    const server = await startServer(dataDir, { CLAWLOOPS_ADMIN_USERNAME: 'admin', CLAWLOOPS_ADMIN_PASSWORD: ADMIN_PASSWORD });
    const before = await login(server, 'admin', ADMIN_PASSWORD);
    expect(before.status).toBe(200);
    const oldCookie = sessionCookie(before);
    expect((await call(server, 'GET', '/api/v1/auth/me', { cookie: oldCookie })).status).toBe(200);

    const result = await runCli(dataDir, ['reset-password', 'admin']);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe('');
    const temporary = printedPassword(result, 'admin');
    expectNoSecrets(result.stdout, dataDir, [oldCookie.split('=')[1] as string]);

    expect((await call(server, 'GET', '/api/v1/auth/me', { cookie: oldCookie })).status).toBe(401);
    expect((await login(server, 'admin', ADMIN_PASSWORD)).status).toBe(401);
    const after = await login(server, 'admin', temporary);
    expect([after.status, field(after.body, 'user.mustChangePassword')]).toEqual([200, true]);

    const listed = await runCli(dataDir, ['list-admins']);
    expect([listed.code, listed.stdout]).toEqual([0, 'admin\tactive\tadmin\n']);

    // The server kept serving throughout and shuts down cleanly.
    expect((await call(server, 'GET', '/healthz')).status).toBe(200);
    await stopServer(server);
    expect(server.child.output).not.toContain(temporary);
    expect(server.child.output).not.toContain(ADMIN_PASSWORD);
  });
});

describe('usage and start-up errors', () => {
  test.each<[string[], number, RegExp]>([
    [[], 2, /Usage: npm run admin -- <command>/],
    [['help'], 0, /reset-password <username>/],
    [['--help'], 0, /list-admins/],
    [['reset-password'], 2, /reset-password needs exactly one username/],
    [['reset-password', 'a', 'b'], 2, /reset-password needs exactly one username/],
    [['frobnicate'], 2, /Unknown command "frobnicate"/],
  ])(
    'admin %j exits %d',
    reporting(async (args: string[], code: number, message: RegExp) => {
      const dir = path.join(tempDir(), 'data');
      const child = spawnNode(`admin CLI ${args.join(' ')}`, CLI, args, { CLAWLOOPS_DATA_DIR: dir });
      const exit = await child.waitForExit();
      expect(exit).toEqual({ code, signal: null });
      expect(child.output).toMatch(message);
      expect(child.output).not.toMatch(STACK_FRAME);
    }),
    TEST_TIMEOUT_MS,
  );

  processTest('a bad variable exits non-zero naming it', async () => {
    const result = await runCli(path.join(tempDir(), 'data'), ['list-admins'], { CLAWLOOPS_SESSION_MAX_AGE: 'forever' });
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain('CLAWLOOPS_SESSION_MAX_AGE');
    expect(result.stderr).not.toMatch(STACK_FRAME);
  });

  processTest('a database written by a newer ClawLoops is refused and left untouched', async () => {
    const dataDir = tempDir();
    const tooNew = LATEST_SCHEMA_VERSION + 1;
    const raw = new Database(path.join(dataDir, DATABASE_FILE_NAME));
    raw.pragma(`user_version = ${tooNew}`);
    raw.close();

    const result = await runCli(dataDir, ['list-admins']);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain(`schema version ${tooNew}`);
    expect(result.stderr).toContain(`only knows up to version ${LATEST_SCHEMA_VERSION}`);
    expect(result.stderr).not.toMatch(STACK_FRAME);
    expect(inspect(dataDir, (db) => db.pragma('user_version', { simple: true }))).toBe(tooNew);
  });
});
