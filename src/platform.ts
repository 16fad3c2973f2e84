import fs from 'node:fs';
import path from 'node:path';
import type { AppConfig } from './config';
import { openDatabase, type Db } from './db/database';
import { migrateWithCopy } from './db/migrations';
import { SqliteReadinessProbe } from './db/readinessProbe';
import { AuditRepository } from './db/repositories/auditRepository';
import { InvitationRepository } from './db/repositories/invitationRepository';
import { SessionRepository } from './db/repositories/sessionRepository';
import { ApiTokenRepository } from './db/repositories/apiTokenRepository';
import { DavPropertyRepository } from './db/repositories/davPropertyRepository';
import { UserRepository } from './db/repositories/userRepository';
import { RuntimeRepository } from './db/repositories/runtimeRepository';
import { SettingsRepository } from './db/repositories/settingsRepository';
import { connectDocker, type DockerConnection } from './docker/dockerConnection';
import type { DockerEngine } from './docker/dockerEngine';
import { DockerRuntimeProvisioner } from './docker/dockerRuntimeProvisioner';
import type { RuntimeBackend } from './docker/runtimeBackend';
import type { RuntimeProvisioner } from './runtime/provisioner';
import { AuditLog } from './domain/audit';
import { AuthService } from './domain/authService';
import { InvitationService } from './domain/invitationService';
import { PlatformSettingsService } from './domain/platformSettings';
import { DEFAULT_LOGIN_THROTTLE, LoginThrottle, type LoginThrottleOptions } from './domain/loginThrottle';
import { ScryptPasswordHasher, type PasswordHasher } from './domain/passwordHasher';
import { DEFAULT_PASSWORD_HASHING, PasswordHashingGate, type PasswordHashingLimits } from './domain/passwordHashingGate';
import { ReadinessService } from './domain/readiness';
import { SessionService } from './domain/sessions';
import { ApiTokenService, tokenCredentialId, tokenIdOfCredential } from './domain/apiTokens';
import { SetupService } from './domain/setupService';
import { sqliteTransactor } from './domain/transactor';
import { UserAdminService } from './domain/userAdminService';
import { UserFactory } from './domain/userFactory';
import { createApp, type WorkspaceUpgrade } from './http/app';
import type { RequestListener } from './http/frontDoor';
import { RuntimeRouteCache } from './http/workspace/runtimeRoutes';
import { sqliteDataVersion } from './db/dataVersion';
import { ExternalChanges } from './lib/externalChanges';
import { WorkspaceAccessRepository } from './db/repositories/workspaceAccessRepository';
import { WorkspaceAddresses } from './domain/workspaceAddresses';
import { WorkspaceGatekeeper } from './domain/workspaceGatekeeper';
import { CachedWorkspaceAuthenticator } from './domain/workspaceAccessCache';
import { WorkspaceSessionService } from './domain/workspaceSessions';
import { EventStreams } from './http/sse';
import { LiveConnections } from './http/liveConnections';
import { systemClock, type Clock } from './lib/clock';
import type { Logger } from './lib/logger';
import { AccountRuntimeHooks } from './runtime/accountRuntimeHooks';
import { RuntimeEventHub } from './runtime/operations';
import { runtimeHttpProbe, type HttpProbe } from './runtime/readinessProbe';
import { RuntimeManager } from './runtime/runtimeManager';
import type { RuntimeSettings } from './runtime/runtimeSettings';
import { SettingsStore } from './lib/settingsStore';
import { RuntimeWatcher } from './runtime/runtimeWatcher';
import type { FilesSettings } from './files/filesSettings';
import { WorkspaceFiles } from './files/workspaceFiles';
import { fileAgentScript } from './files/agentScript';
import type { WorkspaceVolumes } from './files/workspaceVolumes';
import { DockerWorkspaceVolumes } from './docker/dockerWorkspaceVolumes';
import { connectSwarm } from './swarm/swarmConnection';
import { SwarmRuntimeNodes } from './swarm/swarmRuntimeNodes';
import { RuntimeMoves } from './runtime/runtimeMoves';
import { SpoolSpace } from './files/spoolSpace';
import { UsageRepository } from './db/repositories/usageRepository';
import { UsageLedger } from './llm/usageLedger';
import type { LlmSettings } from './llm/llmSettings';
import { ModelGateway } from './llm/modelGateway';
import { GatewayCallerCache } from './llm/callerCache';
import { ModelLimiter } from './llm/modelLimits';
import { ModelCatalog } from './llm/modelCatalog';
import { ModelRepository } from './db/repositories/modelRepository';
import { EgressRepository } from './db/repositories/egressRepository';
import { EgressRecord } from './egress/egressRecord';
import { EgressRulesService } from './egress/egressRules';
import { BackupService } from './backup/backupService';
import { WorkspaceRestore } from './backup/workspaceRestore';
import { ImageRollout } from './runtime/imageRollout';
import { RestoreRepository } from './db/repositories/restoreRepository';
import { FileAgentClient } from './files/agentClient';
import { VolumeGate } from './files/volumeGate';
import { BackupScheduler } from './backup/backupScheduler';
import { loadBackupKey } from './backup/backupKey';
import { CLAWLOOPS_VERSION } from './version';
import { resolveInstallation, type Installation } from './domain/installation';
import { EgressProxy } from './egress/egressProxy';
import { LimitsRepository } from './db/repositories/limitsRepository';
import { BudgetWarningRepository } from './db/repositories/budgetWarningRepository';
import { BudgetWarnings } from './llm/budgetWarnings';
import { MailNotifications } from './mail/mailNotifications';
import type { Mailer } from './mail/mailer';
import type { MailQueueOptions } from './mail/mailQueue';
import { SmtpMailer } from './mail/smtpMailer';
import { PlatformMetrics } from './metrics/platformMetrics';
import { metricsListener, type MetricsAccess } from './http/metricsEndpoint';
import type { RouteClass } from './http/routeClass';
import { OidcIdentityRepository } from './db/repositories/oidcIdentityRepository';
import type { OidcClient } from './oidc/oidcClient';
import { OidcSignIn } from './oidc/oidcSignIn';
import { openidClient } from './oidc/openidClientAdapter';
import { PendingSignIns } from './oidc/pendingSignIns';

