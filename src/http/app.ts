import type { EgressRecord } from '../egress/egressRecord';
import type { EgressRulesService } from '../egress/egressRules';
import fs from 'node:fs';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import path from 'node:path';
import express, { type Express } from 'express';
import type { AuditLog } from '../domain/audit';
import type { AuthService } from '../domain/authService';
import type { PlatformSettingsService } from '../domain/platformSettings';
import type { InvitationService } from '../domain/invitationService';
import type { ReadinessService } from '../domain/readiness';
import type { SessionService } from '../domain/sessions';
import type { SetupService } from '../domain/setupService';
import type { UserAdminService } from '../domain/userAdminService';
import type { TrustProxySetting } from '../config';
import type { Clock } from '../lib/clock';
import type { Logger } from '../lib/logger';
import type { RuntimeEventHub } from '../runtime/operations';
import type { RuntimeManager } from '../runtime/runtimeManager';
import { errorHandler, notFoundHandler } from './errorHandling';
import type { EventStreams } from './sse';
import type { LiveConnections } from './liveConnections';
import { loadSession, requireAuth } from './middleware/authentication';
import { loadApiToken, requireTokenScope } from './middleware/apiTokenAuth';
import { apiTokensRouter } from './routes/apiTokens';
import type { ApiTokenService } from '../domain/apiTokens';
import { requireJsonBody, requirePlatformOrigin } from './middleware/originCheck';
import { precompressedAssets } from './middleware/precompressedAssets';
import { requestContext, securityHeaders } from './middleware/requestContext';
import { accountRouter } from './routes/account';
import { adminRouter } from './routes/admin';
import { authRouter } from './routes/auth';
import { oidcRouter } from './routes/oidc';
import type { OidcSignIn } from '../oidc/oidcSignIn';
import { healthRouter } from './routes/health';
import { invitationsRouter } from './routes/invitations';
import { adminRuntimeRoutes, ownRuntimeRouter } from './routes/runtime';
import { adminNodesRoutes } from './routes/adminNodes';
import type { RuntimeMoves } from '../runtime/runtimeMoves';
import { adminSettingsRoutes } from './routes/adminSettings';
import { adminBackupRoutes } from './routes/adminBackups';
import type { WorkspaceRestore } from '../backup/workspaceRestore';
import type { ImageRollout } from '../runtime/imageRollout';
import { adminRolloutRoutes } from './routes/adminRollout';
import type { BackupService } from '../backup/backupService';
import type { BackupScheduler } from '../backup/backupScheduler';
import { setupRouter } from './routes/setup';
import { adminFilesRouter, ownFilesRouter } from './routes/files';
import type { SpoolSpace } from '../files/spoolSpace';
import type { WorkspaceFiles } from '../files/workspaceFiles';
import type { ModelGateway } from '../llm/modelGateway';
import { gatewayHandler } from './llm/gatewayHandler';
import { davRouter, DAV_PREFIX } from '../webdav/davHandler';
import type { DavPropertyRepository } from '../db/repositories/davPropertyRepository';
import { frontDoor, type RequestListener } from './frontDoor';
import { metricsEndpoint, type MetricsAccess } from './metricsEndpoint';
import type { RequestObserver } from './routeClass';
import type { FileTraffic } from '../files/fileStreams';
import { usageRouter } from './routes/usage';
import { adminModelLimitsRoutes } from './routes/adminModelLimits';
import { adminEgressRoutes, ownEgressRouter } from './routes/egress';
import { adminUsageRoutes } from './routes/adminUsage';
import { adminModelRoutes, ownModelsRouter } from './routes/models';
import type { ModelCatalog } from '../llm/modelCatalog';
import type { ModelLimiter } from '../llm/modelLimits';
import type { WorkspaceAddresses } from '../domain/workspaceAddresses';
import type { WorkspaceGatekeeper } from '../domain/workspaceGatekeeper';
import type { WorkspaceSessionService } from '../domain/workspaceSessions';
import type { RouterMode } from '../runtime/runtimeSettings';
import { forwardAuthHandler, FORWARD_AUTH_PATH } from './workspace/forwardAuth';
import { workspaceOpenHandler, WORKSPACE_OPEN_PATH } from './workspace/workspaceOpen';
import { createWorkspaceRouter } from './workspace/workspaceRouter';
import type { RuntimeRouteCache } from './workspace/runtimeRoutes';
import type { MailNotifications } from '../mail/mailNotifications';

