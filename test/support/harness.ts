import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import supertest from 'supertest';
import type TestAgent from 'supertest/lib/agent';
import { loadConfig, type AppConfig } from '../../src/config';
import type { DockerEngine, EngineVersion } from '../../src/docker/dockerEngine';
import type { LoginThrottleOptions } from '../../src/domain/loginThrottle';
import { ScryptPasswordHasher, type PasswordHasher } from '../../src/domain/passwordHasher';
import type { PasswordHashingLimits } from '../../src/domain/passwordHashingGate';
import type { Clock } from '../../src/lib/clock';
import { createLogger } from '../../src/lib/logger';
import { buildPlatform, type Platform } from '../../src/platform';
import type { RuntimeBackend } from '../../src/docker/runtimeBackend';
import type { RuntimeProvisioner } from '../../src/runtime/provisioner';
import type { HttpProbe } from '../../src/runtime/readinessProbe';
import type { RuntimeSettings } from '../../src/runtime/runtimeSettings';
import type { FilesSettings } from '../../src/files/filesSettings';
import type { WorkspaceVolumes } from '../../src/files/workspaceVolumes';
import type { LlmSettings } from '../../src/llm/llmSettings';
import type { MailQueueOptions } from '../../src/mail/mailQueue';
import type { OidcClient } from '../../src/oidc/oidcClient';
import { FakeProvisioner } from './fakeProvisioner';

export const PUBLIC_URL = 'http://platform.test:8080';
export const STRONG_PASSWORD = 'correct horse battery staple';
export const OTHER_STRONG_PASSWORD = 'violet kangaroo piano 42';

/** scrypt at a test-only cost: same code path, a fraction of the CPU. */
export const fastHasher = new ScryptPasswordHasher({ N: 1024, r: 8, p: 1 });

export class ManualClock implements Clock {
  constructor(private current = Date.parse('2026-06-01T12:00:00Z')) {}
  now(): number {
    return this.current;
  }
  advance(ms: number): void {
    this.current += ms;
  }
}

/** Real time that tests can still push forward (integration tests wait on real containers). */
export class RealTimeClock extends ManualClock {
  private offset = 0;
  override now(): number {
    return Date.now() + this.offset;
  }
  override advance(ms: number): void {
    this.offset += ms;
  }
}

/** A Docker engine stand-in at the interface we own; the real engine is covered in test/integration. */
export class FakeDockerEngine implements DockerEngine {
  reachable = true;
  async ping(): Promise<EngineVersion> {
    if (!this.reachable) throw new Error('connect ENOENT /var/run/docker.sock');
    return { version: 'fake', apiVersion: '1.41' };
  }
}

/** Collects every log line so tests can assert what was (and was not) logged. */
export class LogCapture extends Writable {
  readonly lines: string[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    this.lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    done();
  }
  get text(): string {
    return this.lines.join('\n');
  }
}

export function tempDataDir(prefix = 'clawloops-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export interface HarnessOptions {
  env?: Record<string, string>;
  dataDir?: string;
  docker?: DockerEngine;
  loginThrottle?: LoginThrottleOptions;
  /** Instead of fastHasher, e.g. one that counts or holds its calls. */
  hasher?: PasswordHasher;
  passwordHashing?: Partial<PasswordHashingLimits>;
  clock?: ManualClock;
  runtimeBackend?: RuntimeBackend;
  runtimeProvisioner?: RuntimeProvisioner;
  runtimeSettings?: Partial<RuntimeSettings>;
  runtimeProbe?: HttpProbe;
  /** Serve the web UI from this directory (browser tests); none by default. */
  webRoot?: string | null;
  files?: Partial<FilesSettings>;
  fileHelperIdleMs?: number;
  /** Instead of the Docker engine's volumes (test/support/fakeWorkspaceVolumes.ts). */
  workspaceVolumes?: WorkspaceVolumes;
  /** Free space the upload spool sees on its disk (a nearly full disk, simulated). */
  spoolFreeBytes?: (dir: string) => number;
  /** How the egress proxy resolves names. */
  egressResolve?: (host: string) => Promise<string[]>;
  llm?: Partial<LlmSettings>;
  /** The mail queue's retry delays and bound (mail itself: CLAWLOOPS_SMTP_URL in `env`). */
  mailQueue?: Partial<MailQueueOptions>;
  /** The OIDC protocol's stand-in (test/support/fakeOidcClient.ts), with CLAWLOOPS_OIDC_* in `env`. */
  oidcClient?: OidcClient;
}

export interface Harness {
  config: AppConfig;
  platform: Platform;
  clock: ManualClock;
  docker: FakeDockerEngine | DockerEngine;
  logs: LogCapture;
  dataDir: string;
  /** A browser-like client: keeps cookies and sends the platform's Origin. */
  client(): TestAgent;
  /** A client with no Origin header (curl, scripts). */
  bareClient(): TestAgent;
  /** Runs first-run setup and returns a client signed in as that admin. */
  setupAdmin(username?: string, password?: string): Promise<{ client: TestAgent; userId: string }>;
  /** Creates a member through an invitation and returns a client signed in as them. */
  createMember(admin: TestAgent, username: string, password?: string): Promise<{ client: TestAgent; userId: string }>;
  close(): void;
}

