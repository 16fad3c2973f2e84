import http, { type Server } from 'node:http';
import type { AppConfig } from './config';
import type { Logger } from './lib/logger';
import { buildPlatform, type Platform, type PlatformOverrides } from './platform';
import { isInfraError } from './lib/infraErrors';

/** Another installation owns this one's instance name on the engine (see domain/installation.ts). */
export class InstallationConflictError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InstallationConflictError';
  }
}

export interface RunningServer {
  platform: Platform;
  server: Server;
  /** Resolves once in-flight requests finished (or the timeout cut them) and the database closed. */
  shutdown(reason: string): Promise<void>;
}

const SESSION_SWEEP_INTERVAL_MS = 60 * 60_000;
/** How long start-up waits for the engine to answer the installation's claim (a hung engine must not keep the platform from serving). */
const CLAIM_WAIT_MS = 5_000;
/** How soon a session ended outside this process (the admin CLI) or expired closes what it had open. */
const OPEN_CONNECTIONS_SWEEP_MS = 30_000;
/** The longest shutdown waits for queued mails (a failed backup's, say) to go out. */
const MAIL_DRAIN_MS = 5_000;

function listen(server: Server, port: number, host: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

/** Builds the platform, prepares first-run setup, and listens. */
export async function startServer(config: AppConfig, logger: Logger, overrides: PlatformOverrides = {}): Promise<RunningServer> {
  const platform = buildPlatform(config, logger, overrides);
  // Before anything is listened on or swept: an installation that would take another one's
  // runtimes for its own orphans does not start at all. An engine that does not answer yet is
  // no reason to wait: the watcher claims first thing once it does (and stops if it cannot).
  let claimTimer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      platform.runtimes.claimInstallation(),
      new Promise<never>((_, reject) => {
        claimTimer = setTimeout(() => reject(new Error(`no answer within ${CLAIM_WAIT_MS / 1000} s`)), CLAIM_WAIT_MS);
      }),
    ]);
  } catch (err) {
    if (isInfraError(err, 'conflict')) {
      platform.close();
      throw new InstallationConflictError(err.message);
    }
    logger.warn({ err: (err as Error).message }, 'the container engine does not answer yet; this installation claims its instance name once it does');
  } finally {
    clearTimeout(claimTimer);
  }
  logger.info({ instance: platform.installation.instance }, 'installation');

  const initialAdmin = await platform.setup.ensureInitialAdmin(config.initialAdmin);
  if (initialAdmin === 'created') logger.info({ username: config.initialAdmin?.username }, 'initial administrator created from environment');
  const setupToken = platform.setup.issueToken();
  if (setupToken) {
    // The one place a secret is logged on purpose: the operator needs it to claim the instance.
    logger.warn(
      { setupUrl: `${config.publicUrl}/setup?token=${setupToken}` },
      'No administrator exists yet. Open the setup URL to create one; it works once and only for this run.',
    );
  }

  // First: a port clash fails the start before anything announced it was listening.
  try {
    await platform.egress.listen(config.egress.port, config.host);
  } catch (err) {
    platform.close();
    throw new Error(`the egress proxy cannot listen on port ${config.egress.port} (CLAWLOOPS_EGRESS_PORT): ${(err as Error).message}`);
  }
  logger.info({ port: config.egress.port, profile: config.egress.rules.profile }, 'egress proxy for runtimes listening');
  let metricsServer: Server | null = null;
  if (platform.metricsListener && config.metrics?.port) {
    const { port, host, token } = config.metrics;
    try {
      metricsServer = await listen(http.createServer(platform.metricsListener), port, host);
    } catch (err) {
      void platform.egress.close();
      platform.close();
      throw new Error(`the metrics listener cannot listen on ${host}:${port} (CLAWLOOPS_METRICS_PORT): ${(err as Error).message}`);
    }
    logger.info({ address: metricsServer.address(), tokenRequired: token !== null }, 'Prometheus metrics listening on their own port');
  }
  if (config.metrics?.token) logger.info('Prometheus metrics at /metrics on the main port, for the bearer token CLAWLOOPS_METRICS_TOKEN');
  const sweep = setInterval(() => {
    platform.sessions.purgeExpired();
    platform.workspaceSessions.purgeExpired();
    platform.tokens.sweepExpired();
  }, SESSION_SWEEP_INTERVAL_MS);
  sweep.unref();
  const connectionSweep = setInterval(() => platform.sweepOpenConnections(), OPEN_CONNECTIONS_SWEEP_MS);
  connectionSweep.unref();

  const server = http.createServer(platform.app).listen(config.port, config.host);
  server.on('upgrade', platform.upgrade);
  if (config.runtime.addressing.mode === 'path') {
    logger.warn(
      'Workspaces use path routing (/w/<username>/): they share the platform\'s origin, so pages in a workspace can act on the platform as their owner. Prefer host routing when a wildcard DNS name is available.',
    );
  }
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const address = server.address();
  logger.info({ address, publicUrl: config.publicUrl }, 'ClawLoops control plane listening');

  // Not awaited: an unreachable engine must not keep the platform (sign-in, admin) from serving;
  // the watcher keeps retrying and reconciles once the engine answers.
  void platform.watcher.start().then((report) => {
    if (report) logger.info(report, 'runtime state reconciled with the Docker engine');
  });
  // The admin's runtime list answers from these figures, kept current from now on.
  platform.runtimes.figures.start();
  platform.backupScheduler.start();
  // Volume access is disposable (Docker: file helper containers): what a previous run left holds nothing worth keeping.
  void platform.volumes.closeAll().catch((err: unknown) => logger.warn({ err: (err as Error).message }, 'could not sweep old file helper containers'));
  void platform.swarmNodeStats?.sweep().catch((err: unknown) => logger.warn({ err: (err as Error).message }, 'could not sweep an old node-stats service'));

  let closing: Promise<void> | null = null;
  const shutdown = (reason: string): Promise<void> => {
    closing ??= new Promise<void>((resolve) => {
      logger.info({ reason }, 'shutting down: no new connections, finishing in-flight requests');
      clearInterval(sweep);
      clearInterval(connectionSweep);
      platform.backupScheduler.stop();
      void platform.egress.close();
      metricsServer?.close();
      metricsServer?.closeAllConnections();
      const force = setTimeout(() => {
        logger.warn('shutdown timeout reached; closing remaining connections');
        server.closeAllConnections();
      }, config.shutdownTimeoutMs);
      force.unref();
      server.close(() => {
        clearTimeout(force);
        // A runtime operation half-way through (a container created but not yet recorded) must
        // finish its database writes before the database closes.
        void Promise.all([
          platform.runtimes.drain(config.shutdownTimeoutMs),
          platform.volumes.closeAll().catch(() => 0),
          platform.swarmNodeStats?.close().catch(() => undefined),
          // Briefly: a mail server that does not answer must not hold the shutdown up.
          platform.mail.drain(Math.min(MAIL_DRAIN_MS, config.shutdownTimeoutMs)),
        ]).then(() => {
          platform.close();
          logger.info('shutdown complete');
          resolve();
        });
      });
      platform.streams.endAll('The server is shutting down.');
      platform.closeWorkspaceSockets();
      // Keep-alive sockets with no request in flight would otherwise hold close() open.
      server.closeIdleConnections();
    });
    return closing;
  };

  return { platform, server, shutdown };
}
