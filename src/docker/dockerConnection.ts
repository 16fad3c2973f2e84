import { DockerodeEngine } from './dockerEngine';
import { DockerodeRuntimeBackend } from './dockerodeRuntimeBackend';
import type { SubnetPool } from './subnetPool';

export interface DockerConnection {
  /** Answers the readiness check (the engine's version). */
  engine: DockerodeEngine;
  /** The low-level engine adapter the Docker provisioner and the file side build on. */
  backend: DockerodeRuntimeBackend;
}

/**
 * One dockerode client on the engine's socket, shared by everything Docker: the composition
 * root constructs the Docker implementations through this and never touches dockerode itself.
 */
export function connectDocker(socketPath: string, instance: string, subnetPool: SubnetPool): DockerConnection {
  const engine = new DockerodeEngine(socketPath);
  return { engine, backend: new DockerodeRuntimeBackend(engine.client, instance, subnetPool) };
}
