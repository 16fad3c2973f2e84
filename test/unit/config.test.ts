import path from 'node:path';
import { ConfigError, loadConfig } from '../../src/config';

const CWD = path.resolve('/srv/clawloops');
const STRONG_PASSWORD = 'correct horse battery staple';

/** Runs loadConfig and returns the ConfigError it must throw. */
function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env, CWD);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error(`expected a ConfigError for ${JSON.stringify(env)}, but the configuration was accepted`);
}

describe('defaults', () => {
  test('an empty environment gives the documented defaults', () => {
    const config = loadConfig({}, CWD);
    expect(config).toEqual({
      port: 8080,
      host: '0.0.0.0',
      dataDir: path.join(CWD, 'data'),
      publicUrl: 'http://localhost:8080',
      publicOrigin: 'http://localhost:8080',
      secureCookies: false,
      dockerSocket: '/var/run/docker.sock',
      instance: null,
      subnetPool: { base: '10.213.0.0/16', prefix: 27 },
      initialAdmin: null,
      trustProxy: false,
      logLevel: 'info',
      sessionIdleTimeoutMs: 7 * 86_400_000,
      sessionMaxAgeMs: 30 * 86_400_000,
      jsonBodyLimitBytes: 100 * 1024,
      shutdownTimeoutMs: 10_000,
      runtime: {
        image: 'ghcr.io/openclaw/openclaw:2026.9.6',
        command: ['node', 'dist/index.js', 'gateway', '--bind', 'lan', '--port', '18789'],
        workingDir: '/app',
        memoryBytes: 2 * 1024 ** 3,
        nanoCpus: 2e9,
        pidsLimit: 512,
        readyTimeoutMs: 180_000,
        stopTimeoutSeconds: 10,
        maxParallelOperations: 4,
        idleStopMs: 0,
        addressing: { mode: 'host', domain: 'localhost', platformOrigin: 'http://localhost:8080' },
        router: 'builtin',
        traefik: { entrypoint: 'web', certResolver: null, middleware: 'clawloops-auth@docker', platformService: 'clawloops@docker' },
        modelGatewayUrl: 'http://host.docker.internal:8080/llm/v1',
        models: [],
        modelDetails: {},
        controlPlaneContainer: null,
        egressProxyUrl: 'http://host.docker.internal:3128',
        crashLoop: { maxExits: 3, windowMs: 300_000 },
      },
      files: {
        root: '/home/node/.openclaw/workspace',
        volumeRoot: '/home/node/.openclaw',
        quotaBytes: 10 * 1024 ** 3,
        maxFileBytes: 4 * 1024 ** 3,
        maxRequestBytes: 8 * 1024 ** 3,
        maxFilesPerUpload: 1000,
        textMaxBytes: 2 * 1024 ** 2,
        importMaxEntries: 100_000,
        spoolDir: path.join(CWD, 'data', 'upload-spool'),
        spoolMaxBytes: 4 * 1024 ** 3,
        spoolMinFreeBytes: 1024 ** 3,
        streamIdleMs: 120_000,
      },
      llm: { upstreamUrl: null, upstreamKey: null, timeoutMs: 600_000, bodyLimitBytes: 4 * 1024 ** 2, limits: { requestsPerMinute: 60, concurrentRequests: 4, monthlyTokens: 0, monthlyCostMicrodollars: 0 } },
      backup: { dir: path.join(CWD, 'data', 'backups'), keyFile: null, offboardingKeepDays: 30 },
      runtimeBackend: { kind: 'docker' },
      egress: { port: 3128, rules: { profile: 'public', allow: [], deny: [] }, record: { retentionMs: 30 * 86_400_000, maxRows: 500_000 } },
      mail: null,
      metrics: null,
      oidc: null,
    });
  });

  test('unrelated variables are ignored', () => {
    expect(loadConfig({ PATH: '/usr/bin', HOME: '/root', PORT: 'nonsense' }, CWD).port).toBe(8080);
  });

  test('the default public URL follows the configured port', () => {
    expect(loadConfig({ CLAWLOOPS_PORT: '9000' }, CWD).publicUrl).toBe('http://localhost:9000');
  });

  test('a relative data directory is resolved against the given cwd; an absolute one is kept', () => {
    expect(loadConfig({ CLAWLOOPS_DATA_DIR: 'var/state' }, CWD).dataDir).toBe(path.join(CWD, 'var', 'state'));
    expect(loadConfig({ CLAWLOOPS_DATA_DIR: '../elsewhere' }, CWD).dataDir).toBe(path.resolve(CWD, '..', 'elsewhere'));
    expect(loadConfig({ CLAWLOOPS_DATA_DIR: '/var/lib/clawloops' }, CWD).dataDir).toBe('/var/lib/clawloops');
  });

  test('the cwd defaults to the process working directory', () => {
    expect(loadConfig({}).dataDir).toBe(path.resolve(process.cwd(), 'data'));
  });
});

