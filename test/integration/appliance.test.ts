/**
 * The appliance: docker-compose.yml (with and without docker-compose.https.yml) as
 * `docker-compose config` renders it, Traefik's static configuration, .env.example, and the
 * control plane's Dockerfile built from the local stand-in base (no registry here) and run
 * against the REAL Docker engine.
 *
 * The compose part needs docker-compose and Python's yaml module (scripts/ensure-compose.sh
 * installs both as root on Debian); it is skipped, saying why, only when they cannot be had.
 * The image part fails, never skips, without an engine. It keeps the built image
 * (clawloops/control-plane:test) so the next run is a cached rebuild, and removes the
 * containers and volumes it created.
 */
import { execFile, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Docker from 'dockerode';
import { loadConfig } from '../../src/config';
import { DEFAULT_RUNTIME_IMAGE } from '../../src/runtime/runtimeSettings';
import { eventually, execIn } from '../support/engine';

const ROOT = path.resolve(__dirname, '..', '..');
const SOCKET = process.env.CLAWLOOPS_DOCKER_SOCKET ?? '/var/run/docker.sock';
const docker = new Docker({ socketPath: SOCKET });

const IMAGE = 'clawloops/control-plane:test';
const NODE_BASE_IMAGE = 'clawloops/node:20-bookworm-slim';
/** Labels everything the image tests create, for the cleanup. */
const RUN_ID = `appliance-${process.pid}-${Date.now().toString(36)}`;
const TEST_LABEL = 'io.clawloops.test';

// ---------------------------------------------------------------------------------------------
// docker-compose

interface ComposeResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

interface ComposeService {
  image?: string;
  build?: { context: string; args?: Record<string, string> };
  ports?: Array<string | { published: number | string; target: number | string }>;
  volumes?: Array<string | { type?: string; source?: string; target: string; read_only?: boolean }>;
  networks?: Record<string, unknown> | string[];
  environment?: Record<string, string | number | boolean | null>;
  labels?: Record<string, string>;
  group_add?: Array<string | number>;
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
  init?: boolean;
  restart?: string;
  read_only?: boolean;
  cap_drop?: string[];
  command?: string[];
}

interface ComposeModel {
  services: Record<string, ComposeService>;
  networks: Record<string, { name?: string; ipam?: { config?: Array<{ subnet?: string }> } }>;
  volumes: Record<string, { name?: string }>;
}

/** Minimal .env: only the two required values (a value of our own for the socket's group). */
const REQUIRED_ENV = { CLAWLOOPS_DOCKER_GID: '4242', LITELLM_MASTER_KEY: 'sk-appliance-test-key' };

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'clawloops-appliance-'));

/**
 * Runs `docker-compose [-f ...] config` in the repository with exactly `env` as its .env file
 * and a clean process environment (nothing from the developer's shell or their own .env).
 */
function composeConfig(env: Record<string, string>, files: string[] = ['docker-compose.yml']): ComposeResult {
  const envFile = path.join(tmp, `env-${Math.random().toString(36).slice(2)}`);
  fs.writeFileSync(envFile, Object.entries(env).map(([k, v]) => `${k}=${v}\n`).join(''));
  const args = ['--env-file', envFile, ...files.flatMap((f) => ['-f', f]), 'config'];
  const res = spawnSync('docker-compose', args, {
    cwd: ROOT,
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', LANG: 'C.UTF-8' },
    timeout: 60_000,
  });
  return { status: res.status, stdout: res.stdout, stderr: res.stderr };
}

/** YAML to JSON through Python's yaml module (docker-compose brings it; js-yaml is not ours). */
function parseYaml<T>(text: string): T {
  const res = spawnSync(fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3', ['-c', 'import sys, json, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)'], {
    input: text,
    encoding: 'utf8',
  });
  if (res.status !== 0) throw new Error(`python3 could not parse the YAML: ${res.stderr}`);
  return JSON.parse(res.stdout) as T;
}

function model(env: Record<string, string>, files?: string[]): ComposeModel {
  const res = composeConfig(env, files);
  if (res.status !== 0) throw new Error(`docker-compose config failed (${res.status}): ${res.stderr}`);
  return parseYaml<ComposeModel>(res.stdout);
}

