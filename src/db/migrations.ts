import fs from 'node:fs';
import path from 'node:path';
import type { Db } from './database';

export interface Migration {
  version: number;
  description: string;
  sql: string;
}

// Append only. A released migration is never edited: a change is a new migration.
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'accounts, sessions, invitations, audit log',
    sql: `
      CREATE TABLE users (
        id TEXT PRIMARY KEY,
        username TEXT NOT NULL UNIQUE,
        display_name TEXT NOT NULL,
        email TEXT,
        role TEXT NOT NULL CHECK (role IN ('admin', 'member')),
        status TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
        password_hash TEXT NOT NULL,
        must_change_password INTEGER NOT NULL DEFAULT 0 CHECK (must_change_password IN (0, 1)),
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        last_login_at INTEGER
      );

      CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        token_hash TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL,
        last_seen_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        ip TEXT,
        user_agent TEXT
      );
      CREATE INDEX sessions_by_user ON sessions(user_id);

      CREATE TABLE invitations (
        id TEXT PRIMARY KEY,
        secret_hash TEXT NOT NULL UNIQUE,
        role TEXT NOT NULL CHECK (role IN ('admin', 'member')),
        username TEXT,
        email TEXT,
        created_by TEXT REFERENCES users(id) ON DELETE SET NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        accepted_at INTEGER,
        accepted_user_id TEXT REFERENCES users(id) ON DELETE SET NULL,
        revoked_at INTEGER
      );
      CREATE INDEX invitations_by_created ON invitations(created_at);

      -- No foreign keys: the trail must outlive the users it mentions.
      CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        action TEXT NOT NULL,
        actor_id TEXT,
        actor_username TEXT,
        target_type TEXT,
        target_id TEXT,
        target_label TEXT,
        ip TEXT,
        detail TEXT NOT NULL DEFAULT '{}'
      );
      CREATE INDEX audit_by_at ON audit_log(at);
      CREATE INDEX audit_by_action ON audit_log(action, at);
      CREATE INDEX audit_by_actor ON audit_log(actor_username, at);
      CREATE TRIGGER audit_log_append_only_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
      CREATE TRIGGER audit_log_append_only_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

      -- One row rewritten by the readiness probe to prove the database accepts writes.
      CREATE TABLE readiness_probe (id INTEGER PRIMARY KEY CHECK (id = 1), at INTEGER NOT NULL);
    `,
  },
  {
    version: 2,
    description: 'runtimes',
    sql: `
      -- Its own id, not the user's: the volume and network are named after it, and a user may
      -- one day have more than one runtime.
      CREATE TABLE runtimes (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL UNIQUE REFERENCES users(id) ON DELETE CASCADE,
        desired_state TEXT NOT NULL CHECK (desired_state IN ('running', 'stopped', 'deleted')),
        container_id TEXT,
        image TEXT,
        config_hash TEXT,
        model_key_hash TEXT,
        last_error_code TEXT,
        last_error_message TEXT,
        last_error_at INTEGER,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        last_started_at INTEGER
      );
    `,
  },
  {
    version: 3,
    description: 'settings',
    sql: `
      -- Settings an administrator changes while the platform runs; the environment gives defaults.
      CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_at INTEGER NOT NULL
      );
    `,
  },
  {
    version: 4,
    description: 'workspace tickets and sessions',
    sql: `
      -- "Open workspace" hands a browser from the platform to its workspace host with a ticket:
      -- single use, short-lived, and bound to the platform session that asked for it.
      CREATE TABLE workspace_tickets (
        ticket_hash TEXT PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        next_path TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        used_at INTEGER
      );
      -- A host-only cookie on the workspace host; it dies with the platform session it came from.
      CREATE TABLE workspace_sessions (
        id TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        created_at INTEGER NOT NULL,
        last_seen_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
      );
      CREATE INDEX workspace_sessions_user ON workspace_sessions(user_id);
      CREATE INDEX workspace_tickets_expiry ON workspace_tickets(expires_at);
    `,
  },
  {
    version: 5,
    description: 'model usage ledger',
    sql: `
      -- One row per model request through the gateway: successes, upstream errors and aborts alike.
      -- No foreign keys: the ledger outlives deleted users (what was spent stays spent).
      CREATE TABLE llm_usage (
        id INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        user_id TEXT NOT NULL,
        username TEXT NOT NULL,
        runtime_id TEXT,
        endpoint TEXT NOT NULL,
        model TEXT NOT NULL,
        streamed INTEGER NOT NULL,
        status TEXT NOT NULL,
        http_status INTEGER,
        prompt_tokens INTEGER NOT NULL DEFAULT 0,
        completion_tokens INTEGER NOT NULL DEFAULT 0,
        cost_microdollars INTEGER NOT NULL DEFAULT 0,
        latency_ms INTEGER NOT NULL
      );
      CREATE INDEX llm_usage_user_at ON llm_usage (user_id, at);
      CREATE INDEX llm_usage_at ON llm_usage (at);
      -- The gateway finds a request's runtime by its key on every call.
      CREATE INDEX runtimes_by_model_key ON runtimes (model_key_hash);
      -- Per-user overrides of the model limits; NULL: the default from the environment.
      CREATE TABLE llm_limits (
        user_id TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
        requests_per_minute INTEGER,
        concurrent_requests INTEGER,
        monthly_tokens INTEGER,
        updated_at INTEGER NOT NULL
      );
    `,
  },
  {
    version: 6,
    description: 'model catalog',
    sql: `
      -- The models an administrator offers to runtimes; empty: CLAWLOOPS_RUNTIME_MODELS applies.
      CREATE TABLE llm_models (
        id TEXT PRIMARY KEY,
        upstream_model TEXT NOT NULL,
        display_name TEXT NOT NULL,
        enabled INTEGER NOT NULL,
        is_default INTEGER NOT NULL DEFAULT 0,
        context_window INTEGER,
        max_tokens INTEGER,
        input_microdollars_per_mtok INTEGER NOT NULL DEFAULT 0,
        output_microdollars_per_mtok INTEGER NOT NULL DEFAULT 0,
        updated_at INTEGER NOT NULL
      );
    `,
  },
  {
    version: 7,
    description: 'monthly cost budgets',
    sql: `
      ALTER TABLE llm_limits ADD COLUMN monthly_cost_microdollars INTEGER;
    `,
  },
  {
    version: 8,
    description: 'estimated usage rows',
    sql: `
      -- 1: the row's tokens are the gateway's conservative estimate (a stream the client left, an
      -- answer without usage, a timeout), not the upstream's own count. Charged all the same.
      ALTER TABLE llm_usage ADD COLUMN estimated INTEGER NOT NULL DEFAULT 0 CHECK (estimated IN (0, 1));
    `,
  },
  {
    version: 9,
    description: 'workspace tickets bound to the browser that asked for them',
    sql: `
      -- SHA-256 of the random cookie the workspace host gave the browser that started the sign-in;
      -- only that browser can redeem the ticket. Tickets from before (none bound) cannot be redeemed.
      ALTER TABLE workspace_tickets ADD COLUMN bind_hash TEXT;
    `,
  },
  {
    version: 10,
    description: 'who or what stopped a runtime, and when',
    sql: `
      -- Set when the platform, an administrator or the member stops the runtime; cleared by the next
      -- start. stopped_by is the cause ('member', 'admin', 'idle', 'out_of_memory', 'crash_loop',
      -- 'account_disabled', 'system'); stop_detail the words that go with a failure; stop_idle_ms the
      -- idle time an idle stop waited for; stop_actor the administrator's username, shown to
      -- administrators only.
      ALTER TABLE runtimes ADD COLUMN stopped_by TEXT;
      ALTER TABLE runtimes ADD COLUMN stopped_at INTEGER;
      ALTER TABLE runtimes ADD COLUMN stop_detail TEXT;
      ALTER TABLE runtimes ADD COLUMN stop_idle_ms INTEGER;
      ALTER TABLE runtimes ADD COLUMN stop_actor TEXT;
    `,
  },
  {
    version: 11,
    description: 'the config hash a new runtime volume was seeded with ahead of its first start',
    sql: `
      -- Set when a new account's volume got the platform's openclaw.json in the background; the
      -- first container made for the runtime clears it. While it is set and equals what a start
      -- renders, nothing has run on the volume since, so that start need not write the file again.
      ALTER TABLE runtimes ADD COLUMN seeded_config_hash TEXT;
    `,
  },
  {
    version: 12,
    description: 'restores of one workspace from a backup',
    sql: `
      -- One row per restore of a user's workspace volume from a backup. phase: 'unpacking' (the
      -- backup's files are being written beside the current ones), 'swapping' (the swap inside the
      -- volume has begun: it must be finished before the runtime starts again), 'done', 'failed'.
      -- restore_id names the folder the files were unpacked into (files/agent/volumeSwap.ts).
      CREATE TABLE workspace_restores (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        runtime_id TEXT NOT NULL,
        username TEXT NOT NULL,
        backup_id TEXT NOT NULL,
        phase TEXT NOT NULL CHECK (phase IN ('unpacking', 'swapping', 'done', 'failed')),
        bytes INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        actor_username TEXT,
        started_at INTEGER NOT NULL,
        finished_at INTEGER
      );
      CREATE INDEX workspace_restores_by_runtime ON workspace_restores(runtime_id, phase);
    `,
  },
  {
    version: 13,
    description: 'the image a runtime is held on, apart from the configured one',
    sql: `
      -- Set by an image rollout: the new image while this runtime is being moved onto it, the
      -- previous one when it failed there and was put back. NULL: the configured image.
      ALTER TABLE runtimes ADD COLUMN pinned_image TEXT;
    `,
  },
  {
    version: 14,
    description: 'egress rules per user, and the record of runtimes\' outside connections',
    sql: `
      -- A user's own egress rules over the installation's: profile NULL follows the installation's;
      -- allow and deny are JSON arrays of host patterns, addresses and CIDRs, added to its lists.
      CREATE TABLE egress_rules (
        user_id TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
        profile TEXT CHECK (profile IN ('public', 'none')),
        allow TEXT NOT NULL DEFAULT '[]',
        deny TEXT NOT NULL DEFAULT '[]',
        updated_at INTEGER NOT NULL
      );
      -- One row per connection a runtime asked the egress proxy for: allowed (with the bytes each
      -- way and how long it stayed open), denied by the policy, or failed (unresolved, unreachable).
      -- Kept for the retention the administrator set (egress/egressRecord.ts sweeps).
      CREATE TABLE egress_connections (
        id INTEGER PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        at INTEGER NOT NULL,
        host TEXT NOT NULL,
        port INTEGER NOT NULL,
        verdict TEXT NOT NULL CHECK (verdict IN ('allowed', 'denied', 'failed')),
        reason TEXT,
        bytes_out INTEGER NOT NULL DEFAULT 0,
        bytes_in INTEGER NOT NULL DEFAULT 0,
        duration_ms INTEGER NOT NULL DEFAULT 0
      );
      CREATE INDEX egress_connections_by_user ON egress_connections(user_id, at);
      CREATE INDEX egress_connections_by_time ON egress_connections(at);
    `,
  },
  {
    version: 15,
    description: 'personal API tokens',
    sql: `
      -- A person's tokens for scripts: looked up by the SHA-256 of the secret (256 random bits, so a
      -- slow hash adds nothing); scopes a JSON array of read, runtime, files, admin. Revoked tokens
      -- are deleted (the audit log keeps their history).
      CREATE TABLE api_tokens (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,
        hint TEXT NOT NULL,
        scopes TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        last_used_at INTEGER,
        last_used_ip TEXT
      );
      CREATE INDEX api_tokens_by_user ON api_tokens(user_id);
    `,
  },
  {
    version: 16,
    description: 'users\' mail language, and the budget warnings already mailed',
    sql: `
      -- The language mails to this user are written in; NULL: English (never chosen).
      ALTER TABLE users ADD COLUMN language TEXT CHECK (language IN ('en', 'zh-CN'));
      -- One row per budget warning mailed to a user (llm/budgetWarnings.ts): a
      -- threshold of a month is mailed once, also across restarts.
      CREATE TABLE budget_warnings (
        user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        month TEXT NOT NULL,
        threshold INTEGER NOT NULL CHECK (threshold IN (80, 100)),
        sent_at INTEGER NOT NULL,
        PRIMARY KEY (user_id, month, threshold)
      );
    `,
  },
  {
    version: 17,
    description: 'accounts linked to an OpenID provider\'s identities',
    sql: `
      -- Who a provider's (issuer, subject) is here: the subject never changes at the provider, an
      -- email may, so a person keeps their account whatever their email becomes.
      CREATE TABLE oidc_identities (
        issuer TEXT NOT NULL,
        subject TEXT NOT NULL,
        user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        linked_at INTEGER NOT NULL,
        last_login_at INTEGER,
        PRIMARY KEY (issuer, subject)
      );
      CREATE INDEX oidc_identities_by_user ON oidc_identities(user_id);
    `,
  },
  {
    version: 18,
    description: 'WebDAV dead properties of workspace files',
    sql: `
      -- What WebDAV clients store on a file or folder (PROPPATCH): keyed by its workspace path,
      -- moved, copied and deleted with it by the WebDAV endpoint. value is the property's XML.
      CREATE TABLE dav_properties (
        user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        path TEXT NOT NULL,
        ns TEXT NOT NULL,
        name TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (user_id, path, ns, name)
      );
    `,
  },
];

