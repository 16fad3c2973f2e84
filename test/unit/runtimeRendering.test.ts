/**
 * What a runtime renders to (runtime/runtimeSpec.ts) and the Docker container it becomes
 * (docker/runtimeContainer.ts, docker/networkPlan.ts), end to end as the Docker provisioner does it.
 */
import { planNetwork, trustedProxies } from '../../src/docker/networkPlan';
import { LABELS, type ContainerEvent, type ContainerSnapshot } from '../../src/docker/runtimeBackend';
import { changeOf, containerName, containerSpecFor, instanceOf, runtimeNames } from '../../src/docker/runtimeContainer';
import type { RuntimeOwner } from '../../src/runtime/provisioner';
import { renderRuntime as renderSpec, type RuntimeSecrets } from '../../src/runtime/runtimeSpec';
import { DEFAULT_RUNTIME_IMAGE, type RuntimeSettings } from '../../src/runtime/runtimeSettings';
import { runtimeSettingsFixture } from '../support/runtimeFixtures';

function renderRuntime(owner: RuntimeOwner, settings: RuntimeSettings, network: { subnet: string }, secrets: RuntimeSecrets) {
  const rendered = renderSpec(owner, settings, { trustedProxies: trustedProxies(planNetwork(network.subnet), settings) }, secrets);
  return { ...rendered, spec: containerSpecFor(rendered.spec, settings) };
}

const settings: RuntimeSettings = runtimeSettingsFixture({ models: ['gpt-4o', 'claude-sonnet'] });
const id = { runtimeId: '0b7f3c1e-1111-4222-8333-444455556666', userId: 'user-1', username: 'alice' };
const network = { subnet: '10.213.0.32/27' };
const secrets = { gatewayPassword: 'gw-secret-value-1234567890', modelKey: 'model-key-value-1234567890' };

describe('rendered OpenClaw configuration', () => {
  const { openclawConfig: config } = renderRuntime(id, settings, network, secrets);
  const gateway = config.gateway as Record<string, unknown>;

  test('the gateway binds the LAN on 18789 and trusts only the proxies on the runtime network, for the owner only', () => {
    expect(gateway).toMatchObject({
      mode: 'local',
      bind: 'lan',
      port: 18789,
      // The control plane on the host reaches the runtime through the network's gateway.
      trustedProxies: ['10.213.0.33'],
      auth: {
        mode: 'trusted-proxy',
        trustedProxy: { userHeader: 'x-forwarded-user', allowUsers: ['alice'] },
        identityScopes: { alice: ['operator.read', 'operator.write'] },
      },
      controlUi: { allowedOrigins: ['https://alice.claw.example.com'] },
    });
    // A shared token next to trusted-proxy stops OpenClaw at start-up.
    expect(JSON.stringify(gateway)).not.toMatch(/"token"/);
  });

  test('outbound update checks and catalog refreshes are off; models come only from the platform gateway', () => {
    expect(config.update).toEqual({ checkOnStart: false });
    const models = config.models as { mode: string; catalogRefresh: unknown; providers: Record<string, { baseUrl: string; apiKey: string; models: { id: string; compat: unknown }[] }> };
    expect(models.mode).toBe('replace');
    expect(models.catalogRefresh).toEqual({ enabled: false });
    expect(models.providers.platform?.baseUrl).toBe('http://clawloops:8080/llm/v1');
    expect(models.providers.platform?.apiKey).toBe('${CLAWLOOPS_MODEL_KEY}');
    expect(models.providers.platform?.models.map((m) => m.id)).toEqual(['gpt-4o', 'claude-sonnet']);
    expect(models.providers.platform?.models.every((m) => JSON.stringify(m.compat) === '{"supportsUsageInStreaming":true}')).toBe(true);
    expect(config.agents).toEqual({ defaults: { model: { primary: 'platform/gpt-4o' } } });
  });

  test("web_fetch goes through the egress proxy (it ignores the proxy environment unless told it is the operator's), and only when there is one", () => {
    const withProxy = renderRuntime(id, { ...settings, egressProxyUrl: 'http://host.docker.internal:3128' }, network, secrets).openclawConfig;
    expect(withProxy.tools).toEqual({ web: { fetch: { useTrustedEnvProxy: true } } });
    expect(renderRuntime(id, { ...settings, egressProxyUrl: null }, network, secrets).openclawConfig.tools).toBeUndefined();
  });

  test('no secret value appears in the config file; it refers to the environment instead', () => {
    const text = JSON.stringify(config);
    expect(text).not.toContain(secrets.modelKey);
    expect(text).not.toContain(secrets.gatewayPassword);
  });
});

