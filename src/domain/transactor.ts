import type { Db } from '../db/database';

/** Runs `fn` atomically. Services depend on this, not on the database, to stay adapter-free. */
export type Transactor = <T>(fn: () => T) => T;

export function sqliteTransactor(db: Db): Transactor {
  // IMMEDIATE takes the write lock up front, so a check-then-write inside cannot interleave
  // with the operator CLI writing from another process.
  return <T>(fn: () => T): T => db.transaction(fn).immediate();
}
