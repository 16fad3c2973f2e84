import os from 'node:os';
import path from 'node:path';
import { isIP } from 'node:net';
import { z } from 'zod';
import { normalizeUsername, passwordProblem, usernameProblem } from './domain/accountRules';
import { parseDuration, parseSize } from './lib/duration';
import { DEFAULT_SUBNET_POOL, subnetPoolProblem, type SubnetPool } from './docker/subnetPool';
import { CONTROL_PLANE_ALIAS } from './docker/networkPlan';
import { DEFAULT_RUNTIME_COMMAND, DEFAULT_RUNTIME_IMAGE, OPENCLAW_HOME, type RuntimeSettings } from './runtime/runtimeSettings';
import type { FilesSettings } from './files/filesSettings';
import type { LlmSettings } from './llm/llmSettings';
import { egressEntryProblem, type EgressRules } from './egress/egressPolicy';
import { parseMailFrom, parseSmtpUrl, type MailSettings } from './mail/mailSettings';
import type { OidcSettings } from './oidc/oidcSettings';

/** The most outside connections the record keeps, whatever their age (the oldest go first): ~100 MiB of database. */
const EGRESS_RECORD_MAX_ROWS = 500_000;

export type TrustProxySetting = boolean | number | string[];
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface AppConfig {
  port: number;
  host: string;
  dataDir: string;
  /** Origin of the platform as browsers see it, without a trailing slash. */
  publicUrl: string;
  publicOrigin: string;
  secureCookies: boolean;
  dockerSocket: string;
  /** Stamped on every container, network and volume this installation creates. */
  /** CLAWLOOPS_INSTANCE when set; otherwise the data directory's stored installation decides (domain/installation.ts). */
  instance: string | null;
  /** Runtime networks take their subnets from here. */
  subnetPool: SubnetPool;
  initialAdmin: { username: string; password: string } | null;
  trustProxy: TrustProxySetting;
  logLevel: LogLevel;
  sessionIdleTimeoutMs: number;
  sessionMaxAgeMs: number;
  jsonBodyLimitBytes: number;
  shutdownTimeoutMs: number;
  runtime: RuntimeSettings;
  files: FilesSettings;
  llm: LlmSettings;
  /** Where backups go and the age identity file they are encrypted to (null: backups are refused until one is set). */
  backup: { dir: string; keyFile: string | null; offboardingKeepDays: number };
  /** What runs the runtimes: one Docker engine, or a Docker Swarm from one of its managers (src/swarm/). */
  runtimeBackend: { kind: 'docker' } | { kind: 'swarm'; sharedVolumeOptions: Record<string, string> | null; memoryReservationShare: number };
  /** The runtimes' only way out (their networks are internal): where it listens and what it lets through. */
  egress: { port: number; rules: EgressRules; record: { retentionMs: number; maxRows: number } };
  /** The SMTP server the platform's mails go through; null: no mail is sent (src/mail/). */
  mail: MailSettings | null;
  /**
   * Prometheus metrics: on the main port's /metrics behind `token`, and/or on a listener of their
   * own at `host`:`port` (behind the token too when one is set). Null: off (the default).
   */
  metrics: { token: string | null; port: number | null; host: string } | null;
  /** Single sign-on with an OpenID provider (null: local passwords only). */
  oidc: OidcSettings | null;
}

/** Thrown at start-up; its message names every bad variable and is meant for the operator. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Three exits within five minutes: past that, the restart policy is only hiding a broken runtime. */
const CRASH_LOOP_POLICY = { maxExits: 3, windowMs: 5 * 60_000 };

const PROXY_KEYWORDS = new Set(['loopback', 'linklocal', 'uniquelocal']);

function isProxyAddress(entry: string): boolean {
  if (PROXY_KEYWORDS.has(entry)) return true;
  const [address, prefix, ...rest] = entry.split('/');
  if (rest.length > 0 || !address || isIP(address) === 0) return false;
  if (prefix === undefined) return true;
  const bits = Number(prefix);
  return /^\d+$/.test(prefix) && bits >= 0 && bits <= (isIP(address) === 4 ? 32 : 128);
}

const durationVar = (fallback: string, minMs: number) =>
  z
    .string()
    .default(fallback)
    .transform((value, ctx) => {
      const ms = parseDuration(value);
      if (ms === null || ms < minMs) {
        ctx.addIssue({
          code: 'custom',
          message: `must be a duration like 30s, 15m, 12h or 7d (at least ${minMs / 1000}s), got "${value}"`,
        });
        return z.NEVER;
      }
      return ms;
    });

const sizeVar = (fallback: string, minBytes: number, example: string) =>
  z
    .string()
    .default(fallback)
    .transform((value, ctx) => {
      const bytes = parseSize(value);
      if (bytes === null || bytes < minBytes) {
        ctx.addIssue({ code: 'custom', message: `must be a size like ${example} (at least ${minBytes} bytes), got "${value}"` });
        return z.NEVER;
      }
      return bytes;
    });