describe('accepted values', () => {
  test('every variable is read', () => {
    const config = loadConfig(
      {
        CLAWLOOPS_PORT: '3000',
        CLAWLOOPS_HOST: '127.0.0.1',
        CLAWLOOPS_DATA_DIR: '/data',
        CLAWLOOPS_PUBLIC_URL: 'https://claw.example.com',
        CLAWLOOPS_DOCKER_SOCKET: '/run/docker.sock',
        CLAWLOOPS_INSTANCE: 'team-a',
        CLAWLOOPS_RUNTIME_SUBNET_POOL: '10.99.0.0/20',
        CLAWLOOPS_ADMIN_USERNAME: 'root-admin',
        CLAWLOOPS_ADMIN_PASSWORD: STRONG_PASSWORD,
        CLAWLOOPS_TRUST_PROXY: '1',
        CLAWLOOPS_LOG_LEVEL: 'debug',
        CLAWLOOPS_SESSION_IDLE_TIMEOUT: '30m',
        CLAWLOOPS_SESSION_MAX_AGE: '12h',
        CLAWLOOPS_JSON_BODY_LIMIT: '1mb',
        CLAWLOOPS_SHUTDOWN_TIMEOUT: '500ms',
        CLAWLOOPS_RUNTIME_IMAGE: 'registry.example.com:5000/team/openclaw:2026.10.1-custom',
        CLAWLOOPS_RUNTIME_MEMORY: '3gb',
        CLAWLOOPS_RUNTIME_CPUS: '1.5',
        CLAWLOOPS_RUNTIME_PIDS: '1024',
        CLAWLOOPS_RUNTIME_READY_TIMEOUT: '2m',
        CLAWLOOPS_RUNTIME_STOP_TIMEOUT: '20s',
        CLAWLOOPS_RUNTIME_MAX_PARALLEL: '8',
        CLAWLOOPS_IDLE_STOP: '45m',
        CLAWLOOPS_DOMAIN: 'claw.example.com',
        CLAWLOOPS_MODEL_GATEWAY_URL: 'http://clawloops:3000/llm/v1/',
        CLAWLOOPS_RUNTIME_MODELS: 'gpt-4o, claude-sonnet-4.5 ,',
        CLAWLOOPS_CONTROL_PLANE_CONTAINER: 'clawloops-control-1',
        CLAWLOOPS_BACKUP_DIR: '/mnt/nas/clawloops',
        CLAWLOOPS_BACKUP_KEY_FILE: '/etc/clawloops/backup-key.txt',
        CLAWLOOPS_BACKUP_OFFBOARDING_DAYS: '90',
        CLAWLOOPS_EGRESS_PORT: '3129',
        CLAWLOOPS_METRICS_TOKEN: 'metrics-token-0123456789abcdef',
        CLAWLOOPS_METRICS_PORT: '9464',
        CLAWLOOPS_METRICS_HOST: '127.0.0.1',
        CLAWLOOPS_EGRESS_PROFILE: 'none',
        CLAWLOOPS_EGRESS_ALLOW: 'Git.Office.lan, *.intra.example,10.0.0.0/8',
        CLAWLOOPS_EGRESS_DENY: 'bad.example.com',
        CLAWLOOPS_EGRESS_RECORD_DAYS: '90',
        CLAWLOOPS_WORKSPACE_ROUTING: 'path',
        CLAWLOOPS_ROUTER: 'traefik',
        CLAWLOOPS_TRAEFIK_ENTRYPOINT: 'websecure',
        CLAWLOOPS_TRAEFIK_CERTRESOLVER: 'letsencrypt',
        CLAWLOOPS_TRAEFIK_MIDDLEWARE: 'auth@file',
        CLAWLOOPS_FILES_ROOT: '/home/node/.openclaw/projects',
        CLAWLOOPS_FILES_QUOTA: '20gb',
        CLAWLOOPS_FILES_MAX_FILE_SIZE: '1gb',
        CLAWLOOPS_FILES_MAX_REQUEST_SIZE: '2gb',
        CLAWLOOPS_FILES_MAX_UPLOAD_FILES: '500',
        CLAWLOOPS_FILES_TEXT_MAX_SIZE: '1mb',
        CLAWLOOPS_FILES_IMPORT_MAX_ENTRIES: '5000',
        CLAWLOOPS_FILES_SPOOL_LIMIT: '2gb',
        CLAWLOOPS_FILES_SPOOL_MIN_FREE: '500mb',
        CLAWLOOPS_FILES_STREAM_IDLE_TIMEOUT: '45s',
        CLAWLOOPS_LLM_UPSTREAM_URL: 'http://litellm:4000/v1/',
        CLAWLOOPS_LLM_UPSTREAM_KEY: 'sk-master',
        CLAWLOOPS_LLM_TIMEOUT: '2m',
        CLAWLOOPS_LLM_BODY_LIMIT: '1mb',
        CLAWLOOPS_LLM_REQUESTS_PER_MINUTE: '30',
        CLAWLOOPS_LLM_CONCURRENT_REQUESTS: '2',
        CLAWLOOPS_LLM_MONTHLY_TOKENS: '1000000',
        CLAWLOOPS_LLM_MONTHLY_BUDGET_USD: '12.50',
        CLAWLOOPS_SMTP_URL: 'smtp://claw%40example.com:p%40ss%3Aw%2Frd@mail.example.com',
        CLAWLOOPS_MAIL_FROM: 'ClawLoops <claw@example.com>',
      },
      CWD,
    );
    expect(config).toEqual({
      port: 3000,
      host: '127.0.0.1',
      dataDir: '/data',
      publicUrl: 'https://claw.example.com',
      publicOrigin: 'https://claw.example.com',
      secureCookies: true,
      dockerSocket: '/run/docker.sock',
      instance: 'team-a',
      subnetPool: { base: '10.99.0.0/20', prefix: 27 },
      initialAdmin: { username: 'root-admin', password: STRONG_PASSWORD },
      trustProxy: 1,
      logLevel: 'debug',
      sessionIdleTimeoutMs: 30 * 60_000,
      sessionMaxAgeMs: 12 * 3_600_000,
      jsonBodyLimitBytes: 1024 * 1024,
      shutdownTimeoutMs: 500,
      runtime: {
        image: 'registry.example.com:5000/team/openclaw:2026.10.1-custom',
        command: ['node', 'dist/index.js', 'gateway', '--bind', 'lan', '--port', '18789'],
        workingDir: '/app',
        memoryBytes: 3 * 1024 ** 3,
        nanoCpus: 1.5e9,
        pidsLimit: 1024,
        readyTimeoutMs: 120_000,
        stopTimeoutSeconds: 20,
        maxParallelOperations: 8,
        idleStopMs: 45 * 60_000,
        addressing: { mode: 'path', domain: 'claw.example.com', platformOrigin: 'https://claw.example.com' },
        router: 'traefik',
        traefik: { entrypoint: 'websecure', certResolver: 'letsencrypt', middleware: 'auth@file', platformService: 'clawloops@docker' },
        modelGatewayUrl: 'http://clawloops:3000/llm/v1',
        models: ['gpt-4o', 'claude-sonnet-4.5'],
        modelDetails: {},
        controlPlaneContainer: 'clawloops-control-1',
        egressProxyUrl: 'http://clawloops-control-plane:3129',
        crashLoop: { maxExits: 3, windowMs: 300_000 },
      },
      files: {
        root: '/home/node/.openclaw/projects',
        volumeRoot: '/home/node/.openclaw',
        quotaBytes: 20 * 1024 ** 3,
        maxFileBytes: 1024 ** 3,
        maxRequestBytes: 2 * 1024 ** 3,
        maxFilesPerUpload: 500,
        textMaxBytes: 1024 ** 2,
        importMaxEntries: 5000,
        spoolDir: '/data/upload-spool',
        spoolMaxBytes: 2 * 1024 ** 3,
        spoolMinFreeBytes: 500 * 1024 ** 2,
        streamIdleMs: 45_000,
      },
      llm: { upstreamUrl: 'http://litellm:4000/v1', upstreamKey: 'sk-master', timeoutMs: 120_000, bodyLimitBytes: 1024 ** 2, limits: { requestsPerMinute: 30, concurrentRequests: 2, monthlyTokens: 1_000_000, monthlyCostMicrodollars: 12_500_000 } },
      backup: { dir: '/mnt/nas/clawloops', keyFile: '/etc/clawloops/backup-key.txt', offboardingKeepDays: 90 },
      runtimeBackend: { kind: 'docker' },
      egress: { port: 3129, rules: { profile: 'none', allow: ['git.office.lan', '*.intra.example', '10.0.0.0/8'], deny: ['bad.example.com'] }, record: { retentionMs: 90 * 86_400_000, maxRows: 500_000 } },
      mail: { smtp: { host: 'mail.example.com', port: 587, secure: false, requireTls: true, user: 'claw@example.com', password: 'p@ss:w/rd' }, from: 'ClawLoops <claw@example.com>' },
      metrics: { token: 'metrics-token-0123456789abcdef', port: 9464, host: '127.0.0.1' },
      oidc: null,
    });
  });

  test.each(['1', '80', '8080', '65535'])('port %s', (port) => {
    expect(loadConfig({ CLAWLOOPS_PORT: port }, CWD).port).toBe(Number(port));
  });

  test.each(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const)('log level %s', (level) => {
    expect(loadConfig({ CLAWLOOPS_LOG_LEVEL: level }, CWD).logLevel).toBe(level);
  });

  test.each([
    ['0.0.0.0', '0.0.0.0'],
    ['127.0.0.1', '127.0.0.1'],
    ['::', '::'],
    ['localhost', 'localhost'],
  ])('host %s', (raw, expected) => {
    expect(loadConfig({ CLAWLOOPS_HOST: raw }, CWD).host).toBe(expected);
  });

  test.each([
    ['45', 45_000],
    ['30s', 30_000],
    ['90m', 90 * 60_000],
    ['2h', 7_200_000],
    [' 3d ', 3 * 86_400_000],
    ['0', 0],
  ])('shutdown timeout %j is %d ms', (raw, ms) => {
    expect(loadConfig({ CLAWLOOPS_SHUTDOWN_TIMEOUT: raw }, CWD).shutdownTimeoutMs).toBe(ms);
  });

  test('idle timeout may equal the maximum session age', () => {
    const config = loadConfig({ CLAWLOOPS_SESSION_IDLE_TIMEOUT: '1d', CLAWLOOPS_SESSION_MAX_AGE: '24h' }, CWD);
    expect(config.sessionIdleTimeoutMs).toBe(86_400_000);
    expect(config.sessionMaxAgeMs).toBe(86_400_000);
  });

  test.each([
    ['2048', 2048],
    ['1kb', 1024],
    ['512KB', 512 * 1024],
    ['2mb', 2 * 1024 * 1024],
  ])('JSON body limit %j is %d bytes', (raw, bytes) => {
    expect(loadConfig({ CLAWLOOPS_JSON_BODY_LIMIT: raw }, CWD).jsonBodyLimitBytes).toBe(bytes);
  });
});

