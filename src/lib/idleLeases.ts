/**
 * Something made on first use for a key (a runtime), shared by everyone who leases it, and
 * removed a while after its last lease ends: the file helper containers of a Docker engine and
 * the file agents of a swarm. Removing it (idle, or on request) first aborts every lease's
 * signal, so the streams through it stop instead of holding up the removal.
 */

export interface Lease<T> {
  value: T;
  /** Aborted, with the `revoked` reason, when what it leases is about to be removed. */
  signal: AbortSignal;
  release(): void;
}

interface Entry<T> {
  ready: Promise<T>;
  leases: Set<AbortController>;
  idleTimer: NodeJS.Timeout | null;
  removing: Promise<void> | null;
}

export interface IdleLeasesOptions<T> {
  /** Removes what `start` (see acquire) made. */
  stop: (key: string, value: T) => Promise<void>;
  idleMs: number;
  /** Why the leases of something being removed end. */
  revoked: () => Error;
}

export class IdleLeases<T> {
  private readonly entries = new Map<string, Entry<T>>();

  constructor(private readonly options: IdleLeasesOptions<T>) {}

  keys(): string[] {
    return [...this.entries.keys()];
  }

  /**
   * A lease on the key's value, made by `start` when there is none; a failed start is not kept
   * (the next lease tries again) and must leave nothing behind.
   */
  async acquire(key: string, start: () => Promise<T>): Promise<Lease<T>> {
    let entry = this.entries.get(key);
    if (entry?.removing) await entry.removing;
    entry = this.entries.get(key);
    if (!entry) {
      const created: Entry<T> = { ready: start(), leases: new Set(), idleTimer: null, removing: null };
      created.ready.catch(() => {
        if (this.entries.get(key) === created) this.entries.delete(key);
      });
      this.entries.set(key, created);
      entry = created;
    }
    const current = entry;
    const lease = new AbortController();
    current.leases.add(lease);
    if (current.idleTimer) clearTimeout(current.idleTimer);
    current.idleTimer = null;
    let value: T;
    try {
      value = await current.ready;
    } catch (err) {
      current.leases.delete(lease);
      throw err;
    }
    let released = false;
    return {
      value,
      signal: lease.signal,
      release: () => {
        if (released) return;
        released = true;
        current.leases.delete(lease);
        if (current.leases.size === 0 && !current.removing && this.entries.get(key) === current) {
          current.idleTimer = setTimeout(() => void this.remove(key), this.options.idleMs);
          current.idleTimer.unref();
        }
      },
    };
  }

  /**
   * Ends every lease on the key's value and removes it; resolves once removed. False when this
   * process holds nothing for the key (what an earlier process left is the caller's to find).
   */
  async remove(key: string): Promise<boolean> {
    const entry = this.entries.get(key);
    if (!entry) return false;
    if (entry.removing) {
      await entry.removing;
      return true;
    }
    if (entry.idleTimer) clearTimeout(entry.idleTimer);
    this.revoke(entry);
    entry.removing = (async () => {
      try {
        const value = await entry.ready.catch(() => null);
        if (value !== null) await this.options.stop(key, value);
      } finally {
        if (this.entries.get(key) === entry) this.entries.delete(key);
      }
    })();
    await entry.removing;
    return true;
  }

  /** Ends every lease and forgets everything (start-up and shutdown: the caller removes by its own means). */
  forgetAll(): void {
    for (const entry of this.entries.values()) {
      if (entry.idleTimer) clearTimeout(entry.idleTimer);
      this.revoke(entry);
    }
    this.entries.clear();
  }

  private revoke(entry: Entry<T>): void {
    const reason = this.options.revoked();
    for (const lease of entry.leases) lease.abort(reason);
  }
}