describe('container spec', () => {
  const { spec, files } = renderRuntime(id, settings, network, secrets);

  test('is named and labelled as ours, with its own network and volume', () => {
    expect(spec.name).toBe(containerName(id));
    expect(spec.name).toBe('clawloops-alice-0b7f3c1e');
    expect(spec.networkName).toBe(runtimeNames(id.runtimeId).network);
    expect(spec.volumeName).toBe(runtimeNames(id.runtimeId).volume);
    expect(spec.volumeMountPath).toBe('/home/node/.openclaw');
    expect(spec.labels).toMatchObject({
      [LABELS.managed]: 'true',
      [LABELS.role]: 'runtime',
      [LABELS.runtimeId]: id.runtimeId,
      [LABELS.userId]: 'user-1',
      [LABELS.username]: 'alice',
    });
  });

  test('runs as 1000:1000 with the configured limits and the secrets only in its environment', () => {
    expect(spec.user).toBe('1000:1000');
    expect(spec).toMatchObject({ memoryBytes: 2 * 1024 ** 3, nanoCpus: 2e9, pidsLimit: 512, image: DEFAULT_RUNTIME_IMAGE });
    expect(spec.env).toMatchObject({
      OPENCLAW_GATEWAY_PASSWORD: secrets.gatewayPassword,
      CLAWLOOPS_MODEL_KEY: secrets.modelKey,
      OPENCLAW_DISABLE_BONJOUR: '1',
      OPENCLAW_NO_AUTO_UPDATE: '1',
      TINI_SUBREAPER: '1',
    });
    expect(spec.cmd).toEqual(['node', 'dist/index.js', 'gateway', '--bind', 'lan', '--port', '18789']);
  });

  test('pins the config file OpenClaw reads, so neither a .env in its state folder nor env.vars can point it at another', () => {
    // OpenClaw fills these from those sources only while the process environment has no value.
    expect(spec.env).toMatchObject({
      HOME: '/home/node',
      OPENCLAW_HOME: '/home/node',
      OPENCLAW_STATE_DIR: '/home/node/.openclaw',
      OPENCLAW_CONFIG_PATH: '/home/node/.openclaw/openclaw.json',
    });
    // Members change their own settings through OpenClaw itself; the platform keys come back at every start.
    expect(spec.env).not.toHaveProperty('OPENCLAW_CONFIG_READONLY');
  });

  test('writes only .openclaw/ (owned by 1000, 0700) and openclaw.json (0600), never the workspace', () => {
    expect(files.map((f) => [f.path, f.type, f.mode.toString(8), f.uid, f.gid])).toEqual([
      ['.openclaw', 'directory', '700', 1000, 1000],
      ['.openclaw/openclaw.json', 'file', '600', 1000, 1000],
    ]);
    expect(JSON.parse(files[1]?.content?.toString('utf8') ?? '')).toEqual(renderRuntime(id, settings, network, secrets).openclawConfig);
  });
});

