import type { RuntimeView } from '../../web/src/api/types';

/** A runtime as the API shows it, in the given state; fields a test cares about are overridden. */
export function runtimeView(state: RuntimeView['state'], overrides: Partial<RuntimeView> = {}): RuntimeView {
  return {
    id: 'r1',
    userId: 'u1',
    username: 'alice',
    state,
    stateReason: null,
    desiredState: 'running',
    image: 'img:1',
    configuredImage: 'img:1',
    pinnedImage: null,
    outdatedImage: false,
    configStale: false,
    createdAt: null,
    startedAt: null,
    workspaceUrl: 'http://alice.localhost',
    limits: { memoryBytes: 2 ** 31, cpus: 2, pidsLimit: 512 },
    lastError: null,
    stoppedBy: null,
    operation: null,
    ...overrides,
  };
}