export const LATEST_SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]?.version ?? 0;

export class DatabaseTooNewError extends Error {
  constructor(readonly found: number, readonly supported: number) {
    super(
      `The database has schema version ${found}, but this build of ClawLoops only knows up to version ${supported}. ` +
        'It was written by a newer ClawLoops: run that version (or restore a backup made before the upgrade).',
    );
    this.name = 'DatabaseTooNewError';
  }
}

export function schemaVersion(db: Db): number {
  return Number(db.pragma('user_version', { simple: true }));
}

/**
 * Applies every pending migration in one transaction with the version bump: one that fails rolls
 * them all back, and the database stays exactly as the previous release left it.
 */
export function migrate(db: Db, upTo: number = LATEST_SCHEMA_VERSION, migrations: readonly Migration[] = MIGRATIONS): { from: number; to: number } {
  const from = schemaVersion(db);
  if (from > LATEST_SCHEMA_VERSION) throw new DatabaseTooNewError(from, LATEST_SCHEMA_VERSION);
  // `upTo` lets a test build a database as an older release left it, then upgrade it.
  db.transaction(() => {
    for (const migration of migrations.filter((m) => m.version <= upTo)) {
      // Re-read inside the write lock: another process (the operator CLI) may have migrated meanwhile.
      if (migration.version <= schemaVersion(db)) continue;
      db.exec(migration.sql);
      db.pragma(`user_version = ${migration.version}`);
    }
  }).immediate();
  return { from, to: schemaVersion(db) };
}

