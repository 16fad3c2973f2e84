/**
 * The container engine as readiness sees it: does it answer, and which version. The Docker
 * implementation is docker/dockerEngine.ts; a Swarm manager answers the same way.
 */
export interface EngineProbe {
  /** Resolves with the engine's version when it answers within `timeoutMs`; rejects otherwise. */
  ping(timeoutMs: number): Promise<{ version: string; apiVersion: string }>;
}

export interface ComponentCheck {
  ok: boolean;
  message: string;
}

export interface ReadinessReport {
  ready: boolean;
  checks: { database: ComponentCheck; docker: ComponentCheck };
}

/** Proves the database accepts a write right now. */
export interface DatabaseProbe {
  probeWrite(): void;
}

export class ReadinessService {
  constructor(
    private readonly database: DatabaseProbe,
    private readonly docker: EngineProbe,
    private readonly dockerTimeoutMs = 2000,
  ) {}

  async check(): Promise<ReadinessReport> {
    const database = this.checkDatabase();
    const docker = await this.checkDocker();
    return { ready: database.ok && docker.ok, checks: { database, docker } };
  }

  private checkDatabase(): ComponentCheck {
    try {
      this.database.probeWrite();
      return { ok: true, message: 'writable' };
    } catch (err) {
      return { ok: false, message: `not writable: ${errorMessage(err)}` };
    }
  }

  private async checkDocker(): Promise<ComponentCheck> {
    try {
      const v = await this.docker.ping(this.dockerTimeoutMs);
      return { ok: true, message: `reachable (engine ${v.version}, API ${v.apiVersion})` };
    } catch (err) {
      return { ok: false, message: `unreachable: ${errorMessage(err)}` };
    }
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