const intVar = (fallback: number, min: number, max: number) =>
  z
    .string()
    .default(String(fallback))
    .refine((v) => /^\d+$/.test(v.trim()) && Number(v) >= min && Number(v) <= max, {
      message: `must be a whole number between ${min} and ${max}`,
    })
    .transform(Number);

// A digest can never be satisfied without a registry, and a bare name means "latest", which moves.
const IMAGE_BY_TAG = /^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::\d+)?(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*:[\w][\w.-]{0,127}$/;

/** A comma-separated list of host patterns, addresses and CIDRs (egress allow/deny lists). */
const hostList = () =>
  z
    .string()
    .default('')
    .transform((v) => v.split(',').map((h) => h.trim().toLowerCase()).filter(Boolean))
    .superRefine((entries, ctx) => {
      const problems = entries.map(egressEntryProblem).filter((p): p is string => p !== null);
      if (problems.length > 0) ctx.addIssue({ code: 'custom', message: problems.join('; ') });
    });

const boolVar = (fallback: boolean) =>
  z
    .string()
    .default(String(fallback))
    .refine((v) => ['true', 'false', '1', '0', 'yes', 'no', 'on', 'off', ''].includes(v.trim().toLowerCase()), { message: 'must be true or false' })
    .transform((v) => (v.trim() === '' ? fallback : ['true', '1', 'yes', 'on'].includes(v.trim().toLowerCase())));

/** A comma-separated list of names (groups), kept as written: providers compare group names exactly. */
const nameList = () =>
  z
    .string()
    .default('')
    .transform((v) => v.split(',').map((x) => x.trim()).filter(Boolean));

// A claim name as providers spell them (preferred_username, groups, https://example.com/roles…).
const CLAIM_NAME = /^[A-Za-z0-9_.:/-]{1,200}$/;

const envSchema = z.object({
  CLAWLOOPS_PORT: z
    .string()
    .default('8080')
    .refine((v) => /^\d+$/.test(v) && Number(v) >= 1 && Number(v) <= 65535, {
      message: 'must be an integer between 1 and 65535',
    })
    .transform(Number),
  CLAWLOOPS_HOST: z.string().default('0.0.0.0').refine((v) => isIP(v) !== 0 || v === 'localhost', {
    message: 'must be an IP address to listen on (0.0.0.0 for all interfaces)',
  }),
  CLAWLOOPS_DATA_DIR: z.string().min(1, 'must not be empty').default('./data'),
  CLAWLOOPS_PUBLIC_URL: z.string().optional(),
  CLAWLOOPS_DOCKER_SOCKET: z.string().min(1).default('/var/run/docker.sock'),
  CLAWLOOPS_INSTANCE: z
    .string()
    .optional()
    .refine((v) => v === undefined || /^[a-z0-9][a-z0-9-]{0,39}$/.test(v), { message: 'must be 1-40 lowercase letters, digits or dashes' }),
  CLAWLOOPS_RUNTIME_SUBNET_POOL: z
    .string()
    .default(DEFAULT_SUBNET_POOL.base)
    .superRefine((v, ctx) => {
      const problem = subnetPoolProblem({ base: v, prefix: DEFAULT_SUBNET_POOL.prefix });
      if (problem) ctx.addIssue({ code: 'custom', message: `${problem} (each runtime takes a /${DEFAULT_SUBNET_POOL.prefix})` });
    }),
  CLAWLOOPS_ADMIN_USERNAME: z.string().optional(),
  CLAWLOOPS_ADMIN_PASSWORD: z.string().optional(),
  CLAWLOOPS_TRUST_PROXY: z
    .string()
    .default('false')
    .transform((value, ctx): TrustProxySetting => {
      const v = value.trim();
      if (v === 'false' || v === '') return false;
      if (v === 'true') return true;
      if (/^\d+$/.test(v)) return Number(v);
      const entries = v.split(',').map((e) => e.trim()).filter(Boolean);
      const bad = entries.filter((e) => !isProxyAddress(e));
      if (bad.length > 0) {
        ctx.addIssue({
          code: 'custom',
          message: `must be false, true, a hop count, or a comma-separated list of IPs/CIDRs (or loopback, linklocal, uniquelocal); bad entries: ${bad.join(', ')}`,
        });
        return z.NEVER;
      }
      return entries;
    }),
  CLAWLOOPS_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  CLAWLOOPS_SESSION_IDLE_TIMEOUT: durationVar('7d', 60_000),
  CLAWLOOPS_SESSION_MAX_AGE: durationVar('30d', 60_000),
  CLAWLOOPS_SHUTDOWN_TIMEOUT: durationVar('10s', 0),
  CLAWLOOPS_JSON_BODY_LIMIT: z
    .string()
    .default('100kb')
    .transform((value, ctx) => {
      const bytes = parseSize(value);
      if (bytes === null || bytes < 1024 || bytes > 64 * 1024 ** 2) {
        ctx.addIssue({ code: 'custom', message: `must be a size like 100kb or 1mb (between 1kb and 64mb), got "${value}"` });
        return z.NEVER;
      }
      return bytes;
    }),
  CLAWLOOPS_RUNTIME_IMAGE: z
    .string()
    .default(DEFAULT_RUNTIME_IMAGE)
    .refine((v) => IMAGE_BY_TAG.test(v), {
      message: 'must be an image reference pinned by tag, like ghcr.io/openclaw/openclaw:2026.9.6 (no digest, no implicit latest)',
    }),
  CLAWLOOPS_RUNTIME_MEMORY: sizeVar('2gb', 256 * 1024 ** 2, '2gb or 3072mb'),
  CLAWLOOPS_RUNTIME_CPUS: z
    .string()
    .default('2')
    .refine((v) => /^\d+(\.\d{1,2})?$/.test(v.trim()) && Number(v) >= 0.1 && Number(v) <= 64, {
      message: 'must be a number of CPUs between 0.1 and 64, like 2 or 1.5',
    })
    .transform(Number),
  CLAWLOOPS_RUNTIME_PIDS: intVar(512, 64, 65536),
  CLAWLOOPS_RUNTIME_READY_TIMEOUT: durationVar('180s', 5_000),
  CLAWLOOPS_RUNTIME_STOP_TIMEOUT: durationVar('10s', 1_000),
  CLAWLOOPS_RUNTIME_MAX_PARALLEL: intVar(4, 1, 64),
  CLAWLOOPS_IDLE_STOP: z
    .string()
    .default('off')
    .transform((value, ctx) => {
      if (['off', '0', ''].includes(value.trim())) return 0;
      const ms = parseDuration(value);
      if (ms === null || ms < 60_000) {
        ctx.addIssue({ code: 'custom', message: `must be off or a duration of at least 1m like 30m or 2h, got "${value}"` });
        return z.NEVER;
      }
      return ms;
    }),
  CLAWLOOPS_DOMAIN: z
    .string()
    .default('localhost')
    .refine((v) => /^(?=.{1,200}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(v), {
      message: 'must be a lowercase DNS name like localhost or claw.example.com (workspaces live at <username>.<domain>)',
    }),
  CLAWLOOPS_WORKSPACE_ROUTING: z.enum(['host', 'path'], { message: 'must be host (alice.<domain>) or path (<platform>/w/alice/)' }).default('host'),
  CLAWLOOPS_ROUTER: z.enum(['builtin', 'traefik'], { message: 'must be builtin (the control plane routes workspaces) or traefik' }).default('builtin'),
  CLAWLOOPS_TRAEFIK_ENTRYPOINT: z.string().default('web').refine((v) => /^[A-Za-z0-9_-]{1,64}$/.test(v), { message: 'must be a Traefik entrypoint name like web' }),
  CLAWLOOPS_TRAEFIK_CERTRESOLVER: z
    .string()
    .default('')
    .refine((v) => v === '' || /^[A-Za-z0-9_-]{1,64}$/.test(v), { message: 'must be empty or a Traefik certificate resolver name like letsencrypt' }),
  CLAWLOOPS_TRAEFIK_MIDDLEWARE: z
    .string()
    .default('clawloops-auth@docker')
    .refine((v) => /^[A-Za-z0-9_-]{1,64}@[a-z]{1,32}$/.test(v), { message: 'must be a Traefik middleware reference like clawloops-auth@docker' }),
  CLAWLOOPS_TRAEFIK_PLATFORM_SERVICE: z
    .string()
    .default('clawloops@docker')
    .refine((v) => /^[A-Za-z0-9_-]{1,64}@[a-z]{1,32}$/.test(v), { message: 'must be a Traefik service reference like clawloops@docker' }),
  CLAWLOOPS_MODEL_GATEWAY_URL: z.string().optional(),
  CLAWLOOPS_RUNTIME_MODELS: z
    .string()
    .default('')
    .transform((v) => v.split(',').map((m) => m.trim()).filter(Boolean))
    .refine((models) => models.every((m) => /^[\w.:/-]{1,100}$/.test(m)), {
      message: 'must be a comma-separated list of model ids (letters, digits, . _ : / -)',
    }),
  CLAWLOOPS_BACKUP_DIR: z.string().min(1, 'must not be empty').optional(),
  CLAWLOOPS_BACKUP_KEY_FILE: z.string().min(1, 'must not be empty').optional(),
  CLAWLOOPS_BACKUP_OFFBOARDING_DAYS: z
    .string()
    .default('30')
    .refine((v) => /^\d+$/.test(v) && Number(v) >= 1 && Number(v) <= 3650, { message: 'must be a whole number of days from 1 to 3650' })
    .transform(Number),
  CLAWLOOPS_EGRESS_PORT: z
    .string()
    .default('3128')
    .refine((v) => /^\d+$/.test(v) && Number(v) >= 1 && Number(v) <= 65535, { message: 'must be an integer between 1 and 65535' })
    .transform(Number),
  CLAWLOOPS_EGRESS_PROFILE: z.enum(['public', 'none'], { message: 'must be public (the internet, not private networks) or none (models only)' }).default('public'),
  CLAWLOOPS_EGRESS_ALLOW: hostList(),
  CLAWLOOPS_EGRESS_DENY: hostList(),
  CLAWLOOPS_EGRESS_RECORD_DAYS: z.coerce.number({ message: 'must be a number of days' }).int('must be a whole number of days').min(1).max(3650).default(30),
  CLAWLOOPS_METRICS_TOKEN: z
    .string()
    .default('')
    .refine((v) => v === '' || /^[\x21-\x7e]{24,512}$/.test(v), { message: 'must be empty (no token) or 24 to 512 printable characters without spaces, like the output of openssl rand -hex 32' }),
  CLAWLOOPS_METRICS_PORT: z
    .string()
    .default('')
    .refine((v) => v === '' || (/^\d+$/.test(v) && Number(v) >= 1 && Number(v) <= 65535), { message: 'must be empty (no metrics listener) or an integer between 1 and 65535' }),
  CLAWLOOPS_METRICS_HOST: z
    .string()
    .default('')
    .refine((v) => v === '' || isIP(v) !== 0 || v === 'localhost', { message: 'must be an IP address to listen on, like 127.0.0.1 or 0.0.0.0' }),
  CLAWLOOPS_RUNTIME_BACKEND: z.enum(['docker', 'swarm'], { message: 'must be docker (one engine) or swarm (a Docker Swarm, from a manager node)' }).default('docker'),
  CLAWLOOPS_SWARM_VOLUME_OPTIONS: z
    .string()
    .default('')
    .transform((v, ctx) => {
      if (!v.trim()) return null;
      let parsed: unknown;
      try {
        parsed = JSON.parse(v);
      } catch {
        ctx.addIssue({ code: 'custom', message: 'must be a JSON object of local-driver options, like {"type":"nfs","o":"addr=10.0.0.5,rw","device":":/exports/{volume}"}' });
        return z.NEVER;
      }
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed) || !Object.values(parsed).every((x) => typeof x === 'string')) {
        ctx.addIssue({ code: 'custom', message: 'must be a JSON object whose values are strings' });
        return z.NEVER;
      }
      if (!Object.values(parsed).some((x) => (x as string).includes('{volume}'))) {
        ctx.addIssue({ code: 'custom', message: 'must contain {volume} in one value (usually device), so every user gets their own folder on the shared storage' });
        return z.NEVER;
      }
      return parsed as Record<string, string>;
    }),
  CLAWLOOPS_SWARM_MEMORY_RESERVATION: z.coerce.number({ message: 'must be a number between 0 and 1' }).min(0).max(1).default(0.25),
  CLAWLOOPS_CONTROL_PLANE_CONTAINER: z
    .string()
    .default('')
    .refine((v) => v === '' || /^[\w][\w.-]{0,127}$/.test(v), { message: 'must be a container name or id, or self (this container)' }),
  CLAWLOOPS_FILES_ROOT: z
    .string()
    .default(`${OPENCLAW_HOME}/workspace`)
    .refine((v) => v.startsWith(`${OPENCLAW_HOME}/`) && path.posix.normalize(v) === v && !v.endsWith('/') && !v.includes('/.clawloops-staging') && !v.includes('/.clawloops-restore'), {
      message: `must be a normalised absolute folder inside the runtime's volume ${OPENCLAW_HOME}, like ${OPENCLAW_HOME}/workspace`,
    }),
  CLAWLOOPS_FILES_QUOTA: sizeVar('10gb', 1024 ** 2, '10gb or 500mb'),
  CLAWLOOPS_FILES_MAX_FILE_SIZE: sizeVar('4gb', 1024, '4gb or 100mb'),
  CLAWLOOPS_FILES_MAX_REQUEST_SIZE: sizeVar('8gb', 1024, '8gb or 1gb'),
  CLAWLOOPS_FILES_MAX_UPLOAD_FILES: intVar(1000, 1, 100_000),
  CLAWLOOPS_FILES_TEXT_MAX_SIZE: sizeVar('2mb', 1024, '2mb or 512kb'),
  CLAWLOOPS_FILES_IMPORT_MAX_ENTRIES: intVar(100_000, 1, 10_000_000),
  CLAWLOOPS_FILES_SPOOL_LIMIT: sizeVar('4gb', 1024 ** 2, '4gb or 500mb'),
  CLAWLOOPS_FILES_SPOOL_MIN_FREE: sizeVar('1gb', 0, '1gb or 500mb'),
  CLAWLOOPS_FILES_STREAM_IDLE_TIMEOUT: durationVar('2m', 1_000),
  CLAWLOOPS_LLM_UPSTREAM_URL: z
    .string()
    .default('')
    .refine((v) => v === '' || /^https?:\/\/[^\s/]+(\/\S*)?$/.test(v), { message: 'must be empty or the http(s) base URL of an OpenAI-compatible API, like http://litellm:4000/v1' }),
  CLAWLOOPS_LLM_UPSTREAM_KEY: z.string().default(''),
  CLAWLOOPS_LLM_TIMEOUT: durationVar('10m', 1_000),
  CLAWLOOPS_LLM_BODY_LIMIT: sizeVar('4mb', 1024, '4mb or 512kb'),
  CLAWLOOPS_LLM_REQUESTS_PER_MINUTE: intVar(60, 0, 1_000_000),
  CLAWLOOPS_LLM_CONCURRENT_REQUESTS: intVar(4, 0, 10_000),
  CLAWLOOPS_LLM_MONTHLY_TOKENS: intVar(0, 0, Number.MAX_SAFE_INTEGER),
  CLAWLOOPS_LLM_MONTHLY_BUDGET_USD: z
    .string()
    .default('0')
    .refine((v) => /^\d+(\.\d{1,2})?$/.test(v.trim()) && Number(v) <= 1_000_000, { message: 'must be an amount in US dollars like 25 or 12.50 (0: no budget)' })
    .transform((v) => Math.round(Number(v) * 1e6)),
  // Checked in loadConfig: its problems must never echo the value (it may hold a password).
  CLAWLOOPS_SMTP_URL: z.string().default(''),
  CLAWLOOPS_MAIL_FROM: z.string().default(''),
  CLAWLOOPS_OIDC_ISSUER: z.string().default(''),
  CLAWLOOPS_OIDC_CLIENT_ID: z.string().default(''),
  CLAWLOOPS_OIDC_CLIENT_SECRET: z.string().default(''),
  CLAWLOOPS_OIDC_SCOPES: z
    .string()
    .default('openid email profile')
    .transform((v) => v.split(/[\s,]+/).filter(Boolean))
    .refine((scopes) => scopes.includes('openid') && scopes.every((x) => /^[\x21\x23-\x5b\x5d-\x7e]{1,100}$/.test(x)), {
      message: 'must be a space-separated list of scopes that includes openid, like "openid email profile groups"',
    }),
  CLAWLOOPS_OIDC_USERNAME_CLAIM: z.string().default('preferred_username').refine((v) => CLAIM_NAME.test(v), { message: 'must be a claim name like preferred_username' }),
  CLAWLOOPS_OIDC_GROUPS_CLAIM: z.string().default('groups').refine((v) => CLAIM_NAME.test(v), { message: 'must be a claim name like groups' }),
  CLAWLOOPS_OIDC_ADMIN_GROUP: z.string().default('').transform((v) => v.trim()),
  CLAWLOOPS_OIDC_ALLOWED_GROUPS: nameList(),
  CLAWLOOPS_OIDC_ALLOWED_EMAIL_DOMAINS: nameList().transform((domains) => domains.map((d) => d.toLowerCase().replace(/^@/, ''))),
  CLAWLOOPS_OIDC_AUTO_CREATE: boolVar(false),
  CLAWLOOPS_OIDC_ROLE_SYNC: boolVar(false),
  CLAWLOOPS_OIDC_DISPLAY_NAME: z.string().default('single sign-on').transform((v) => v.trim() || 'single sign-on').refine((v) => v.length <= 60, { message: 'must be at most 60 characters' }),
  CLAWLOOPS_OIDC_ONLY: boolVar(false),
});

