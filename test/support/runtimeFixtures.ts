import { DEFAULT_RUNTIME_COMMAND, DEFAULT_RUNTIME_IMAGE, type RuntimeSettings } from '../../src/runtime/runtimeSettings';

/** Runtime settings as production defaults them (host mode, built-in router), for tests that render runtimes without a platform. */
export function runtimeSettingsFixture(overrides: Partial<RuntimeSettings> = {}): RuntimeSettings {
  return {
    image: DEFAULT_RUNTIME_IMAGE,
    command: DEFAULT_RUNTIME_COMMAND,
    workingDir: '/app',
    memoryBytes: 2 * 1024 ** 3,
    nanoCpus: 2e9,
    pidsLimit: 512,
    readyTimeoutMs: 180_000,
    stopTimeoutSeconds: 10,
    maxParallelOperations: 4,
    idleStopMs: 0,
    addressing: { mode: 'host', domain: 'claw.example.com', platformOrigin: 'https://claw.example.com' },
    router: 'builtin',
    traefik: { entrypoint: 'web', certResolver: null, middleware: 'clawloops-auth@docker', platformService: 'clawloops@docker' },
    modelGatewayUrl: 'http://clawloops:8080/llm/v1',
    models: ['gpt-4o'],
    modelDetails: {},
    controlPlaneContainer: null,
    egressProxyUrl: 'http://clawloops:3128',
    crashLoop: { maxExits: 3, windowMs: 300_000 },
    ...overrides,
  };
}