/** Seams tests (and benchmarks) may replace; production uses the defaults. */
export interface PlatformOverrides {
  clock?: Clock;
  hasher?: PasswordHasher;
  docker?: DockerEngine;
  loginThrottle?: LoginThrottleOptions;
  passwordHashing?: Partial<PasswordHashingLimits>;
  database?: Db;
  webRoot?: string | null;
  /** The low-level engine adapter the file side still uses (and the default provisioner wraps). */
  runtimeBackend?: RuntimeBackend;
  /** The runtime provisioner; by default the Docker one on `runtimeBackend`. */
  runtimeProvisioner?: RuntimeProvisioner;
  runtimeProbe?: HttpProbe;
  runtimeSettings?: Partial<RuntimeSettings>;
  files?: Partial<FilesSettings>;
  llm?: Partial<LlmSettings>;
  /** Free space of the upload spool's disk (tests simulate a full disk). */
  spoolFreeBytes?: (dir: string) => number;
  /** How long an unused file helper container lives (default one minute). */
  fileHelperIdleMs?: number;
  /** A command-line run beside a running server names its file helpers apart (fileHelpers.ts). */
  fileHelperNamePrefix?: string;
  /** Instead of the Docker engine's volumes (http tests of the file API). */
  workspaceVolumes?: WorkspaceVolumes;
  /** How the egress proxy resolves names (tests stand in for the internet with names of their own). */
  egressResolve?: (host: string) => Promise<string[]>;
  /** Instead of SMTP to config.mail (null: no mail even when configured). */
  mailer?: Mailer | null;
  /** The mail queue's bounds and retry delays (tests shorten the delays). */
  mailQueue?: Partial<MailQueueOptions>;
  /** Instead of openid-client against the configured provider (tests of the sign-in rules). */
  oidcClient?: OidcClient;
}

