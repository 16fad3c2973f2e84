/**
 * The shapes the HTTP API answers with, declared once for both sides: the server's presenters and
 * routes are typed against them (src/http/presenters.ts, routes/*.ts), and the console imports
 * them type-only (web/src/api/types.ts, web/src/admin/adminTypes.ts). A field renamed or retyped
 * on one side fails `tsc` on the other instead of drifting silently.
 *
 * This file must stay free of imports and runtime code: the console's build (browser, no Node
 * types) reads it too, and a type-only import is erased from the bundle.
 */

/** Every refusal: `{"error":{"code","message",…}}`, with extra fields some errors carry (an ETag, conflicting names, a limit). */
export interface ApiErrorBody {
  error: { code: string; message: string; [detail: string]: unknown };
}

export type Role = 'admin' | 'member';

export interface User {
  id: string;
  username: string;
  displayName: string;
  email: string | null;
  role: Role;
  status: 'active' | 'disabled';
  mustChangePassword: boolean;
  createdAt: string;
  updatedAt: string;
  lastLoginAt: string | null;
  /** The language chosen in the console (mails are written in it); null: never chosen, English. */
  language: 'en' | 'zh-CN' | null;
}

export interface Page<T> {
  items: T[];
  total: number;
  limit: number;
  offset: number;
}

/** GET /auth/me: who is signed in, and which session (401 when nobody is); with an API token, which token. */
export type Me = { user: User; session: { id: string; expiresAt: string } } | { user: User; session: null; token: ApiToken };

/**
 * GET /auth/session: the same, or nobody. The console's first question on every visit: an
 * anonymous visitor is an answer here, not a refusal (so a first visit makes no failing request).
 */
export type SessionState = Me | { user: null; session: null };

/**
 * GET /auth/methods: how one signs in here. `password` false: single sign-on only (the setup
 * page still creates the first admin with a password). `oidc.name`: the provider's button label.
 */
export interface SignInMethods {
  password: boolean;
  oidc: { name: string } | null;
}

export interface UserAnswer {
  user: User;
}

export interface SetupStatus {
  needed: boolean;
}

export type ObservedState = 'absent' | 'creating' | 'starting' | 'running' | 'unhealthy' | 'stopping' | 'stopped' | 'failed';
export type OperationKind = 'start' | 'stop' | 'restart' | 'delete' | 'purge' | 'restore' | 'move';
export type OperationStatus = 'queued' | 'running' | 'succeeded' | 'failed';
export type OperationStep =
  | 'queued'
  | 'pulling'
  | 'preparing'
  | 'creating'
  | 'configuring'
  | 'starting'
  | 'waiting-for-health'
  | 'ready'
  | 'stopping'
  | 'removing'
  | 'restoring'
  | 'moving'
  | 'done'
  | 'failed';

export interface OperationView {
  id: string;
  runtimeId: string;
  kind: OperationKind;
  status: OperationStatus;
  step: OperationStep;
  percent: number;
  message: string;
  /** While queued: operations of other users ahead of this one. */
  queuePosition: number | null;
  bytesDone: number | null;
  bytesTotal: number | null;
  error: { code: string; message: string } | null;
  startedAt: string;
  finishedAt: string | null;
}

/** Who or what stopped a runtime and when (src/runtime/stopCause.ts); cleared when it starts again. */
export interface StoppedBy {
  cause: 'member' | 'admin' | 'idle' | 'out_of_memory' | 'crash_loop' | 'account_disabled' | 'system';
  at: string;
  /** The failure in words (out of memory, crash loop). */
  detail: string | null;
  /** An idle stop: the minutes without activity it waited for. */
  idleMinutes: number | null;
}

export interface RuntimeView {
  id: string | null;
  userId: string;
  username: string;
  state: ObservedState;
  stateReason: string | null;
  desiredState: 'running' | 'stopped' | 'deleted';
  image: string | null;
  configuredImage: string;
  /** Held on this image instead of the configured one: an image rollout put it back here after the new one failed. */
  pinnedImage: string | null;
  /** The container runs another image than the configured one: it upgrades on its next restart. */
  outdatedImage: boolean;
  /** What is rendered now differs from what the container was started with. */
  configStale: boolean;
  createdAt: string | null;
  startedAt: string | null;
  workspaceUrl: string;
  limits: { memoryBytes: number; cpus: number; pidsLimit: number };
  lastError: { code: string; message: string; at: string } | null;
  stoppedBy: StoppedBy | null;
  operation: OperationView | null;
}

