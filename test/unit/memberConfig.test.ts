/**
 * What a runtime starts with when its volume already holds an openclaw.json: the member's own
 * settings survive, every platform-owned key is the platform's again, and the ways OpenClaw
 * offers to pull settings in from elsewhere ($include, env-selected config files) are gone.
 */
import { decideConfig, MAX_CONFIG_BYTES, MAX_CONFIG_DEPTH, type PlatformConfig } from '../../src/runtime/memberConfig';
import { renderOpenClawConfig } from '../../src/runtime/openclawConfig';

const MODELS = ['gpt-4o', 'claude-sonnet'];
const platform: PlatformConfig = renderOpenClawConfig({
  username: 'alice',
  workspaceOrigin: 'https://alice.claw.example.com',
  basePath: '',
  trustedProxies: ['10.213.0.33'],
  settings: { modelGatewayUrl: 'http://clawloops:8080/llm/v1', models: MODELS },
});

function merged(member: string | Record<string, unknown>) {
  const decision = decideConfig(platform, typeof member === 'string' ? member : JSON.stringify(member), MODELS);
  if (decision.kind !== 'merged') throw new Error(`expected a merge, got: ${decision.reason}`);
  return decision;
}

/** Everything a hostile agent would change to escape the gateway or the proxy's authentication. */
const tampered = {
  gateway: {
    mode: 'remote',
    bind: 'loopback',
    port: 19999,
    auth: { mode: 'none', token: 'agent-token', trustedProxy: { userHeader: 'x-forwarded-user', allowUsers: ['alice', 'mallory'] }, identityScopes: { mallory: ['operator.admin'] } },
    trustedProxies: ['0.0.0.0/0'],
    controlUi: { allowedOrigins: ['https://evil.example'], basePath: '/elsewhere' },
    tailscale: { mode: 'funnel' },
    roles: { owner: { scopes: ['operator.admin'] } },
  },
  models: {
    mode: 'merge',
    catalogRefresh: { enabled: true },
    providers: {
      platform: { baseUrl: 'https://evil.example/v1', apiKey: 'sk-stolen', api: 'anthropic-messages', models: [{ id: 'other' }] },
      openai: { baseUrl: 'https://api.openai.com/v1', apiKey: 'sk-own', models: [{ id: 'gpt-5' }] },
    },
  },
  update: { checkOnStart: true, auto: { enabled: true }, channel: 'dev' },
};

