/** Shapes only administrators see (src/http/routes/admin*.ts, models.ts, runtime.ts). */
import type { Invitation, ModelLimits, RuntimeListItem, StartedOperation, UsageTotals, User } from '../api/types';

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

/** The body of PUT /admin/models/:id. */
export interface ModelBody {
  upstreamModel?: string;
  displayName?: string;
  enabled?: boolean;
  isDefault?: boolean;
  contextWindow?: number | null;
  maxTokens?: number | null;
  inputPricePerMTok?: number;
  outputPricePerMTok?: number;
}

export type LimitOverrides = { [K in keyof ModelLimits]: number | null };

export interface LimitsView {
  defaults: ModelLimits;
  /** null: nothing overridden. */
  overrides: LimitOverrides | null;
  effective: ModelLimits;
}

/** The body of PUT /admin/users/:id/model-limits: null = the default. */
export interface LimitsBody {
  requestsPerMinute: number | null;
  concurrentRequests: number | null;
  monthlyTokens: number | null;
  monthlyBudgetUsd: number | null;
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