export interface ContainerStats {
  memoryBytes: number;
  memoryLimitBytes: number;
  cpuPercent: number;
}

export interface RuntimeStats {
  /** null when the runtime is not running. */
  stats: ContainerStats | null;
}

export interface RuntimeListItem extends RuntimeView {
  uptimeSeconds: number | null;
  /** The latest figures the platform keeps of a running runtime; null before the first one. */
  stats: ContainerStats | null;
  /** How old `stats` are, in seconds; null with no stats. */
  statsAgeSeconds: number | null;
  /** The last attempt to renew `stats` failed: they are the last known ones. */
  statsStale: boolean;
  /** Who stopped it, when an administrator did (only administrators read this list). */
  stoppedByAdmin: string | null;
}

export interface StartedOperation {
  /** null when there was nothing to do (already running / already stopped). */
  operation: OperationView | null;
  runtime: RuntimeView;
}

/** An SSE `log` event of GET /runtime/logs. */
export interface LogLine {
  stream: 'stdout' | 'stderr';
  line: string;
  /** The line was longer than the log viewer shows; its end was dropped. */
  truncated?: true;
}

export interface Session {
  id: string;
  current: boolean;
  createdAt: string;
  lastSeenAt: string;
  expiresAt: string;
  ip: string | null;
  userAgent: string | null;
}

export interface SessionList {
  items: Session[];
}

export type ApiTokenScope = 'read' | 'runtime' | 'files' | 'admin';

/** A personal API token as its owner sees it (never its secret, which is shown once on creation). */
export interface ApiToken {
  id: string;
  name: string;
  /** The secret's first characters, to tell tokens apart. */
  hint: string;
  scopes: ApiTokenScope[];
  createdAt: string;
  expiresAt: string;
  expired: boolean;
  lastUsedAt: string | null;
  lastUsedIp: string | null;
}

export interface ApiTokenList {
  items: ApiToken[];
}

/** POST /account/tokens: the token, and its secret, this once. */
export interface CreatedApiToken {
  token: ApiToken;
  secret: string;
}

export interface RevokedSessions {
  revoked: number;
}

/** The language the platform's mails to this user are written in. */
export interface AccountLanguage {
  language: 'en' | 'zh-CN';
}

/** Whether the platform sends mail (CLAWLOOPS_SMTP_URL), for the admin's forms. */
export interface MailStatus {
  enabled: boolean;
}

export type InvitationStatus = 'pending' | 'accepted' | 'revoked' | 'expired';

export interface Invitation {
  id: string;
  role: Role;
  username: string | null;
  email: string | null;
  status: InvitationStatus;
  createdBy: string | null;
  createdAt: string;
  expiresAt: string;
  acceptedAt: string | null;
  acceptedUserId: string | null;
  revokedAt: string | null;
}

/** GET /invitations/:secret: what the invitee may see before accepting, nothing more. */
export interface InvitationPreview {
  invitation: {
    role: Role;
    username: string | null;
    email: string | null;
    expiresAt: string;
  };
}

export interface AuditEntry {
  id: number;
  at: string;
  action: string;
  actor: { id: string | null; username: string } | null;
  target: { type: string; id: string | null; label: string | null } | null;
  ip: string | null;
  detail: Record<string, unknown>;
}

export type FileType = 'file' | 'dir' | 'symlink' | 'other';

export interface FileEntry {
  name: string;
  path: string;
  type: FileType;
  size: number;
  modifiedAt: string;
  /** Permission bits in octal, e.g. "0644". */
  mode: string;
  target?: string;
  targetType?: FileType | null;
}

export interface FileListing {
  path: string;
  entries: FileEntry[];
}

export interface FilesUsage {
  bytes: number;
  files: number;
  quotaBytes: number;
  measuredAt: string;
}

export interface TextFile {
  path: string;
  content: string;
  etag: string;
  size: number;
  modifiedAt: string;
}

/** PUT /files/text. */
export interface SavedText {
  path: string;
  etag: string;
  size: number;
}

export interface UsageTotals {
  requests: number;
  promptTokens: number;
  completionTokens: number;
  costMicrodollars: number;
  /** Of `requests`, those charged by the gateway's conservative estimate (included in the sums). */
  estimatedRequests: number;
}

