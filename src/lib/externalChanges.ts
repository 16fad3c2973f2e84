/**
 * Tells in-memory caches that the database was changed by another process (the admin CLI works on
 * the database file directly, with the server running). `check()` is on the request path of every
 * cached decision, so it must be cheap: at most once per event-loop turn, one read of a version number the database keeps (SQLite's
 * `PRAGMA data_version`, which changes only when ANOTHER connection commits). When it moved, every
 * listener drops what it holds before the caller looks anything up.
 */
export class ExternalChanges {
  private readonly listeners: (() => void)[] = [];
  private last: number;
  private checkedThisTurn = false;
  private readonly nextTurn = (): void => {
    this.checkedThisTurn = false;
  };

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
    // Once per event-loop turn: the requests one turn handles share the reading (under load a
    // read per request cost more than the lookups it guards). A write another process commits
    // during a turn is seen by the next one, as if it had been committed a moment later.
    if (this.checkedThisTurn) return;
    this.checkedThisTurn = true;
    setImmediate(this.nextTurn).unref();
    const version = this.readVersion();
    if (version === this.last) return;
    this.last = version;
    for (const listener of [...this.listeners]) listener();
  }
}

/** For caches that need no cross-process signal (tests, tools). */
export const noExternalChanges = (): ExternalChanges => new ExternalChanges(() => 0);
