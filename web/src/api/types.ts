/** The shapes the control plane answers with (src/http/presenters.ts and the routes). */
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
}

export interface Page<T> {
  items: T[];
  total: number;
  limit: number;
  offset: number;
}

export type ObservedState = 'absent' | 'creating' | 'starting' | 'running' | 'unhealthy' | 'stopping' | 'stopped' | 'failed';
export type OperationKind = 'start' | 'stop' | 'restart' | 'delete' | 'purge';

export interface OperationView {
  id: string;
  runtimeId: string;
  kind: OperationKind;
  status: 'queued' | 'running' | 'succeeded' | 'failed';
  step: string;
  percent: number;
  message: string;
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
  outdatedImage: boolean;
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

export interface RuntimeListItem extends RuntimeView {
  uptimeSeconds: number | null;
  stats: ContainerStats | null;
}

export interface StartedOperation {
  operation: OperationView | null;
  runtime: RuntimeView;
}

export interface LogLine {
  stream: 'stdout' | 'stderr';
  line: string;
  at?: string;
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

export interface Invitation {
  id: string;
  role: Role;
  username: string | null;
  email: string | null;
  status: 'pending' | 'accepted' | 'revoked' | 'expired';
  createdBy: string | null;
  createdAt: string;
  expiresAt: string;
  acceptedAt: string | null;
  acceptedUserId: string | null;
  revokedAt: string | null;
}

export interface AuditEntry {
  id: number;
  at: string;
  action: string;
  actor: { id: string | null; username: string } | null;
  target: { type: string; id: string | null; label: string | null } | null;
  ip: string | null;
  detail: unknown;
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
  monthlyTokens: number;
  monthlyCostMicrodollars: number;
}

export interface OwnUsage {
  limits: ModelLimits;
  spentMicrodollars: number;
  budgetRemainingMicrodollars: number | null;
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