export interface ModelLimits {
  requestsPerMinute: number;
  concurrentRequests: number;
  /** Prompt plus completion tokens per calendar month (UTC). */
  monthlyTokens: number;
  /** Spend per calendar month in millionths of a US dollar, at the catalog's prices. */
  monthlyCostMicrodollars: number;
}

export interface OwnUsage {
  limits: ModelLimits;
  spentMicrodollars: number;
  /** Null when the month has no cost budget. */
  budgetRemainingMicrodollars: number | null;
  /** Null when the month has no token budget. */
  tokensRemaining: number | null;
  month: UsageTotals & { from: string; to: string };
  perDay: (UsageTotals & { day: string })[];
  perModel: (UsageTotals & { model: string })[];
}

export interface AvailableModel {
  id: string;
  name: string;
  default: boolean;
  contextWindow: number | null;
  maxTokens: number | null;
}

export interface AvailableModels {
  models: AvailableModel[];
}

// Administrators only (routes/admin*.ts, models.ts, runtime.ts).

export interface CreatedUser {
  user: User;
  /** Set when no password was given: shown once. */
  temporaryPassword: string | null;
}

export interface PasswordReset {
  user: User;
  temporaryPassword: string;
}

export interface CreatedInvitation {
  invitation: Invitation;
  /** The only time the link is shown. */
  link: string;
  /** True when the link was queued for mailing to the invitation's address. */
  emailQueued: boolean;
}

export interface InvitationAnswer {
  invitation: Invitation;
}

export interface RuntimeList {
  items: RuntimeListItem[];
}

export type BulkResult = ({ userId: string; ok: true } & StartedOperation) | { userId: string; ok: false; error: { code: string; message: string } };

export interface BulkAnswer {
  results: BulkResult[];
}

export interface StaleRuntime {
  userId: string;
  username: string;
}

export interface CatalogModel {
  id: string;
  upstreamModel: string;
  displayName: string;
  enabled: boolean;
  isDefault: boolean;
  contextWindow: number | null;
  maxTokens: number | null;
  /** Millionths of a dollar per million tokens. */
  inputMicrodollarsPerMTok: number;
  outputMicrodollarsPerMTok: number;
}

export interface AdminModels {
  models: CatalogModel[];
  /** What the upstream offers; null when it could not be asked. */
  upstream: string[] | null;
  upstreamError: string | null;
  staleRuntimes: StaleRuntime[];
}

export interface ModelChangeAnswer {
  staleRuntimes: StaleRuntime[];
}

export interface SavedModel extends ModelChangeAnswer {
  model: CatalogModel;
}

/** null: this limit is the default. */
export type LimitOverrides = { [K in keyof ModelLimits]: number | null };

export interface LimitsView {
  defaults: ModelLimits;
  /** What is overridden for this user; all null when nothing is. */
  overrides: LimitOverrides;
  effective: ModelLimits;
}

export interface UsageReport {
  from: string;
  to: string;
  perUser: (UsageTotals & { userId: string; username: string })[];
  perModel: (UsageTotals & { model: string })[];
  /** UTC days with at least one call. */
  perDay: (UsageTotals & { day: string })[];
}

export interface PlatformSettings {
  /** 0: never stopped for being idle. */
  idleStopMinutes: number;
  image: string;
  memoryMiB: number;
  cpus: number;
  pidsLimit: number;
}

// ---- admin backups ----

export interface BackupSummary {
  id: string;
  createdAt: string;
  /** An administrator's (`manual`) or the schedule's (`scheduled`, which retention may remove). */
  trigger: 'manual' | 'scheduled' | 'offboarding' | 'upgrade';
  bytes: number;
  users: string[];
  parts: number;
  /** False when the configured key cannot read its manifest (another key, or damage). */
  readable: boolean;
}

export interface BackupProgress {
  step: 'database' | 'volumes' | 'finishing';
  partsDone: number;
  partsTotal: number;
  bytesDone: number;
  username: string | null;
}

export interface BackupList {
  items: BackupSummary[];
  running: BackupProgress | null;
  last: { ok: boolean; id: string | null; error: { code: string; message: string } | null; at: string } | null;
}

