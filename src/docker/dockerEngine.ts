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

export class DockerodeEngine implements DockerEngine {
  readonly client: Docker;

  constructor(socketPath: string) {
    this.client = new Docker({ socketPath });
  }

  async ping(timeoutMs: number): Promise<EngineVersion> {
    const version = await withTimeout(this.client.version(), timeoutMs, `Docker engine did not answer within ${timeoutMs} ms`);
    return { version: version.Version, apiVersion: version.ApiVersion };
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
