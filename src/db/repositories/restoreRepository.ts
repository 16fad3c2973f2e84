import type { Db } from '../database';

export type RestorePhase = 'unpacking' | 'swapping' | 'done' | 'failed';

export interface WorkspaceRestoreRecord {
  id: string;
  userId: string;
  runtimeId: string;
  username: string;
  backupId: string;
  phase: RestorePhase;
  bytes: number;
  error: string | null;
  actorUsername: string | null;
  startedAt: number;
  finishedAt: number | null;
}

interface Row {
  id: string;
  user_id: string;
  runtime_id: string;
  username: string;
  backup_id: string;
  phase: RestorePhase;
  bytes: number;
  error: string | null;
  actor_username: string | null;
  started_at: number;
  finished_at: number | null;
}

const fromRow = (r: Row): WorkspaceRestoreRecord => ({
  id: r.id,
  userId: r.user_id,
  runtimeId: r.runtime_id,
  username: r.username,
  backupId: r.backup_id,
  phase: r.phase,
  bytes: r.bytes,
  error: r.error,
  actorUsername: r.actor_username,
  startedAt: r.started_at,
  finishedAt: r.finished_at,
});

/** Restores of one workspace from a backup (migration 12): what the console shows, and what a crash left to finish. */
export class RestoreRepository {
  constructor(private readonly db: Db) {}

  begin(record: Pick<WorkspaceRestoreRecord, 'id' | 'userId' | 'runtimeId' | 'username' | 'backupId' | 'actorUsername' | 'startedAt'>): void {
    this.db
      .prepare(
        `INSERT INTO workspace_restores (id, user_id, runtime_id, username, backup_id, phase, actor_username, started_at)
         VALUES (?, ?, ?, ?, ?, 'unpacking', ?, ?)`,
      )
      .run(record.id, record.userId, record.runtimeId, record.username, record.backupId, record.actorUsername, record.startedAt);
  }

  setPhase(id: string, phase: RestorePhase, now: number, detail: { bytes?: number; error?: string } = {}): void {
    const finished = phase === 'done' || phase === 'failed' ? now : null;
    this.db
      .prepare('UPDATE workspace_restores SET phase = ?, bytes = COALESCE(?, bytes), error = COALESCE(?, error), finished_at = COALESCE(?, finished_at) WHERE id = ?')
      .run(phase, detail.bytes ?? null, detail.error ?? null, finished, id);
  }

  /** Restores of a runtime that a crash left unfinished (at most one in practice: a restore holds its runtime). */
  unfinished(runtimeId: string): WorkspaceRestoreRecord[] {
    return (this.db.prepare("SELECT * FROM workspace_restores WHERE runtime_id = ? AND phase IN ('unpacking', 'swapping') ORDER BY started_at").all(runtimeId) as Row[]).map(fromRow);
  }

  recent(limit: number): WorkspaceRestoreRecord[] {
    return (this.db.prepare('SELECT * FROM workspace_restores ORDER BY started_at DESC LIMIT ?').all(limit) as Row[]).map(fromRow);
  }
}
