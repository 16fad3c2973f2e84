import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { DATABASE_FILE_NAME, openDatabase, type Db } from '../../src/db/database';
import { DatabaseTooNewError, LATEST_SCHEMA_VERSION, MIGRATIONS, migrate, migrateWithCopy, MigrationFailedError, schemaVersion } from '../../src/db/migrations';

const EXPECTED_TABLES = ['audit_log', 'invitations', 'readiness_probe', 'sessions', 'users'];

let tempRoot: string;
let dataDir: string;
const opened: Db[] = [];

/** Opens the data directory's database the way the platform does, closed again in afterEach. */
function open(dir = dataDir): Db {
  const db = openDatabase(dir);
  opened.push(db);
  return db;
}

/** A connection that bypasses openDatabase (no pragmas), as another tool would open the file. */
function openRaw(dir = dataDir): Db {
  const db = new Database(path.join(dir, DATABASE_FILE_NAME));
  opened.push(db);
  return db;
}

function tables(db: Db): string[] {
  const rows = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").all() as { name: string }[];
  return rows.map((r) => r.name);
}

function insertUser(db: Db, id: string, username: string): void {
  db.prepare(
    `INSERT INTO users (id, username, display_name, role, status, password_hash, created_at, updated_at)
     VALUES (?, ?, ?, 'member', 'active', 'scrypt$1$1$1$x$y', 1, 1)`,
  ).run(id, username, username);
}

function insertAudit(db: Db, action: string): number {
  return Number(db.prepare("INSERT INTO audit_log (at, action, actor_username, detail) VALUES (?, ?, 'tester', '{}')").run(Date.now(), action).lastInsertRowid);
}

beforeEach(() => {
  tempRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'clawloops-migrations-'));
  dataDir = path.join(tempRoot, 'data');
});

afterEach(() => {
  for (const db of opened.splice(0)) if (db.open) db.close();
  fs.rmSync(tempRoot, { recursive: true, force: true });
});

test('the latest schema version is a positive integer', () => {
  expect(Number.isSafeInteger(LATEST_SCHEMA_VERSION)).toBe(true);
  expect(LATEST_SCHEMA_VERSION).toBeGreaterThanOrEqual(1);
});

describe('fresh database', () => {
  test('starts at version 0 and is migrated to the latest version with every table', () => {
    const db = open();
    expect(schemaVersion(db)).toBe(0);
    expect(tables(db)).toEqual([]);

    expect(migrate(db)).toEqual({ from: 0, to: LATEST_SCHEMA_VERSION });
    expect(schemaVersion(db)).toBe(LATEST_SCHEMA_VERSION);
    expect(tables(db)).toEqual(expect.arrayContaining(EXPECTED_TABLES));
  });

  test('the version is stored in the file, visible to a later connection', () => {
    migrate(open());
    expect(Number(openRaw().pragma('user_version', { simple: true }))).toBe(LATEST_SCHEMA_VERSION);
  });
});

describe('running migrations again', () => {
  test('on the same connection does nothing and keeps the data', () => {
    const db = open();
    migrate(db);
    insertUser(db, 'u1', 'alice');
    const auditId = insertAudit(db, 'test.event');

    expect(() => migrate(db)).not.toThrow();
    expect(migrate(db)).toEqual({ from: LATEST_SCHEMA_VERSION, to: LATEST_SCHEMA_VERSION });
    expect(schemaVersion(db)).toBe(LATEST_SCHEMA_VERSION);
    expect(db.prepare('SELECT id, username FROM users').all()).toEqual([{ id: 'u1', username: 'alice' }]);
    expect(db.prepare('SELECT id, action FROM audit_log').all()).toEqual([{ id: auditId, action: 'test.event' }]);
  });

  test('after reopening the database (a restart) does nothing and keeps the data', () => {
    const first = open();
    migrate(first);
    insertUser(first, 'u1', 'alice');
    first.close();

    const second = open();
    expect(migrate(second)).toEqual({ from: LATEST_SCHEMA_VERSION, to: LATEST_SCHEMA_VERSION });
    expect(tables(second)).toEqual(expect.arrayContaining(EXPECTED_TABLES));
    expect(second.prepare('SELECT username FROM users').all()).toEqual([{ username: 'alice' }]);
  });

  test('from a second connection while the first is open (server and CLI) does nothing', () => {
    const server = open();
    const cli = open();
    migrate(server);
    insertUser(server, 'u1', 'alice');
    expect(migrate(cli)).toEqual({ from: LATEST_SCHEMA_VERSION, to: LATEST_SCHEMA_VERSION });
    expect(cli.prepare('SELECT COUNT(*) AS n FROM users').get()).toEqual({ n: 1 });
  });
});

