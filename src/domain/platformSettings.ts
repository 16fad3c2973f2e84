import type { SettingsRepository } from '../db/repositories/settingsRepository';
import type { Clock } from '../lib/clock';
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
 * Settings an administrator changes at runtime. The environment supplies the defaults; a stored
 * value wins, and takes effect at once in the live runtime settings the manager reads (the image
 * and limits apply to each runtime at its next start or restart).
 */
export class PlatformSettingsService {
  constructor(
    private readonly repository: SettingsRepository,
    private readonly runtime: Live,
    private readonly audit: AuditLog,
    private readonly transact: Transactor,
    private readonly clock: Clock,
  ) {
    for (const name of NAMES) this.applyStored(name);
  }

  private applyStored<K extends keyof PlatformSettingsView>(name: K): void {
    const field = FIELDS[name];
    const stored = this.repository.get(field.key);
    if (field.valid(stored)) field.apply(this.runtime, stored);
  }

  view(): PlatformSettingsView {
    return Object.fromEntries(NAMES.map((name) => [name, FIELDS[name].read(this.runtime)])) as unknown as PlatformSettingsView;
  }

  update(actor: Actor, change: Partial<PlatformSettingsView>, origin: RequestOrigin): PlatformSettingsView {
    const before = this.view();
    const changed = NAMES.filter((name) => change[name] !== undefined && change[name] !== before[name]);
    this.transact(() => {
      for (const name of changed) this.repository.set(FIELDS[name].key, change[name] as PlatformSettingsView[typeof name], this.clock.now());
      this.audit.record({ action: 'settings.update', actor, origin, detail: { before, after: { ...before, ...change } } });
    });
    for (const name of changed) {
      const field = FIELDS[name] as (typeof FIELDS)[typeof name] & { apply: (live: Live, v: unknown) => void };
      field.apply(this.runtime, change[name]);
    }
    return this.view();
  }
}