export interface Platform {
  /** The HTTP server's request listener (http.createServer(platform.app)): the front door, Express behind it. */
  app: RequestListener;
  db: Db;
  setup: SetupService;
  users: UserAdminService;
  sessions: SessionService;
  tokens: ApiTokenService;
  runtimes: RuntimeManager;
  runtimeHub: RuntimeEventHub;
  watcher: RuntimeWatcher;
  streams: EventStreams;
  /** The model usage ledger (its queue is written every 50 ms at most, and before every read). */
  ledger: UsageLedger;
  /** Online backups of the database and every volume (src/backup/). */
  backups: BackupService;
  /** One user's workspace back to a backup. */
  workspaceRestore: WorkspaceRestore;
  /** Running runtimes onto a new image, health-gated, each put back when it fails there. */
  rollout: ImageRollout;
  /** The daily backup and its retention (server.ts starts it). */
  backupScheduler: BackupScheduler;
  /** Who this installation is: its instance name on the engine and its id (stored with its data). */
  installation: Installation;
  /** The gate every password check passes (its load is what tests and diagnostics read). */
  passwordHashing: PasswordHashingGate;
  /** The runtime settings every runtime module reads (tests change them with `set`). */
  runtimeSettings: SettingsStore<RuntimeSettings>;
  /** The runtimes' only way out; server.ts makes it listen. */
  egress: EgressProxy;
  /** Prometheus metrics; null when off (neither CLAWLOOPS_METRICS_TOKEN nor CLAWLOOPS_METRICS_PORT). */
  metrics: PlatformMetrics | null;
  /** The listener of the metrics' own port (CLAWLOOPS_METRICS_PORT), which server.ts opens; null without one. */
  metricsListener: RequestListener | null;
  /** Who may reach what from their runtime. */
  egressRules: EgressRulesService;
  /** What runtimes reached (and were refused). */
  egressRecord: EgressRecord;
  /** The platform's mails (a no-op without CLAWLOOPS_SMTP_URL); server.ts drains it at shutdown. */
  mail: MailNotifications;
  workspaceSessions: WorkspaceSessionService;
  files: WorkspaceFiles;
  /** The workspace-volume port the file manager reaches volumes through (a restore holds one). */
  volumes: VolumeGate;
  /** Host disk space held by uploads spooled before they go into a workspace. */
  spool: SpoolSpace;
  /** For the HTTP server's `upgrade` event: WebSockets to workspaces. */
  upgrade: WorkspaceUpgrade;
  /**
   * A swarm's node-stats service (the runtimes' figures on every node), null on one Docker
   * engine: server.ts sweeps what an earlier process left at start-up and removes its own at shutdown.
   */
  swarmNodeStats: { sweep(): Promise<void>; close(): Promise<void> } | null;
  /** Ends every proxied WebSocket (shutdown: the HTTP server does not track upgraded sockets). */
  closeWorkspaceSockets(): void;
  /**
   * Ends what is open under sessions that no longer exist. Sessions ended in this process close
   * their connections at once; this catches those ended elsewhere (the admin CLI's password
   * reset, which works on the database directly) and those that ran out of time unnoticed.
   */
  sweepOpenConnections(): number;
  close(): void;
}

/**
 * The composition root: config → database → Docker client → services → HTTP. Nothing else
 * constructs adapters or services, so every dependency is visible here.
 */
