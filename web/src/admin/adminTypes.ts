/**
 * Shapes only administrators see (src/http/routes/admin*.ts, models.ts, runtime.ts): the answers
 * are declared once in src/http/apiTypes.ts, imported type-only; the request bodies the console
 * sends are its own.
 */
export type {
  AdminEgressView,
  AdminModels,
  AdminUserEgressView,
  BackupList,
  BackupSchedule,
  BackupVerification,
  BulkAnswer,
  BulkResult,
  CatalogModel,
  CreatedInvitation,
  CreatedUser,
  EgressProfileName,
  InvitationAnswer,
  LimitOverrides,
  LimitsView,
  MailStatus,
  ModelChangeAnswer,
  NodesOverview,
  NodeView,
  PasswordReset,
  PlatformSettings,
  RolloutAnswer,
  RuntimeList,
  SavedModel,
  StaleRuntime,
  StartedOperation,
  UsageReport,
  WorkspaceRestoreList,
} from '../../../src/http/apiTypes';

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

/** The body of PUT /admin/users/:id/model-limits: null = the default. */
export interface LimitsBody {
  requestsPerMinute: number | null;
  concurrentRequests: number | null;
  monthlyTokens: number | null;
  monthlyBudgetUsd: number | null;
}

/** The body of PUT /admin/egress: the installation's rules. */
export interface EgressRulesBody {
  profile: 'public' | 'none';
  allow: string[];
  deny: string[];
}

/** The body of PUT /admin/users/:id/egress: null profile = the installation's; the lists add to the installation's. */
export interface UserEgressBody {
  profile: 'public' | 'none' | null;
  allow: string[];
  deny: string[];
}

/** The body of POST /admin/users/:id/runtime/move: the node by id (or hostname); copy false moves it without its data. */
export interface MoveRuntimeBody {
  node: string;
  copy: boolean;
}
