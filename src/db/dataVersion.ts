import type { Db } from './database';

/**
 * SQLite's `PRAGMA data_version`: it changes when another connection (another process: the admin
 * CLI) commits, never for this connection's own writes. One cached statement, a few µs a read.
 */
export function sqliteDataVersion(db: Db): () => number {
  const statement = db.prepare('PRAGMA data_version');
  return () => (statement.get() as { data_version: number }).data_version;
}
