/** Where the model gateway forwards to, and its limits; parsed from the environment in config.ts. */
export interface LlmSettings {
  /** Base URL of an OpenAI-compatible API (…/v1), e.g. LiteLLM; null: the gateway answers 503. */
  upstreamUrl: string | null;
  /** Sent upstream as the bearer token; never handed to runtimes. */
  upstreamKey: string | null;
  /** Longest a model request may take, streaming included. */
  timeoutMs: number;
  bodyLimitBytes: number;
  /** Defaults of the per-user limits; 0 means no limit. */
  limits: ModelLimits;
}

export interface ModelLimits {
  requestsPerMinute: number;
  concurrentRequests: number;
  /** Prompt plus completion tokens per calendar month (UTC). */
  monthlyTokens: number;
  /** Spend per calendar month in millionths of a US dollar, at the catalog's prices. */
  monthlyCostMicrodollars: number;
}