function parsePublicUrl(raw: string, problems: string[]): URL | null {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    problems.push(`CLAWLOOPS_PUBLIC_URL: must be an absolute http(s) URL like https://claw.example.com, got "${raw}"`);
    return null;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    problems.push(`CLAWLOOPS_PUBLIC_URL: must use http or https, got "${url.protocol}"`);
    return null;
  }
  if ((url.pathname !== '/' && url.pathname !== '') || url.search || url.hash || url.username || url.password) {
    problems.push('CLAWLOOPS_PUBLIC_URL: must be an origin only (scheme, host, optional port), with no path, query or credentials');
    return null;
  }
  return url;
}

export function loadConfig(env: NodeJS.ProcessEnv, cwd: string = process.cwd()): AppConfig {
  const parsed = envSchema.safeParse(env);
  const problems: string[] = [];
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const name = String(issue.path[0] ?? 'environment');
      const got = typeof env[name] === 'string' && !/PASSWORD|SECRET|TOKEN|KEY$|SMTP_URL/.test(name) ? ` (got "${env[name]}")` : '';
      problems.push(`${name}: ${issue.message}${issue.message.includes('got "') ? '' : got}`);
    }
    throw new ConfigError(problems);
  }
  const e = parsed.data;

  const publicUrl = parsePublicUrl(e.CLAWLOOPS_PUBLIC_URL ?? `http://${e.CLAWLOOPS_DOMAIN}:${e.CLAWLOOPS_PORT}`, problems);

  let initialAdmin: AppConfig['initialAdmin'] = null;
  const adminUser = e.CLAWLOOPS_ADMIN_USERNAME?.trim() ? normalizeUsername(e.CLAWLOOPS_ADMIN_USERNAME) : '';
  const adminPassword = e.CLAWLOOPS_ADMIN_PASSWORD ?? '';
  if (adminUser || adminPassword) {
    if (!adminUser || !adminPassword) {
      problems.push('CLAWLOOPS_ADMIN_USERNAME and CLAWLOOPS_ADMIN_PASSWORD must be set together (or both left unset)');
    } else {
      const userProblem = usernameProblem(adminUser);
      // Never echo the password itself: only why it was refused.
      const passProblem = passwordProblem(adminPassword.normalize('NFC'), adminUser);
      if (userProblem) problems.push(`CLAWLOOPS_ADMIN_USERNAME: ${userProblem}`);
      if (passProblem) problems.push(`CLAWLOOPS_ADMIN_PASSWORD: ${passProblem}`);
      if (!userProblem && !passProblem) initialAdmin = { username: adminUser, password: adminPassword };
    }
  }

  if (e.CLAWLOOPS_SESSION_IDLE_TIMEOUT > e.CLAWLOOPS_SESSION_MAX_AGE) {
    problems.push('CLAWLOOPS_SESSION_IDLE_TIMEOUT: must not be longer than CLAWLOOPS_SESSION_MAX_AGE');
  }

  // Runtimes reach the control plane by a network alias when it runs in a container (it joins
  // every runtime network), and through the host gateway when it runs on the host.
  const gatewayHost = e.CLAWLOOPS_CONTROL_PLANE_CONTAINER ? CONTROL_PLANE_ALIAS : 'host.docker.internal';
  const modelGatewayUrl = e.CLAWLOOPS_MODEL_GATEWAY_URL ?? `http://${gatewayHost}:${e.CLAWLOOPS_PORT}/llm/v1`;
  if (!/^https?:\/\/[^\s/]+(\/\S*)?$/.test(modelGatewayUrl)) {
    problems.push(`CLAWLOOPS_MODEL_GATEWAY_URL: must be an http(s) URL such as http://clawloops:8080/llm/v1, got "${modelGatewayUrl}"`);
  }

  if (e.CLAWLOOPS_RUNTIME_BACKEND === 'swarm' && !e.CLAWLOOPS_CONTROL_PLANE_CONTAINER) {
    problems.push('CLAWLOOPS_RUNTIME_BACKEND=swarm: the control plane must run in a container on a manager node (it joins every runtime network); set CLAWLOOPS_CONTROL_PLANE_CONTAINER=self there');
  }
  if (e.CLAWLOOPS_EGRESS_PORT === e.CLAWLOOPS_PORT) problems.push('CLAWLOOPS_EGRESS_PORT: must differ from CLAWLOOPS_PORT');
  const metricsPort = e.CLAWLOOPS_METRICS_PORT ? Number(e.CLAWLOOPS_METRICS_PORT) : null;
  if (metricsPort !== null && (metricsPort === e.CLAWLOOPS_PORT || metricsPort === e.CLAWLOOPS_EGRESS_PORT)) {
    problems.push('CLAWLOOPS_METRICS_PORT: must differ from CLAWLOOPS_PORT and CLAWLOOPS_EGRESS_PORT');
  }
  if (e.CLAWLOOPS_METRICS_HOST && metricsPort === null) problems.push('CLAWLOOPS_METRICS_HOST: only applies with CLAWLOOPS_METRICS_PORT; set that too or leave this unset');

  if (e.CLAWLOOPS_FILES_TEXT_MAX_SIZE > 64 * 1024 ** 2) problems.push('CLAWLOOPS_FILES_TEXT_MAX_SIZE: at most 64mb (a text file is edited in memory)');

  let mail: MailSettings | null = null;
  if (e.CLAWLOOPS_SMTP_URL.trim()) {
    const smtp = parseSmtpUrl(e.CLAWLOOPS_SMTP_URL.trim());
    const from = e.CLAWLOOPS_MAIL_FROM.trim() ? parseMailFrom(e.CLAWLOOPS_MAIL_FROM.trim()) : { problem: 'must be set when CLAWLOOPS_SMTP_URL is, like "ClawLoops <clawloops@example.com>"' };
    if ('problem' in smtp) problems.push(`CLAWLOOPS_SMTP_URL: ${smtp.problem}`);
    if ('problem' in from) problems.push(`CLAWLOOPS_MAIL_FROM: ${from.problem}`);
    if (!('problem' in smtp) && !('problem' in from)) mail = { smtp, from: from.from };
  } else if (e.CLAWLOOPS_MAIL_FROM.trim()) {
    problems.push('CLAWLOOPS_MAIL_FROM: is set but CLAWLOOPS_SMTP_URL is not; set both to send mail, or neither');
  }
  const oidc = publicUrl ? parseOidc(e, publicUrl.origin, problems) : null;

  if (problems.length > 0 || !publicUrl) throw new ConfigError(problems);
  const dataDir = path.resolve(cwd, e.CLAWLOOPS_DATA_DIR);

  return {
    port: e.CLAWLOOPS_PORT,
    host: e.CLAWLOOPS_HOST,
    dataDir,
    publicUrl: publicUrl.origin,
    publicOrigin: publicUrl.origin,
    secureCookies: publicUrl.protocol === 'https:',
    dockerSocket: e.CLAWLOOPS_DOCKER_SOCKET,
    instance: e.CLAWLOOPS_INSTANCE ?? null,
    subnetPool: { base: e.CLAWLOOPS_RUNTIME_SUBNET_POOL, prefix: DEFAULT_SUBNET_POOL.prefix },
    initialAdmin,
    trustProxy: e.CLAWLOOPS_TRUST_PROXY,
    logLevel: e.CLAWLOOPS_LOG_LEVEL,
    sessionIdleTimeoutMs: e.CLAWLOOPS_SESSION_IDLE_TIMEOUT,
    sessionMaxAgeMs: e.CLAWLOOPS_SESSION_MAX_AGE,
    jsonBodyLimitBytes: e.CLAWLOOPS_JSON_BODY_LIMIT,
    shutdownTimeoutMs: e.CLAWLOOPS_SHUTDOWN_TIMEOUT,
    runtime: {
      image: e.CLAWLOOPS_RUNTIME_IMAGE,
      command: DEFAULT_RUNTIME_COMMAND,
      workingDir: '/app',
      memoryBytes: e.CLAWLOOPS_RUNTIME_MEMORY,
      nanoCpus: Math.round(e.CLAWLOOPS_RUNTIME_CPUS * 1e9),
      pidsLimit: e.CLAWLOOPS_RUNTIME_PIDS,
      readyTimeoutMs: e.CLAWLOOPS_RUNTIME_READY_TIMEOUT,
      stopTimeoutSeconds: Math.ceil(e.CLAWLOOPS_RUNTIME_STOP_TIMEOUT / 1000),
      maxParallelOperations: e.CLAWLOOPS_RUNTIME_MAX_PARALLEL,
      idleStopMs: e.CLAWLOOPS_IDLE_STOP,
      addressing: { mode: e.CLAWLOOPS_WORKSPACE_ROUTING, domain: e.CLAWLOOPS_DOMAIN, platformOrigin: publicUrl.origin },
      router: e.CLAWLOOPS_ROUTER,
      traefik: {
        entrypoint: e.CLAWLOOPS_TRAEFIK_ENTRYPOINT,
        certResolver: e.CLAWLOOPS_TRAEFIK_CERTRESOLVER || null,
        middleware: e.CLAWLOOPS_TRAEFIK_MIDDLEWARE,
        platformService: e.CLAWLOOPS_TRAEFIK_PLATFORM_SERVICE,
      },
      modelGatewayUrl: modelGatewayUrl.replace(/\/+$/, ''),
      models: e.CLAWLOOPS_RUNTIME_MODELS,
      modelDetails: {},
      // In a container the hostname is the container's short id unless set otherwise.
      controlPlaneContainer: e.CLAWLOOPS_CONTROL_PLANE_CONTAINER === 'self' ? os.hostname() : e.CLAWLOOPS_CONTROL_PLANE_CONTAINER || null,
      egressProxyUrl: `http://${gatewayHost}:${e.CLAWLOOPS_EGRESS_PORT}`,
      crashLoop: CRASH_LOOP_POLICY,
    },
    files: {
      root: e.CLAWLOOPS_FILES_ROOT,
      volumeRoot: OPENCLAW_HOME,
      quotaBytes: e.CLAWLOOPS_FILES_QUOTA,
      maxFileBytes: e.CLAWLOOPS_FILES_MAX_FILE_SIZE,
      maxRequestBytes: e.CLAWLOOPS_FILES_MAX_REQUEST_SIZE,
      maxFilesPerUpload: e.CLAWLOOPS_FILES_MAX_UPLOAD_FILES,
      textMaxBytes: e.CLAWLOOPS_FILES_TEXT_MAX_SIZE,
      importMaxEntries: e.CLAWLOOPS_FILES_IMPORT_MAX_ENTRIES,
      spoolDir: path.join(dataDir, 'upload-spool'),
      spoolMaxBytes: e.CLAWLOOPS_FILES_SPOOL_LIMIT,
      spoolMinFreeBytes: e.CLAWLOOPS_FILES_SPOOL_MIN_FREE,
      streamIdleMs: e.CLAWLOOPS_FILES_STREAM_IDLE_TIMEOUT,
    },
    llm: {
      upstreamUrl: e.CLAWLOOPS_LLM_UPSTREAM_URL ? e.CLAWLOOPS_LLM_UPSTREAM_URL.replace(/\/+$/, '') : null,
      upstreamKey: e.CLAWLOOPS_LLM_UPSTREAM_KEY || null,
      timeoutMs: e.CLAWLOOPS_LLM_TIMEOUT,
      bodyLimitBytes: e.CLAWLOOPS_LLM_BODY_LIMIT,
      limits: {
        requestsPerMinute: e.CLAWLOOPS_LLM_REQUESTS_PER_MINUTE,
        concurrentRequests: e.CLAWLOOPS_LLM_CONCURRENT_REQUESTS,
        monthlyTokens: e.CLAWLOOPS_LLM_MONTHLY_TOKENS,
        monthlyCostMicrodollars: e.CLAWLOOPS_LLM_MONTHLY_BUDGET_USD,
      },
    },
    backup: {
      dir: e.CLAWLOOPS_BACKUP_DIR ? path.resolve(cwd, e.CLAWLOOPS_BACKUP_DIR) : path.join(dataDir, 'backups'),
      keyFile: e.CLAWLOOPS_BACKUP_KEY_FILE ? path.resolve(cwd, e.CLAWLOOPS_BACKUP_KEY_FILE) : null,
      offboardingKeepDays: e.CLAWLOOPS_BACKUP_OFFBOARDING_DAYS,
    },
    runtimeBackend:
      e.CLAWLOOPS_RUNTIME_BACKEND === 'swarm'
        ? { kind: 'swarm', sharedVolumeOptions: e.CLAWLOOPS_SWARM_VOLUME_OPTIONS, memoryReservationShare: e.CLAWLOOPS_SWARM_MEMORY_RESERVATION }
        : { kind: 'docker' },
    egress: {
      port: e.CLAWLOOPS_EGRESS_PORT,
      rules: { profile: e.CLAWLOOPS_EGRESS_PROFILE, allow: e.CLAWLOOPS_EGRESS_ALLOW, deny: e.CLAWLOOPS_EGRESS_DENY },
      record: { retentionMs: e.CLAWLOOPS_EGRESS_RECORD_DAYS * 86_400_000, maxRows: EGRESS_RECORD_MAX_ROWS },
    },
    mail,
    // The listener binds where the main port does unless told otherwise: in the appliance's
    // container that is every interface of the container (Prometheus runs beside it, loopback
    // would be useless), and nothing is published on the host unless the compose file says so.
    metrics:
      e.CLAWLOOPS_METRICS_TOKEN || metricsPort !== null
        ? { token: e.CLAWLOOPS_METRICS_TOKEN || null, port: metricsPort, host: e.CLAWLOOPS_METRICS_HOST || e.CLAWLOOPS_HOST }
        : null,
    oidc,
  };
}

