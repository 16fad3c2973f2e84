/**
 * The usage ledger's write path: rows that end within one window land in one transaction, a
 * full batch is written at once, reads see every finished call, and a failing write is reported
 * without breaking the caller.
 */
import { Writable } from 'node:stream';
import { openMemoryDatabase, type Db } from '../../src/db/database';
import { migrate } from '../../src/db/migrations';
import { UsageRepository, type UsageRecord } from '../../src/db/repositories/usageRepository';
import { LEDGER_MAX_DELAY_MS, UsageLedger } from '../../src/llm/usageLedger';
import { createLogger } from '../../src/lib/logger';

let db: Db;
let repository: UsageRepository;
let logged: string[];
let ledger: UsageLedger;

const row = (at: number, promptTokens = 10): UsageRecord => ({
  at,
  userId: 'u1',
  username: 'alice',
  runtimeId: null,
  endpoint: 'chat/completions',
  model: 'm',
  streamed: false,
  status: 'ok',
  httpStatus: 200,
  promptTokens,
  completionTokens: 2,
  costMicrodollars: 5,
  latencyMs: 1,
  estimated: false,
});
const count = () => (db.prepare('SELECT COUNT(*) AS n FROM llm_usage').get() as { n: number }).n;

beforeEach(() => {
  db = openMemoryDatabase();
  migrate(db);
  repository = new UsageRepository(db);
  logged = [];
  ledger = new UsageLedger(repository, createLogger('info', new Writable({ write: (chunk, _enc, done) => (logged.push(String(chunk)), done()) })));
});
afterEach(() => db.close());

test('the rows that end within one window are written together, in one transaction, when it closes', () => {
  jest.useFakeTimers();
  try {
    const appendAll = jest.spyOn(repository, 'appendAll');
    ledger.append(row(1000));
    jest.advanceTimersByTime(LEDGER_MAX_DELAY_MS - 1);
    for (let i = 1; i < 5; i++) ledger.append(row(1000 + i));
    expect(count()).toBe(0);
    jest.advanceTimersByTime(1);
    expect(count()).toBe(5);
    expect(appendAll).toHaveBeenCalledTimes(1);
    // The window opens with the next row, not before.
    ledger.append(row(2000));
    jest.advanceTimersByTime(LEDGER_MAX_DELAY_MS);
    expect(appendAll).toHaveBeenCalledTimes(2);
  } finally {
    jest.useRealTimers();
  }
});

test('a full batch is written at once, without waiting for its window', () => {
  const small = new UsageLedger(repository, createLogger('silent'), { maxDelayMs: 60_000, maxRows: 3 });
  small.append(row(1));
  small.append(row(2));
  expect(count()).toBe(0);
  small.append(row(3));
  expect(count()).toBe(3);
  small.flush();
});

test('reads see every call that ended, even before its window closed', () => {
  ledger.append(row(1000, 10));
  ledger.append(row(1001, 20));
  expect(ledger.totals('u1', 0, 10_000)).toEqual({ requests: 2, promptTokens: 30, completionTokens: 4, costMicrodollars: 10, estimatedRequests: 0 });
  expect(ledger.perModel('u1', 0, 10_000)).toEqual([expect.objectContaining({ model: 'm', requests: 2 })]);
});

test('a failing write is logged with the number of rows lost and does not throw', async () => {
  jest.spyOn(repository, 'appendAll').mockImplementation(() => {
    throw new Error('database or disk is full');
  });
  ledger.append(row(1000));
  ledger.append(row(1001));
  expect(() => ledger.flush()).not.toThrow();
  expect(logged.join('')).toMatch(/"rows":2.*not recorded/);
});

test('a row that violates the schema rolls back the whole batch: no half-written batch', () => {
  ledger.append(row(1000));
  ledger.append({ ...row(1001), userId: null as unknown as string });
  ledger.flush();
  expect(count()).toBe(0);
  expect(logged.join('')).toMatch(/"rows":2/);
});

test('estimated rows are marked, and count in every total (tokens, cost, per day, per model, the admin report) like the others', () => {
  ledger.append(row(1000, 10));
  ledger.append({ ...row(1001, 20), estimated: true, status: 'aborted' });
  ledger.flush();
  expect(db.prepare('SELECT estimated FROM llm_usage ORDER BY id').all()).toEqual([{ estimated: 0 }, { estimated: 1 }]);
  const both = { requests: 2, promptTokens: 30, completionTokens: 4, costMicrodollars: 10, estimatedRequests: 1 };
  expect(ledger.totals('u1', 0, 10_000)).toEqual(both);
  expect(ledger.perDay('u1', 0, 10_000)).toEqual([{ day: '1970-01-01', ...both }]);
  expect(ledger.perModel('u1', 0, 10_000)).toEqual([{ model: 'm', ...both }]);
  expect(ledger.report(0, 10_000).perUser).toEqual([{ userId: 'u1', username: 'alice', ...both }]);
});
