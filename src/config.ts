import path from 'node:path';
import { isIP } from 'node:net';
import { z } from 'zod';
import { normalizeUsername, passwordProblem, usernameProblem } from './domain/accountRules';
import { parseDuration, parseSize } from './lib/duration';

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
  initialAdmin: { username: string; password: string } | null;
  trustProxy: TrustProxySetting;
  logLevel: LogLevel;
  sessionIdleTimeoutMs: number;
  sessionMaxAgeMs: number;
  jsonBodyLimitBytes: number;
  shutdownTimeoutMs: number;
}

/** Thrown at start-up; its message names every bad variable and is meant for the operator. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

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
      if (bytes === null || bytes < 1024) {
        ctx.addIssue({ code: 'custom', message: `must be a size like 100kb or 1mb (at least 1kb), got "${value}"` });
        return z.NEVER;
      }
      return bytes;
    }),
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
      const got = typeof env[name] === 'string' && !/PASSWORD/.test(name) ? ` (got "${env[name]}")` : '';
      problems.push(`${name}: ${issue.message}${issue.message.includes('got "') ? '' : got}`);
    }
    throw new ConfigError(problems);
  }
  const e = parsed.data;

  const publicUrl = parsePublicUrl(e.CLAWLOOPS_PUBLIC_URL ?? `http://localhost:${e.CLAWLOOPS_PORT}`, problems);

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

  if (problems.length > 0 || !publicUrl) throw new ConfigError(problems);

  return {
    port: e.CLAWLOOPS_PORT,
    host: e.CLAWLOOPS_HOST,
    dataDir: path.resolve(cwd, e.CLAWLOOPS_DATA_DIR),
    publicUrl: publicUrl.origin,
    publicOrigin: publicUrl.origin,
    secureCookies: publicUrl.protocol === 'https:',
    dockerSocket: e.CLAWLOOPS_DOCKER_SOCKET,
    initialAdmin,
    trustProxy: e.CLAWLOOPS_TRUST_PROXY,
    logLevel: e.CLAWLOOPS_LOG_LEVEL,
    sessionIdleTimeoutMs: e.CLAWLOOPS_SESSION_IDLE_TIMEOUT,
    sessionMaxAgeMs: e.CLAWLOOPS_SESSION_MAX_AGE,
    jsonBodyLimitBytes: e.CLAWLOOPS_JSON_BODY_LIMIT,
    shutdownTimeoutMs: e.CLAWLOOPS_SHUTDOWN_TIMEOUT,
  };
}