export interface HttpConfig {
  publicUrl: string;
  publicOrigin: string;
  router: RouterMode;
  secureCookies: boolean;
  trustProxy: TrustProxySetting;
  jsonBodyLimitBytes: number;
  llmBodyLimitBytes: number;
  /** Directory of the built web UI; served when it exists. */
  webRoot: string | null;
}

export interface HttpServices {
  logger: Logger;
  backups: BackupService;
  backupScheduler: BackupScheduler;
  workspaceRestore: WorkspaceRestore;
  rollout: ImageRollout;
  clock: Clock;
  readiness: ReadinessService;
  sessions: SessionService;
  tokens: ApiTokenService;
  auth: AuthService;
  setup: SetupService;
  invitations: InvitationService;
  users: UserAdminService;
  audit: AuditLog;
  runtimes: RuntimeManager;
  runtimeHub: RuntimeEventHub;
  streams: EventStreams;
  connections: LiveConnections;
  settings: PlatformSettingsService;
  workspaceSessions: WorkspaceSessionService;
  gatekeeper: WorkspaceGatekeeper;
  addresses: WorkspaceAddresses;
  routes: RuntimeRouteCache;
  files: WorkspaceFiles;
  spool: SpoolSpace;
  gateway: ModelGateway;
  limiter: ModelLimiter;
  catalog: ModelCatalog;
  egressRules: EgressRulesService;
  egressRecord: EgressRecord;
  moves: RuntimeMoves;
  mail: MailNotifications;
  metrics: HttpMetrics | null;
  /** Single sign-on through an OpenID provider; null when none is configured. */
  oidc: OidcSignIn | null;
  /** WebDAV clients' dead properties. */
  davProperties: DavPropertyRepository;
}

/** What of the metrics the HTTP side records and serves (metrics off: none of it). */
export interface HttpMetrics {
  observe: RequestObserver;
  fileTraffic: FileTraffic;
  /** `/metrics` on the main port; null when it is served only on its own port (the main port answers 404). */
  endpoint: MetricsAccess | null;
}

export type WorkspaceUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

export interface HttpApp {
  /** The HTTP server's request listener: the front door, with Express behind it. */
  handler: RequestListener;
  express: Express;
  upgrade: WorkspaceUpgrade;
  closeWorkspaceSockets(): void;
}