describe('a database from a newer ClawLoops', () => {
  const TOO_NEW = LATEST_SCHEMA_VERSION + 1;

  function makeTooNew(extra = 0): void {
    fs.mkdirSync(dataDir, { recursive: true });
    const raw = new Database(path.join(dataDir, DATABASE_FILE_NAME));
    raw.exec('CREATE TABLE future_things (id INTEGER PRIMARY KEY)');
    raw.pragma(`user_version = ${TOO_NEW + extra}`);
    raw.close();
  }

  test('is refused with DatabaseTooNewError saying which versions are involved', () => {
    makeTooNew();
    const db = open();
    let thrown: unknown;
    try {
      migrate(db);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(DatabaseTooNewError);
    const err = thrown as DatabaseTooNewError;
    expect(err.name).toBe('DatabaseTooNewError');
    expect(err.found).toBe(TOO_NEW);
    expect(err.supported).toBe(LATEST_SCHEMA_VERSION);
    expect(err.message).toContain(`schema version ${TOO_NEW}`);
    expect(err.message).toContain(`only knows up to version ${LATEST_SCHEMA_VERSION}`);
    expect(err.message).toMatch(/newer ClawLoops/);
  });

  test('is left untouched', () => {
    makeTooNew(41);
    const db = open();
    expect(() => migrate(db)).toThrow(DatabaseTooNewError);
    expect(schemaVersion(db)).toBe(TOO_NEW + 41);
    expect(tables(db)).toEqual(['future_things']);
  });
});

describe('connection settings', () => {
  test('WAL journal, foreign keys on, and a busy timeout', () => {
    const db = open();
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('foreign_keys', { simple: true })).toBe(1);
    expect(Number(db.pragma('busy_timeout', { simple: true }))).toBeGreaterThan(0);
  });

  test('WAL persists in the file: a plain connection sees it too', () => {
    open();
    expect(openRaw().pragma('journal_mode', { simple: true })).toBe('wal');
  });

  test('foreign keys are enforced', () => {
    const db = open();
    migrate(db);
    const orphanSession = () =>
      db
        .prepare("INSERT INTO sessions (id, user_id, token_hash, created_at, last_seen_at, expires_at) VALUES ('s1', 'no-such-user', 'h', 1, 1, 2)")
        .run();
    expect(orphanSession).toThrow(/FOREIGN KEY constraint failed/);

    insertUser(db, 'u1', 'alice');
    db.prepare("INSERT INTO sessions (id, user_id, token_hash, created_at, last_seen_at, expires_at) VALUES ('s1', 'u1', 'h', 1, 1, 2)").run();
    db.prepare("DELETE FROM users WHERE id = 'u1'").run();
    expect(db.prepare('SELECT COUNT(*) AS n FROM sessions').get()).toEqual({ n: 0 });
  });
});

describe('files on disk', () => {
  test('a missing data directory is created (owner-only) and the database file is mode 0600', () => {
    const nested = path.join(tempRoot, 'a', 'b', 'data');
    open(nested);
    expect(fs.statSync(nested).isDirectory()).toBe(true);
    expect(fs.statSync(nested).mode & 0o777).toBe(0o700);
    expect(fs.statSync(path.join(nested, DATABASE_FILE_NAME)).mode & 0o777).toBe(0o600);
  });

  test('an existing database file with loose permissions is tightened to 0600', () => {
    fs.mkdirSync(dataDir, { recursive: true });
    const file = path.join(dataDir, DATABASE_FILE_NAME);
    new Database(file).close();
    fs.chmodSync(file, 0o644);
    open();
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
  });
});

