import { OPENCLAW_PORT, type RuntimeSettings } from './runtimeSettings';

/** The header our proxies (Traefik's forward-auth, the control plane) set to the signed-in username. */
export const TRUSTED_USER_HEADER = 'x-forwarded-user';
export const MODEL_PROVIDER_ID = 'platform';
/** Env var holding the runtime's model-gateway key; the config refers to it instead of holding it. */
export const MODEL_KEY_ENV = 'CLAWLOOPS_MODEL_KEY';

export interface OpenClawConfigInput {
  username: string;
  workspaceOrigin: string;
  /** `/w/<username>` in path mode: OpenClaw serves its UI and WebSocket under it. Empty in host mode. */
  basePath: string;
  /** The proxy addresses on the runtime's network: only they can assert a user. */
  trustedProxies: string[];
  settings: Pick<RuntimeSettings, 'modelGatewayUrl' | 'models'> & Partial<Pick<RuntimeSettings, 'modelDetails' | 'egressProxyUrl'>>;
}

/**
 * Renders openclaw.json. OpenClaw validates it strictly (an unknown key stops start-up), so
 * every key here was checked against the pinned release (`openclaw config validate` in
 * test/integration/openclawRuntime.test.ts runs it against the real image).
 */
export function renderOpenClawConfig(input: OpenClawConfigInput): Record<string, unknown> {
  const { username } = input;
  const models = input.settings.models.map((id) => ({
    id,
    name: input.settings.modelDetails?.[id]?.name ?? id,
    ...(input.settings.modelDetails?.[id]?.contextWindow ? { contextWindow: input.settings.modelDetails[id].contextWindow } : {}),
    ...(input.settings.modelDetails?.[id]?.maxTokens ? { maxTokens: input.settings.modelDetails[id].maxTokens } : {}),
    input: ['text'],
    // Without it OpenClaw never asks for usage in streamed answers, and the gateway cannot meter them.
    compat: { supportsUsageInStreaming: true },
  }));
  const config: Record<string, unknown> = {
    gateway: {
      mode: 'local',
      bind: 'lan',
      port: OPENCLAW_PORT,
      auth: {
        mode: 'trusted-proxy',
        trustedProxy: {
          userHeader: TRUSTED_USER_HEADER,
          allowUsers: [username],
          deviceAutoApprove: { enabled: true },
        },
        identityScopes: { [username]: ['operator.read', 'operator.write'] },
      },
      trustedProxies: input.trustedProxies,
      controlUi: { allowedOrigins: [input.workspaceOrigin], ...(input.basePath ? { basePath: input.basePath } : {}) },
    },
    update: { checkOnStart: false },
    models: {
      mode: 'replace',
      catalogRefresh: { enabled: false },
      providers: {
        [MODEL_PROVIDER_ID]: {
          baseUrl: input.settings.modelGatewayUrl,
          apiKey: `\${${MODEL_KEY_ENV}}`,
          api: 'openai-completions',
          models,
        },
      },
    },
  };
  // web_fetch ignores HTTP(S)_PROXY unless told the proxy is the operator's (it then leaves DNS
  // to it): without this it dials out directly, which a runtime's network does not allow. Ours
  // judges every destination after resolving it (egress/egressPolicy.ts).
  if (input.settings.egressProxyUrl) config.tools = { web: { fetch: { useTrustedEnvProxy: true } } };
  const primary = input.settings.models[0];
  if (primary) config.agents = { defaults: { model: { primary: `${MODEL_PROVIDER_ID}/${primary}` } } };
  return config;
}
