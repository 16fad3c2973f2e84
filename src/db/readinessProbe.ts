import type { DatabaseProbe } from '../domain/readiness';
import type { Db } from './database';

export class SqliteReadinessProbe implements DatabaseProbe {
  constructor(private readonly db: Db) {}

  probeWrite(): void {
    this.db
      .prepare('INSERT INTO readiness_probe (id, at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET at = excluded.at')
      .run(Date.now());
  }
}