describe('runtime backend', () => {
  test('swarm needs the control plane in a container, and reads its volume options and reservation share', () => {
    expect(() => loadConfig({ CLAWLOOPS_RUNTIME_BACKEND: 'swarm' }, CWD)).toThrow(/CLAWLOOPS_RUNTIME_BACKEND=swarm: the control plane must run in a container/);
    const config = loadConfig(
      {
        CLAWLOOPS_RUNTIME_BACKEND: 'swarm',
        CLAWLOOPS_CONTROL_PLANE_CONTAINER: 'self',
        CLAWLOOPS_SWARM_VOLUME_OPTIONS: '{"type":"nfs","o":"addr=10.0.0.5,rw","device":":/exports/{volume}"}',
        CLAWLOOPS_SWARM_MEMORY_RESERVATION: '0.5',
      },
      CWD,
    );
    expect(config.runtimeBackend).toEqual({ kind: 'swarm', sharedVolumeOptions: { type: 'nfs', o: 'addr=10.0.0.5,rw', device: ':/exports/{volume}' }, memoryReservationShare: 0.5 });
    expect(loadConfig({ CLAWLOOPS_RUNTIME_BACKEND: 'swarm', CLAWLOOPS_CONTROL_PLANE_CONTAINER: 'self' }, CWD).runtimeBackend).toEqual({ kind: 'swarm', sharedVolumeOptions: null, memoryReservationShare: 0.25 });
  });

  test.each([
    ['CLAWLOOPS_RUNTIME_BACKEND', 'kubernetes', /must be docker/],
    ['CLAWLOOPS_SWARM_VOLUME_OPTIONS', 'not json', /JSON object of local-driver options/],
    ['CLAWLOOPS_SWARM_VOLUME_OPTIONS', '{"type":1}', /values are strings/],
    ['CLAWLOOPS_SWARM_VOLUME_OPTIONS', '{"type":"nfs","device":":/exports/all"}', /\{volume\}/],
    ['CLAWLOOPS_SWARM_MEMORY_RESERVATION', '2', /CLAWLOOPS_SWARM_MEMORY_RESERVATION/],
  ])('%s=%s is refused', (name, value, message) => {
    expect(() => loadConfig({ CLAWLOOPS_CONTROL_PLANE_CONTAINER: 'self', [name]: value }, CWD)).toThrow(message);
  });
});

