/**
 * Tells in-memory caches that the database was changed by another process (the admin CLI works on
 * the database file directly, with the server running). `check()` is on the request path of every
 * cached decision, so it must be cheap: one read of a version number the database keeps (SQLite's
 * `PRAGMA data_version`, which changes only when ANOTHER connection commits). When it moved, every
 * listener drops what it holds before the caller looks anything up.
 */
export class ExternalChanges {
  private readonly listeners: (() => void)[] = [];
  private last: number;

  constructor(private readonly readVersion: () => number) {
    this.last = readVersion();
  }

  onChange(listener: () => void): () => void {
    this.listeners.push(listener);
    return () => {
      const at = this.listeners.indexOf(listener);
      if (at !== -1) this.listeners.splice(at, 1);
    };
  }

  check(): void {
    const version = this.readVersion();
    if (version === this.last) return;
    this.last = version;
    for (const listener of [...this.listeners]) listener();
  }
}

/** For caches that need no cross-process signal (tests, tools). */
export const noExternalChanges = (): ExternalChanges => new ExternalChanges(() => 0);