export function createHarness(options: HarnessOptions = {}): Harness {
  const dataDir = options.dataDir ?? tempDataDir();
  const config = loadConfig({
    CLAWLOOPS_DATA_DIR: dataDir,
    CLAWLOOPS_PUBLIC_URL: PUBLIC_URL,
    CLAWLOOPS_LOG_LEVEL: 'info',
    ...options.env,
  });
  const logs = new LogCapture();
  const logger = createLogger(config.logLevel, logs);
  const clock = options.clock ?? new ManualClock();
  const docker = options.docker ?? new FakeDockerEngine();
  const platform = buildPlatform(config, logger, {
    clock,
    hasher: options.hasher ?? fastHasher,
    docker,
    webRoot: options.webRoot ?? null,
    ...(options.runtimeBackend ? { runtimeBackend: options.runtimeBackend } : {}),
    // Without an engine of their own, tests get an in-memory provisioner: creating an account
    // prepares its runtime in the background, which must never reach the real engine.
    ...(options.runtimeProvisioner || !options.runtimeBackend ? { runtimeProvisioner: options.runtimeProvisioner ?? new FakeProvisioner() } : {}),
    ...(options.runtimeSettings ? { runtimeSettings: options.runtimeSettings } : {}),
    ...(options.runtimeProbe ? { runtimeProbe: options.runtimeProbe } : {}),
    ...(options.loginThrottle ? { loginThrottle: options.loginThrottle } : {}),
    ...(options.passwordHashing ? { passwordHashing: options.passwordHashing } : {}),
    ...(options.files ? { files: options.files } : {}),
    ...(options.llm ? { llm: options.llm } : {}),
    ...(options.fileHelperIdleMs !== undefined ? { fileHelperIdleMs: options.fileHelperIdleMs } : {}),
    ...(options.spoolFreeBytes ? { spoolFreeBytes: options.spoolFreeBytes } : {}),
    ...(options.egressResolve ? { egressResolve: options.egressResolve } : {}),
    ...(options.workspaceVolumes ? { workspaceVolumes: options.workspaceVolumes } : {}),
    ...(options.mailQueue ? { mailQueue: options.mailQueue } : {}),
    ...(options.oidcClient ? { oidcClient: options.oidcClient } : {}),
  });
  const client = (): TestAgent => supertest.agent(platform.app).set('Origin', config.publicOrigin);
  const bareClient = (): TestAgent => supertest.agent(platform.app);

  return {
    config,
    platform,
    clock,
    docker,
    logs,
    dataDir,
    client,
    bareClient,
    async setupAdmin(username = 'admin', password = STRONG_PASSWORD) {
      const token = platform.setup.issueToken();
      if (!token) throw new Error('setup already done');
      const admin = client();
      const res = await admin.post('/api/v1/setup').send({ token, username, password });
      if (res.status !== 201) throw new Error(`setup failed: ${res.status} ${JSON.stringify(res.body)}`);
      return { client: admin, userId: (res.body as { user: { id: string } }).user.id };
    },
    async createMember(admin, username, password = STRONG_PASSWORD) {
      const inv = await admin.post('/api/v1/admin/invitations').send({ role: 'member' });
      if (inv.status !== 201) throw new Error(`invite failed: ${inv.status} ${JSON.stringify(inv.body)}`);
      const secret = (inv.body as { link: string }).link.split('/invite/')[1];
      const member = client();
      const res = await member.post(`/api/v1/invitations/${secret}/accept`).send({ username, password });
      if (res.status !== 201) throw new Error(`accept failed: ${res.status} ${JSON.stringify(res.body)}`);
      return { client: member, userId: (res.body as { user: { id: string } }).user.id };
    },
    close() {
      platform.close();
      if (!options.dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Asserts the uniform error shape and returns the code. */
export function errorCode(res: { body: unknown }): string {
  const body = res.body as { error?: { code?: unknown; message?: unknown } };
  expect(typeof body.error?.code).toBe('string');
  expect(typeof body.error?.message).toBe('string');
  return body.error?.code as string;
}

/** A row of the model usage ledger, as tests read it. */
export interface UsageRow {
  username: string;
  runtime_id: string | null;
  endpoint: string;
  model: string;
  streamed: number;
  status: string;
  http_status: number | null;
  prompt_tokens: number;
  completion_tokens: number;
  cost_microdollars: number;
  /** 1: charged by the gateway's estimate, not the upstream's usage. */
  estimated: number;
}

/** The ledger as a report would read it: rows queued in this event-loop turn included. */
export const usageRows = (h: Pick<Harness, 'platform'>): UsageRow[] => {
  h.platform.ledger.flush();
  return h.platform.db.prepare('SELECT * FROM llm_usage ORDER BY id').all() as UsageRow[];
};
