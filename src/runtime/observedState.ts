import type { DesiredState } from '../db/repositories/runtimeRepository';
import type { ContainerSnapshot } from '../docker/runtimeBackend';
import type { Operation } from './operations';

export const OOM_KILLED = 'OOM_KILLED';

export type ObservedState = 'absent' | 'creating' | 'starting' | 'running' | 'unhealthy' | 'stopping' | 'stopped' | 'failed';

export interface ObservedInput {
  snapshot: ContainerSnapshot | null;
  /** The control plane's own probe saw /readyz answer 200 since the container last started. */
  readyConfirmed: boolean;
  operation: Operation | null;
  desiredState: DesiredState;
  lastErrorCode: string | null;
  lastErrorMessage?: string | null;
}

export interface Observed {
  state: ObservedState;
  /** Why it is in that state, in words, when that is not obvious ("out of memory (limit 2 GiB)"). */
  reason: string | null;
}

export function formatBytes(bytes: number): string {
  const gib = bytes / 1024 ** 3;
  if (gib >= 1 && Number.isInteger(Math.round(gib * 10) / 10)) return `${Math.round(gib * 10) / 10} GiB`;
  if (gib >= 1) return `${gib.toFixed(1)} GiB`;
  return `${Math.round(bytes / 1024 ** 2)} MiB`;
}

/** Docker's view plus the operation in flight, in the words the product uses. */
export function observe(input: ObservedInput): Observed {
  const op = input.operation && !input.operation.finished ? input.operation.snapshot : null;
  if (op) {
    if (op.kind === 'stop' || op.kind === 'delete' || op.kind === 'purge') return { state: 'stopping', reason: null };
    if (op.step === 'queued' || op.step === 'pulling' || op.step === 'preparing' || op.step === 'creating' || op.step === 'configuring') {
      return { state: input.snapshot?.status === 'running' ? 'starting' : 'creating', reason: op.message };
    }
    if (op.step === 'stopping' || op.step === 'removing') return { state: 'stopping', reason: null };
    return { state: 'starting', reason: op.message };
  }
  const s = input.snapshot;
  if (!s) return { state: 'absent', reason: null };
  // Stopped by the watcher after an OOM kill: Docker's own flag is gone once it was restarted and stopped.
  if (input.lastErrorCode === OOM_KILLED && s.status !== 'running') return { state: 'stopped', reason: input.lastErrorMessage ?? 'out of memory' };
  switch (s.status) {
    case 'running':
      if (s.health === 'unhealthy') return { state: 'unhealthy', reason: 'the runtime stopped answering its health check' };
      if (input.readyConfirmed || s.health === 'healthy') return { state: 'running', reason: null };
      return { state: 'starting', reason: null };
    case 'restarting':
      return { state: 'starting', reason: `restarting after it exited with code ${s.exitCode ?? 'unknown'}` };
    case 'removing':
      return { state: 'stopping', reason: null };
    case 'paused':
      return { state: 'stopped', reason: 'paused outside ClawLoops' };
    case 'created':
      return input.lastErrorCode ? { state: 'failed', reason: null } : { state: 'stopped', reason: null };
    case 'exited':
    case 'dead':
      if (s.oomKilled) return { state: 'stopped', reason: `out of memory (limit ${formatBytes(s.memoryLimitBytes)})` };
      if (input.lastErrorCode) return { state: 'failed', reason: null };
      return { state: 'stopped', reason: input.desiredState === 'running' ? `exited with code ${s.exitCode ?? 'unknown'}` : null };
  }
}
