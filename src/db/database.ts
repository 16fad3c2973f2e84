import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';

export type Db = Database.Database;

export const DATABASE_FILE_NAME = 'clawloops.db';

/**
 * Opens (creating if needed) the platform database. WAL lets the operator CLI write while the
 * server runs; busy_timeout makes such overlaps wait instead of failing.
 */
export function openDatabase(dataDir: string): Db {
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const file = path.join(dataDir, DATABASE_FILE_NAME);
  const db = new Database(file);
  try {
    // Password hashes and session hashes live here: owner-only.
    fs.chmodSync(file, 0o600);
    db.pragma('journal_mode = WAL');
    db.pragma('foreign_keys = ON');
    // Without this, INSERT OR REPLACE deletes a conflicting row without firing DELETE triggers,
    // which would let it overwrite audit_log rows despite the append-only triggers.
    db.pragma('recursive_triggers = ON');
    db.pragma('busy_timeout = 5000');
    db.pragma('synchronous = NORMAL');
  } catch (err) {
    db.close();
    throw err;
  }
  return withStatementCache(db);
}

const STATEMENT_CACHE_LIMIT = 500;

/**
 * Repositories call `db.prepare(sql)` at every query; compiling the SQL each time cost ~60 µs
 * per proxied workspace request (bench/workspaceRouting.ts). Statements are reusable (nothing
 * here iterates or switches a statement to raw/pluck mode), so each distinct SQL text is
 * compiled once. SQLite re-prepares a cached statement by itself after a schema change.
 */
function withStatementCache(db: Db): Db {
  const compile = db.prepare.bind(db);
  const cache = new Map<string, ReturnType<Db['prepare']>>();
  db.prepare = ((sql: string) => {
    let statement = cache.get(sql);
    if (!statement) {
      // Queries built from filters are a handful of shapes; the limit only guards against a bug.
      if (cache.size >= STATEMENT_CACHE_LIMIT) cache.clear();
      statement = compile(sql);
      cache.set(sql, statement);
    }
    return statement;
  }) as Db['prepare'];
  return db;
}

export function openMemoryDatabase(): Db {
  const db = new Database(':memory:');
  db.pragma('foreign_keys = ON');
  db.pragma('recursive_triggers = ON');
  return withStatementCache(db);
}
