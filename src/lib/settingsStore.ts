/** Where a reader gets the current settings: a frozen snapshot, taken when it is needed. */
export interface SettingsSource<T> {
  get(): Readonly<T>;
}

/** What a change did: the values before and after, and the names that differ. */
export interface SettingsChange<T> {
  before: Readonly<T>;
  after: Readonly<T>;
  changed: (keyof T)[];
}

/**
 * A set of settings that can change while the process runs. Readers get the current values as
 * a frozen snapshot (never an object someone else mutates under them), and whoever must follow a
 * change subscribes to it instead of sharing the object: each change is one new snapshot and one
 * event, after it took effect. Listeners run in the order they subscribed; one that throws does
 * not keep the others from hearing the change, and its error is then thrown to whoever made it.
 */
export class SettingsStore<T extends object> {
  private current: Readonly<T>;
  private readonly listeners = new Set<(change: SettingsChange<T>) => void>();

  constructor(initial: T) {
    this.current = Object.freeze({ ...initial });
  }

  get(): Readonly<T> {
    return this.current;
  }

  /** Applies `change` (undefined fields are left alone); hears nothing when nothing differs. */
  set(change: Partial<T>): SettingsChange<T> {
    const before = this.current;
    const changed = (Object.keys(change) as (keyof T)[]).filter((name) => change[name] !== undefined && !Object.is(change[name], before[name]));
    if (changed.length === 0) return { before, after: before, changed };
    const after: Readonly<T> = Object.freeze({ ...before, ...Object.fromEntries(changed.map((name) => [name, change[name]])) });
    this.current = after;
    const event = { before, after, changed };
    const errors: unknown[] = [];
    for (const listener of [...this.listeners]) {
      try {
        listener(event);
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length > 0) throw errors[0];
    return event;
  }

  /** Calls `listener` after each change; returns the way to stop. */
  onChange(listener: (change: SettingsChange<T>) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