export function createApp(config: HttpConfig, services: HttpServices): HttpApp {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', config.trustProxy);
  app.set('query parser', 'simple');

  const cookies = { secure: config.secureCookies, maxAgeMs: services.sessions.maxAgeMs, host: new URL(config.publicOrigin).hostname };
  const runtimeDeps = { manager: services.runtimes, hub: services.runtimeHub, streams: services.streams };

  // Workspace hosts (or /w/<user>/ paths) are answered in front of Express (frontDoor.ts); only
  // their reserved endpoints (status, start, events), already decided, come in here.
  const workspaces = createWorkspaceRouter({
    ...runtimeDeps,
    gatekeeper: services.gatekeeper,
    addresses: services.addresses,
    routes: services.routes,
    connections: services.connections,
    mode: config.router,
    platformOrigin: config.publicOrigin,
    logger: services.logger.child({ component: 'workspace-router' }),
  });
  app.use(requestContext(services.logger));
  app.use(workspaces.reserved);
  app.use(healthRouter(services.readiness));
  app.all(FORWARD_AUTH_PATH, forwardAuthHandler({ gatekeeper: services.gatekeeper, manager: services.runtimes, logger: services.logger }));
  app.get(
    WORKSPACE_OPEN_PATH,
    workspaceOpenHandler({ cookies, sessions: services.sessions, workspaceSessions: services.workspaceSessions, addresses: services.addresses, audit: services.audit }),
  );

  // WebDAV clients authenticate with Basic and an app password only (never a cookie): before the API's session handling.
  app.use(DAV_PREFIX, davRouter({ files: services.files, tokens: services.tokens, properties: services.davProperties, audit: services.audit, clock: services.clock, publicOrigin: config.publicOrigin, traffic: services.metrics?.fileTraffic ?? null }));

  const api = express.Router();
  api.use(securityHeaders);
  api.use(loadApiToken(services.tokens));
  api.use(requirePlatformOrigin(config.publicOrigin, cookies));
  api.use(loadSession(services.sessions, cookies));
  api.use(requireTokenScope);
  // File routes take multipart and raw bodies and parse their own JSON: mounted before the JSON-only guard.
  const fileDeps = { files: services.files, audit: services.audit, spoolDir: services.files.settings.spoolDir, spool: services.spool, traffic: services.metrics?.fileTraffic ?? null };
  api.use('/files', ownFilesRouter(fileDeps));
  api.use('/admin/users/:id/files', requireAuth({ adminOnly: true }), adminFilesRouter(fileDeps));
  api.use(requireJsonBody);
  api.use(express.json({ limit: config.jsonBodyLimitBytes, strict: true }));
  api.use('/setup', setupRouter(services.setup, cookies));
  if (services.oidc) api.use('/auth/oidc', oidcRouter(services.oidc, cookies));
  api.use('/auth', authRouter(services.auth, cookies, services.clock, services.oidc?.methods() ?? { password: true, oidc: null }));
  api.use('/account/tokens', apiTokensRouter(services.tokens, services.clock));
  api.use('/account', accountRouter(services.auth));
  api.use('/invitations', invitationsRouter(services.invitations, cookies));
  api.use('/runtime', ownRuntimeRouter(runtimeDeps));
  api.use('/usage', usageRouter(services.gateway));
  const egressDeps = { rules: services.egressRules, record: services.egressRecord, users: services.users, clock: services.clock };
  api.use('/egress', ownEgressRouter(egressDeps));
  api.use('/models', ownModelsRouter(services.catalog));
  api.use(
    '/admin',
    requireAuth({ adminOnly: true }),
    adminRuntimeRoutes(runtimeDeps),
    adminNodesRoutes(services.moves),
    adminRolloutRoutes(services.rollout),
    adminSettingsRoutes(services.settings),
    adminBackupRoutes({ backups: services.backups, scheduler: services.backupScheduler, restore: services.workspaceRestore, users: services.users, audit: services.audit, logger: services.logger }),
    adminModelLimitsRoutes({ limiter: services.limiter, users: services.users, audit: services.audit }),
    adminEgressRoutes(egressDeps),
    adminUsageRoutes(services.gateway, () => services.clock.now()),
    adminModelRoutes(services.catalog, services.gateway, services.runtimes),
  );
  api.use(
    '/admin',
    adminRouter({
      users: services.users,
      backups: services.backups,
      invitations: services.invitations,
      audit: services.audit,
      clock: services.clock,
      invitationLink: (secret) => `${config.publicUrl}/invite/${secret}`,
      mail: services.mail,
    }),
  );
  app.use('/api/v1', api);

  if (config.webRoot && fs.existsSync(path.join(config.webRoot, 'index.html'))) {
    const webRoot = config.webRoot;
    // Vite names every asset by its content hash: those never change and may be cached for good.
    app.use(
      '/assets',
      precompressedAssets(path.join(webRoot, 'assets')),
      express.static(path.join(webRoot, 'assets'), { index: false, immutable: true, maxAge: '365d' }),
      // An asset of an older build is a 404, never the page (a browser would run HTML as a script).
      notFoundHandler,
    );
    app.use(express.static(webRoot, { index: false, maxAge: '1h' }));
    // Client-side routes (/setup, /invite/…, /login) all load the single-page app.
    app.get(/^\/(?!api\/|_clawloops\/|healthz$|readyz$).*/, (_req, res) => {
      res.setHeader('Cache-Control', 'no-cache');
      res.setHeader('Content-Security-Policy', "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'");
      res.setHeader('X-Content-Type-Options', 'nosniff');
      res.setHeader('Referrer-Policy', 'same-origin');
      res.sendFile(path.join(webRoot, 'index.html'));
    });
  }

  app.use(notFoundHandler);
  app.use(errorHandler);
  // Runtimes call the model gateway with their own key: no cookies, no origin check.
  const gateway = gatewayHandler({ gateway: services.gateway, clock: services.clock, logger: services.logger.child({ component: 'model-gateway' }), bodyLimitBytes: config.llmBodyLimitBytes });
  const handler = frontDoor({
    workspaces,
    gateway,
    platform: app,
    metrics: metricsEndpoint(services.metrics?.endpoint ?? null),
    logger: services.logger,
    observe: services.metrics?.observe ?? null,
  });
  return { handler, express: app, upgrade: workspaces.upgrade, closeWorkspaceSockets: workspaces.closeAll };
}