/** `config` escapes `$` as `$$` again in what it prints. */
const labelsOf = (s: ComposeService): Record<string, string> =>
  Object.fromEntries(Object.entries(s.labels ?? {}).map(([k, v]) => [k, String(v).replace(/\$\$/g, '$')]));

const envOf = (s: ComposeService): Record<string, string> =>
  Object.fromEntries(Object.entries(s.environment ?? {}).flatMap(([k, v]) => (v === null ? [] : [[k, String(v)]])));

const portsOf = (s: ComposeService): string[] =>
  (s.ports ?? []).map((p) => (typeof p === 'string' ? p : `${p.published}:${p.target}`)).sort();

const networksOf = (s: ComposeService): string[] => (Array.isArray(s.networks) ? s.networks : Object.keys(s.networks ?? {})).sort();

/** Volumes as "source:target[:ro]" whatever the syntax; relative sources are resolved by config. */
const volumesOf = (s: ComposeService): string[] =>
  (s.volumes ?? []).map((v) => {
    if (typeof v !== 'string') return `${v.source ?? ''}:${v.target}${v.read_only ? ':ro' : ''}`;
    const [source, target, mode] = v.split(':');
    return `${source}:${target}${mode === 'ro' ? ':ro' : ''}`;
  });

const composeSetup = spawnSync('bash', [path.join(ROOT, 'scripts', 'ensure-compose.sh')], { encoding: 'utf8', timeout: 300_000 });
const composeReady = composeSetup.status === 0;
if (!composeReady) {
  console.warn(`SKIPPING the docker-compose tests: docker-compose or python3-yaml is missing and could not be installed.\n${composeSetup.stderr}`);
}
const describeCompose = composeReady ? describe : describe.skip;

afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describeCompose('docker-compose.yml', () => {
  let m: ComposeModel;
  let traefik: ComposeService;
  let clawloops: ComposeService;
  let litellm: ComposeService;

  beforeAll(() => {
    m = model(REQUIRED_ENV);
    traefik = m.services.traefik!;
    clawloops = m.services.clawloops!;
    litellm = m.services.litellm!;
  });

  test('validates with only the required variables; only Traefik is published, on port 80', () => {
    expect(Object.keys(m.services).sort()).toEqual(['clawloops', 'litellm', 'traefik']);
    expect(portsOf(traefik)).toEqual(['80:80']);
    expect(clawloops.ports).toBeUndefined();
    expect(litellm.ports).toBeUndefined();
    for (const service of Object.values(m.services)) {
      expect(service.init).toBe(true);
      expect(service.restart).toBe('unless-stopped');
    }
  });

  test('pins Traefik and LiteLLM to released tags and builds the control plane from the Dockerfile', () => {
    expect(traefik.image).toMatch(/^traefik:v3\.\d+\.\d+$/);
    expect(litellm.image).toMatch(/^ghcr\.io\/berriai\/litellm:v\d+\.\d+\.\d+$/);
    expect(clawloops.image).toBeUndefined();
    expect(clawloops.build?.context).toBe(ROOT);
    expect(clawloops.build?.args?.NODE_IMAGE).toBe('node:20-bookworm-slim');
  });

  test('networks: Traefik and the control plane share the edge, LiteLLM only shares llm with the control plane', () => {
    expect(m.networks.edge?.name).toBe('clawloops-edge');
    expect(m.networks.llm?.name).toBe('clawloops-llm');
    expect(networksOf(traefik)).toEqual(['edge']);
    expect(networksOf(clawloops)).toEqual(['edge', 'llm']);
    expect(networksOf(litellm)).toEqual(['llm']);
    expect(m.volumes['clawloops-data']?.name).toBe('clawloops-data');
  });

  test('the Docker socket: read-only for Traefik, through its group for the non-root control plane, never for LiteLLM', () => {
    expect(volumesOf(traefik)).toEqual(
      expect.arrayContaining([
        '/var/run/docker.sock:/var/run/docker.sock:ro',
        `${path.join(ROOT, 'traefik', 'traefik.yml')}:/etc/traefik/traefik.yml:ro`,
        'traefik-acme:/acme',
      ]),
    );
    expect(volumesOf(clawloops).sort()).toEqual(['/var/run/docker.sock:/var/run/docker.sock', 'clawloops-data:/data']);
    expect(clawloops.group_add?.map(String)).toEqual([REQUIRED_ENV.CLAWLOOPS_DOCKER_GID]);
    expect(clawloops.read_only).toBe(true);
    expect(clawloops.cap_drop).toEqual(['ALL']);
    expect(volumesOf(litellm)).toEqual([`${path.join(ROOT, 'litellm', 'config.yaml')}:/app/config.yaml:ro`]);
  });

  test('start order: Traefik waits for a healthy control plane, which only waits for LiteLLM to start', () => {
    expect(traefik.depends_on).toEqual({ clawloops: { condition: 'service_healthy' } });
    expect(clawloops.depends_on).toEqual({ litellm: { condition: 'service_started' } });
    expect(clawloops.healthcheck?.test.join(' ')).toContain('http://127.0.0.1:8080/healthz');
    expect(traefik.healthcheck?.test).toEqual(['CMD', 'traefik', 'healthcheck', '--ping']);
    expect(litellm.healthcheck?.test.join(' ')).toContain('/health/liveliness');
  });

  test('Traefik routes the platform, the reserved paths and the catch-all to the control plane on the edge network', () => {
    const l = labelsOf(clawloops);
    expect(l['traefik.enable']).toBe('true');
    expect(l['traefik.docker.network']).toBe(m.networks.edge?.name);
    expect(l['traefik.http.services.clawloops.loadbalancer.server.port']).toBe('8080');
    expect(l['traefik.http.routers.clawloops-platform.rule']).toBe('Host(`localhost`)');
    expect(l['traefik.http.routers.clawloops-reserved.rule']).toBe('PathPrefix(`/_clawloops/`) || PathRegexp(`^/w/[^/]+/_clawloops/`)');
    expect(l['traefik.http.routers.clawloops-reserved.priority']).toBe('10000');
    expect(l['traefik.http.routers.clawloops-catchall.rule']).toBe('HostRegexp(`^.+$`)');
    expect(l['traefik.http.routers.clawloops-catchall.priority']).toBe('1');
    for (const router of ['platform', 'reserved', 'catchall']) {
      expect(l[`traefik.http.routers.clawloops-${router}.entrypoints`]).toBe('web');
      expect(l[`traefik.http.routers.clawloops-${router}.service`]).toBe('clawloops');
      expect(l[`traefik.http.routers.clawloops-${router}.tls.certresolver`]).toBeUndefined();
    }
    // The reserved paths' pattern matches what it should, and only that.
    const reserved = /^\/w\/[^/]+\/_clawloops\//;
    expect(reserved.test('/w/alice/_clawloops/wake')).toBe(true);
    expect(reserved.test('/w/alice/app/_clawloops/x')).toBe(false);
  });

  test('the workspace middleware: forward-auth to the control plane', () => {
    const l = labelsOf(clawloops);
    expect(l['traefik.http.middlewares.clawloops-auth.forwardauth.address']).toBe('http://clawloops:8080/_clawloops/forward-auth');
    expect(l['traefik.http.middlewares.clawloops-auth.forwardauth.authResponseHeaders']).toBe('X-Forwarded-User');
    expect(l['traefik.http.middlewares.clawloops-auth.forwardauth.trustForwardHeader']).toBe('false');
    expect(envOf(clawloops).CLAWLOOPS_TRAEFIK_MIDDLEWARE).toBe('clawloops-auth@docker');
    // The forward-auth host is the control plane's service name on the edge network.
    expect(Object.keys(m.services)).toContain('clawloops');
  });

  test('one instance name everywhere: CLAWLOOPS_INSTANCE, the labels and Traefik\'s constraint', () => {
    const instance = envOf(clawloops).CLAWLOOPS_INSTANCE;
    expect(instance).toBe('clawloops');
    expect(labelsOf(clawloops)['io.clawloops.instance']).toBe(instance);
    expect(labelsOf(traefik)['io.clawloops.instance']).toBe(instance);
    expect(labelsOf(clawloops)['io.clawloops.proxy']).toBe('control-plane');
    expect(labelsOf(traefik)['io.clawloops.proxy']).toBe('traefik');
    expect(labelsOf(litellm)['traefik.enable']).toBeUndefined();

    const staticConfig = parseYaml<Record<string, Record<string, unknown>>>(fs.readFileSync(path.join(ROOT, 'traefik', 'traefik.yml'), 'utf8'));
    const dockerProvider = (staticConfig.providers as { docker: Record<string, unknown> }).docker;
    expect(dockerProvider.constraints).toBe(`Label(\`io.clawloops.instance\`,\`${instance}\`)`);
    expect(dockerProvider.exposedByDefault).toBe(false);
    expect(dockerProvider.allowEmptyServices).toBe(false);
    expect(dockerProvider.network).toBe(m.networks.edge?.name);
  });

  test('Traefik\'s static configuration: web and websecure entrypoints, no dashboard, ping for the health check, ACME on /acme', () => {
    const s = parseYaml<Record<string, Record<string, unknown>>>(fs.readFileSync(path.join(ROOT, 'traefik', 'traefik.yml'), 'utf8'));
    const entryPoints = s.entryPoints as Record<string, { address: string }>;
    expect(entryPoints.web?.address).toBe(':80');
    expect(entryPoints.websecure?.address).toBe(':443');
    // The redirect to https belongs to the overlay, not to the static file.
    expect(JSON.stringify(entryPoints.web)).not.toMatch(/redirect/i);
    expect(s.api).toBeUndefined();
    const pingEntryPoint = (s.ping as { entryPoint: string }).entryPoint;
    expect(entryPoints[pingEntryPoint]).toBeDefined();
    expect(portsOf(traefik)).not.toContain(`${entryPoints[pingEntryPoint]?.address.slice(1)}:${entryPoints[pingEntryPoint]?.address.slice(1)}`);
    expect(s.global).toEqual({ checkNewVersion: false, sendAnonymousUsage: false });
    expect(s.log).toEqual({ level: 'INFO' });
    expect(s.accessLog).toBeDefined();
    const acme = (s.certificatesResolvers as { letsencrypt: { acme: { storage: string; httpChallenge: { entryPoint: string } } } }).letsencrypt.acme;
    expect(acme.httpChallenge.entryPoint).toBe('web');
    expect(acme.storage.startsWith('/acme/')).toBe(true);
  });

  test('LiteLLM: master key from .env, provider keys optional, its config read-only', () => {
    const e = envOf(litellm);
    expect(e.LITELLM_MASTER_KEY).toBe(REQUIRED_ENV.LITELLM_MASTER_KEY);
    expect(e.OPENAI_API_KEY).toBe('');
    expect(e.ANTHROPIC_API_KEY).toBe('');
    expect(litellm.command).toEqual(['--config', '/app/config.yaml', '--port', '4000']);
    const config = parseYaml<{ general_settings: Record<string, unknown>; model_list: unknown[] }>(
      fs.readFileSync(path.join(ROOT, 'litellm', 'config.yaml'), 'utf8'),
    );
    expect(config.general_settings.master_key).toBe('os.environ/LITELLM_MASTER_KEY');
    expect(config.general_settings.database_url).toBeUndefined();
    expect(config.model_list.length).toBeGreaterThan(0);
    expect(fs.readFileSync(path.join(ROOT, 'litellm', 'config.yaml'), 'utf8')).not.toMatch(/sk-[A-Za-z0-9]{8,}/);
  });

  test('the control plane accepts the environment compose gives it, with its own defaults where .env says nothing', () => {
    const e = envOf(clawloops);
    expect(e.CLAWLOOPS_ROUTER).toBe('traefik');
    expect(e.CLAWLOOPS_LLM_UPSTREAM_URL).toBe('http://litellm:4000/v1');
    expect(e.CLAWLOOPS_LLM_UPSTREAM_KEY).toBe(REQUIRED_ENV.LITELLM_MASTER_KEY);
    expect(e.CLAWLOOPS_MODEL_GATEWAY_URL).toBeUndefined();
    // Only the edge network (Traefik) may set X-Forwarded-For.
    expect(e.CLAWLOOPS_TRUST_PROXY).toBe(m.networks.edge?.ipam?.config?.[0]?.subnet);

    const config = loadConfig({ ...e, CLAWLOOPS_DATA_DIR: '/data' });
    const defaults = loadConfig({});
    expect(config.publicUrl).toBe('http://localhost');
    expect(config.secureCookies).toBe(false);
    expect(config.instance).toBe('clawloops');
    expect(config.trustProxy).toEqual([e.CLAWLOOPS_TRUST_PROXY]);
    expect(config.initialAdmin).toBeNull();
    expect(config.logLevel).toBe(defaults.logLevel);
    expect(config.subnetPool).toEqual(defaults.subnetPool);
    expect(config.runtime.image).toBe(DEFAULT_RUNTIME_IMAGE);
    expect(config.runtime.memoryBytes).toBe(defaults.runtime.memoryBytes);
    expect(config.runtime.nanoCpus).toBe(defaults.runtime.nanoCpus);
    expect(config.runtime.idleStopMs).toBe(defaults.runtime.idleStopMs);
    expect(config.runtime.models).toEqual(defaults.runtime.models);
    expect(config.runtime.router).toBe('traefik');
    expect(config.runtime.traefik).toEqual({ entrypoint: 'web', certResolver: null, middleware: 'clawloops-auth@docker', platformService: 'clawloops@docker' });
  });

  test('with the https overlay (through COMPOSE_FILE in .env): 443, an https public URL, TLS routers and a redirect on port 80', () => {
    const https = model({
      ...REQUIRED_ENV,
      CLAWLOOPS_DOMAIN: 'claw.example.com',
      COMPOSE_FILE: 'docker-compose.yml:docker-compose.https.yml',
    }, []);
    const t = https.services.traefik!;
    const c = https.services.clawloops!;
    expect(portsOf(t)).toEqual(['443:443', '80:80']);
    expect(portsOf(c)).toEqual([]);
    const e = envOf(c);
    expect(e.CLAWLOOPS_PUBLIC_URL).toBe('https://claw.example.com');
    expect(e.CLAWLOOPS_TRAEFIK_ENTRYPOINT).toBe('websecure');
    expect(e.CLAWLOOPS_TRAEFIK_CERTRESOLVER).toBe('letsencrypt');
    const l = labelsOf(c);
    expect(l['traefik.http.routers.clawloops-platform.rule']).toBe('Host(`claw.example.com`)');
    for (const router of ['platform', 'reserved', 'catchall']) {
      expect(l[`traefik.http.routers.clawloops-${router}.entrypoints`]).toBe('websecure');
      expect(l[`traefik.http.routers.clawloops-${router}.tls.certresolver`]).toBe('letsencrypt');
    }
    expect(l['traefik.http.routers.clawloops-http.entrypoints']).toBe('web');
    expect(l['traefik.http.routers.clawloops-http.rule']).toBe('HostRegexp(`^.+$`)');
    expect(l['traefik.http.routers.clawloops-http.middlewares']).toBe('clawloops-https-redirect');
    expect(l['traefik.http.middlewares.clawloops-https-redirect.redirectscheme.scheme']).toBe('https');
    // The base file's middlewares are still there.
    expect(l['traefik.http.middlewares.clawloops-auth.forwardauth.address']).toBe('http://clawloops:8080/_clawloops/forward-auth');

    const config = loadConfig({ ...e, CLAWLOOPS_DATA_DIR: '/data' });
    expect(config.publicUrl).toBe('https://claw.example.com');
    expect(config.secureCookies).toBe(true);
    expect(config.runtime.traefik).toEqual({ entrypoint: 'websecure', certResolver: 'letsencrypt', middleware: 'clawloops-auth@docker', platformService: 'clawloops@docker' });
  });

  test('refuses to start without a required value, saying how to fix it', () => {
    const noKey = composeConfig({ CLAWLOOPS_DOCKER_GID: '4242' });
    expect(noKey.status).not.toBe(0);
    expect(noKey.stderr).toMatch(/LITELLM_MASTER_KEY is required: set it in \.env .*openssl rand -hex 32/);

    const emptyKey = composeConfig({ CLAWLOOPS_DOCKER_GID: '4242', LITELLM_MASTER_KEY: '' });
    expect(emptyKey.status).not.toBe(0);
    expect(emptyKey.stderr).toMatch(/LITELLM_MASTER_KEY is required/);

    const noGid = composeConfig({ LITELLM_MASTER_KEY: 'sk-x' });
    expect(noGid.status).not.toBe(0);
    expect(noGid.stderr).toMatch(/CLAWLOOPS_DOCKER_GID is required: .*stat -c %g \/var\/run\/docker\.sock/);

    const httpsWithoutDomain = composeConfig(REQUIRED_ENV, ['docker-compose.yml', 'docker-compose.https.yml']);
    expect(httpsWithoutDomain.status).not.toBe(0);
    expect(httpsWithoutDomain.stderr).toMatch(/the https overlay needs CLAWLOOPS_DOMAIN/);
  });
});

