import type { SettingsRepository } from '../db/repositories/settingsRepository';
import type { Clock } from '../lib/clock';
import { SettingsStore, type SettingsChange } from '../lib/settingsStore';
import type { RuntimeSettings } from '../runtime/runtimeSettings';
import type { Actor, AuditLog, RequestOrigin } from './audit';
import type { Transactor } from './transactor';

export const MAX_IDLE_STOP_MINUTES = 7 * 24 * 60;
export const SETTING_LIMITS = {
  memoryMiB: { min: 512, max: 262_144 },
  cpus: { min: 0.25, max: 128 },
  pidsLimit: { min: 64, max: 65_536 },
} as const;
/** A tag-pinned image reference (no digest: digests cannot be satisfied without a registry). */
export const IMAGE_PATTERN = /^[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9_][A-Za-z0-9._-]{0,127})?$/;

export interface PlatformSettingsView {
  /** 0: runtimes are never stopped for being idle. */
  idleStopMinutes: number;
  /** The OpenClaw image new and restarted runtimes use; running ones show `outdatedImage` until restarted. */
  image: string;
  /** Per runtime; running runtimes show `configStale` until restarted. */
  memoryMiB: number;
  cpus: number;
  pidsLimit: number;
}

type Live = Pick<RuntimeSettings, 'idleStopMs' | 'image' | 'memoryBytes' | 'nanoCpus' | 'pidsLimit'>;

/** How each setting is stored, checked when read back (a hand-edited row must not break start-up) and applied. */
const FIELDS: { [K in keyof PlatformSettingsView]: { key: string; valid: (v: unknown) => v is PlatformSettingsView[K]; apply: (live: Live, v: PlatformSettingsView[K]) => void; read: (live: Live) => PlatformSettingsView[K] } } = {
  idleStopMinutes: {
    key: 'runtime.idleStopMinutes',
    valid: (v): v is number => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= MAX_IDLE_STOP_MINUTES,
    apply: (live, v) => (live.idleStopMs = v * 60_000),
    read: (live) => Math.round(live.idleStopMs / 60_000),
  },
  image: {
    key: 'runtime.image',
    valid: (v): v is string => typeof v === 'string' && v.length <= 255 && IMAGE_PATTERN.test(v),
    apply: (live, v) => (live.image = v),
    read: (live) => live.image,
  },
  memoryMiB: {
    key: 'runtime.memoryMiB',
    valid: (v): v is number => Number.isInteger(v) && (v as number) >= SETTING_LIMITS.memoryMiB.min && (v as number) <= SETTING_LIMITS.memoryMiB.max,
    apply: (live, v) => (live.memoryBytes = v * 1024 * 1024),
    read: (live) => Math.round(live.memoryBytes / (1024 * 1024)),
  },
  cpus: {
    key: 'runtime.cpus',
    valid: (v): v is number => typeof v === 'number' && v >= SETTING_LIMITS.cpus.min && v <= SETTING_LIMITS.cpus.max,
    apply: (live, v) => (live.nanoCpus = Math.round(v * 1e9)),
    read: (live) => live.nanoCpus / 1e9,
  },
  pidsLimit: {
    key: 'runtime.pidsLimit',
    valid: (v): v is number => Number.isInteger(v) && (v as number) >= SETTING_LIMITS.pidsLimit.min && (v as number) <= SETTING_LIMITS.pidsLimit.max,
    apply: (live, v) => (live.pidsLimit = v),
    read: (live) => live.pidsLimit,
  },
};
const NAMES = Object.keys(FIELDS) as (keyof PlatformSettingsView)[];

/**
 * Settings an administrator changes at runtime, kept in a SettingsStore: readers get a frozen
 * snapshot, followers subscribe to its changes. The environment supplies the defaults; a stored
 * value wins. The runtime manager still reads the live RuntimeSettings object: one subscriber
 * (mirrorInto) keeps that object in step with the store, so the seam is this one listener (the
 * image and limits apply to each runtime at its next start or restart). Once runtime/ reads the
 * store itself, the mirror goes.
 */
export class PlatformSettingsService {
  private readonly store: SettingsStore<PlatformSettingsView>;

  constructor(
    private readonly repository: SettingsRepository,
    runtime: Live,
    private readonly audit: AuditLog,
    private readonly transact: Transactor,
    private readonly clock: Clock,
  ) {
    const initial = Object.fromEntries(NAMES.map((name) => [name, this.storedOr(name, FIELDS[name].read(runtime))])) as unknown as PlatformSettingsView;
    this.store = new SettingsStore(initial);
    mirrorInto(runtime, initial, NAMES);
    this.store.onChange(({ after, changed }) => mirrorInto(runtime, after, changed));
  }

  private storedOr<K extends keyof PlatformSettingsView>(name: K, fallback: PlatformSettingsView[K]): PlatformSettingsView[K] {
    const field = FIELDS[name];
    const stored = this.repository.get(field.key);
    return field.valid(stored) ? stored : fallback;
  }

  view(): PlatformSettingsView {
    return { ...this.store.get() };
  }

  /** Hears each change once it took effect (stored, audited, applied); returns the way to stop. */
  onChange(listener: (change: SettingsChange<PlatformSettingsView>) => void): () => void {
    return this.store.onChange(listener);
  }

  update(actor: Actor, change: Partial<PlatformSettingsView>, origin: RequestOrigin): PlatformSettingsView {
    const before = this.view();
    const changed = NAMES.filter((name) => change[name] !== undefined && change[name] !== before[name]);
    this.transact(() => {
      for (const name of changed) this.repository.set(FIELDS[name].key, change[name] as PlatformSettingsView[typeof name], this.clock.now());
      this.audit.record({ action: 'settings.update', actor, origin, detail: { before, after: { ...before, ...change } } });
    });
    this.store.set(Object.fromEntries(changed.map((name) => [name, change[name]])) as Partial<PlatformSettingsView>);
    return this.view();
  }
}

/** Writes the named settings into the live runtime settings object the runtime manager reads. */
function mirrorInto(runtime: Live, values: Readonly<PlatformSettingsView>, names: readonly (keyof PlatformSettingsView)[]): void {
  for (const name of names) (FIELDS[name] as { apply: (live: Live, v: unknown) => void }).apply(runtime, values[name]);
}