export interface BackupSchedule {
  enabled: boolean;
  /** The hour (UTC) the daily backup starts at. */
  hourUtc: number;
  /** Scheduled backups kept: the newest of each of the last `keepDaily` days and `keepWeekly` weeks. */
  keepDaily: number;
  keepWeekly: number;
}

export interface BackupVerification {
  id: string;
  ok: true;
  parts: { name: string; ok: true }[];
  users: string[];
  createdAt: string;
}

/** A restore of one workspace from a backup (POST /admin/backups/:id/restore starts one as the runtime's operation). */
export interface WorkspaceRestoreItem {
  id: string;
  username: string;
  backupId: string;
  /** unpacking → swapping → done; failed says why in `error` (the workspace was then left as it was). */
  phase: 'unpacking' | 'swapping' | 'done' | 'failed';
  bytes: number;
  error: string | null;
  actor: string | null;
  startedAt: string;
  finishedAt: string | null;
  /** While it runs: the backup's bytes unpacked so far of its total. */
  progress: { bytesDone: number; bytesTotal: number } | null;
}

export interface WorkspaceRestoreList {
  items: WorkspaceRestoreItem[];
}

/** An image rollout (POST /admin/runtimes/rollout), as it goes and after: src/runtime/imageRollout.ts. */
export interface RolloutItem {
  userId: string;
  username: string;
  canary: boolean;
  previousImage: string;
  status: 'pending' | 'restarting' | 'updated' | 'rolling-back' | 'rolled-back' | 'failed' | 'skipped';
  error: { code: string; message: string } | null;
  logTail: string | null;
}

export interface Rollout {
  id: string;
  image: string;
  actor: string;
  status: 'running' | 'succeeded' | 'partial' | 'halted' | 'failed';
  step: 'image' | 'backup' | 'runtimes' | 'done';
  pull: { bytesDone: number; bytesTotal: number } | null;
  backupId: string | null;
  items: RolloutItem[];
  notes: string[];
  error: { code: string; message: string } | null;
  startedAt: string;
  finishedAt: string | null;
}

export interface RolloutAnswer {
  rollout: Rollout | null;
}

// ---- egress (the runtimes' way out) ----

export type EgressProfileName = 'public' | 'none';

export interface EgressRulesView {
  /** public: the internet, not private networks; none: no outside connections (models only). */
  profile: EgressProfileName;
  allow: string[];
  deny: string[];
}

export interface EgressUserOverridesView {
  /** null: the installation's profile. */
  profile: EgressProfileName | null;
  allow: string[];
  deny: string[];
}

export interface EgressConnectionView {
  at: string;
  host: string;
  port: number;
  verdict: 'allowed' | 'denied' | 'failed';
  reason: string | null;
  bytesOut: number;
  bytesIn: number;
  durationMs: number;
}

export interface EgressTotalsView {
  connections: number;
  denied: number;
  failed: number;
  bytesOut: number;
  bytesIn: number;
  lastAt: string | null;
}

/** A member's own view, and an administrator's of one user. */
export interface EgressActivityView {
  rules: EgressRulesView;
  /** Since `since` (the last 7 days). */
  since: string;
  totals: EgressTotalsView;
  /** Newest first, at most 100. */
  recent: EgressConnectionView[];
  retentionDays: number;
}

export interface AdminUserEgressView extends EgressActivityView {
  installation: EgressRulesView;
  overrides: EgressUserOverridesView;
}

export interface AdminEgressView {
  installation: EgressRulesView;
  since: string;
  users: (EgressTotalsView & { userId: string; username: string })[];
  topHosts: { host: string; connections: number; denied: number; bytes: number }[];
  retentionDays: number;
}

/** A machine of the swarm and what the installation's runtimes hold of it. */
export interface NodeView {
  id: string;
  hostname: string;
  role: 'manager' | 'worker';
  state: 'ready' | 'down' | 'disconnected' | 'unknown';
  availability: 'active' | 'pause' | 'drain';
  memoryBytes: number;
  /** Memory set aside for runtimes that run, or are meant to run, there. */
  reservedBytes: number;
  /** Runtimes whose data is on this node. */
  runtimes: number;
  running: number;
}

/** GET /admin/nodes: the nodes, and the node each runtime is pinned to ('any' on shared storage, null before its first placement). */
export interface NodesOverview {
  backend: 'docker' | 'swarm';
  nodes: NodeView[];
  runtimes: { runtimeId: string; userId: string; username: string; node: string | null }[];
}
