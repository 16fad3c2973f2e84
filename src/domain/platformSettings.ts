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

/** The runtime settings these apply to: read for the environment's defaults, set on every change. */
export type RuntimeSettingsTarget = { get(): Readonly<Live>; set(change: Partial<Live>): unknown };

/** How each setting is stored, checked when read back (a hand-edited row must not break start-up) and applied. */
const FIELDS: { [K in keyof PlatformSettingsView]: { key: string; valid: (v: unknown) => v is PlatformSettingsView[K]; apply: (v: PlatformSettingsView[K]) => Partial<Live>; read: (live: Readonly<Live>) => PlatformSettingsView[K] } } = {
  idleStopMinutes: {
    key: 'runtime.idleStopMinutes',
    valid: (v): v is number => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= MAX_IDLE_STOP_MINUTES,
    apply: (v) => ({ idleStopMs: v * 60_000 }),
    read: (live) => Math.round(live.idleStopMs / 60_000),
  },
  image: {
    key: 'runtime.image',
    valid: (v): v is string => typeof v === 'string' && v.length <= 255 && IMAGE_PATTERN.test(v),
    apply: (v) => ({ image: v }),
    read: (live) => live.image,
  },
  memoryMiB: {
    key: 'runtime.memoryMiB',
    valid: (v): v is number => Number.isInteger(v) && (v as number) >= SETTING_LIMITS.memoryMiB.min && (v as number) <= SETTING_LIMITS.memoryMiB.max,
    apply: (v) => ({ memoryBytes: v * 1024 * 1024 }),
    read: (live) => Math.round(live.memoryBytes / (1024 * 1024)),
  },
  cpus: {
    key: 'runtime.cpus',
    valid: (v): v is number => typeof v === 'number' && v >= SETTING_LIMITS.cpus.min && v <= SETTING_LIMITS.cpus.max,
    apply: (v) => ({ nanoCpus: Math.round(v * 1e9) }),
    read: (live) => live.nanoCpus / 1e9,
  },
  pidsLimit: {
    key: 'runtime.pidsLimit',
    valid: (v): v is number => Number.isInteger(v) && (v as number) >= SETTING_LIMITS.pidsLimit.min && (v as number) <= SETTING_LIMITS.pidsLimit.max,
    apply: (v) => ({ pidsLimit: v }),
    read: (live) => live.pidsLimit,
  },
};
const NAMES = Object.keys(FIELDS) as (keyof PlatformSettingsView)[];

/**
 * Settings an administrator changes at runtime, kept in a SettingsStore: readers get a frozen
 * snapshot, followers subscribe to its changes. The environment supplies the defaults; a stored
 * value wins. Each change is also set on the runtime settings store the runtime manager reads
 * (the image and limits apply to each runtime at its next start or restart).
 */
export class PlatformSettingsService {
  private readonly store: SettingsStore<PlatformSettingsView>;

  constructor(
    private readonly repository: SettingsRepository,
    runtime: RuntimeSettingsTarget,
    private readonly audit: AuditLog,
    private readonly transact: Transactor,
    private readonly clock: Clock,
  ) {
    const defaults = runtime.get();
    const initial = Object.fromEntries(NAMES.map((name) => [name, this.storedOr(name, FIELDS[name].read(defaults))])) as unknown as PlatformSettingsView;
    this.store = new SettingsStore(initial);
    runtime.set(runtimeChange(initial, NAMES));
    this.store.onChange(({ after, changed }) => runtime.set(runtimeChange(after, changed)));
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

/** The named settings in the runtime settings' own units. */
function runtimeChange(values: Readonly<PlatformSettingsView>, names: readonly (keyof PlatformSettingsView)[]): Partial<Live> {
  return Object.assign({}, ...names.map((name) => (FIELDS[name] as { apply: (v: unknown) => Partial<Live> }).apply(values[name]))) as Partial<Live>;
}