describe('config hash', () => {
  const hash = (s: Partial<RuntimeSettings> = {}, net = network, sec = secrets) => renderRuntime(id, { ...settings, ...s }, net, sec).configHash;

  test('is the same for new secrets, so re-creating a container with fresh keys is not "stale"', () => {
    expect(hash()).toBe(hash({}, network, { gatewayPassword: 'other-password-000000000', modelKey: 'other-key-000000000000' }));
  });

  test.each<[string, Partial<RuntimeSettings>]>([
    ['the model list', { models: ['gpt-4o'] }],
    ['the gateway URL', { modelGatewayUrl: 'http://elsewhere:8080/llm/v1' }],
    ['the memory limit', { memoryBytes: 3 * 1024 ** 3 }],
    ['the CPU limit', { nanoCpus: 1e9 }],
    ['the pids limit', { pidsLimit: 256 }],
    ['the image', { image: 'ghcr.io/openclaw/openclaw:2026.10.1' }],
    ['the domain (allowed origin)', { addressing: { ...settings.addressing, domain: 'other.example.com' } }],
    ['the routing mode (base path)', { addressing: { ...settings.addressing, mode: 'path' } }],
    ['the router (Traefik labels, trusted proxies)', { router: 'traefik' }],
    ['the command', { command: ['node', 'dist/index.js', 'gateway'] }],
  ])('changes with %s', (_what, change) => {
    expect(hash(change)).not.toBe(hash());
  });

  test('changes with the network (trusted proxies)', () => {
    expect(hash({}, { subnet: '10.213.0.64/27' })).not.toBe(hash());
  });
});

describe('workspace routing', () => {
  const traefik: RuntimeSettings = { ...settings, router: 'traefik', controlPlaneContainer: 'cp' };

  test('behind Traefik, exactly the control plane and Traefik at their fixed addresses are trusted', () => {
    const gw = renderRuntime(id, traefik, network, secrets).openclawConfig.gateway as Record<string, unknown>;
    expect(gw.trustedProxies).toEqual(['10.213.0.34', '10.213.0.35']);
  });

  test('host mode: the runtime carries one Traefik router for its host, through forward-auth, to port 18789 on its own network', () => {
    const { spec } = renderRuntime(id, { ...traefik, traefik: { entrypoint: 'websecure', certResolver: 'letsencrypt', middleware: 'clawloops-auth@docker', platformService: 'clawloops@docker' } }, network, secrets);
    const router = `clawloops-rt-${id.runtimeId}`;
    expect(spec.labels).toMatchObject({
      'traefik.enable': 'true',
      'traefik.docker.network': runtimeNames(id.runtimeId).network,
      [`traefik.http.routers.${router}.rule`]: 'Host(`alice.claw.example.com`)',
      [`traefik.http.routers.${router}.entrypoints`]: 'websecure',
      [`traefik.http.routers.${router}.middlewares`]: 'clawloops-auth@docker',
      [`traefik.http.routers.${router}.service`]: router,
      [`traefik.http.routers.${router}.tls.certresolver`]: 'letsencrypt',
      [`traefik.http.services.${router}.loadbalancer.server.port`]: '18789',
    });
  });

  test("its WebSocket upgrades are routed to the control plane's service, which holds them and closes them when their session ends", () => {
    const { spec } = renderRuntime(id, { ...traefik, traefik: { entrypoint: 'websecure', certResolver: 'letsencrypt', middleware: 'clawloops-auth@docker', platformService: 'clawloops@docker' } }, network, secrets);
    const ws = `clawloops-rt-${id.runtimeId}-ws`;
    expect(spec.labels).toMatchObject({
      [`traefik.http.routers.${ws}.rule`]: 'Host(`alice.claw.example.com`) && HeaderRegexp(`Upgrade`, `(?i)^websocket$`)',
      [`traefik.http.routers.${ws}.entrypoints`]: 'websecure',
      [`traefik.http.routers.${ws}.service`]: 'clawloops@docker',
      [`traefik.http.routers.${ws}.tls.certresolver`]: 'letsencrypt',
    });
    // Longer than the plain router's rule: Traefik's default priority (rule length) tries it first.
    expect(spec.labels[`traefik.http.routers.${ws}.rule`]?.length).toBeGreaterThan(spec.labels[`traefik.http.routers.clawloops-rt-${id.runtimeId}.rule`]?.length ?? 0);
    expect(spec.labels[`traefik.http.routers.${ws}.middlewares`]).toBeUndefined();
  });

  test('path mode: the router matches /w/<user>/ on the platform host and OpenClaw serves under that base path', () => {
    const pathMode: RuntimeSettings = { ...traefik, addressing: { mode: 'path', domain: '192.168.1.10', platformOrigin: 'http://192.168.1.10' } };
    const { spec, openclawConfig } = renderRuntime(id, pathMode, network, secrets);
    expect(spec.labels[`traefik.http.routers.clawloops-rt-${id.runtimeId}.rule`]).toBe('Host(`192.168.1.10`) && PathPrefix(`/w/alice/`)');
    expect((openclawConfig.gateway as { controlUi: unknown }).controlUi).toEqual({ allowedOrigins: ['http://192.168.1.10'], basePath: '/w/alice' });
  });

  test('with the built-in router no Traefik label is set', () => {
    expect(Object.keys(renderRuntime(id, settings, network, secrets).spec.labels).filter((k) => k.startsWith('traefik.'))).toEqual([]);
  });
});