export function buildPlatform(config: AppConfig, logger: Logger, overrides: PlatformOverrides = {}): Platform {
  const clock = overrides.clock ?? systemClock;

  const db = overrides.database ?? openDatabase(config.dataDir);
  const migration = migrateWithCopy(db, config.dataDir, clock.now());
  if (migration.from !== migration.to) logger.info(migration, 'database migrated');

  const settingsRepo = new SettingsRepository(db);
  const hasData = (db.prepare('SELECT EXISTS (SELECT 1 FROM users) AS any').get() as { any: number }).any === 1;
  const installation = resolveInstallation(settingsRepo, config.instance, hasData, clock.now());
  let connection: DockerConnection | null = null;
  const connect = (): DockerConnection => (connection ??= connectDocker(config.dockerSocket, installation.instance, config.subnetPool));
  const docker = overrides.docker ?? connect().engine;
  const runtimeBackend = overrides.runtimeBackend ?? connect().backend;

  const userRepo = new UserRepository(db);
  const transact = sqliteTransactor(db);
  const hashing = new PasswordHashingGate(overrides.hasher ?? new ScryptPasswordHasher(), { ...DEFAULT_PASSWORD_HASHING, ...overrides.passwordHashing });
  const signedInHasher = hashing.for('signedIn', null);
  const audit = new AuditLog(new AuditRepository(db), clock);
  // Repeated failures are counted in memory: their rows are written when their window closes.
  const writeAuditRepeats = (write: () => void): void => {
    try {
      write();
    } catch (err) {
      logger.error({ err: (err as Error).message }, 'writing counted audit repeats failed; those repeats are not recorded');
    }
  };
  const auditRepeatsTimer = setInterval(() => writeAuditRepeats(() => audit.closeExpiredRepeats()), 60_000);
  auditRepeatsTimer.unref();
  const mail = new MailNotifications({
    mailer: overrides.mailer !== undefined ? overrides.mailer : config.mail ? new SmtpMailer(config.mail) : null,
    users: userRepo,
    audit,
    clock,
    logger: logger.child({ component: 'mail' }),
    publicUrl: config.publicUrl,
    ...(overrides.mailQueue ? { queue: overrides.mailQueue } : {}),
  });
  const sessions = new SessionService(new SessionRepository(db), userRepo, clock, {
    idleTimeoutMs: config.sessionIdleTimeoutMs,
    maxAgeMs: config.sessionMaxAgeMs,
  });
  const tokens = new ApiTokenService(new ApiTokenRepository(db), userRepo, audit, transact, clock);
  // accountHooks is built below; accounts are only created once the platform is built.
  const factory = new UserFactory(userRepo, signedInHasher, clock, (user) => accountHooks.userCreated(user.id));
  const throttle = new LoginThrottle(clock, overrides.loginThrottle ?? DEFAULT_LOGIN_THROTTLE);
  const auth = new AuthService(userRepo, sessions, hashing, throttle, audit, transact, clock);
  const setup = new SetupService(userRepo, factory, sessions, audit, transact, hashing);
  const invitationRepo = new InvitationRepository(db);
  const invitations = new InvitationService(invitationRepo, userRepo, factory, sessions, audit, transact, clock, hashing);
  const oidc = config.oidc
    ? new OidcSignIn({
        settings: config.oidc,
        client: overrides.oidcClient ?? openidClient(config.oidc, logger.child({ component: 'oidc' })),
        pending: new PendingSignIns(clock),
        users: userRepo,
        invitations: invitationRepo,
        links: new OidcIdentityRepository(db),
        factory,
        sessions,
        auth,
        hashing,
        audit,
        transact,
        clock,
      })
    : null;
  // One store of runtime settings: readers take a frozen snapshot when they need one; the admin's
  // settings and the model catalog set it. Stored admin settings apply before anything reads it.
  const runtimeSettings = new SettingsStore<RuntimeSettings>({ ...config.runtime, ...overrides.runtimeSettings });
  const settings = new PlatformSettingsService(settingsRepo, runtimeSettings, audit, transact, clock);
  // What the engine adapter reads of these (routing, the proxies' addresses) is fixed for the process's life.
  const fixedRuntimeSettings = runtimeSettings.get();
  const runtimeRepo = new RuntimeRepository(db);
  const runtimeHub = new RuntimeEventHub();
  const swarm =
    config.runtimeBackend.kind === 'swarm' && !overrides.runtimeProvisioner
      ? connectSwarm({
          docker: connect().engine.client,
          local: runtimeBackend,
          instance: installation.instance,
          subnetPool: config.subnetPool,
          installation,
          settings: runtimeSettings,
          sharedVolumeOptions: config.runtimeBackend.sharedVolumeOptions,
          memoryReservationShare: config.runtimeBackend.memoryReservationShare,
          logger,
          fileAgentIdleMs: overrides.fileHelperIdleMs ?? 60_000,
          ...(overrides.fileHelperNamePrefix ? { fileAgentNamePrefix: overrides.fileHelperNamePrefix } : {}),
        })
      : null;
  const provisioner =
    overrides.runtimeProvisioner ?? swarm?.provisioner ?? new DockerRuntimeProvisioner(runtimeBackend, fixedRuntimeSettings, logger.child({ component: 'runtimes' }), installation);
  const addresses = new WorkspaceAddresses(fixedRuntimeSettings.addressing);
  const workspaceSessions = new WorkspaceSessionService(new WorkspaceAccessRepository(db), userRepo, sessions, clock);
  // Caches on the hot paths drop what they hold when another process (the admin CLI) wrote.
  const externalChanges = new ExternalChanges(sqliteDataVersion(db));
  const workspaceAccess = new CachedWorkspaceAuthenticator(workspaceSessions, sessions, clock, externalChanges);
  const gatekeeper = new WorkspaceGatekeeper(addresses, workspaceSessions, config.secureCookies, workspaceAccess);
  // A stopped (or stopping, re-created, deleted) runtime ends its owner's workspace sessions:
  // the next visit goes through the platform again.
  runtimeHub.subscribeLaunched((operation) => {
    if (operation.kind !== 'start') workspaceSessions.revokeForUser(operation.userId);
  });
  const runtimes = new RuntimeManager({
    runtimes: runtimeRepo,
    users: userRepo,
    provisioner,
    probe: overrides.runtimeProbe ?? runtimeHttpProbe,
    hub: runtimeHub,
    audit,
    clock,
    logger: logger.child({ component: 'runtimes' }),
    settings: runtimeSettings,
  });
  const watcher = new RuntimeWatcher({
    manager: runtimes,
    runtimes: runtimeRepo,
    provisioner,
    audit,
    clock,
    logger: logger.child({ component: 'runtime-watcher' }),
    settings: runtimeSettings,
    onCrashLoop: (incident) => mail.runtimeCrashLoop(incident),
  });
  // Read at scrape time only, so what is built further down (the catalog, the streams) is there by then.
  const metrics: PlatformMetrics | null = config.metrics
    ? new PlatformMetrics(
        {
          runtimeStates: () => runtimes.observedStates(),
          queuedOperations: () => runtimes.operationCounts().queued,
          operationsInFlight: () => runtimes.operationCounts().inFlight,
          openEventStreams: () => streams.size,
          knownModel: (id) => catalog.allows(id),
          subscribeOperations: (listener) => runtimeHub.subscribeLaunched(listener),
        },
        CLAWLOOPS_VERSION,
      )
    : null;
  const metricsAccess = (token: string | null): MetricsAccess | null =>
    metrics && {
      expose: () => metrics.expose(),
      contentType: metrics.registry.contentType,
      token,
      isRuntime: (address) => runtimes.ownerAtAddress(address) !== null,
      // A scraper with a wrong token repeats every few seconds: counted, not a row per scrape.
      refused: (origin, reason) => audit.recordRepeated(`${reason}\u0000${origin.ip ?? ''}`, { action: 'metrics.refused', actor: null, origin, detail: { reason } }),
      logger: logger.child({ component: 'metrics' }),
    };
  const accountHooks = new AccountRuntimeHooks({ manager: runtimes, provisioner, audit, logger: logger.child({ component: 'runtimes' }) });
  // What the hot paths keep about a user goes with the account, before the hooks return.
  const forgetUserEverywhere = (userId: string): void => {
    workspaceAccess.forgetUser(userId);
    routes.forget(userId);
    callers.forgetUser(userId);
  };
  const users = new UserAdminService(userRepo, factory, signedInHasher, sessions, tokens, audit, transact, clock, {
    onUserDisabled: (user) => {
      workspaceSessions.revokeForUser(user.id);
      forgetUserEverywhere(user.id);
      accountHooks.userDisabled(user.id);
    },
    onUserDeleted: (user) => {
      forgetUserEverywhere(user.id);
      budgetWarnings.forgetUser(user.id);
      accountHooks.userDeleted(user.id, user.username).catch((err: unknown) => {
        logger.error({ userId: user.id, err: (err as Error).message }, 'removing the runtime of a deleted user failed: its container and network go at the next start-up sweep, its data volume must be removed by hand');
      });
    },
    onPasswordReset: (user, by) => mail.passwordReset(user, by),
  });
  const filesSettings: FilesSettings = { ...config.files, ...overrides.files };
  // Spooled uploads of a previous run are incomplete by definition.
  fs.rmSync(filesSettings.spoolDir, { recursive: true, force: true });
  fs.mkdirSync(filesSettings.spoolDir, { recursive: true, mode: 0o700 });
  const spool = new SpoolSpace({ dir: filesSettings.spoolDir, maxBytes: filesSettings.spoolMaxBytes, minFreeBytes: filesSettings.spoolMinFreeBytes }, overrides.spoolFreeBytes);
  const engineVolumes =
    overrides.workspaceVolumes ??
    swarm?.volumes(runtimes) ??
    new DockerWorkspaceVolumes({
      backend: runtimeBackend,
      targets: runtimes,
      settings: runtimeSettings,
      logger: logger.child({ component: 'files' }),
      idleMs: overrides.fileHelperIdleMs ?? 60_000,
      ...(overrides.fileHelperNamePrefix ? { namePrefix: overrides.fileHelperNamePrefix } : {}),
      agentScript: fileAgentScript,
    });
  // Everyone reaches volumes through the gate; a workspace restore holds one and works underneath.
  const volumes = new VolumeGate(engineVolumes);
  runtimes.beforePurge((runtimeId) => volumes.closeRuntime(runtimeId));
  const files = new WorkspaceFiles({
    volumes,
    settings: filesSettings,
    audit,
    clock,
    logger: logger.child({ component: 'files' }),
    onActivity: (userId) => runtimes.touchUser(userId),
  });
  const llmSettings: LlmSettings = { ...config.llm, ...overrides.llm };
  const ledger = new UsageLedger(new UsageRepository(db), logger.child({ component: 'llm' }));
  const limiter = new ModelLimiter({ defaults: llmSettings.limits, overrides: new LimitsRepository(db), usage: ledger, clock });
  const budgetWarnings = new BudgetWarnings({ limiter, store: new BudgetWarningRepository(db), clock, notify: (userId, crossing) => mail.budgetWarning(userId, crossing) });
  const catalog = new ModelCatalog({ repository: new ModelRepository(db), runtime: runtimeSettings, audit, transact, clock });
  const callers = new GatewayCallerCache(
    {
      subscribeLaunched: (listener) => runtimeHub.subscribeLaunched(listener),
      subscribe: (runtimeId, listener) => runtimeHub.subscribe(runtimeId, listener),
    },
    externalChanges,
  );
  // A disabled owner's keys stop working at once (the runtime's stop comes after).
  workspaceSessions.onRevoked((userId) => callers.forgetUser(userId));
  sessions.onEnded((ended) => callers.forgetUser(ended.userId));
  const gateway = new ModelGateway({
    callers,
    catalog,
    runtimes: runtimeRepo,
    usage: ledger,
    limiter,
    clock,
    settings: llmSettings,
    onActivity: (runtimeId) => runtimes.touch(runtimeId),
    // Only with mail: a warning that could not be sent is not recorded as sent.
    ...(mail.enabled
      ? {
          onCharged: (userId: string) => {
            // The call is answered and charged already; a warning that fails only says so.
            try {
              budgetWarnings.check(userId);
            } catch (err) {
              logger.error({ userId, err: (err as Error).message }, 'checking the budget warnings failed');
            }
          },
        }
      : {}),
    ...(metrics ? { observer: metrics } : {}),
  });
  const readiness = new ReadinessService(new SqliteReadinessProbe(db), docker);

  // Whatever was opened under a platform session ends with it; a user's proxied workspace
  // connections also end when their workspace sessions are revoked (runtime stopped, account disabled).
  const connections = new LiveConnections();
  sessions.onEnded((ended) => connections.endSessions(ended.sessionIds));
  tokens.onRevoked((revoked) => connections.endSessions(revoked.tokenIds.map(tokenCredentialId)));
  workspaceSessions.onRevoked((userId) => connections.endProxiedOf(userId));
  const streams = new EventStreams(connections, undefined, metrics && { opened: (reconnect) => metrics.eventStreamOpened(reconnect) });
  const routes = new RuntimeRouteCache(
    {
      routeForUser: (userId) => runtimes.routeForUser(userId),
      subscribeLaunched: (listener) => runtimeHub.subscribeLaunched(listener),
      subscribe: (runtimeId, listener) => runtimeHub.subscribe(runtimeId, listener),
    },
    externalChanges,
  );
  workspaceSessions.onRevoked((userId) => routes.forget(userId));
  const backups = new BackupService({
    db,
    dataDir: config.dataDir,
    backupDir: config.backup.dir,
    identity: config.backup.keyFile ? loadBackupKey(config.backup.keyFile) : null,
    volumes,
    volumeRoot: filesSettings.volumeRoot,
    installation,
    freeze: (userId) => runtimes.freezeForBackup(userId),
    version: CLAWLOOPS_VERSION,
    clock,
    logger: logger.child({ component: 'backup' }),
    onFailed: (failure) => mail.backupFailed(failure),
  });
  const workspaceRestore = new WorkspaceRestore({
    backupDir: config.backup.dir,
    key: () => backups.key(),
    backupRunning: () => backups.current !== null,
    runtimes,
    volumes: engineVolumes,
    gate: volumes,
    agent: new FileAgentClient(logger.child({ component: 'backup' })),
    restores: new RestoreRepository(db),
    volumeRoot: filesSettings.volumeRoot,
    audit,
    clock,
    logger: logger.child({ component: 'backup' }),
  });
  const rollout = new ImageRollout({
    runtimes,
    records: runtimeRepo,
    hub: runtimeHub,
    configureImage: (actor, image, origin) => settings.update(actor, { image }, origin),
    backUp: async () => (backups.hasKey() ? (await backups.create(() => {}, 'upgrade')).id : null),
    store: settingsRepo,
    audit,
    clock,
    logger: logger.child({ component: 'rollout' }),
  });
  const backupScheduler = new BackupScheduler({ backups, settings: settingsRepo, clock, logger: logger.child({ component: 'backup' }), offboardingKeepDays: config.backup.offboardingKeepDays });
  const egressRepo = new EgressRepository(db);
  const egressRules = new EgressRulesService({ settings: settingsRepo, repository: egressRepo, defaults: config.egress.rules, audit, transact, clock });
  const egressRecord = new EgressRecord({ repository: egressRepo, settings: config.egress.record, clock, logger: logger.child({ component: 'egress' }) });
  egressRecord.start();

  const moves = new RuntimeMoves({
    nodes: swarm ? new SwarmRuntimeNodes(swarm.engine, swarm.provisioner, swarm.fileAgents, new FileAgentClient(logger.child({ component: 'runtimes' })), logger.child({ component: 'runtimes' })) : null,
    manager: runtimes,
    runtimes: runtimeRepo,
    audit,
    logger: logger.child({ component: 'runtimes' }),
  });
  const httpMetrics = metrics && {
    observe: (routeClass: RouteClass, status: number | null, seconds: number) => metrics.httpRequest(routeClass, status, seconds),
    fileTraffic: (direction: 'in' | 'out', bytes: number) => metrics.fileTraffic(direction, bytes),
    // The main port serves /metrics only behind the token; without one, only the metrics port does.
    endpoint: config.metrics?.token ? metricsAccess(config.metrics.token) : null,
  };
  // The metrics port asks for the token too when there is one.
  const portMetrics = config.metrics?.port ? metricsAccess(config.metrics.token) : null;
  const app = createApp(
    {
      publicUrl: config.publicUrl,
      publicOrigin: config.publicOrigin,
      router: fixedRuntimeSettings.router,
      secureCookies: config.secureCookies,
      trustProxy: config.trustProxy,
      jsonBodyLimitBytes: config.jsonBodyLimitBytes,
      llmBodyLimitBytes: llmSettings.bodyLimitBytes,
      webRoot: overrides.webRoot === undefined ? path.resolve(__dirname, '..', 'web', 'dist') : overrides.webRoot,
    },
    { logger, backups, backupScheduler, workspaceRestore, rollout, clock, readiness, sessions, tokens, auth, setup, invitations, users, audit, runtimes, runtimeHub, streams, connections, settings, workspaceSessions, gatekeeper, addresses, routes, files, spool, gateway, limiter, catalog, egressRules, egressRecord, moves, mail, metrics: httpMetrics, oidc, davProperties: new DavPropertyRepository(db) },
  );

  const egress = new EgressProxy({
    identify: (address) => runtimes.ownerAtAddress(address),
    policy: (userId) => egressRules.policyFor(userId),
    record: (outcome) => egressRecord.add(outcome),
    now: () => clock.now(),
    ...(overrides.egressResolve ? { resolve: overrides.egressResolve } : {}),
    logger: logger.child({ component: 'egress' }),
  });

  return {
    app: app.handler,
    upgrade: app.upgrade,
    swarmNodeStats: swarm?.nodeStats ?? null,
    closeWorkspaceSockets: app.closeWorkspaceSockets,
    sweepOpenConnections: () => {
      const gone = connections.sessionIds().filter((id) => {
        const tokenId = tokenIdOfCredential(id);
        return tokenId === null ? sessions.liveSession(id) === null : !tokens.isLive(tokenId);
      });
      workspaceAccess.forgetPlatformSessions(gone);
      return connections.endSessions(gone);
    },
    workspaceSessions,
    files,
    volumes,
    spool,
    db,
    setup,
    users,
    sessions,
    tokens,
    runtimes,
    runtimeHub,
    watcher,
    streams,
    ledger,
    passwordHashing: hashing,
    installation,
    backups,
    backupScheduler,
    workspaceRestore,
    rollout,
    runtimeSettings,
    egress,
    egressRules,
    egressRecord,
    mail,
    metrics,
    metricsListener: portMetrics && metricsListener(portMetrics),
    close: () => {
      metrics?.close();
      app.closeWorkspaceSockets();
      mail.close();
      watcher.close();
      runtimes.figures.close();
      egressRecord.close();
      void backups.close();
      clearInterval(auditRepeatsTimer);
      if (db.open) {
        ledger.flush();
        writeAuditRepeats(() => audit.flushRepeats());
        db.close();
      }
    },
  };
}