describe('metrics', () => {
  test('off unless a token or a port is set; the listener binds where the main port does unless told', () => {
    expect(loadConfig({ CLAWLOOPS_METRICS_TOKEN: '', CLAWLOOPS_METRICS_PORT: '', CLAWLOOPS_METRICS_HOST: '' }, CWD).metrics).toBeNull();
    expect(loadConfig({ CLAWLOOPS_METRICS_TOKEN: 'x'.repeat(32) }, CWD).metrics).toEqual({ token: 'x'.repeat(32), port: null, host: '0.0.0.0' });
    expect(loadConfig({ CLAWLOOPS_METRICS_PORT: '9464', CLAWLOOPS_HOST: '10.0.0.2' }, CWD).metrics).toEqual({ token: null, port: 9464, host: '10.0.0.2' });
  });
});

describe('public URL and cookies', () => {
  test.each([
    ['http://claw.example.com', 'http://claw.example.com', false],
    ['https://claw.example.com', 'https://claw.example.com', true],
    ['https://claw.example.com/', 'https://claw.example.com', true],
    ['https://claw.example.com:8443', 'https://claw.example.com:8443', true],
    ['https://claw.example.com:443', 'https://claw.example.com', true],
    ['http://127.0.0.1:8080', 'http://127.0.0.1:8080', false],
    ['HTTPS://Claw.Example.COM', 'https://claw.example.com', true],
  ])('%s → origin %s, Secure cookies %s', (raw, origin, secure) => {
    const config = loadConfig({ CLAWLOOPS_PUBLIC_URL: raw }, CWD);
    expect(config.publicUrl).toBe(origin);
    expect(config.publicOrigin).toBe(origin);
    expect(config.secureCookies).toBe(secure);
  });

  test('the default public URL is plain http, so cookies are not Secure', () => {
    expect(loadConfig({}, CWD).secureCookies).toBe(false);
  });
});

describe('trusted proxies', () => {
  test.each<[string, boolean | number | string[]]>([
    ['false', false],
    ['', false],
    ['  ', false],
    ['true', true],
    ['0', 0],
    ['2', 2],
    ['loopback', ['loopback']],
    ['loopback, linklocal,uniquelocal', ['loopback', 'linklocal', 'uniquelocal']],
    ['10.0.0.1', ['10.0.0.1']],
    ['10.0.0.0/8,192.168.1.0/24', ['10.0.0.0/8', '192.168.1.0/24']],
    ['::1, fd00::/8', ['::1', 'fd00::/8']],
    ['10.0.0.0/0,2001:db8::/128', ['10.0.0.0/0', '2001:db8::/128']],
    ['loopback,,10.1.2.3,', ['loopback', '10.1.2.3']],
  ])('%j → %j', (raw, expected) => {
    expect(loadConfig({ CLAWLOOPS_TRUST_PROXY: raw }, CWD).trustProxy).toEqual(expected);
  });

  test.each([
    ['yes', 'yes'],
    ['example.com', 'example.com'],
    ['10.0.0.0/33', '10.0.0.0/33'],
    ['::1/129', '::1/129'],
    ['10.0.0.0/8/1', '10.0.0.0/8/1'],
    ['10.0.0.0/abc', '10.0.0.0/abc'],
    ['10.0.0.0/', '10.0.0.0/'],
    ['-1', '-1'],
    ['loopback,300.1.1.1', '300.1.1.1'],
  ])('%j is refused naming the bad entry', (raw, badEntry) => {
    const err = configError({ CLAWLOOPS_TRUST_PROXY: raw });
    expect(err.problems).toHaveLength(1);
    expect(err.problems[0]).toMatch(/^CLAWLOOPS_TRUST_PROXY: /);
    expect(err.problems[0]).toContain(`bad entries: ${badEntry}`);
  });
});

