import { AppError } from '../lib/errors';
import { isInfraError } from '../lib/infraErrors';
import type { Logger } from '../lib/logger';
import type { AgentRequest, AgentResponse } from './agent/protocol';
import { conflictError, filesUnavailable, runtimeChanged, STATUS_OF, volumeFault } from './fileErrors';
import type { AgentRun, VolumeAccess } from './workspaceVolumes';

const AGENT_LIMITS = { maxOutputBytes: 64 * 1024 ** 2, timeoutMs: 5 * 60_000 };
const CLEANUP_WAIT_MS = 2_000;

/** Sends requests to the file agent (files/agent/) through a volume access and reads its answers. */
export class FileAgentClient {
  constructor(private readonly logger: Logger) {}

  /** Runs one request; the agent's refusals become AppErrors with the right status. */
  async run<T>(access: VolumeAccess, request: AgentRequest): Promise<T> {
    let result: AgentRun;
    try {
      result = await access.runAgent(JSON.stringify(request), AGENT_LIMITS);
    } catch (err) {
      if (isInfraError(err, 'gone')) throw runtimeChanged();
      if (isInfraError(err)) throw volumeFault(err);
      throw filesUnavailable(`The container engine did not run the file operation: ${(err as Error).message}`);
    }
    let response: AgentResponse;
    try {
      response = JSON.parse(result.stdout) as AgentResponse;
    } catch {
      this.logger.error({ op: request.op, exitCode: result.exitCode, stderr: result.stderr.slice(-2000) }, 'file agent failed inside the container');
      const why = result.exitCode === 137 ? ' (it ran out of memory)' : '';
      throw new AppError(500, 'FILES_AGENT_FAILED', `The file operation failed inside the runtime${why}. The error was logged.`);
    }
    if (response.ok) return response.result as T;
    if (response.code === 'CONFLICT' && response.conflicts) throw conflictError(response.conflicts);
    const details = response.etag ? { etag: response.etag } : {};
    const headers: Record<string, string> = response.etag ? { ETag: response.etag } : {};
    throw new AppError(STATUS_OF[response.code] ?? 500, response.code, response.message, headers, details);
  }

  /** Removes a staging folder; a failure is logged (the next staging of the volume clears it a day later). */
  async discard(access: VolumeAccess, staging: string): Promise<void> {
    try {
      await this.run(access, { op: 'discard', staging });
    } catch (err) {
      this.logger.warn({ staging, err: (err as Error).message }, 'could not remove a staging folder; it goes with the next one');
    }
  }

  /**
   * Removes a refused write's staging folder, then releases the access. Waits for that at most
   * CLEANUP_WAIT_MS: the engine may be busy with another write into the same volume (Docker
   * serialises them per container), and a refusal must reach the client without waiting for it.
   */
  async cleanUp(access: VolumeAccess, staging: string): Promise<void> {
    const removed = this.discard(access, staging).finally(() => access.release());
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([removed, new Promise<void>((resolve) => (timer = setTimeout(resolve, CLEANUP_WAIT_MS)))]);
    clearTimeout(timer);
  }
}
