import { infraNotFound } from '../lib/infraErrors';
import type { VolumeAccess, VolumeUse, WorkspaceVolumes } from './workspaceVolumes';

/**
 * The workspace volumes as the file manager and backups reach them, with a way to take one
 * user's volume out of their reach for a while (a restore replaces its content): new accesses
 * are then refused with the reason, which the file API answers 503 FILES_UNAVAILABLE. Whoever
 * holds the volume works through the volumes underneath.
 */
export class VolumeGate implements WorkspaceVolumes {
  private readonly held = new Map<string, { reason: string; released: Promise<void> }>();

  /** The volumes underneath: what the holder works through. */
  constructor(readonly inner: WorkspaceVolumes) {}

  /** Refuses new accesses to the user's volume until the returned function is called. */
  hold(userId: string, reason: string): () => void {
    if (this.held.has(userId)) throw new Error(`the volume of ${userId} is held already`);
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    this.held.set(userId, { reason, released });
    return () => {
      this.held.delete(userId);
      release();
    };
  }

  /** Resolves once the user's volume is not held (at once when it is not). */
  async free(userId: string): Promise<void> {
    for (let hold = this.held.get(userId); hold; hold = this.held.get(userId)) await hold.released;
  }

  acquire(userId: string, use: VolumeUse): Promise<VolumeAccess> {
    const hold = this.held.get(userId);
    if (hold) return Promise.reject(infraNotFound(hold.reason));
    return this.inner.acquire(userId, use);
  }

  closeRuntime(runtimeId: string): Promise<void> {
    return this.inner.closeRuntime(runtimeId);
  }

  closeAll(): Promise<number> {
    return this.inner.closeAll();
  }

  closeOwn(): Promise<void> {
    return this.inner.closeOwn();
  }
}
