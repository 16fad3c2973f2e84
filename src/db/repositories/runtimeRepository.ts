import type { Db } from '../database';

export type DesiredState = 'running' | 'stopped' | 'deleted';

/** Who or what stopped a runtime: its member, an administrator, or the platform on its own. */
export type StopCause = 'member' | 'admin' | 'idle' | 'out_of_memory' | 'crash_loop' | 'account_disabled' | 'system';

const STOP_CAUSES: readonly StopCause[] = ['member', 'admin', 'idle', 'out_of_memory', 'crash_loop', 'account_disabled', 'system'];

export interface RuntimeStop {
  cause: StopCause;
  at: number;
  /** Words that go with a failure (out of memory, crash loop). */
  detail: string | null;
  /** An idle stop: how long the runtime had been without activity. */
  idleMs: number | null;
  /** The administrator who stopped it (admin stops only). */
  actor: string | null;
}

export interface RuntimeRecord {
  id: string;
  userId: string;
  desiredState: DesiredState;
  containerId: string | null;
  image: string | null;
  configHash: string | null;
  modelKeyHash: string | null;
  lastError: { code: string; message: string; at: number } | null;
  createdAt: number;
  updatedAt: number;
  lastStartedAt: number | null;
  /** Why it is stopped, until it is started again. */
  stop: RuntimeStop | null;
  /** The config hash its volume was seeded with before any container existed; cleared by the first one. */
  seededConfigHash: string | null;
  /** The image it runs instead of the configured one (an image rollout's doing); null: the configured one. */
  pinnedImage: string | null;
}

/** A runtime together with the account it belongs to: every caller needs both. */
export interface RuntimeWithOwner extends RuntimeRecord {
  username: string;
  userStatus: 'active' | 'disabled';
}

interface RuntimeRow {
  id: string;
  user_id: string;
  desired_state: DesiredState;
  container_id: string | null;
  image: string | null;
  config_hash: string | null;
  model_key_hash: string | null;
  last_error_code: string | null;
  last_error_message: string | null;
  last_error_at: number | null;
  created_at: number;
  updated_at: number;
  last_started_at: number | null;
  stopped_by: string | null;
  stopped_at: number | null;
  stop_detail: string | null;
  stop_idle_ms: number | null;
  stop_actor: string | null;
  seeded_config_hash: string | null;
  pinned_image: string | null;
  username: string;
  user_status: 'active' | 'disabled';
}

// A cause this build does not know (written by a newer one) reads as the platform's own.
const toStop = (row: RuntimeRow): RuntimeStop | null =>
  row.stopped_by === null
    ? null
    : {
        cause: (STOP_CAUSES as readonly string[]).includes(row.stopped_by) ? (row.stopped_by as StopCause) : 'system',
        at: row.stopped_at ?? 0,
        detail: row.stop_detail,
        idleMs: row.stop_idle_ms,
        actor: row.stop_actor,
      };

const toRuntime = (row: RuntimeRow): RuntimeWithOwner => ({
  id: row.id,
  userId: row.user_id,
  desiredState: row.desired_state,
  containerId: row.container_id,
  image: row.image,
  configHash: row.config_hash,
  modelKeyHash: row.model_key_hash,
  lastError:
    row.last_error_code === null ? null : { code: row.last_error_code, message: row.last_error_message ?? '', at: row.last_error_at ?? 0 },
  createdAt: row.created_at,
  updatedAt: row.updated_at,
  lastStartedAt: row.last_started_at,
  stop: toStop(row),
  seededConfigHash: row.seeded_config_hash,
  pinnedImage: row.pinned_image,
  username: row.username,
  userStatus: row.user_status,
});

const SELECT = `SELECT r.*, u.username AS username, u.status AS user_status FROM runtimes r JOIN users u ON u.id = r.user_id`;

export interface ContainerChange {
  containerId: string | null;
  image?: string | null;
  configHash?: string | null;
  modelKeyHash?: string | null;
}

export class RuntimeRepository {
  constructor(private readonly db: Db) {}

  findById(id: string): RuntimeWithOwner | null {
    const row = this.db.prepare(`${SELECT} WHERE r.id = ?`).get(id) as RuntimeRow | undefined;
    return row ? toRuntime(row) : null;
  }

  /** The runtime whose current container was given this model key (hashed); null once it is rotated or revoked. */
  findByModelKeyHash(hash: string): RuntimeWithOwner | null {
    const row = this.db.prepare(`${SELECT} WHERE r.model_key_hash = ?`).get(hash) as RuntimeRow | undefined;
    return row ? toRuntime(row) : null;
  }