describe('.env.example', () => {
  const example = fs.readFileSync(path.join(ROOT, '.env.example'), 'utf8');
  const assigned = new Map(
    example
      .split('\n')
      .map((line) => /^#?([A-Z][A-Z0-9_]*)=(.*)$/.exec(line))
      .filter((match): match is RegExpExecArray => match !== null)
      .map((match) => [match[1]!, match[2]!] as const),
  );

  test('lists every variable the compose files use (and COMPOSE_FILE for the https overlay)', () => {
    const used = new Set<string>(['COMPOSE_FILE']);
    for (const file of ['docker-compose.yml', 'docker-compose.https.yml']) {
      for (const match of fs.readFileSync(path.join(ROOT, file), 'utf8').matchAll(/\$\{([A-Z][A-Z0-9_]*)/g)) used.add(match[1]!);
    }
    expect([...used].filter((name) => !assigned.has(name))).toEqual([]);
  });

  test('holds no secrets: the required secrets and the keys are empty', () => {
    for (const name of ['CLAWLOOPS_DOCKER_GID', 'LITELLM_MASTER_KEY', 'OPENAI_API_KEY', 'ANTHROPIC_API_KEY', 'CLAWLOOPS_ADMIN_PASSWORD']) {
      expect([name, assigned.get(name)]).toEqual([name, '']);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// The control plane's image

const run = (file: string, args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs: number }) =>
  new Promise<{ stdout: string; stderr: string; ms: number }>((resolve, reject) => {
    const started = Date.now();
    execFile(
      file,
      args,
      { cwd: ROOT, env: options.env ?? process.env, timeout: options.timeoutMs, maxBuffer: 64 * 1024 ** 2 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${file} ${args.join(' ')} failed: ${err.message}\n${stdout.slice(-4000)}\n${stderr.slice(-4000)}`));
        else resolve({ stdout, stderr, ms: Date.now() - started });
      },
    );
  });

const buildImage = () =>
  run('docker', ['build', '--build-arg', `NODE_IMAGE=${NODE_BASE_IMAGE}`, '-t', IMAGE, '.'], {
    env: { ...process.env, DOCKER_BUILDKIT: '0' },
    timeoutMs: 14 * 60_000,
  });


async function get(url: string): Promise<{ status: number; body: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
  return { status: res.status, body: await res.text() };
}

/** The control plane's container, hardened as docker-compose.yml runs it, with a fresh named volume on /data. */
async function startControlPlane(name: string, extra: { binds?: string[]; groupAdd?: string[]; env?: string[]; volume?: string }) {
  const container = await docker.createContainer({
    name,
    Image: IMAGE,
    Labels: { [TEST_LABEL]: RUN_ID },
    // A unique instance: with the socket, the control plane only ever looks at its own objects.
    Env: [`CLAWLOOPS_INSTANCE=${RUN_ID.slice(0, 40).toLowerCase()}`, ...(extra.env ?? [])],
    HostConfig: {
      Init: true,
      ReadonlyRootfs: true,
      // Without a volume, /data is a tmpfs owned like the image's /data.
      Tmpfs: extra.volume ? { '/tmp': '' } : { '/tmp': '', '/data': 'uid=1000,gid=1000,mode=0700' },
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges:true'],
      Binds: [...(extra.volume ? [`${extra.volume}:/data`] : []), ...(extra.binds ?? [])],
      GroupAdd: extra.groupAdd,
    },
  });
  await container.start();
  const info = await container.inspect();
  // The default bridge: the host reaches a container's address without a published port.
  const ip = Object.values(info.NetworkSettings.Networks)[0]?.IPAddress;
  if (!ip) throw new Error(`${name} has no network address`);
  const base = `http://${ip}:8080`;
  await eventually(async () => ((await get(`${base}/healthz`)).status === 200 ? true : undefined), `${name} to answer /healthz`, 30_000);
  return { container, base };
}

async function cleanUp(): Promise<void> {
  const filters = JSON.stringify({ label: [`${TEST_LABEL}=${RUN_ID}`] });
  for (const c of await docker.listContainers({ all: true, filters })) {
    await docker.getContainer(c.Id).remove({ force: true, v: true }).catch(() => undefined);
  }
  // The control planes this file starts also claim their installation with a marker volume of their own.
  const claimed = JSON.stringify({ label: [`io.clawloops.instance=${RUN_ID.slice(0, 40).toLowerCase()}`] });
  for (const by of [filters, claimed]) {
    const { Volumes } = await docker.listVolumes({ filters: by });
    for (const v of Volumes ?? []) await docker.getVolume(v.Name).remove({ force: true }).catch(() => undefined);
  }
}

describe('the control plane image (Dockerfile)', () => {
  let built = false;
  let container: Docker.Container;
  let base: string;

  afterAll(cleanUp, 60_000);

  test('builds from the local stand-in base, and a second build is all layer cache', async () => {
    const baseBuild = await run('bash', [path.join(ROOT, 'scripts', 'images', 'build-node-base-image.sh')], { timeoutMs: 10 * 60_000 });
    const first = await buildImage();
    const second = await buildImage();
    const image = await docker.getImage(IMAGE).inspect();
    console.log(
      [
        `node base image (${NODE_BASE_IMAGE}): ${(baseBuild.ms / 1000).toFixed(1)} s${/reusing existing image/.test(baseBuild.stdout) ? ' (up to date, reused)' : ''}`,
        `docker build #1: ${(first.ms / 1000).toFixed(1)} s (with whatever layer cache earlier runs left)`,
        `docker build #2: ${(second.ms / 1000).toFixed(1)} s (nothing changed: all cached)`,
        `image ${IMAGE}: ${(image.Size / 1024 ** 2).toFixed(0)} MB`,
      ].join('\n'),
    );
    // Nothing ran the second time: every step came from the cache.
    expect(second.stdout).not.toMatch(/Running in /);
    expect(second.stdout).toMatch(/Using cache/);
    built = true;
  }, 15 * 60_000);

  test('the image runs `node dist/main.js` as node with the appliance defaults and a health check', async () => {
    expect(built).toBe(true);
    const { Config } = await docker.getImage(IMAGE).inspect();
    expect(Config.User).toBe('node');
    expect(Config.Cmd).toEqual(['node', 'dist/main.js']);
    expect(Config.Entrypoint ?? null).toBeNull();
    expect(Config.WorkingDir).toBe('/app');
    expect(Config.Env).toEqual(
      expect.arrayContaining(['NODE_ENV=production', 'CLAWLOOPS_DATA_DIR=/data', 'CLAWLOOPS_HOST=0.0.0.0', 'CLAWLOOPS_PORT=8080']),
    );
    expect(Object.keys(Config.ExposedPorts ?? {})).toEqual(['8080/tcp']);
    expect((Config.Healthcheck?.Test ?? []).join(' ')).toContain('/healthz');
    expect(Config.Volumes ?? null).toBeNull();
  });

  test('hardened as compose runs it, without the socket: /healthz 200, uid 1000, healthy, its database in the fresh volume', async () => {
    expect(built).toBe(true);
    const volume = `${RUN_ID}-data`;
    await docker.createVolume({ Name: volume, Labels: { [TEST_LABEL]: RUN_ID } });
    ({ container, base } = await startControlPlane(`${RUN_ID}-plain`, { volume }));

    expect((await get(`${base}/healthz`)).status).toBe(200);
    const ready = await get(`${base}/readyz`);
    expect(ready.status).toBe(503);
    expect(ready.body).toMatch(/docker unreachable/);

    const top = (await container.top({ ps_args: '-o uid,pid,args' })) as { Titles: string[]; Processes: string[][] };
    const uidColumn = top.Titles.indexOf('UID');
    expect(top.Processes.length).toBeGreaterThan(0);
    expect(top.Processes.map((p) => p[uidColumn])).toEqual(top.Processes.map(() => '1000'));
    expect(top.Processes.some((p) => p.join(' ').includes('node dist/main.js'))).toBe(true);

    const data = await execIn(container.id, ['sh', '-c', 'stat -c "%u:%g %a" /data && ls /data']);
    expect(data.exitCode).toBe(0);
    expect(data.stdout).toMatch(/^1000:1000 700\n/);
    expect(data.stdout).toContain('clawloops.db');

    // The image's HEALTHCHECK (Node's fetch) reports healthy: its first run comes after 10 s.
    await eventually(
      async () => ((await container.inspect()).State.Health?.Status === 'healthy' ? true : undefined),
      'the health check to report healthy',
      45_000,
    );
  }, 90_000);

  test('holds only what production needs: dist, web, production dependencies; no sources, tests or dev-only packages', async () => {
    expect(container).toBeDefined();
    // The lockfile marks every package only devDependencies need with "dev": true (a package both
    // sides need, like a type package a production dependency lists, is not marked).
    const lock = JSON.parse(fs.readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as {
      packages: Record<string, { dev?: boolean; optional?: boolean; devOptional?: boolean }>;
    };
    const topLevel = Object.entries(lock.packages).filter(([key]) => key.startsWith('node_modules/') && !key.slice(13).includes('/node_modules/'));
    const devOnly = topLevel.filter(([, meta]) => meta.dev).map(([key]) => `/app/${key}`);
    const production = topLevel.filter(([, meta]) => !meta.dev && !meta.optional && !meta.devOptional).map(([key]) => `/app/${key}`);
    expect(devOnly).toEqual(expect.arrayContaining(['/app/node_modules/typescript', '/app/node_modules/jest']));

    const mustExist = [
      '/app/dist/main.js',
      '/app/package.json',
      '/app/web/dist/index.html',
      '/app/node_modules/better-sqlite3/build/Release/better_sqlite3.node',
      ...production,
    ];
    const mustNotExist = [
      '/app/src',
      '/app/web/src',
      '/app/test',
      '/app/bench',
      '/app/scripts',
      '/app/.env',
      '/app/tsconfig.json',
      '/app/package-lock.json',
      '/app/node_modules/better-sqlite3/deps',
      '/app/node_modules/better-sqlite3/build/Release/obj',
      ...devOnly,
    ];
    const probe = `
      const fs = require('fs');
      const paths = JSON.parse(process.argv[1]);
      process.stdout.write(JSON.stringify(Object.fromEntries(paths.map((p) => [p, fs.existsSync(p)]))));
      `;
    const res = await execIn(container.id, ['node', '-e', probe, JSON.stringify([...mustExist, ...mustNotExist])]);
    expect(res.exitCode).toBe(0);
    const exists = JSON.parse(res.stdout) as Record<string, boolean>;
    expect(mustExist.filter((p) => !exists[p])).toEqual([]);
    expect(mustNotExist.filter((p) => exists[p])).toEqual([]);
  });

  test('stops cleanly and quickly on SIGTERM (docker stop)', async () => {
    expect(container).toBeDefined();
    const started = Date.now();
    await container.stop({ t: 10 });
    const stoppedInMs = Date.now() - started;
    const { State } = await container.inspect();
    expect(State.ExitCode).toBe(0);
    expect(stoppedInMs).toBeLessThan(5_000);
  }, 30_000);

  test('reaches the Docker engine through the socket\'s group, as uid 1000 without any capability', async () => {
    expect(built).toBe(true);
    const gid = String(fs.statSync(SOCKET).gid);
    const { base: withSocket } = await startControlPlane(`${RUN_ID}-socket`, {
      binds: [`${SOCKET}:/var/run/docker.sock`],
      groupAdd: [gid],
    });
    const ready = await eventually(
      async () => {
        const res = await get(`${withSocket}/readyz`);
        return res.status === 200 ? res : undefined;
      },
      '/readyz to report the engine reachable',
      20_000,
    );
    expect(ready.body).toMatch(/"docker":\{"ok":true/);
  }, 60_000);
});
