/**
 * The swarm deployment: docker-compose.yml with docker-compose.swarm.yml as `docker-compose config`
 * renders them, Traefik's swarm static configuration (traefik/traefik-swarm.yml), and the
 * swarm variables in .env.example. docs/swarm.md says how they are used.
 *
 * The overlay runs on a swarm manager, but rendering it needs no swarm: nothing here touches the
 * engine. Like the compose part of appliance.test.ts it needs docker-compose and Python's yaml
 * module (scripts/ensure-compose.sh installs both as root on Debian), and is skipped, saying why,
 * only when they cannot be had. Traefik itself cannot run here (no image): its configuration is
 * checked against the options Traefik v3's swarm provider has.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../src/config';

const ROOT = path.resolve(__dirname, '..', '..');
const BASE = 'docker-compose.yml';
const OVERLAY = 'docker-compose.swarm.yml';

interface ComposeService {
  ports?: Array<string | { published: number | string; target: number | string }>;
  volumes?: Array<string | { type?: string; source?: string; target: string; read_only?: boolean }>;
  environment?: Record<string, string | number | boolean | null>;
  labels?: Record<string, string>;
  group_add?: Array<string | number>;
  read_only?: boolean;
  cap_drop?: string[];
  security_opt?: string[];
  tmpfs?: string[];
  [key: string]: unknown;
}

interface ComposeModel {
  services: Record<string, ComposeService>;
  networks: Record<string, unknown>;
  volumes: Record<string, unknown>;
  [key: string]: unknown;
}

/** Minimal .env: only the two required values (a value of our own for the socket's group). */
const REQUIRED_ENV = { CLAWLOOPS_DOCKER_GID: '4242', LITELLM_MASTER_KEY: 'sk-swarm-deploy-test-key' };

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'clawloops-swarm-deploy-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/**
 * Runs `docker-compose [-f ...] config` in the repository with exactly `env` as its .env file
 * and a clean process environment (nothing from the developer's shell or their own .env).
 */
function composeConfig(env: Record<string, string>, files: string[]): { status: number | null; stdout: string; stderr: string } {
  const envFile = path.join(tmp, `env-${Math.random().toString(36).slice(2)}`);
  fs.writeFileSync(envFile, Object.entries(env).map(([k, v]) => `${k}=${v}\n`).join(''));
  const res = spawnSync('docker-compose', ['--env-file', envFile, ...files.flatMap((f) => ['-f', f]), 'config'], {
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

function model(env: Record<string, string>, files: string[]): ComposeModel {
  const res = composeConfig(env, files);
  if (res.status !== 0) throw new Error(`docker-compose config failed (${res.status}): ${res.stderr}`);
  return parseYaml<ComposeModel>(res.stdout);
}

const envOf = (s: ComposeService): Record<string, string> =>
  Object.fromEntries(Object.entries(s.environment ?? {}).flatMap(([k, v]) => (v === null ? [] : [[k, String(v)]])));

const portsOf = (s: ComposeService): string[] =>
  (s.ports ?? []).map((p) => (typeof p === 'string' ? p : `${p.published}:${p.target}`)).sort();

/** Volumes as "source:target[:ro]" whatever the syntax, sorted (a merge may reorder them). */
const volumesOf = (s: ComposeService): string[] =>
  (s.volumes ?? [])
    .map((v) => {
      if (typeof v !== 'string') return `${v.source ?? ''}:${v.target}${v.read_only ? ':ro' : ''}`;
      const [source, target, mode] = v.split(':');
      return `${source}:${target}${mode === 'ro' ? ':ro' : ''}`;
    })
    .sort();

const readStatic = (file: string) => parseYaml<Record<string, unknown>>(fs.readFileSync(path.join(ROOT, 'traefik', file), 'utf8'));

const composeSetup = spawnSync('bash', [path.join(ROOT, 'scripts', 'ensure-compose.sh')], { encoding: 'utf8', timeout: 300_000 });
const composeReady = composeSetup.status === 0;
if (!composeReady) {
  console.warn(`SKIPPING the docker-compose tests: docker-compose or python3-yaml is missing and could not be installed.\n${composeSetup.stderr}`);
}
const describeCompose = composeReady ? describe : describe.skip;

/** The value .env.example suggests for a variable (its commented-out line), or undefined. */
function exampleValue(name: string): string | undefined {
  const example = fs.readFileSync(path.join(ROOT, '.env.example'), 'utf8');
  return new RegExp(`^#?${name}=(.*)$`, 'm').exec(example)?.[1];
}

describeCompose('docker-compose.yml + docker-compose.swarm.yml', () => {
  let base: ComposeModel;
  let swarm: ComposeModel;
  let traefik: ComposeService;
  let clawloops: ComposeService;

  beforeAll(() => {
    base = model(REQUIRED_ENV, [BASE]);
    swarm = model(REQUIRED_ENV, [BASE, OVERLAY]);
    traefik = swarm.services.traefik!;
    clawloops = swarm.services.clawloops!;
  });

  test('renders with only the required variables: the control plane runs runtimes as swarm services, node-local by default', () => {
    expect(Object.keys(swarm.services).sort()).toEqual(['clawloops', 'litellm', 'traefik']);
    const e = envOf(clawloops);
    expect(e.CLAWLOOPS_RUNTIME_BACKEND).toBe('swarm');
    expect(e.CLAWLOOPS_SWARM_VOLUME_OPTIONS).toBe('');
    // Without the overlay the control plane keeps its default backend (docker).
    expect(envOf(base.services.clawloops!).CLAWLOOPS_RUNTIME_BACKEND).toBeUndefined();
  });

  test('Traefik reads traefik-swarm.yml at the one static configuration path, instead of traefik.yml', () => {
    const mounts = volumesOf(traefik);
    expect(mounts).toContain(`${path.join(ROOT, 'traefik', 'traefik-swarm.yml')}:/etc/traefik/traefik.yml:ro`);
    expect(mounts.filter((m) => m.includes(':/etc/traefik/'))).toHaveLength(1);
    expect(mounts).not.toContain(`${path.join(ROOT, 'traefik', 'traefik.yml')}:/etc/traefik/traefik.yml:ro`);
    // The socket stays read-only for Traefik, the ACME volume stays.
    expect(mounts).toEqual(expect.arrayContaining(['/var/run/docker.sock:/var/run/docker.sock:ro', 'traefik-acme:/acme']));
  });

  test('the base hardening survives: non-root control plane, read-only, no capabilities, no-new-privileges, nothing published but Traefik', () => {
    expect(clawloops.read_only).toBe(true);
    expect(clawloops.cap_drop).toEqual(['ALL']);
    expect(clawloops.security_opt).toContain('no-new-privileges:true');
    expect(clawloops.tmpfs).toEqual(['/tmp']);
    expect(clawloops.group_add?.map(String)).toEqual([REQUIRED_ENV.CLAWLOOPS_DOCKER_GID]);
    expect(clawloops.user).toBeUndefined();
    expect(clawloops.privileged).toBeUndefined();
    expect(clawloops.ports).toBeUndefined();
    expect(portsOf(traefik)).toEqual(['80:80']);
    expect(swarm.services.litellm!.ports).toBeUndefined();
    for (const service of Object.values(swarm.services)) expect(service.security_opt).toContain('no-new-privileges:true');
    expect(volumesOf(clawloops)).toEqual(['/var/run/docker.sock:/var/run/docker.sock', 'clawloops-data:/data']);
  });

  test('the overlay changes nothing else: the rendered model is the base one but for those two lines', () => {
    const normalise = (m: ComposeModel): ComposeModel => ({
      ...m,
      // A merge may reorder volumes, and prints a network without settings as {} where the base
      // alone prints null: compare volumes sorted and networks by name.
      services: Object.fromEntries(
        Object.entries(m.services).map(([name, s]) => [name, { ...s, volumes: volumesOf(s), networks: Object.keys((s.networks as object | undefined) ?? {}).sort() }]),
      ),
    });
    const expected = normalise(structuredClone(base));
    expected.services.clawloops!.environment = { ...expected.services.clawloops!.environment, CLAWLOOPS_RUNTIME_BACKEND: 'swarm', CLAWLOOPS_SWARM_VOLUME_OPTIONS: '' };
    expected.services.traefik!.volumes = volumesOf(base.services.traefik!)
      .map((v) => v.replace(`${path.join(ROOT, 'traefik', 'traefik.yml')}:`, `${path.join(ROOT, 'traefik', 'traefik-swarm.yml')}:`))
      .sort();
    expect(normalise(swarm)).toEqual(expected);
  });

  test('shared storage: the JSON options .env.example suggests reach the control plane intact', () => {
    const suggested = exampleValue('CLAWLOOPS_SWARM_VOLUME_OPTIONS');
    expect(suggested).toBeDefined();
    const m = model({ ...REQUIRED_ENV, CLAWLOOPS_SWARM_VOLUME_OPTIONS: suggested! }, [BASE, OVERLAY]);
    const options = JSON.parse(envOf(m.services.clawloops!).CLAWLOOPS_SWARM_VOLUME_OPTIONS!) as Record<string, unknown>;
    expect(options).toEqual({ type: 'nfs', o: 'addr=10.0.0.5,rw,nfsvers=4.1', device: ':/exports/clawloops/{volume}' });
    // The control plane takes them as they are (a JSON object of strings, {volume} in one).
    const config = loadConfig({ ...envOf(m.services.clawloops!), CLAWLOOPS_DATA_DIR: '/data' });
    expect(config.runtimeBackend).toMatchObject({ kind: 'swarm', sharedVolumeOptions: options });
  });

  test('with the https overlay too (COMPOSE_FILE in .env, as .env.example writes it): both apply', () => {
    const composeFile = /^#COMPOSE_FILE=(.*https.*swarm.*)$/m.exec(fs.readFileSync(path.join(ROOT, '.env.example'), 'utf8'))?.[1];
    expect(composeFile).toBe('docker-compose.yml:docker-compose.https.yml:docker-compose.swarm.yml');
    const m = model({ ...REQUIRED_ENV, CLAWLOOPS_DOMAIN: 'claw.example.com', COMPOSE_FILE: composeFile! }, []);
    const t = m.services.traefik!;
    const c = m.services.clawloops!;
    expect(portsOf(t)).toEqual(['443:443', '80:80']);
    expect(volumesOf(t)).toContain(`${path.join(ROOT, 'traefik', 'traefik-swarm.yml')}:/etc/traefik/traefik.yml:ro`);
    const e = envOf(c);
    expect(e.CLAWLOOPS_RUNTIME_BACKEND).toBe('swarm');
    expect(e.CLAWLOOPS_PUBLIC_URL).toBe('https://claw.example.com');
    expect(e.CLAWLOOPS_TRAEFIK_CERTRESOLVER).toBe('letsencrypt');
    expect(c.ports).toBeUndefined();
    expect(c.read_only).toBe(true);
    expect(c.cap_drop).toEqual(['ALL']);
  });

  test('the control plane accepts the environment the overlay gives it; runtimes\' routers still use the docker-defined middleware', () => {
    const config = loadConfig({ ...envOf(clawloops), CLAWLOOPS_DATA_DIR: '/data' });
    expect(config.runtimeBackend).toMatchObject({ kind: 'swarm', sharedVolumeOptions: null });
    expect(config.instance).toBe('clawloops');
    expect(config.runtime.router).toBe('traefik');
    // The forward-auth middleware stays on the control plane's container (docker provider); the
    // swarm provider's routers refer to it across providers.
    expect(config.runtime.traefik).toEqual({ entrypoint: 'web', certResolver: null, middleware: 'clawloops-auth@docker', platformService: 'clawloops@docker' });
  });
});

describeCompose('traefik/traefik-swarm.yml', () => {
  let swarmStatic: Record<string, unknown>;
  let baseStatic: Record<string, unknown>;
  let providers: { docker: Record<string, unknown>; swarm: Record<string, unknown> };

  beforeAll(() => {
    swarmStatic = readStatic('traefik-swarm.yml');
    baseStatic = readStatic('traefik.yml');
    providers = swarmStatic.providers as typeof providers;
  });

  test('the swarm provider: the manager\'s socket, nothing exposed by default, only this installation, no routes to unhealthy tasks', () => {
    const p = providers.swarm;
    expect(p).toBeDefined();
    expect(p.endpoint).toBe('unix:///var/run/docker.sock');
    expect(p.exposedByDefault).toBe(false);
    expect(p.constraints).toBe('Label(`io.clawloops.instance`,`clawloops`)');
    expect(p.allowEmptyServices).toBe(false);
    expect(p.watch).toBe(true);
    // Polled, not evented: short enough that a started workspace is routed within seconds.
    expect(typeof p.refreshSeconds).toBe('number');
    expect(p.refreshSeconds).toBeGreaterThanOrEqual(1);
    expect(p.refreshSeconds).toBeLessThanOrEqual(5);
    // Each runtime names its own overlay (traefik.swarm.network); no default network, and Traefik
    // balances over task addresses (no lbswarm: dnsrr services have no virtual IP).
    expect(p.network).toBeUndefined();
    expect(p.useBindPortIP).toBeUndefined();
    // Traefik refuses unknown static options: only the swarm provider's own (Traefik v3,
    // pkg/provider/docker: Shared, ClientConfig and RefreshSeconds).
    const known = ['endpoint', 'username', 'password', 'tls', 'httpClientTimeout', 'exposedByDefault', 'constraints', 'allowEmptyServices', 'network', 'useBindPortIP', 'watch', 'defaultRule', 'refreshSeconds'];
    expect(Object.keys(p).filter((k) => !known.includes(k))).toEqual([]);
  });

  test('the same instance constraint as the docker provider, which still routes the platform on the edge network', () => {
    expect(providers.swarm.constraints).toBe(providers.docker.constraints);
    expect(providers.docker.exposedByDefault).toBe(false);
    expect(providers.docker.network).toBe('clawloops-edge');
  });

  test('everything but the swarm provider is traefik.yml unchanged: entrypoints, ping, ACME, the docker provider', () => {
    const otherProviders = Object.fromEntries(Object.entries(providers).filter(([name]) => name !== 'swarm'));
    expect({ ...swarmStatic, providers: otherProviders }).toEqual(baseStatic);
  });
});

describe('.env.example and the swarm overlay', () => {
  const example = fs.readFileSync(path.join(ROOT, '.env.example'), 'utf8');
  const assigned = new Set(example.split('\n').flatMap((line) => /^#?([A-Z][A-Z0-9_]*)=/.exec(line)?.[1] ?? []));

  test('lists every variable the overlay uses, and the backend it sets', () => {
    const used = [...fs.readFileSync(path.join(ROOT, OVERLAY), 'utf8').matchAll(/\$\{([A-Z][A-Z0-9_]*)/g)].map((m) => m[1]!);
    expect(used).toEqual(['CLAWLOOPS_SWARM_VOLUME_OPTIONS']);
    expect(used.filter((name) => !assigned.has(name))).toEqual([]);
    expect(example).toMatch(/^#CLAWLOOPS_RUNTIME_BACKEND=swarm$/m);
    // Documented only: commented out, so a copied .env stays on one machine.
    expect(example).not.toMatch(/^CLAWLOOPS_(RUNTIME_BACKEND|SWARM_VOLUME_OPTIONS)=/m);
    expect(example).not.toMatch(/^COMPOSE_FILE=/m);
    for (const line of example.matchAll(/^#COMPOSE_FILE=(.*)$/gm)) {
      for (const file of line[1]!.split(':')) expect([file, fs.existsSync(path.join(ROOT, file))]).toEqual([file, true]);
    }
  });
});
