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
  return db;
}

export function openMemoryDatabase(): Db {
  const db = new Database(':memory:');
  db.pragma('foreign_keys = ON');
  db.pragma('recursive_triggers = ON');
  return db;
}
