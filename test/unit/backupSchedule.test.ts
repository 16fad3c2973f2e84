/**
 * The daily backup and its retention: when a scheduled backup runs (once a day, from the
 * administrator's hour, never twice after a restart that day), and which scheduled backups go
 * (the newest of each of the last N days and weeks stay; backups taken by hand are never touched).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sweepPartials } from '../../src/backup/backupFormat';
import { BackupScheduler, DEFAULT_SCHEDULE, type BackupSchedule } from '../../src/backup/backupScheduler';
import { backupsToRemove } from '../../src/backup/retention';
import { createLogger } from '../../src/lib/logger';
import { ManualClock } from '../support/harness';

const at = (iso: string, id = iso) => ({ id, createdAt: iso });

describe('retention', () => {
  test('keeps the newest backup of each of the last N days, drops the older ones of a day and the days beyond', () => {
    const backups = [
      at('2026-12-06T03:00:00Z'),
      at('2026-12-06T01:00:00Z'),
      at('2026-12-05T03:00:00Z'),
      at('2026-12-04T03:00:00Z'),
      at('2026-12-03T03:00:00Z'),
    ];
    expect(backupsToRemove(backups, 2, 0).sort()).toEqual(['2026-12-03T03:00:00Z', '2026-12-04T03:00:00Z', '2026-12-06T01:00:00Z']);
  });

  test('weekly keeps the newest of each ISO week (Monday first) beyond the daily ones', () => {
    // 2026-11-29 is a Sunday, 2026-11-30 a Monday.
    const backups = [at('2026-12-06T03:00:00Z'), at('2026-11-30T03:00:00Z'), at('2026-11-29T03:00:00Z'), at('2026-11-22T03:00:00Z'), at('2026-11-15T03:00:00Z')];
    expect(backupsToRemove(backups, 1, 3).sort()).toEqual(['2026-11-15T03:00:00Z', '2026-11-30T03:00:00Z']);
  });

  test('nothing to remove while fewer backups exist than are kept', () => {
    expect(backupsToRemove([at('2026-12-06T03:00:00Z')], 7, 4)).toEqual([]);
    expect(backupsToRemove([], 7, 4)).toEqual([]);
  });
});

describe('the daily run', () => {
  function setup(schedule: Partial<BackupSchedule> = {}, options: { key?: boolean; failing?: boolean } = {}) {
    const clock = new ManualClock(Date.parse('2026-12-06T02:30:00Z'));
    const rows = new Map<string, unknown>();
    const made: { id: string; createdAt: string; trigger: 'manual' | 'scheduled'; readable: boolean }[] = [
      { id: 'by-hand', createdAt: '2026-11-01T10:00:00Z', trigger: 'manual', readable: true },
    ];
    const removed: string[] = [];
    const backups = {
      hasKey: () => options.key !== false,
      create: async (_progress: unknown, trigger: 'manual' | 'scheduled' = 'manual') => {
        if (options.failing) throw new Error('engine away');
        const createdAt = new Date(clock.now()).toISOString();
        made.push({ id: createdAt, createdAt, trigger, readable: true });
        return { id: createdAt, createdAt, trigger, bytes: 1, users: [], parts: 1 };
      },
      list: async () => made.filter((b) => !removed.includes(b.id)).map((b) => ({ ...b, bytes: 1, users: [], parts: 1 })),
      remove: (id: string) => void removed.push(id),
    };
    const scheduler = new BackupScheduler({
      backups: backups as never,
      settings: { get: (k: string) => rows.get(k), set: (k: string, v: unknown) => void rows.set(k, v) },
      clock,
      logger: createLogger('silent'),
      offboardingKeepDays: 30,
    });
    scheduler.setSchedule({ ...DEFAULT_SCHEDULE, enabled: true, hourUtc: 3, ...schedule });
    return { clock, scheduler, made, removed };
  }
  const HOUR = 3_600_000;

  test('not before the hour; once at it; not again that day (a restart included); again the next day', async () => {
    const { clock, scheduler, made } = setup();
    expect(await scheduler.tick()).toBe('not-due');
    clock.advance(HOUR);
    expect(await scheduler.tick()).toBe('done');
    expect(await scheduler.tick()).toBe('not-due');
    clock.advance(20 * HOUR);
    expect(await scheduler.tick()).toBe('not-due');
    clock.advance(4 * HOUR);
    expect(await scheduler.tick()).toBe('done');
    expect(made.filter((b) => b.trigger === 'scheduled')).toHaveLength(2);
  });

  test('retention removes old scheduled backups and never one taken by hand', async () => {
    const { clock, scheduler, removed } = setup({ keepDaily: 2, keepWeekly: 0 });
    clock.advance(HOUR);
    for (let day = 0; day < 4; day++) {
      expect(await scheduler.tick()).toBe('done');
      clock.advance(24 * HOUR);
    }
    expect(removed).toEqual(['2026-12-06T03:30:00.000Z', '2026-12-07T03:30:00.000Z']);
    expect(removed).not.toContain('by-hand');
  });

  test('off, or without a key, nothing runs; a failed run is logged and tried the next day', async () => {
    const off = setup({ enabled: false });
    off.clock.advance(HOUR);
    expect(await off.scheduler.tick()).toBe('not-due');
    const noKey = setup({}, { key: false });
    noKey.clock.advance(HOUR);
    expect(await noKey.scheduler.tick()).toBe('not-due');
    const failing = setup({}, { failing: true });
    failing.clock.advance(HOUR);
    expect(await failing.scheduler.tick()).toBe('failed');
    expect(await failing.scheduler.tick()).toBe('not-due');
  });
});

describe('offboarding copies', () => {
  test('are removed once older than the days they are kept, checked at most once an hour, and nothing else is', async () => {
    const clock = new ManualClock(Date.parse('2026-12-06T12:00:00Z'));
    const day = 86_400_000;
    const items = [
      { id: 'old-copy', createdAt: new Date(clock.now() - 31 * day).toISOString(), trigger: 'offboarding' as const },
      { id: 'recent-copy', createdAt: new Date(clock.now() - 29 * day).toISOString(), trigger: 'offboarding' as const },
      { id: 'old-manual', createdAt: new Date(clock.now() - 400 * day).toISOString(), trigger: 'manual' as const },
    ];
    const removed: string[] = [];
    const scheduler = new BackupScheduler({
      backups: {
        hasKey: () => true,
        create: async () => Promise.reject(new Error('not used')),
        list: async () => items.filter((b) => !removed.includes(b.id)).map((b) => ({ ...b, readable: true, bytes: 1, users: ['gone'], parts: 1 })),
        remove: (id: string) => void removed.push(id),
      } as never,
      settings: { get: () => undefined, set: () => undefined },
      clock,
      logger: createLogger('silent'),
      offboardingKeepDays: 30,
    });
    expect(await scheduler.pruneOffboarding()).toBe(1);
    expect(removed).toEqual(['old-copy']);
    // Two days later the copy that aged out meanwhile goes.
    clock.advance(2 * day);
    expect(await scheduler.pruneOffboarding()).toBe(1);
    expect(removed).toEqual(['old-copy', 'recent-copy']);
    // Within the hour the manifests are not read again, even with an old copy present; after it, it goes.
    items.push({ id: 'another-old', createdAt: new Date(clock.now() - 40 * day).toISOString(), trigger: 'offboarding' });
    expect(await scheduler.pruneOffboarding()).toBe(0);
    clock.advance(3_600_000);
    expect(await scheduler.pruneOffboarding()).toBe(1);
    expect(removed).toEqual(['old-copy', 'recent-copy', 'another-old']);
  });
});

describe('partial backups', () => {
  test('a partial folder is swept only once untouched for a day (another machine may be writing it)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'partials-'));
    fs.mkdirSync(path.join(dir, '20261206T030000Z-aaaaaa.partial'));
    fs.mkdirSync(path.join(dir, '20261205T030000Z-bbbbbb.partial'));
    fs.mkdirSync(path.join(dir, '20261204T030000Z-cccccc'));
    const old = (Date.now() - 25 * 3_600_000) / 1000;
    fs.utimesSync(path.join(dir, '20261205T030000Z-bbbbbb.partial'), old, old);
    expect(sweepPartials(dir)).toBe(1);
    expect(fs.readdirSync(dir).sort()).toEqual(['20261204T030000Z-cccccc', '20261206T030000Z-aaaaaa.partial']);
    fs.rmSync(dir, { recursive: true });
  });
});