describe('audit_log is append-only', () => {
  let db: Db;
  let id: number;
  beforeEach(() => {
    db = open();
    migrate(db);
    id = insertAudit(db, 'login.success');
  });

  test('rows can be appended', () => {
    insertAudit(db, 'logout');
    expect(db.prepare('SELECT action FROM audit_log ORDER BY id').all()).toEqual([{ action: 'login.success' }, { action: 'logout' }]);
  });

  test.each<[string, (db: Db, id: number) => unknown]>([
    ['UPDATE one row', (d, rowId) => d.prepare("UPDATE audit_log SET action = 'tampered' WHERE id = ?").run(rowId)],
    ['UPDATE every row', (d) => d.prepare("UPDATE audit_log SET actor_username = 'someone-else'").run()],
    ['DELETE one row', (d, rowId) => d.prepare('DELETE FROM audit_log WHERE id = ?').run(rowId)],
    ['DELETE every row', (d) => d.prepare('DELETE FROM audit_log').run()],
    ['INSERT OR REPLACE over an existing row', (d, rowId) => d.prepare("INSERT OR REPLACE INTO audit_log (id, at, action) VALUES (?, 1, 'forged')").run(rowId)],
    ['REPLACE over an existing row', (d, rowId) => d.prepare("REPLACE INTO audit_log (id, at, action) VALUES (?, 1, 'forged')").run(rowId)],
    [
      'an upsert over an existing row',
      (d, rowId) => d.prepare("INSERT INTO audit_log (id, at, action) VALUES (?, 1, 'forged') ON CONFLICT (id) DO UPDATE SET action = excluded.action").run(rowId),
    ],
  ])('%s is refused and changes nothing', (_what, tamper) => {
    insertAudit(db, 'logout');
    const before = db.prepare('SELECT * FROM audit_log ORDER BY id').all();
    expect(() => tamper(db, id)).toThrow(/audit_log is append-only/);
    expect(db.prepare('SELECT * FROM audit_log ORDER BY id').all()).toEqual(before);
  });

  test('the triggers survive a reopen', () => {
    db.close();
    const again = open();
    expect(() => again.prepare('DELETE FROM audit_log').run()).toThrow(/audit_log is append-only/);
    expect(again.prepare('SELECT COUNT(*) AS n FROM audit_log').get()).toEqual({ n: 1 });
  });
});

describe('version 10: who or what stopped a runtime', () => {
  test('upgrading a database with runtimes keeps every row, with no stop recorded', () => {
    const db = open();
    migrate(db, 9);
    insertUser(db, 'u1', 'alice');
    db.prepare("INSERT INTO runtimes (id, user_id, desired_state, created_at, updated_at) VALUES ('r1', 'u1', 'stopped', 1, 1)").run();

    expect(migrate(db)).toEqual({ from: 9, to: LATEST_SCHEMA_VERSION });
    expect(db.prepare('SELECT id, desired_state, stopped_by, stopped_at, stop_detail, stop_idle_ms, stop_actor FROM runtimes').all()).toEqual([
      { id: 'r1', desired_state: 'stopped', stopped_by: null, stopped_at: null, stop_detail: null, stop_idle_ms: null, stop_actor: null },
    ]);
  });
});

