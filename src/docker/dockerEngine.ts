import Docker from 'dockerode';

export interface EngineVersion {
  version: string;
  apiVersion: string;
}

/**
 * The platform's view of the Docker engine. Later work (runtimes, files) extends this
 * interface; everything above it is tested against fakes of it, and the real engine in
 * integration tests.
 */
export interface DockerEngine {
  /** Resolves with the engine's version when it answers within `timeoutMs`; rejects otherwise. */
  ping(timeoutMs: number): Promise<EngineVersion>;
}

// dockerode accepts `{ abortSignal }` on version() (docker-modem forwards it), but its typings
// only declare the callback form.
type VersionWithOptions = (opts: { abortSignal: AbortSignal }) => Promise<Docker.DockerVersion>;

export class DockerodeEngine implements DockerEngine {
  readonly client: Docker;

  constructor(socketPath: string) {
    this.client = new Docker({ socketPath });
  }

  async ping(timeoutMs: number): Promise<EngineVersion> {
    // Aborting (not just racing) the request: a hung engine must not pile up open sockets
    // from every readiness probe.
    const signal = AbortSignal.timeout(timeoutMs);
    try {
      const version = await (this.client.version as unknown as VersionWithOptions).call(this.client, { abortSignal: signal });
      return { version: version.Version, apiVersion: version.ApiVersion };
    } catch (err) {
      if (signal.aborted) throw new Error(`Docker engine did not answer within ${timeoutMs} ms`);
      throw err;
    }
  }
}