type Env = z.infer<typeof envSchema>;

/** The OpenID provider settings, or null when no issuer is set (then none of the other OIDC variables may be). */
function parseOidc(e: Env, publicOrigin: string, problems: string[]): OidcSettings | null {
  const issuerText = e.CLAWLOOPS_OIDC_ISSUER.trim();
  if (!issuerText) {
    if (e.CLAWLOOPS_OIDC_ONLY) problems.push('CLAWLOOPS_OIDC_ONLY: needs CLAWLOOPS_OIDC_ISSUER (without a provider nobody could sign in)');
    if (e.CLAWLOOPS_OIDC_CLIENT_ID.trim()) problems.push('CLAWLOOPS_OIDC_CLIENT_ID: set, but CLAWLOOPS_OIDC_ISSUER is not (single sign-on stays off without an issuer)');
    return null;
  }
  let issuer: URL | null = null;
  try {
    issuer = new URL(issuerText);
  } catch {
    problems.push(`CLAWLOOPS_OIDC_ISSUER: must be the provider's issuer URL like https://sso.example.com/realms/main, got "${issuerText}"`);
  }
  if (issuer && ((issuer.protocol !== 'https:' && issuer.protocol !== 'http:') || issuer.search || issuer.hash || issuer.username || issuer.password)) {
    problems.push('CLAWLOOPS_OIDC_ISSUER: must be an http(s) URL without query, fragment or credentials');
    issuer = null;
  }
  const clientId = e.CLAWLOOPS_OIDC_CLIENT_ID.trim();
  if (!clientId) problems.push('CLAWLOOPS_OIDC_CLIENT_ID: required with CLAWLOOPS_OIDC_ISSUER (the client id registered at the provider)');
  if (e.CLAWLOOPS_OIDC_ROLE_SYNC && !e.CLAWLOOPS_OIDC_ADMIN_GROUP) {
    problems.push('CLAWLOOPS_OIDC_ROLE_SYNC: needs CLAWLOOPS_OIDC_ADMIN_GROUP (the group whose members are admins)');
  }
  if (!issuer || !clientId) return null;
  return {
    // As written: the ID token's `iss` must equal it exactly (a trailing slash matters to some providers).
    issuer: issuerText,
    clientId,
    clientSecret: e.CLAWLOOPS_OIDC_CLIENT_SECRET || null,
    scopes: e.CLAWLOOPS_OIDC_SCOPES,
    usernameClaim: e.CLAWLOOPS_OIDC_USERNAME_CLAIM,
    groupsClaim: e.CLAWLOOPS_OIDC_GROUPS_CLAIM,
    adminGroup: e.CLAWLOOPS_OIDC_ADMIN_GROUP || null,
    allowedGroups: e.CLAWLOOPS_OIDC_ALLOWED_GROUPS,
    allowedEmailDomains: e.CLAWLOOPS_OIDC_ALLOWED_EMAIL_DOMAINS,
    autoCreate: e.CLAWLOOPS_OIDC_AUTO_CREATE,
    roleSync: e.CLAWLOOPS_OIDC_ROLE_SYNC,
    displayName: e.CLAWLOOPS_OIDC_DISPLAY_NAME,
    only: e.CLAWLOOPS_OIDC_ONLY,
    redirectUri: `${publicOrigin}/api/v1/auth/oidc/callback`,
    postLogoutRedirectUri: `${publicOrigin}/login`,
  };
}