describe('upgrades', () => {
  /** Rows for every table a database of `version` has, with only the columns that version had. */
  function seed(db: Db, version: number): void {
    insertUser(db, 'u1', 'alice');
    db.prepare("INSERT INTO sessions (id, user_id, token_hash, created_at, last_seen_at, expires_at) VALUES ('s1', 'u1', 'h', 1, 1, 9)").run();
    db.prepare("INSERT INTO invitations (id, secret_hash, role, created_at, expires_at) VALUES ('i1', 'sh', 'member', 1, 9)").run();
    insertAudit(db, 'user.create');
    if (version >= 2) db.prepare("INSERT INTO runtimes (id, user_id, desired_state, created_at, updated_at) VALUES ('r1', 'u1', 'stopped', 1, 1)").run();
    if (version >= 3) db.prepare("INSERT INTO settings (key, value, updated_at) VALUES ('runtime.image', '\"ghcr.io/openclaw/openclaw:1\"', 1)").run();
    if (version >= 4) {
      db.prepare("INSERT INTO workspace_tickets (ticket_hash, user_id, session_id, next_path, created_at, expires_at) VALUES ('t', 'u1', 's1', '/', 1, 9)").run();
      db.prepare("INSERT INTO workspace_sessions (id, token_hash, user_id, session_id, created_at, last_seen_at, expires_at) VALUES ('w1', 'wh', 'u1', 's1', 1, 1, 9)").run();
    }
    if (version >= 5) {
      db.prepare("INSERT INTO llm_usage (at, user_id, username, endpoint, model, streamed, status, latency_ms, prompt_tokens) VALUES (5, 'u1', 'alice', 'chat/completions', 'm', 0, 'ok', 3, 11)").run();
      db.prepare("INSERT INTO llm_limits (user_id, monthly_tokens, updated_at) VALUES ('u1', 1000, 1)").run();
    }
    if (version >= 6) db.prepare("INSERT INTO llm_models (id, upstream_model, display_name, enabled, updated_at) VALUES ('m', 'm', 'M', 1, 1)").run();
    if (version >= 12) {
      db.prepare("INSERT INTO workspace_restores (id, user_id, runtime_id, username, backup_id, phase, started_at) VALUES ('wr1', 'u1', 'r1', 'alice', '20261206T000000Z-abcdef', 'done', 1)").run();
    }
  }
  const counts = (db: Db) =>
    Object.fromEntries(tables(db).map((t) => [t, (db.prepare(`SELECT COUNT(*) AS n FROM "${t}"`).get() as { n: number }).n]));

  // Every released version (not every integer: helpers number their migrations apart and the lead renumbers on merge).
  test.each(MIGRATIONS.slice(0, -1).map((m) => m.version))(
    'a database at schema version %i, holding data, upgrades to the latest with every row kept, after a copy of it',
    (version) => {
      const db = open();
      migrate(db, version);
      seed(db, version);
      const before = counts(db);
      const result = migrateWithCopy(db, dataDir, Date.UTC(2026, 11, 6));
      expect(result).toMatchObject({ from: version, to: LATEST_SCHEMA_VERSION });
      expect(schemaVersion(db)).toBe(LATEST_SCHEMA_VERSION);
      const after = counts(db);
      for (const [table, n] of Object.entries(before)) expect({ table, n: after[table] }).toEqual({ table, n });
      expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
      expect(db.pragma('foreign_key_check')).toEqual([]);
      // The copy is the database as it was, owner-only.
      expect(fs.statSync(result.copy ?? '').mode & 0o777).toBe(0o600);
      const copy = new Database(result.copy ?? '', { readonly: true });
      opened.push(copy);
      expect(copy.pragma('user_version', { simple: true })).toBe(version);
      expect(counts(copy)).toEqual(before);
    },
  );

  test('a migration that fails rolls back every pending one and names the copy taken before', () => {
    const db = open();
    migrate(db, 9);
    seed(db, 9);
    const broken = [...MIGRATIONS.filter((m) => m.version <= 10), { version: 11, description: 'broken', sql: 'ALTER TABLE nowhere ADD COLUMN x INTEGER;' }];
    let failure: unknown;
    try {
      migrateWithCopy(db, dataDir, Date.UTC(2026, 11, 6), broken);
    } catch (err) {
      failure = err;
    }
    expect(failure).toBeInstanceOf(MigrationFailedError);
    const message = (failure as Error).message;
    expect(message).toMatch(/from schema version 9 to 11 failed \(no such table: nowhere\)\. Nothing was changed: the database is still at version 9\. A copy taken just before the attempt is at .*pre-migration\/clawloops-v9-before-v11-/);
    expect(schemaVersion(db)).toBe(9);
    // Version 10's columns went with the rollback too.
    expect((db.prepare('PRAGMA table_info(runtimes)').all() as { name: string }[]).map((c) => c.name)).not.toContain('stopped_by');
    expect(fs.existsSync((failure as MigrationFailedError).snapshot ?? '')).toBe(true);
  });

  test('a new, empty database is migrated without a copy (there is nothing to keep)', () => {
    const db = open();
    expect(migrateWithCopy(db, dataDir, 0)).toEqual({ from: 0, to: LATEST_SCHEMA_VERSION, copy: null });
    expect(fs.existsSync(path.join(dataDir, 'pre-migration'))).toBe(false);
  });
});
