import type { DesiredState } from '../db/repositories/runtimeRepository';
import type { Operation } from './operations';
import { isUp, type RuntimeInstance } from './provisioner';

export const OOM_KILLED = 'OOM_KILLED';

export const OBSERVED_STATES = ['absent', 'creating', 'starting', 'running', 'unhealthy', 'stopping', 'stopped', 'failed'] as const;
export type ObservedState = (typeof OBSERVED_STATES)[number];

export interface ObservedInput {
  instance: RuntimeInstance | null;
  /** The control plane's own probe saw /readyz answer 200 since the instance last started. */
  readyConfirmed: boolean;
  operation: Operation | null;
  desiredState: DesiredState;
  lastErrorCode: string | null;
  lastErrorMessage?: string | null;
  /** The platform froze it for a moment (a backup reading its volume): it is still running. */
  frozen?: boolean;
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

/** The provisioner's view plus the operation in flight, in the words the product uses. */
export function observe(input: ObservedInput): Observed {
  const op = input.operation && !input.operation.finished ? input.operation.snapshot : null;
  const up = input.instance !== null && isUp(input.instance.phase);
  if (op) {
    if (op.kind === 'stop' || op.kind === 'delete' || op.kind === 'purge') return { state: 'stopping', reason: null };
    // Its files are being replaced: down, and saying why it cannot be started meanwhile.
    if (op.kind === 'restore' || op.kind === 'move') return { state: up ? 'stopping' : 'stopped', reason: op.message };
    if (op.step === 'queued' || op.step === 'pulling' || op.step === 'preparing' || op.step === 'creating' || op.step === 'configuring') {
      return { state: up ? 'starting' : 'creating', reason: op.message };
    }
    if (op.step === 'stopping' || op.step === 'removing') return { state: 'stopping', reason: null };
    return { state: 'starting', reason: op.message };
  }
  const s = input.instance;
  if (!s) return { state: 'absent', reason: null };
  // Stopped by the watcher after an OOM kill: the provisioner's own verdict is gone once it was restarted and stopped.
  if (input.lastErrorCode === OOM_KILLED && !up) return { state: 'stopped', reason: input.lastErrorMessage ?? 'out of memory' };
  switch (s.phase) {
    case 'unhealthy':
      return { state: 'unhealthy', reason: 'the runtime stopped answering its health check' };
    case 'healthy':
      return { state: 'running', reason: null };
    case 'running':
    case 'starting':
      // The provisioner's reason while it is not ready yet: why a swarm cannot place it, say.
      return input.readyConfirmed ? { state: 'running', reason: null } : { state: 'starting', reason: s.reason };
    case 'restarting':
      return { state: 'starting', reason: s.reason ?? `restarting after it exited with code ${s.exitCode ?? 'unknown'}` };
    case 'removing':
      return { state: 'stopping', reason: null };
    case 'paused':
      if (input.frozen) return { state: 'running', reason: 'paused for a moment while its files are backed up' };
      return { state: 'stopped', reason: 'paused outside ClawLoops' };
    case 'created':
      return input.lastErrorCode ? { state: 'failed', reason: null } : { state: 'stopped', reason: null };
    case 'oom':
      return { state: 'stopped', reason: `out of memory (limit ${formatBytes(s.memoryLimitBytes)})` };
    case 'exited':
    case 'crashed':
      if (input.lastErrorCode) return { state: 'failed', reason: null };
      if (input.desiredState !== 'running') return { state: 'stopped', reason: null };
      // A crash that the provisioner explains (its node is gone, say) says so rather than an exit code.
      return { state: 'stopped', reason: s.phase === 'crashed' && s.reason ? s.reason : `exited with code ${s.exitCode ?? 'unknown'}` };
  }
}