describe('containers read back as runtimes', () => {
  const snapshot = (change: Partial<ContainerSnapshot> = {}): ContainerSnapshot => ({
    id: 'c1',
    name: 'clawloops-alice-0b7f3c1e',
    image: 'img:1',
    labels: { [LABELS.role]: 'runtime', [LABELS.runtimeId]: id.runtimeId, [LABELS.userId]: id.userId, [LABELS.username]: id.username, [LABELS.configHash]: 'abc' },
    status: 'running',
    health: null,
    exitCode: null,
    oomKilled: false,
    restartCount: 0,
    error: null,
    createdAt: 1,
    startedAt: 2,
    finishedAt: null,
    addresses: { [runtimeNames(id.runtimeId).network]: '10.213.0.50' },
    memoryLimitBytes: 2 * 1024 ** 3,
    nanoCpus: 2e9,
    pidsLimit: 512,
    ...change,
  });

  test.each<[string, Partial<ContainerSnapshot>, string]>([
    ['running, no health check verdict', {}, 'running'],
    ['running, health check still starting', { health: 'starting' }, 'starting'],
    ['running and healthy', { health: 'healthy' }, 'healthy'],
    ['running and unhealthy', { health: 'unhealthy' }, 'unhealthy'],
    ['restarting', { status: 'restarting' }, 'restarting'],
    ['exited', { status: 'exited', exitCode: 1 }, 'exited'],
    ['OOM-killed', { status: 'exited', oomKilled: true }, 'oom'],
    ['dead', { status: 'dead' }, 'crashed'],
    ['created', { status: 'created' }, 'created'],
  ])('%s', (_name, change, phase) => {
    expect(instanceOf(snapshot(change), 18789).phase).toBe(phase);
  });

  test('a running runtime is reached on its own network at OpenClaw\'s port; a stopped one has no URL', () => {
    expect(instanceOf(snapshot(), 18789)).toMatchObject({ owner: id, specHash: 'abc', url: 'http://10.213.0.50:18789' });
    expect(instanceOf(snapshot({ status: 'exited' }), 18789).url).toBeNull();
  });

  test('engine events of runtime containers become changes; others are dropped', () => {
    const event = (action: string, labels = snapshot().labels): ContainerEvent => ({ containerId: 'c1', action, labels, exitCode: 3, at: 0 });
    expect(changeOf(event('die'))).toEqual({ kind: 'exited', runtimeId: id.runtimeId, instanceId: 'c1', exitCode: 3 });
    expect(changeOf(event('start'))?.kind).toBe('started');
    expect(changeOf(event('oom'))?.kind).toBe('out-of-memory');
    expect(changeOf(event('destroy'))?.kind).toBe('removed');
    expect(changeOf(event('health_status: healthy'))?.kind).toBe('changed');
    expect(changeOf(event('die', { [LABELS.role]: 'file-helper', [LABELS.runtimeId]: id.runtimeId }))).toBeNull();
  });
});
