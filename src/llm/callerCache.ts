import type { ExternalChanges } from '../lib/externalChanges';

/** Who is calling: the runtime a key was made for, and its owner. */
export interface GatewayCaller {
  userId: string;
  username: string;
  runtimeId: string;
}

/** The runtime events that can change what a key stands for (RuntimeEventHub provides them). */
export interface RuntimeChanges {
  /** Every operation (start, stop, restart, re-create, remove) as it is launched: keys are rotated or revoked by them. */
  subscribeLaunched(listener: (operation: { userId: string; runtimeId: string }) => void): () => void;
  /** Anything that happens to one runtime (its container gone, a state the engine reported). */
  subscribe(runtimeId: string, listener: () => void): () => void;
}

interface Entry {
  caller: GatewayCaller;
  unsubscribe: () => void;
}

/** What ModelGateway needs of a cache of keys. */
export interface GatewayCache {
  get(keyHash: string): GatewayCaller | null;
  remember(keyHash: string, caller: GatewayCaller): void;
}

/**
 * Model keys already checked (by their hash), so a model call does not read the runtime's row
 * first. Only valid keys are kept, and one is dropped on the first sign of change: an operation
 * launched on its runtime (a re-created container gets a new key; a stop or removal ends it), any
 * event of that runtime, the owner disabled or signed out everywhere (`forgetUser`), or a write by
 * another process (the admin CLI).
 */
export class GatewayCallerCache implements GatewayCache {
  private readonly byKeyHash = new Map<string, Entry>();

  constructor(
    private readonly runtimes: RuntimeChanges,
    private readonly changes: ExternalChanges,
  ) {
    runtimes.subscribeLaunched((operation) => this.forgetRuntime(operation.runtimeId));
    changes.onChange(() => this.clear());
  }

  get(keyHash: string): GatewayCaller | null {
    this.changes.check();
    return this.byKeyHash.get(keyHash)?.caller ?? null;
  }

  remember(keyHash: string, caller: GatewayCaller): void {
    if (this.byKeyHash.has(keyHash)) return;
    const unsubscribe = this.runtimes.subscribe(caller.runtimeId, () => this.forgetRuntime(caller.runtimeId));
    this.byKeyHash.set(keyHash, { caller, unsubscribe });
  }

  forgetRuntime(runtimeId: string): void {
    for (const [key, entry] of this.byKeyHash) if (entry.caller.runtimeId === runtimeId) this.drop(key, entry);
  }

  forgetUser(userId: string): void {
    for (const [key, entry] of this.byKeyHash) if (entry.caller.userId === userId) this.drop(key, entry);
  }

  clear(): void {
    for (const [key, entry] of this.byKeyHash) this.drop(key, entry);
  }

  private drop(key: string, entry: Entry): void {
    this.byKeyHash.delete(key);
    entry.unsubscribe();
  }
}