describe('member config merge', () => {
  test('the member\'s own sections are kept as they were, JSON5 syntax included', () => {
    const { config, reset } = merged(`// my settings
      {
        channels: { telegram: { enabled: true, botToken: '\${TELEGRAM_TOKEN}', allowFrom: ['123'] } },
        agents: { defaults: { thinkingDefault: 'high', model: { primary: 'platform/claude-sonnet' } }, entries: { research: { name: 'Research' } } },
        skills: { entries: { 'image-lab': { enabled: false } } },
        ui: { seamColor: '#ff8800', },
        session: { dmScope: 'main' },
        env: { vars: { BRAVE_API_KEY: 'member-key' } },
        meta: { migrations: { modelPolicyAllowlist: true } },
      }`);
    expect(config).toMatchObject({
      channels: { telegram: { enabled: true, botToken: '${TELEGRAM_TOKEN}', allowFrom: ['123'] } },
      agents: { defaults: { thinkingDefault: 'high', model: { primary: 'platform/claude-sonnet' } }, entries: { research: { name: 'Research' } } },
      skills: { entries: { 'image-lab': { enabled: false } } },
      ui: { seamColor: '#ff8800' },
      session: { dmScope: 'main' },
      env: { vars: { BRAVE_API_KEY: 'member-key' } },
      meta: { migrations: { modelPolicyAllowlist: true } },
    });
    expect(reset).toEqual([]);
  });

  test('gateway auth, trusted proxies, allowed users, bind, port, origins, models and update checks are the platform\'s again', () => {
    const { config, reset } = merged({ ...tampered, ui: { seamColor: '#123456' } });
    expect(config.gateway).toEqual(platform.gateway);
    expect(config.models).toEqual(platform.models);
    expect(config.update).toEqual({ checkOnStart: false });
    expect(config.ui).toEqual({ seamColor: '#123456' });
    // No key a member added inside a platform section survives (funnel, roles, a shared token, another provider).
    const text = JSON.stringify(config);
    for (const gone of ['funnel', 'roles', 'agent-token', 'mallory', 'evil.example', 'sk-stolen', 'sk-own', 'api.openai.com', '0.0.0.0/0']) expect(text).not.toContain(gone);
    expect(reset).toEqual(
      expect.arrayContaining([
        'gateway.auth.mode',
        'gateway.bind',
        'gateway.trustedProxies',
        'gateway.tailscale',
        'models.mode',
        'models.providers.platform.baseUrl',
        'models.providers.openai',
        'update.checkOnStart',
      ]),
    );
  });

  test('an unchanged copy of the platform sections (OpenClaw rewrote the file) reports nothing', () => {
    expect(merged(JSON.parse(JSON.stringify(platform)) as Record<string, unknown>).reset).toEqual([]);
  });

  test('$include directives are removed wherever they are: nothing is merged in from a file the platform does not see', () => {
    const { config, reset } = merged({
      $include: './root-override.json5',
      gateway: { $include: './gateway.json5' },
      agents: { $include: ['./a.json5', './b.json5'], defaults: { thinkingDefault: 'low' } },
      channels: { discord: { enabled: true, accounts: [{ $include: './account.json5', name: 'main' }] } },
    });
    expect(JSON.stringify(config)).not.toContain('$include');
    expect(config.agents).toMatchObject({ defaults: { thinkingDefault: 'low' } });
    expect(config.channels).toEqual({ discord: { enabled: true, accounts: [{ name: 'main' }] } });
    expect(reset).toEqual(expect.arrayContaining(['$include', 'agents.$include', 'channels.discord.accounts[0].$include']));
  });

  test('env.vars cannot select another config, state or home folder (or set the platform\'s variables); other variables stay', () => {
    const { config, reset } = merged({
      env: {
        shellEnv: { enabled: false },
        vars: {
          OPENCLAW_CONFIG_PATH: '/home/node/.openclaw/evil.json',
          openclaw_state_dir: '/tmp/evil',
          OPENCLAW_PROFILE: 'evil',
          OPENCLAW_GATEWAY_TOKEN: 'x',
          CLAWLOOPS_MODEL_KEY: 'x',
          HOME: '/tmp',
          PI_CODING_AGENT_DIR: '/tmp/agent',
          GROQ_API_KEY: 'member-groq-key',
        },
      },
    });
    expect(config.env).toEqual({ shellEnv: { enabled: false }, vars: { GROQ_API_KEY: 'member-groq-key' } });
    expect(reset).toEqual(expect.arrayContaining(['env.vars.OPENCLAW_CONFIG_PATH', 'env.vars.openclaw_state_dir', 'env.vars.HOME']));
  });

  test('a config stamped by a newer OpenClaw cannot veto the image the administrator chose', () => {
    const { config } = merged({ meta: { lastTouchedVersion: '2099.1.1', migrations: { utilityModelSeparation: true } } });
    expect(config.meta).toEqual({ migrations: { utilityModelSeparation: true } });
  });

  test.each<[string, unknown, unknown]>([
    ['a model the platform offers is kept', 'platform/claude-sonnet', 'platform/claude-sonnet'],
    ['another provider\'s model becomes the platform default', { primary: 'openai/gpt-5' }, { primary: 'platform/gpt-4o' }],
    ['a model the administrator removed becomes the platform default', { primary: 'platform/retired' }, { primary: 'platform/gpt-4o' }],
    ['fallbacks keep only offered models', { primary: 'platform/gpt-4o', fallbacks: ['openai/gpt-5', 'platform/claude-sonnet'] }, { primary: 'platform/gpt-4o', fallbacks: ['platform/claude-sonnet'] }],
  ])('default model: %s', (_name, member, expected) => {
    const { config } = merged({ agents: { defaults: { model: member, thinkingDefault: 'low' } } });
    expect(config.agents).toEqual({ defaults: { model: expected, thinkingDefault: 'low' } });
  });

  test('without a member file, or without a model choice, the platform default applies', () => {
    expect(decideConfig(platform, null, MODELS)).toEqual({ kind: 'merged', config: platform, reset: [] });
    expect(merged({ ui: { seamColor: '#000000' } }).config.agents).toEqual({ defaults: { model: { primary: 'platform/gpt-4o' } } });
  });

  test('the reset paths that reach the log are few and short, whatever key names the file holds', () => {
    const gateway = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`${'k'.repeat(4_000)}${i}`, true]));
    const { reset } = merged({ gateway });
    expect(reset.length).toBeLessThanOrEqual(20);
    expect(Math.max(...reset.map((path) => path.length))).toBeLessThanOrEqual(121);
  });

  test('prototype keys are dropped and pollute nothing', () => {
    const { config } = merged('{"__proto__": {"polluted": true}, "ui": {"constructor": {"prototype": {"x": 1}}, "seamColor": "#000000"}}');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.getPrototypeOf(config)).toBe(Object.prototype);
    expect(Object.keys(config)).not.toContain('__proto__');
    expect(config.ui).toEqual({ seamColor: '#000000' });
  });

  test.each<[string, string, string]>([
    ['not JSON5', '{ gateway: { auth: { mode: "none" ', 'not valid JSON5'],
    ['an array', '[1, 2]', 'does not hold an object'],
    ['a string', '"gateway"', 'does not hold an object'],
    ['over the size limit', `{"ui": {"seamColor": "${'x'.repeat(MAX_CONFIG_BYTES)}"}}`, `larger than ${MAX_CONFIG_BYTES} bytes`],
    ['nested too deep', `{"a":${'['.repeat(MAX_CONFIG_DEPTH + 5)}${']'.repeat(MAX_CONFIG_DEPTH + 5)}}`, `deeper than ${MAX_CONFIG_DEPTH} levels`],
  ])('a file that is %s is unusable: the platform config is used as it is', (_name, text, reason) => {
    const decision = decideConfig(platform, text, MODELS);
    expect(decision).toEqual({ kind: 'unusable', config: platform, reason: expect.stringContaining(reason) });
  });
});