// Not `instanceof Error`: the driver's errors may come from another realm (a test runner's sandbox).
const reasonOf = (cause: unknown): string =>
  typeof cause === 'object' && cause !== null && 'message' in cause ? String((cause as { message: unknown }).message) : String(cause);

export class MigrationFailedError extends Error {
  constructor(
    readonly from: number,
    readonly to: number,
    readonly snapshot: string | null,
    cause: unknown,
  ) {
    super(
      `Upgrading the database from schema version ${from} to ${to} failed (${reasonOf(cause)}). ` +
        `Nothing was changed: the database is still at version ${from}.` +
        (snapshot ? ` A copy taken just before the attempt is at ${snapshot}.` : '') +
        ' Run the previous ClawLoops release on this data directory, or report the error.',
    );
    this.name = 'MigrationFailedError';
  }
}

/**
 * Migrates, after a copy of the database as it was (SQLite's VACUUM INTO: consistent, while
 * others may read) in `<data dir>/pre-migration/`, named in the error if the upgrade fails. A
 * new, empty database has nothing to copy.
 */
export function migrateWithCopy(db: Db, dataDir: string, now: number, migrations: readonly Migration[] = MIGRATIONS): { from: number; to: number; copy: string | null } {
  const from = schemaVersion(db);
  if (from > LATEST_SCHEMA_VERSION) throw new DatabaseTooNewError(from, LATEST_SCHEMA_VERSION);
  const to = Math.max(from, ...migrations.map((m) => m.version));
  if (from === to) return { from, to, copy: null };
  let copy: string | null = null;
  if (from > 0) {
    const dir = path.join(dataDir, 'pre-migration');
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    copy = path.join(dir, `clawloops-v${from}-before-v${to}-${new Date(now).toISOString().replace(/[-:.]/g, '')}.db`);
    db.exec(`VACUUM INTO '${copy.replace(/'/g, "''")}'`);
    fs.chmodSync(copy, 0o600);
  }
  try {
    return { ...migrate(db, LATEST_SCHEMA_VERSION, migrations), copy };
  } catch (err) {
    throw new MigrationFailedError(from, to, copy, err);
  }
}