describe('bad values are refused with a ConfigError naming the variable', () => {
  test.each<[string, Record<string, string>, RegExp]>([
    ['non-numeric port', { CLAWLOOPS_PORT: 'abc' }, /^CLAWLOOPS_PORT: must be an integer between 1 and 65535 \(got "abc"\)$/],
    ['port 0', { CLAWLOOPS_PORT: '0' }, /^CLAWLOOPS_PORT: .*\(got "0"\)$/],
    ['port above 65535', { CLAWLOOPS_PORT: '65536' }, /^CLAWLOOPS_PORT: .*\(got "65536"\)$/],
    ['negative port', { CLAWLOOPS_PORT: '-1' }, /^CLAWLOOPS_PORT: /],
    ['fractional port', { CLAWLOOPS_PORT: '80.5' }, /^CLAWLOOPS_PORT: /],
    ['empty port', { CLAWLOOPS_PORT: '' }, /^CLAWLOOPS_PORT: /],
    ['host name instead of an address', { CLAWLOOPS_HOST: 'example.com' }, /^CLAWLOOPS_HOST: must be an IP address.*\(got "example.com"\)$/],
    ['empty data dir', { CLAWLOOPS_DATA_DIR: '' }, /^CLAWLOOPS_DATA_DIR: must not be empty/],
    ['empty docker socket', { CLAWLOOPS_DOCKER_SOCKET: '' }, /^CLAWLOOPS_DOCKER_SOCKET: /],
    ['unknown log level', { CLAWLOOPS_LOG_LEVEL: 'verbose' }, /^CLAWLOOPS_LOG_LEVEL: .*\(got "verbose"\)$/],
    ['upper-case log level', { CLAWLOOPS_LOG_LEVEL: 'INFO' }, /^CLAWLOOPS_LOG_LEVEL: /],
    ['idle timeout in words', { CLAWLOOPS_SESSION_IDLE_TIMEOUT: '7 days' }, /^CLAWLOOPS_SESSION_IDLE_TIMEOUT: must be a duration like .*got "7 days"/],
    ['idle timeout below a minute', { CLAWLOOPS_SESSION_IDLE_TIMEOUT: '30s' }, /^CLAWLOOPS_SESSION_IDLE_TIMEOUT: .*at least 60s.*got "30s"/],
    ['negative max age', { CLAWLOOPS_SESSION_MAX_AGE: '-1d' }, /^CLAWLOOPS_SESSION_MAX_AGE: must be a duration/],
    ['max age with unknown unit', { CLAWLOOPS_SESSION_MAX_AGE: '4w' }, /^CLAWLOOPS_SESSION_MAX_AGE: .*got "4w"/],
    ['empty max age', { CLAWLOOPS_SESSION_MAX_AGE: '' }, /^CLAWLOOPS_SESSION_MAX_AGE: /],
    ['fractional shutdown timeout', { CLAWLOOPS_SHUTDOWN_TIMEOUT: '1.5s' }, /^CLAWLOOPS_SHUTDOWN_TIMEOUT: .*got "1.5s"/],
    ['idle timeout longer than max age', { CLAWLOOPS_SESSION_IDLE_TIMEOUT: '31d' }, /^CLAWLOOPS_SESSION_IDLE_TIMEOUT: must not be longer than CLAWLOOPS_SESSION_MAX_AGE$/],
    ['JSON body limit below 1kb', { CLAWLOOPS_JSON_BODY_LIMIT: '512' }, /^CLAWLOOPS_JSON_BODY_LIMIT: .*got "512"/],
    ['JSON body limit in gigabytes', { CLAWLOOPS_JSON_BODY_LIMIT: '1gb' }, /^CLAWLOOPS_JSON_BODY_LIMIT: .*between 1kb and 64mb/],
    ['runtime image pinned by digest', { CLAWLOOPS_RUNTIME_IMAGE: 'ghcr.io/openclaw/openclaw@sha256:' + 'a'.repeat(64) }, /^CLAWLOOPS_RUNTIME_IMAGE: must be an image reference pinned by tag/],
    ['runtime image without a tag', { CLAWLOOPS_RUNTIME_IMAGE: 'ghcr.io/openclaw/openclaw' }, /^CLAWLOOPS_RUNTIME_IMAGE: must be an image reference pinned by tag/],
    ['runtime image with upper case', { CLAWLOOPS_RUNTIME_IMAGE: 'OpenClaw:1' }, /^CLAWLOOPS_RUNTIME_IMAGE: /],
    ['runtime memory below 256 MiB', { CLAWLOOPS_RUNTIME_MEMORY: '100mb' }, /^CLAWLOOPS_RUNTIME_MEMORY: must be a size like 2gb/],
    ['runtime memory as words', { CLAWLOOPS_RUNTIME_MEMORY: 'lots' }, /^CLAWLOOPS_RUNTIME_MEMORY: .*got "lots"/],
    ['runtime CPUs zero', { CLAWLOOPS_RUNTIME_CPUS: '0' }, /^CLAWLOOPS_RUNTIME_CPUS: must be a number of CPUs between 0.1 and 64/],
    ['runtime CPUs negative', { CLAWLOOPS_RUNTIME_CPUS: '-1' }, /^CLAWLOOPS_RUNTIME_CPUS: /],
    ['runtime pids below 64', { CLAWLOOPS_RUNTIME_PIDS: '10' }, /^CLAWLOOPS_RUNTIME_PIDS: must be a whole number between 64 and 65536/],
    ['ready timeout below 5 s', { CLAWLOOPS_RUNTIME_READY_TIMEOUT: '1s' }, /^CLAWLOOPS_RUNTIME_READY_TIMEOUT: /],
    ['parallel operations zero', { CLAWLOOPS_RUNTIME_MAX_PARALLEL: '0' }, /^CLAWLOOPS_RUNTIME_MAX_PARALLEL: must be a whole number between 1 and 64/],
    ['idle stop below a minute', { CLAWLOOPS_IDLE_STOP: '30s' }, /^CLAWLOOPS_IDLE_STOP: must be off or a duration of at least 1m/],
    ['domain with upper case and a scheme', { CLAWLOOPS_DOMAIN: 'https://Claw.example.com' }, /^CLAWLOOPS_DOMAIN: must be a lowercase DNS name/],
    ['unknown routing mode', { CLAWLOOPS_WORKSPACE_ROUTING: 'subdomain' }, /^CLAWLOOPS_WORKSPACE_ROUTING: must be host .* or path/],
    ['unknown router', { CLAWLOOPS_ROUTER: 'nginx' }, /^CLAWLOOPS_ROUTER: must be builtin/],
    ['middleware without provider', { CLAWLOOPS_TRAEFIK_MIDDLEWARE: 'clawloops-auth' }, /^CLAWLOOPS_TRAEFIK_MIDDLEWARE: must be a Traefik middleware reference/],
    ['model gateway URL without scheme', { CLAWLOOPS_MODEL_GATEWAY_URL: 'clawloops:8080/llm/v1' }, /^CLAWLOOPS_MODEL_GATEWAY_URL: must be an http\(s\) URL/],
    ['model id with a space', { CLAWLOOPS_RUNTIME_MODELS: 'gpt 4o' }, /^CLAWLOOPS_RUNTIME_MODELS: /],
    ['subnet pool that is not a CIDR', { CLAWLOOPS_RUNTIME_SUBNET_POOL: '10.213.0.0' }, /^CLAWLOOPS_RUNTIME_SUBNET_POOL: "10.213.0.0" is not an IPv4 CIDR/],
    ['subnet pool smaller than one runtime subnet', { CLAWLOOPS_RUNTIME_SUBNET_POOL: '10.213.0.0/29' }, /^CLAWLOOPS_RUNTIME_SUBNET_POOL: the per-runtime prefix/],
    ['instance with upper case', { CLAWLOOPS_INSTANCE: 'Team_A' }, /^CLAWLOOPS_INSTANCE: must be 1-40 lowercase letters/],
    ['control plane container with a slash', { CLAWLOOPS_CONTROL_PLANE_CONTAINER: 'a/b' }, /^CLAWLOOPS_CONTROL_PLANE_CONTAINER: /],
    ['egress port of the platform', { CLAWLOOPS_PORT: '9000', CLAWLOOPS_EGRESS_PORT: '9000' }, /^CLAWLOOPS_EGRESS_PORT: must differ/],
    ['metrics port of the platform', { CLAWLOOPS_PORT: '9000', CLAWLOOPS_METRICS_PORT: '9000' }, /^CLAWLOOPS_METRICS_PORT: must differ/],
    ['metrics port of the egress proxy', { CLAWLOOPS_METRICS_PORT: '3128' }, /^CLAWLOOPS_METRICS_PORT: must differ/],
    ['metrics port out of range', { CLAWLOOPS_METRICS_PORT: '70000' }, /^CLAWLOOPS_METRICS_PORT: must be empty .* or an integer/],
    ['metrics host without a port', { CLAWLOOPS_METRICS_HOST: '127.0.0.1' }, /^CLAWLOOPS_METRICS_HOST: only applies with CLAWLOOPS_METRICS_PORT/],
    ['metrics host that is a name', { CLAWLOOPS_METRICS_PORT: '9464', CLAWLOOPS_METRICS_HOST: 'prometheus.lan' }, /^CLAWLOOPS_METRICS_HOST: must be an IP address/],
    ['metrics token too short, never echoed', { CLAWLOOPS_METRICS_TOKEN: 'short-secret' }, /^CLAWLOOPS_METRICS_TOKEN: must be empty \(no token\) or 24 to 512 printable characters[^"]*$/],
    ['egress profile unknown', { CLAWLOOPS_EGRESS_PROFILE: 'open' }, /^CLAWLOOPS_EGRESS_PROFILE: must be public .* or none/],
    ['egress allow entry with a scheme', { CLAWLOOPS_EGRESS_ALLOW: 'example.com,http://x.example' }, /^CLAWLOOPS_EGRESS_ALLOW: "http:\/\/x.example" is not a host name/],
    ['egress deny entry with a bad prefix', { CLAWLOOPS_EGRESS_DENY: '10.0.0.0/40' }, /^CLAWLOOPS_EGRESS_DENY: "10.0.0.0\/40" has a bad prefix length/],
    ['egress record kept no day', { CLAWLOOPS_EGRESS_RECORD_DAYS: '0' }, /^CLAWLOOPS_EGRESS_RECORD_DAYS: /],
    ['public URL that is not a URL', { CLAWLOOPS_PUBLIC_URL: 'claw.example.com' }, /^CLAWLOOPS_PUBLIC_URL: must be an absolute http\(s\) URL.*got "claw.example.com"/],
    ['public URL with another scheme', { CLAWLOOPS_PUBLIC_URL: 'ftp://claw.example.com' }, /^CLAWLOOPS_PUBLIC_URL: must use http or https, got "ftp:"$/],
    ['public URL with a path', { CLAWLOOPS_PUBLIC_URL: 'https://example.com/claw' }, /^CLAWLOOPS_PUBLIC_URL: must be an origin only/],
    ['public URL with a query', { CLAWLOOPS_PUBLIC_URL: 'https://example.com/?a=1' }, /^CLAWLOOPS_PUBLIC_URL: must be an origin only/],
    ['public URL with a fragment', { CLAWLOOPS_PUBLIC_URL: 'https://example.com/#x' }, /^CLAWLOOPS_PUBLIC_URL: must be an origin only/],
    ['public URL with credentials', { CLAWLOOPS_PUBLIC_URL: 'https://user:pw@example.com' }, /^CLAWLOOPS_PUBLIC_URL: must be an origin only/],
    ['empty public URL', { CLAWLOOPS_PUBLIC_URL: '' }, /^CLAWLOOPS_PUBLIC_URL: /],
  ])('%s', (_what, env, problem) => {
    const err = configError(env);
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe('ConfigError');
    expect(err.problems).toHaveLength(1);
    expect(err.problems[0]).toMatch(problem);
    expect(err.message).toMatch(/^Invalid configuration:\n {2}- /);
    expect(err.message).toContain(err.problems[0] as string);
  });

  test('several bad variables are all reported at once', () => {
    const err = configError({ CLAWLOOPS_PORT: 'abc', CLAWLOOPS_LOG_LEVEL: 'loud', CLAWLOOPS_SESSION_MAX_AGE: 'forever' });
    expect(err.problems.map((p) => p.split(':')[0]).sort()).toEqual([
      'CLAWLOOPS_LOG_LEVEL',
      'CLAWLOOPS_PORT',
      'CLAWLOOPS_SESSION_MAX_AGE',
    ]);
    for (const problem of err.problems) expect(err.message).toContain(`  - ${problem}`);
  });

  test('problems found after parsing are reported together too', () => {
    const err = configError({
      CLAWLOOPS_PUBLIC_URL: 'nope',
      CLAWLOOPS_ADMIN_USERNAME: 'admin',
      CLAWLOOPS_SESSION_IDLE_TIMEOUT: '40d',
    });
    expect(err.problems.map((p) => p.split(':')[0]).sort()).toEqual([
      'CLAWLOOPS_ADMIN_USERNAME and CLAWLOOPS_ADMIN_PASSWORD must be set together (or both left unset)',
      'CLAWLOOPS_PUBLIC_URL',
      'CLAWLOOPS_SESSION_IDLE_TIMEOUT',
    ]);
  });
});

describe('mail', () => {
  test.each([
    ['smtps with its default port', 'smtps://mail.example.com', { host: 'mail.example.com', port: 465, secure: true, requireTls: false, user: null, password: null }],
    ['a relay on this machine without credentials', 'smtp://127.0.0.1:2525', { host: '127.0.0.1', port: 2525, secure: false, requireTls: false, user: null, password: null }],
    ['credentials to a local relay need no TLS', 'smtp://u:p@localhost:25', { host: 'localhost', port: 25, secure: false, requireTls: false, user: 'u', password: 'p' }],
    ['credentials elsewhere need STARTTLS', 'smtp://u:p@mail.example.com:25', { host: 'mail.example.com', port: 25, secure: false, requireTls: true, user: 'u', password: 'p' }],
  ])('%s', (_what, url, smtp) => {
    expect(loadConfig({ CLAWLOOPS_SMTP_URL: url, CLAWLOOPS_MAIL_FROM: 'claw@example.com' }, CWD).mail).toEqual({ smtp, from: 'claw@example.com' });
  });

  test.each([
    ['another scheme', { CLAWLOOPS_SMTP_URL: 'http://u:hunter22@mail.example.com', CLAWLOOPS_MAIL_FROM: 'a@example.com' }, /^CLAWLOOPS_SMTP_URL: must start with smtp:\/\/ or smtps:\/\//],
    ['not a URL', { CLAWLOOPS_SMTP_URL: 'mail.example.com hunter22', CLAWLOOPS_MAIL_FROM: 'a@example.com' }, /^CLAWLOOPS_SMTP_URL: must be a URL like/],
    ['a path', { CLAWLOOPS_SMTP_URL: 'smtp://u:hunter22@mail.example.com/x', CLAWLOOPS_MAIL_FROM: 'a@example.com' }, /^CLAWLOOPS_SMTP_URL: must be scheme, credentials, host and port only/],
    ['no sender', { CLAWLOOPS_SMTP_URL: 'smtp://u:hunter22@mail.example.com' }, /^CLAWLOOPS_MAIL_FROM: must be set when CLAWLOOPS_SMTP_URL is/],
    ['a bad sender', { CLAWLOOPS_SMTP_URL: 'smtp://mail.example.com', CLAWLOOPS_MAIL_FROM: 'ClawLoops <nobody>' }, /^CLAWLOOPS_MAIL_FROM: must be an address like/],
    ['a sender without a server', { CLAWLOOPS_MAIL_FROM: 'a@example.com' }, /^CLAWLOOPS_MAIL_FROM: is set but CLAWLOOPS_SMTP_URL is not/],
  ])('refused: %s, never repeating the password', (_what, env, problem) => {
    const err = configError(env);
    expect(err.problems).toHaveLength(1);
    expect(err.problems[0]).toMatch(problem);
    expect(err.message).not.toContain('hunter22');
  });
});

describe('initial administrator', () => {
  test('username and password together create the initial admin; the username is normalized', () => {
    const config = loadConfig({ CLAWLOOPS_ADMIN_USERNAME: '  Ops-Admin ', CLAWLOOPS_ADMIN_PASSWORD: STRONG_PASSWORD }, CWD);
    expect(config.initialAdmin).toEqual({ username: 'ops-admin', password: STRONG_PASSWORD });
  });

  test.each<[string, Record<string, string>]>([
    ['username without password', { CLAWLOOPS_ADMIN_USERNAME: 'admin' }],
    ['username with an empty password', { CLAWLOOPS_ADMIN_USERNAME: 'admin', CLAWLOOPS_ADMIN_PASSWORD: '' }],
    ['password without username', { CLAWLOOPS_ADMIN_PASSWORD: STRONG_PASSWORD }],
    ['password with a blank username', { CLAWLOOPS_ADMIN_USERNAME: '   ', CLAWLOOPS_ADMIN_PASSWORD: STRONG_PASSWORD }],
  ])('%s is refused', (_what, env) => {
    const err = configError(env);
    expect(err.problems).toEqual([
      'CLAWLOOPS_ADMIN_USERNAME and CLAWLOOPS_ADMIN_PASSWORD must be set together (or both left unset)',
    ]);
    expect(err.message).not.toContain(STRONG_PASSWORD);
  });

  test('both empty means not configured', () => {
    expect(loadConfig({ CLAWLOOPS_ADMIN_USERNAME: '', CLAWLOOPS_ADMIN_PASSWORD: '' }, CWD).initialAdmin).toBeNull();
  });

  test.each([
    ['a', /2–31 characters/],
    ['-admin', /starting with a letter or digit/],
    ['admin-', /must not end with a hyphen/],
    ['ad_min', /lowercase letters/],
    ['adm in', /lowercase letters/],
    ['x'.repeat(32), /2–31 characters/],
    ['ädmin', /lowercase letters/],
  ])('invalid username %j is refused naming CLAWLOOPS_ADMIN_USERNAME', (username, reason) => {
    const err = configError({ CLAWLOOPS_ADMIN_USERNAME: username, CLAWLOOPS_ADMIN_PASSWORD: STRONG_PASSWORD });
    expect(err.problems).toHaveLength(1);
    expect(err.problems[0]).toMatch(/^CLAWLOOPS_ADMIN_USERNAME: /);
    expect(err.problems[0]).toMatch(reason);
  });

  test.each([
    ['too short', 'Sh0rt!pw', /at least 10 characters/],
    ['the username', 'clawadmin1', /not be the username/],
    ['a small variation of the username', 'Clawadmin1-24', /not be the username/],
    ['a common password', 'Password123', /too common/],
    ['too few distinct characters', 'abababababab', /too few distinct characters/],
    ['absurdly long', 'long passphrase '.repeat(20), /at most 256 characters/],
  ])('a password that is %s is refused without echoing it', (_what, password, reason) => {
    const err = configError({ CLAWLOOPS_ADMIN_USERNAME: 'clawadmin1', CLAWLOOPS_ADMIN_PASSWORD: password });
    expect(err.problems).toHaveLength(1);
    expect(err.problems[0]).toMatch(/^CLAWLOOPS_ADMIN_PASSWORD: /);
    expect(err.problems[0]).toMatch(reason);
    expect(err.message).not.toContain(password);
  });

  test('a bad username and a weak password are both reported', () => {
    const err = configError({ CLAWLOOPS_ADMIN_USERNAME: 'Bad Name', CLAWLOOPS_ADMIN_PASSWORD: 'short' });
    expect(err.problems.map((p) => p.split(':')[0]).sort()).toEqual(['CLAWLOOPS_ADMIN_PASSWORD', 'CLAWLOOPS_ADMIN_USERNAME']);
  });

  test('a password that fails earlier validation is never echoed either', () => {
    // A bad port fails the schema step; the password variable must not leak into that message.
    const err = configError({ CLAWLOOPS_PORT: 'x', CLAWLOOPS_ADMIN_USERNAME: 'admin', CLAWLOOPS_ADMIN_PASSWORD: STRONG_PASSWORD });
    expect(err.message).toContain('CLAWLOOPS_PORT');
    expect(err.message).not.toContain(STRONG_PASSWORD);
  });
});

describe('file manager settings', () => {
  test.each([
    ['/etc', 'outside the volume'],
    ['/home/node/.openclaw', 'the volume itself'],
    ['/home/node/.openclaw/../x', 'not normalised'],
    ['workspace', 'relative'],
    ['/home/node/.openclaw/.clawloops-staging', 'the staging area'],
  ])('CLAWLOOPS_FILES_ROOT=%s is refused (%s)', (root) => {
    expect(() => loadConfig({ CLAWLOOPS_FILES_ROOT: root }, CWD)).toThrow(/CLAWLOOPS_FILES_ROOT: must be a normalised absolute folder inside/);
  });

  test('sizes are checked and named', () => {
    expect(() => loadConfig({ CLAWLOOPS_FILES_QUOTA: 'lots' }, CWD)).toThrow(/CLAWLOOPS_FILES_QUOTA: must be a size like 10gb/);
    expect(() => loadConfig({ CLAWLOOPS_FILES_TEXT_MAX_SIZE: '1gb' }, CWD)).toThrow(/CLAWLOOPS_FILES_TEXT_MAX_SIZE: at most 64mb/);
  });
});

describe('model gateway settings', () => {
  test('the upstream must be an http(s) URL', () => {
    expect(() => loadConfig({ CLAWLOOPS_LLM_UPSTREAM_URL: 'litellm:4000' }, CWD)).toThrow(/CLAWLOOPS_LLM_UPSTREAM_URL: must be empty or the http\(s\) base URL/);
  });
});

describe('single sign-on settings', () => {
  const OIDC = { CLAWLOOPS_PUBLIC_URL: 'https://claw.example.com', CLAWLOOPS_OIDC_ISSUER: 'https://sso.example.com/realms/main', CLAWLOOPS_OIDC_CLIENT_ID: 'clawloops' };

  test('defaults, and the redirect URI from the public URL', () => {
    expect(loadConfig(OIDC, CWD).oidc).toEqual({
      issuer: 'https://sso.example.com/realms/main',
      clientId: 'clawloops',
      clientSecret: null,
      scopes: ['openid', 'email', 'profile'],
      usernameClaim: 'preferred_username',
      groupsClaim: 'groups',
      adminGroup: null,
      allowedGroups: [],
      allowedEmailDomains: [],
      autoCreate: false,
      roleSync: false,
      displayName: 'single sign-on',
      only: false,
      redirectUri: 'https://claw.example.com/api/v1/auth/oidc/callback',
      postLogoutRedirectUri: 'https://claw.example.com/login',
    });
  });

  test('every variable read', () => {
    const oidc = loadConfig(
      {
        ...OIDC,
        CLAWLOOPS_OIDC_CLIENT_SECRET: 'a secret',
        CLAWLOOPS_OIDC_SCOPES: 'openid email profile groups',
        CLAWLOOPS_OIDC_USERNAME_CLAIM: 'email',
        CLAWLOOPS_OIDC_GROUPS_CLAIM: 'realm_access.roles',
        CLAWLOOPS_OIDC_ADMIN_GROUP: 'clawloops-admins',
        CLAWLOOPS_OIDC_ALLOWED_GROUPS: 'staff, Contractors',
        CLAWLOOPS_OIDC_ALLOWED_EMAIL_DOMAINS: 'Example.com,@example.org',
        CLAWLOOPS_OIDC_AUTO_CREATE: 'true',
        CLAWLOOPS_OIDC_ROLE_SYNC: 'yes',
        CLAWLOOPS_OIDC_DISPLAY_NAME: 'Keycloak',
        CLAWLOOPS_OIDC_ONLY: '1',
      },
      CWD,
    ).oidc;
    expect(oidc).toMatchObject({
      clientSecret: 'a secret',
      scopes: ['openid', 'email', 'profile', 'groups'],
      usernameClaim: 'email',
      groupsClaim: 'realm_access.roles',
      adminGroup: 'clawloops-admins',
      allowedGroups: ['staff', 'Contractors'],
      allowedEmailDomains: ['example.com', 'example.org'],
      autoCreate: true,
      roleSync: true,
      displayName: 'Keycloak',
      only: true,
    });
  });

  test.each([
    [{ CLAWLOOPS_OIDC_ISSUER: 'not a url', CLAWLOOPS_OIDC_CLIENT_ID: 'x' }, /CLAWLOOPS_OIDC_ISSUER: must be the provider's issuer URL/],
    [{ CLAWLOOPS_OIDC_ISSUER: 'https://sso.example.com' }, /CLAWLOOPS_OIDC_CLIENT_ID: required with CLAWLOOPS_OIDC_ISSUER/],
    [{ CLAWLOOPS_OIDC_ONLY: 'true' }, /CLAWLOOPS_OIDC_ONLY: needs CLAWLOOPS_OIDC_ISSUER/],
    [{ ...OIDC, CLAWLOOPS_OIDC_ROLE_SYNC: 'true' }, /CLAWLOOPS_OIDC_ROLE_SYNC: needs CLAWLOOPS_OIDC_ADMIN_GROUP/],
    [{ ...OIDC, CLAWLOOPS_OIDC_SCOPES: 'email profile' }, /CLAWLOOPS_OIDC_SCOPES: must be a space-separated list of scopes that includes openid/],
    [{ ...OIDC, CLAWLOOPS_OIDC_AUTO_CREATE: 'sure' }, /CLAWLOOPS_OIDC_AUTO_CREATE: must be true or false/],
  ])('%j is refused with a reason', (env, message) => {
    expect(() => loadConfig(env, CWD)).toThrow(message);
  });

  test('a bad value elsewhere never echoes the client secret', () => {
    const err = configError({ ...OIDC, CLAWLOOPS_OIDC_CLIENT_SECRET: 'the-client-secret', CLAWLOOPS_PORT: 'x' });
    expect(err.message).not.toContain('the-client-secret');
  });
});
