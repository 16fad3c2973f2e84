/**
 * Repeated audit events (failed and throttled sign-ins) are counted, not written one row each:
 * what is written when, and the memory bound under a flood of distinct kinds.
 */
import { openMemoryDatabase, type Db } from '../../src/db/database';
import { migrate } from '../../src/db/migrations';
import { AuditRepository } from '../../src/db/repositories/auditRepository';
import { AuditLog, type AuditEvent } from '../../src/domain/audit';
import { ManualClock } from '../support/harness';

let db: Db;
let clock: ManualClock;

beforeEach(() => {
  db = openMemoryDatabase();
  migrate(db);
  clock = new ManualClock();
});
afterEach(() => db.close());

const failure = (username: string): AuditEvent => ({
  action: 'login.failure',
  actor: null,
  target: { type: 'user', id: null, label: username },
  origin: { ip: '192.0.2.1', userAgent: null },
  detail: { reason: 'unknown_user' },
});

interface Row {
  at: number;
  target_label: string;
  detail: string;
}
const rows = (): Row[] => db.prepare("SELECT at, target_label, detail FROM audit_log WHERE action = 'login.failure' ORDER BY id").all() as Row[];
const counted = (): number => rows().reduce((sum, row) => sum + Number((JSON.parse(row.detail) as { count: number }).count), 0);

test('the first of a kind is written at once; repeats are one row at the last repeat time when the window closes', () => {
  const audit = new AuditLog(new AuditRepository(db), clock, { windowMs: 60_000, maxOpenWindows: 100 });
  const start = clock.now();
  audit.recordRepeated('alice', failure('alice'));
  expect(rows()).toHaveLength(1);
  for (let i = 0; i < 9; i++) {
    clock.advance(1_000);
    audit.recordRepeated('alice', failure('alice'));
  }
  expect(rows()).toHaveLength(1);
  clock.advance(60_000);
  audit.closeExpiredRepeats();
  const [first, repeats] = rows();
  expect(JSON.parse(first?.detail ?? '')).toEqual({ reason: 'unknown_user', count: 1 });
  expect(repeats?.at).toBe(start + 9_000);
  expect(JSON.parse(repeats?.detail ?? '')).toEqual({
    reason: 'unknown_user',
    count: 9,
    firstAt: new Date(start + 1_000).toISOString(),
    lastAt: new Date(start + 9_000).toISOString(),
  });
  expect(audit.openRepeatWindows).toBe(0);
});

test('reading the log writes the repeats counted so far, without a new first row afterwards', () => {
  const audit = new AuditLog(new AuditRepository(db), clock);
  for (let i = 0; i < 5; i++) audit.recordRepeated('alice', failure('alice'));
  expect(audit.query({ limit: 10, offset: 0 }).total).toBe(2);
  for (let i = 0; i < 5; i++) audit.recordRepeated('alice', failure('alice'));
  audit.flushRepeats();
  expect(rows()).toHaveLength(3);
  expect(counted()).toBe(10);
});

test('a flood of distinct kinds keeps memory bounded and still counts every event in the log', () => {
  const audit = new AuditLog(new AuditRepository(db), clock, { windowMs: 15 * 60_000, maxOpenWindows: 50 });
  for (let i = 0; i < 1_000; i++) {
    for (let j = 0; j < 3; j++) audit.recordRepeated(`user-${i}`, failure(`user-${i}`));
    expect(audit.openRepeatWindows).toBeLessThanOrEqual(50);
  }
  audit.flushRepeats();
  expect(counted()).toBe(3_000);
  // Two rows a kind at most, however many events.
  expect(rows().length).toBeLessThanOrEqual(2_000);
});