  findByUserId(userId: string): RuntimeWithOwner | null {
    const row = this.db.prepare(`${SELECT} WHERE r.user_id = ?`).get(userId) as RuntimeRow | undefined;
    return row ? toRuntime(row) : null;
  }

  list(): RuntimeWithOwner[] {
    return (this.db.prepare(`${SELECT} ORDER BY u.username`).all() as RuntimeRow[]).map(toRuntime);
  }

  /** Creates the user's runtime row unless one exists; returns whichever is stored. */
  ensureForUser(id: string, userId: string, now: number): RuntimeWithOwner {
    this.db
      .prepare(
        `INSERT INTO runtimes (id, user_id, desired_state, created_at, updated_at)
         VALUES (?, ?, 'stopped', ?, ?) ON CONFLICT(user_id) DO NOTHING`,
      )
      .run(id, userId, now, now);
    const runtime = this.findByUserId(userId);
    if (!runtime) throw new Error(`runtime row for user ${userId} vanished`);
    return runtime;
  }

  setDesiredState(id: string, state: DesiredState, now: number): void {
    this.db.prepare('UPDATE runtimes SET desired_state = ?, updated_at = ? WHERE id = ?').run(state, now, id);
  }

  setContainer(id: string, change: ContainerChange, now: number): void {
    // A container of its own ends the seeded state: from now on something may run on the volume.
    const sets = ['container_id = @containerId', 'seeded_config_hash = NULL', 'updated_at = @now'];
    if (change.image !== undefined) sets.push('image = @image');
    if (change.configHash !== undefined) sets.push('config_hash = @configHash');
    if (change.modelKeyHash !== undefined) sets.push('model_key_hash = @modelKeyHash');
    this.db.prepare(`UPDATE runtimes SET ${sets.join(', ')} WHERE id = @id`).run({
      id,
      now,
      containerId: change.containerId,
      image: change.image ?? null,
      configHash: change.configHash ?? null,
      modelKeyHash: change.modelKeyHash ?? null,
    });
  }

  /** Records the config hash a new volume was seeded with, unless a container was made meanwhile. */
  setSeededConfig(id: string, configHash: string, now: number): void {
    this.db.prepare('UPDATE runtimes SET seeded_config_hash = ?, updated_at = ? WHERE id = ? AND container_id IS NULL').run(configHash, now, id);
  }

  setPinnedImage(id: string, image: string | null, now: number): void {
    this.db.prepare('UPDATE runtimes SET pinned_image = ?, updated_at = ? WHERE id = ?').run(image, now, id);
  }

  /** The configured image became `image`: runtimes pinned to it need no pin any more. */
  clearPinsTo(image: string, now: number): number {
    return this.db.prepare('UPDATE runtimes SET pinned_image = NULL, updated_at = ? WHERE pinned_image = ?').run(now, image).changes;
  }

  /** The data changed behind the seed (a restore): the next start must write the config again. */
  clearSeededConfig(id: string, now: number): void {
    this.db.prepare('UPDATE runtimes SET seeded_config_hash = NULL, updated_at = ? WHERE id = ?').run(now, id);
  }

  markStarted(id: string, now: number): void {
    this.db
      .prepare('UPDATE runtimes SET last_started_at = ?, updated_at = ?, last_error_code = NULL, last_error_message = NULL, last_error_at = NULL WHERE id = ?')
      .run(now, now, id);
  }

  setError(id: string, error: { code: string; message: string } | null, now: number): void {
    this.db
      .prepare('UPDATE runtimes SET last_error_code = ?, last_error_message = ?, last_error_at = ?, updated_at = ? WHERE id = ?')
      .run(error?.code ?? null, error?.message ?? null, error ? now : null, now, id);
  }

  /** Records why the runtime stopped; null clears it (it was started again). */
  setStop(id: string, stop: RuntimeStop | null, now: number): void {
    this.db
      .prepare('UPDATE runtimes SET stopped_by = ?, stopped_at = ?, stop_detail = ?, stop_idle_ms = ?, stop_actor = ?, updated_at = ? WHERE id = ?')
      .run(stop?.cause ?? null, stop?.at ?? null, stop?.detail ?? null, stop?.idleMs ?? null, stop?.actor ?? null, now, id);
  }

  delete(id: string): void {
    this.db.prepare('DELETE FROM runtimes WHERE id = ?').run(id);
  }
}
