/**
 * Settings as a store with change events (src/lib/settingsStore.ts) and the platform settings
 * built on it (src/domain/platformSettings.ts): snapshots nobody mutates, one event per change,
 * and the runtime settings store set on every change (what the runtime modules read).
 */
import type { SettingsRepository } from '../../src/db/repositories/settingsRepository';
import type { AuditLog } from '../../src/domain/audit';
import { SYSTEM_ACTOR, NO_ORIGIN } from '../../src/domain/audit';
import { PlatformSettingsService, type PlatformSettingsView } from '../../src/domain/platformSettings';
import { SettingsStore, type SettingsChange } from '../../src/lib/settingsStore';

describe('SettingsStore', () => {
  test('a change is a new frozen snapshot and one event naming what differs; the old snapshot stays as it was', () => {
    const store = new SettingsStore({ a: 1, b: 'x' });
    const first = store.get();
    const heard: SettingsChange<{ a: number; b: string }>[] = [];
    store.onChange((change) => heard.push(change));
    store.set({ a: 2, b: 'x' });
    expect(first).toEqual({ a: 1, b: 'x' });
    expect(Object.isFrozen(store.get())).toBe(true);
    expect(store.get()).toEqual({ a: 2, b: 'x' });
    expect(heard).toEqual([{ before: { a: 1, b: 'x' }, after: { a: 2, b: 'x' }, changed: ['a'] }]);
  });

  test('nothing that differs, no event; a listener that stopped hears nothing more', () => {
    const store = new SettingsStore({ a: 1 });
    const heard: number[] = [];
    const stop = store.onChange(({ after }) => heard.push(after.a));
    store.set({ a: 1 });
    store.set({});
    store.set({ a: 2 });
    stop();
    store.set({ a: 3 });
    expect(heard).toEqual([2]);
  });

  test('a listener that throws does not keep the others from hearing the change, and its error reaches the caller', () => {
    const store = new SettingsStore({ a: 1 });
    const heard: string[] = [];
    store.onChange(() => {
      throw new Error('listener failed');
    });
    store.onChange(() => heard.push('second'));
    expect(() => store.set({ a: 2 })).toThrow('listener failed');
    expect(heard).toEqual(['second']);
    expect(store.get().a).toBe(2);
  });
});

describe('PlatformSettingsService on the store', () => {
  function setup(stored: Record<string, unknown> = {}) {
    const rows = new Map(Object.entries(stored));
    const repository = { get: (key: string) => rows.get(key), set: (key: string, value: unknown) => void rows.set(key, value) } as Pick<SettingsRepository, 'get' | 'set'> as SettingsRepository;
    const audited: unknown[] = [];
    const audit = { record: (event: unknown) => void audited.push(event) } as Pick<AuditLog, 'record'> as AuditLog;
    const store = new SettingsStore({ idleStopMs: 0, image: 'ghcr.io/openclaw/openclaw:1.0.0', memoryBytes: 2048 * 1024 ** 2, nanoCpus: 2e9, pidsLimit: 512 });
    const service = new PlatformSettingsService(repository, store, audit, (fn) => fn(), { now: () => 0 });
    return { service, store, rows, audited };
  }

  test('stored values win over the environment, and the live runtime settings start from them', () => {
    const { service, store } = setup({ 'runtime.image': 'ghcr.io/openclaw/openclaw:2.0.0', 'runtime.memoryMiB': 'not a number' });
    expect(service.view()).toEqual({ idleStopMinutes: 0, image: 'ghcr.io/openclaw/openclaw:2.0.0', memoryMiB: 2048, cpus: 2, pidsLimit: 512 });
    expect(store.get().image).toBe('ghcr.io/openclaw/openclaw:2.0.0');
  });

  test('an update is stored, audited, heard once by subscribers and set on the runtime settings store', () => {
    const { service, store, rows, audited } = setup();
    const heard: (keyof PlatformSettingsView)[][] = [];
    service.onChange(({ changed }) => heard.push(changed));
    const view = service.update(SYSTEM_ACTOR, { idleStopMinutes: 30, cpus: 2, pidsLimit: 1024 }, NO_ORIGIN);
    expect(view).toMatchObject({ idleStopMinutes: 30, cpus: 2, pidsLimit: 1024 });
    expect(heard).toEqual([['idleStopMinutes', 'pidsLimit']]);
    expect(store.get()).toMatchObject({ idleStopMs: 30 * 60_000, pidsLimit: 1024, nanoCpus: 2e9 });
    expect(Object.fromEntries(rows)).toEqual({ 'runtime.idleStopMinutes': 30, 'runtime.pidsLimit': 1024 });
    expect(audited).toHaveLength(1);
    // What a reader got before is a snapshot, not the live object.
    const before = service.view();
    service.update(SYSTEM_ACTOR, { idleStopMinutes: 0 }, NO_ORIGIN);
    expect(before.idleStopMinutes).toBe(30);
  });
});
