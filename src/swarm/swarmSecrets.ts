import type { Logger } from '../lib/logger';
import type { SwarmEngine } from './swarmEngine';

const ATTEMPTS = 60;
const PAUSE_MS = 500;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Removes a swarm secret once nothing uses it: the engine refuses while a task of a removed
 * service still holds it, and those tasks end within seconds. Gives up after 30 s with a warning
 * naming `what` the secret was; the next start-up sweep removes it then.
 */
export async function removeSecretWhenFree(engine: Pick<SwarmEngine, 'removeSecret'>, secretId: string, logger: Logger, what: string): Promise<void> {
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    try {
      await engine.removeSecret(secretId);
      return;
    } catch {
      await sleep(PAUSE_MS);
    }
  }
  logger.warn({ secretId: secretId.slice(0, 12) }, `${what} (a swarm secret) could not be removed; the next start-up sweep removes it`);
}
