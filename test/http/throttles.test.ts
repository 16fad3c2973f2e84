/**
 * Throttles hold under concurrency: parallel guesses get no more password checks than sequential
 * ones, unauthenticated hashing waits in a bounded queue that signed-in work is not stuck behind,
 * and a flood of failures grows the audit log by kinds, not by attempts.
 */
import type { Response } from 'supertest';
import type TestAgent from 'supertest/lib/agent';
import type { PasswordHasher } from '../../src/domain/passwordHasher';
import { ScryptPasswordHasher } from '../../src/domain/passwordHasher';
import { eventually } from '../support/eventually';
import { createHarness, errorCode, fastHasher, OTHER_STRONG_PASSWORD, STRONG_PASSWORD, type Harness, type HarnessOptions } from '../support/harness';

/**
 * fastHasher behind a test-controlled turnstile, in call order, like libuv's threadpool queue.
 * While `holding`, each call waits until the test releases it.
 */
class HeldHasher implements PasswordHasher {
  holding = false;
  verifyCalls = 0;
  private readonly held: { password: string; go: () => void }[] = [];

  get waiting(): number {
    return this.held.length;
  }

  hash(password: string): Promise<string> {
    return this.turn(password, () => fastHasher.hash(password));
  }

  verify(password: string, stored: string): Promise<boolean> {
    this.verifyCalls += 1;
    return this.turn(password, () => fastHasher.verify(password, stored));
  }

  releaseOldest(): void {
    this.held.shift()?.go();
  }

  /** Releases the oldest held call for this password. */
  release(password: string): void {
    const index = this.held.findIndex((call) => call.password === password);
    if (index < 0) throw new Error('no held call for that password');
    this.held.splice(index, 1)[0]?.go();
  }

  releaseAll(): void {
    this.holding = false;
    while (this.held.length > 0) this.releaseOldest();
  }

  private turn<T>(password: string, work: () => Promise<T>): Promise<T> {
    if (!this.holding) return work();
    return new Promise<void>((go) => this.held.push({ password, go })).then(work);
  }
}

let h: Harness;
let hasher: HeldHasher;

function start(options: HarnessOptions = {}): void {
  hasher = new HeldHasher();
  h = createHarness({ hasher, ...options });
}

afterEach(() => {
  hasher.releaseAll();
  h.close();
});

/** Sends now (supertest is lazy) and records when the answer arrives. */
function send(request: PromiseLike<Response>): { done: boolean; response: Promise<Response> } {
  const call = { done: false, response: Promise.resolve(request) };
  call.response = call.response.then((res) => {
    call.done = true;
    return res;
  });
  return call;
}

const login = (username: string, password: string, ip?: string): PromiseLike<Response> => {
  const req = h.bareClient().post('/api/v1/auth/login');
  if (ip) req.set('X-Forwarded-For', ip);
  return req.send({ username, password });
};

/** Waits until every one of `calls` has either been answered or reached the password hasher. */
async function settledOrHeld(calls: { done: boolean }[]): Promise<void> {
  await eventually(() => (calls.filter((c) => c.done).length + hasher.waiting === calls.length ? true : undefined), 'every attempt answered or at the hasher');
}

function expectThrottled(res: Response): void {
  expect(res.status).toBe(429);
  expect(errorCode(res)).toBe('TOO_MANY_ATTEMPTS');
  expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
}

describe('login throttle under concurrency', () => {
  test('50 parallel wrong-password logins for one account get 5 password checks, as 5 sequential ones would; the other 45 are 429 with Retry-After', async () => {
    // Room for all 50 at the hasher at once: only the throttle may hold them back here.
    start({ passwordHashing: { concurrency: 50, maxPerSource: 50 } });
    await h.setupAdmin();
    hasher.verifyCalls = 0;
    hasher.holding = true;

    const calls = Array.from({ length: 50 }, () => send(login('admin', 'wrong password 123')));
    await settledOrHeld(calls);
    hasher.releaseAll();
    const answers = await Promise.all(calls.map((c) => c.response));

    expect(hasher.verifyCalls).toBe(5);
    expect(answers.filter((r) => r.status === 401)).toHaveLength(5);
    const refused = answers.filter((r) => r.status !== 401);
    expect(refused).toHaveLength(45);
    refused.forEach(expectThrottled);
    // The five failures locked the account, exactly as five sequential ones do.
    expectThrottled(await login('admin', STRONG_PASSWORD));
  });

  test('50 parallel logins for different usernames from one address get the address its 20 password checks, no more', async () => {
    start({ passwordHashing: { concurrency: 50, maxPerSource: 50 } });
    await h.setupAdmin();
    hasher.verifyCalls = 0;
    hasher.holding = true;

    const calls = Array.from({ length: 50 }, (_, i) => send(login(`user-${i}`, 'wrong password 123')));
    await settledOrHeld(calls);
    hasher.releaseAll();
    const answers = await Promise.all(calls.map((c) => c.response));

    expect(hasher.verifyCalls).toBe(20);
    expect(answers.filter((r) => r.status === 401)).toHaveLength(20);
    answers.filter((r) => r.status !== 401).forEach(expectThrottled);
    expectThrottled(await login('admin', STRONG_PASSWORD));
  });

  test('a right password among parallel wrong ones signs in and clears the account, without freeing the others in flight to exceed the allowance', async () => {
    start({ passwordHashing: { concurrency: 50, maxPerSource: 50 } });
    await h.setupAdmin();
    hasher.verifyCalls = 0;
    hasher.holding = true;
    const calls = [send(login('admin', STRONG_PASSWORD)), ...Array.from({ length: 4 }, () => send(login('admin', 'wrong password 123')))];
    await settledOrHeld(calls);
    // The right one finishes first: its success clears the account's record while four are in flight.
    hasher.release(STRONG_PASSWORD);
    expect((await calls[0]?.response)?.status).toBe(200);
    const late = Array.from({ length: 5 }, () => send(login('admin', 'wrong password 123')));
    await settledOrHeld([...calls.slice(1), ...late]);
    hasher.releaseAll();
    const answers = await Promise.all(late.map((c) => c.response));
    // Four still in flight count against the five: one more check, four refusals.
    expect(answers.filter((r) => r.status === 401)).toHaveLength(1);
    answers.filter((r) => r.status !== 401).forEach(expectThrottled);
    expect(hasher.verifyCalls).toBe(6);
  });
});

describe('password change throttle', () => {
  const change = (client: TestAgent, currentPassword: string) =>
    client.post('/api/v1/account/password').send({ currentPassword, newPassword: OTHER_STRONG_PASSWORD });

  test('a login flood against a username does not lock its signed-in owner out of changing the password', async () => {
    start();
    const { client: admin } = await h.setupAdmin();
    for (let i = 0; i < 10; i++) await login('admin', 'wrong password 123');
    expectThrottled(await login('admin', STRONG_PASSWORD));
    expect((await change(admin, STRONG_PASSWORD)).status).toBe(204);
  });

  test('parallel wrong current passwords get the same five checks as sequential ones, then 429', async () => {
    start({ passwordHashing: { concurrency: 50, maxPerSource: 50 } });
    const { client: admin } = await h.setupAdmin();
    hasher.verifyCalls = 0;
    hasher.holding = true;
    const calls = Array.from({ length: 20 }, () => send(change(admin, 'not the current one')));
    await settledOrHeld(calls);
    hasher.releaseAll();
    const answers = await Promise.all(calls.map((c) => c.response));
    expect(hasher.verifyCalls).toBe(5);
    expect(answers.filter((r) => r.status === 400)).toHaveLength(5);
    answers.filter((r) => r.status !== 400).forEach(expectThrottled);
    expectThrottled(await change(admin, STRONG_PASSWORD));
  });
});

describe('bounded password hashing', () => {
  test('beyond the running and waiting password checks a login is answered 503 SERVER_BUSY at once, /healthz still answers, and the queued ones finish', async () => {
    start({ env: { CLAWLOOPS_TRUST_PROXY: 'true' }, passwordHashing: { concurrency: 2, maxWaiting: 4 } });
    await h.setupAdmin();
    hasher.holding = true;

    const calls = Array.from({ length: 10 }, (_, i) => send(login(`ghost-${i}`, 'wrong password 123', `198.51.100.${i + 1}`)));
    // Two at the hasher, four waiting, four turned away while the hasher is still held.
    const busy = await eventually(() => {
      const done = calls.filter((c) => c.done);
      return done.length === 4 && hasher.waiting === 2 ? done : undefined;
    }, 'four answers while two checks are held', 5_000);
    for (const call of busy) {
      const res = await call.response;
      expect(res.status).toBe(503);
      expect(res.body).toEqual({ error: { code: 'SERVER_BUSY', message: expect.stringMatching(/busy/) } });
      expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
    }
    expect((await h.bareClient().get('/healthz')).status).toBe(200);

    hasher.releaseAll();
    const answers = await Promise.all(calls.map((c) => c.response));
    expect(answers.filter((r) => r.status === 401)).toHaveLength(6);
  });

  test('one address gets at most 4 password checks going at once; more are 429 at once, and a sign-in from elsewhere still gets its turn', async () => {
    start({ env: { CLAWLOOPS_TRUST_PROXY: 'true' } });
    await h.setupAdmin();
    hasher.holding = true;

    const flood = Array.from({ length: 8 }, (_, i) => send(login(`ghost-${i}`, 'wrong password 123', '198.51.100.7')));
    const refused = await eventually(() => {
      const done = flood.filter((c) => c.done);
      return done.length === 4 ? done : undefined;
    }, 'four refusals while four checks are held', 5_000);
    for (const call of refused) expectThrottled(await call.response);

    const member = send(login('admin', STRONG_PASSWORD, '203.0.113.9'));
    await eventually(() => (hasher.waiting === 2 ? true : undefined), 'checks held');
    hasher.releaseAll();
    expect((await member.response).status).toBe(200);
    expect((await Promise.all(flood.map((c) => c.response))).filter((r) => r.status === 401)).toHaveLength(4);
  });

  test('a signed-in password change finishes while a login flood is still queued (the flood does not starve it)', async () => {
    start({ env: { CLAWLOOPS_TRUST_PROXY: 'true' } });
    const { client: admin } = await h.setupAdmin();
    hasher.holding = true;

    const flood = Array.from({ length: 20 }, (_, i) => send(login(`ghost-${i}`, 'wrong password 123', `198.51.100.${i + 1}`)));
    await eventually(() => (hasher.waiting === 2 ? true : undefined), 'the flood at the hasher');
    const change = send(admin.post('/api/v1/account/password').send({ currentPassword: STRONG_PASSWORD, newPassword: OTHER_STRONG_PASSWORD }));
    // Releases start once the change waits at the gate: before that, nothing could take turns with it.
    await eventually(() => (h.platform.passwordHashing.load.waiting.signedIn === 1 ? true : undefined), 'the change waiting at the gate');

    // The hasher finishes one check at a time, oldest first, as the threadpool does.
    let finished = 0;
    while (!change.done) {
      await eventually(() => (change.done || hasher.waiting > 0 ? true : undefined), 'work at the hasher');
      if (change.done) break;
      hasher.releaseOldest();
      finished += 1;
    }
    expect((await change.response).status).toBe(204);
    // The change's check and hash took turns with the flood instead of waiting behind all twenty.
    expect(finished).toBeLessThanOrEqual(8);
    expect(flood.filter((c) => !c.done).length).toBeGreaterThanOrEqual(12);
    hasher.releaseAll();
    expect((await Promise.all(flood.map((c) => c.response))).every((r) => r.status === 401)).toBe(true);
  });

  test('accepting an invitation waits its turn with sign-ins: with the queue full it is 503 and the invitation stays usable', async () => {
    start({ env: { CLAWLOOPS_TRUST_PROXY: 'true' }, passwordHashing: { concurrency: 1, maxWaiting: 1 } });
    const { client: admin } = await h.setupAdmin();
    const inv = await admin.post('/api/v1/admin/invitations').send({ role: 'member' }).expect(201);
    const secret = (inv.body as { link: string }).link.split('/invite/')[1] as string;
    hasher.holding = true;

    const flood = [send(login('ghost-1', 'wrong password 123', '198.51.100.1')), send(login('ghost-2', 'wrong password 123', '198.51.100.2'))];
    await eventually(() => (hasher.waiting === 1 ? true : undefined), 'the flood at the hasher');
    const accept = () => h.client().set('X-Forwarded-For', '203.0.113.5').post(`/api/v1/invitations/${secret}/accept`).send({ username: 'dana', password: STRONG_PASSWORD });
    const busy = await accept();
    expect([busy.status, errorCode(busy)]).toEqual([503, 'SERVER_BUSY']);

    hasher.releaseAll();
    await Promise.all(flood.map((c) => c.response));
    expect((await accept()).status).toBe(201);
  });

  test('ten people behind one address accepting their invitations at once all get in (the per-client cap is per invitation, not per address)', async () => {
    start();
    const { client: admin } = await h.setupAdmin();
    const secrets: string[] = [];
    for (let i = 0; i < 10; i++) {
      const inv = await admin.post('/api/v1/admin/invitations').send({ role: 'member' }).expect(201);
      secrets.push((inv.body as { link: string }).link.split('/invite/')[1] as string);
    }
    hasher.holding = true;
    const accepts = secrets.map((secret, i) => send(h.client().post(`/api/v1/invitations/${secret}/accept`).send({ username: `room-${i}`, password: STRONG_PASSWORD })));
    await eventually(() => (hasher.waiting === 2 ? true : undefined), 'accepts at the hasher');
    hasher.releaseAll();
    expect((await Promise.all(accepts.map((c) => c.response))).map((r) => r.status)).toEqual(Array(10).fill(201));
  });

  test('first-run setup waits its turn with sign-ins: with the queue full it is 503 and the token still works', async () => {
    start({ env: { CLAWLOOPS_TRUST_PROXY: 'true' }, passwordHashing: { concurrency: 1, maxWaiting: 1 } });
    const token = h.platform.setup.issueToken() as string;
    hasher.holding = true;
    const flood = [send(login('ghost-1', 'wrong password 123', '198.51.100.1')), send(login('ghost-2', 'wrong password 123', '198.51.100.2'))];
    await eventually(() => (hasher.waiting === 1 ? true : undefined), 'the flood at the hasher');
    const setup = () => h.client().set('X-Forwarded-For', '203.0.113.5').post('/api/v1/setup').send({ token, username: 'admin', password: STRONG_PASSWORD });
    const busy = await setup();
    expect([busy.status, errorCode(busy)]).toEqual([503, 'SERVER_BUSY']);

    hasher.releaseAll();
    await Promise.all(flood.map((c) => c.response));
    expect((await setup()).status).toBe(201);
  });

  test('with real scrypt, /healthz answers while a flood of logins is still being checked', async () => {
    hasher = new HeldHasher();
    h = createHarness({ env: { CLAWLOOPS_TRUST_PROXY: 'true' }, hasher: new ScryptPasswordHasher() });
    const flood = Array.from({ length: 12 }, (_, i) => send(login(`ghost-${i}`, 'wrong password 123', `198.51.100.${i + 1}`)));
    const health = await h.bareClient().get('/healthz');
    expect(health.status).toBe(200);
    expect(flood.some((c) => !c.done)).toBe(true);
    const answers = await Promise.all(flood.map((c) => c.response));
    expect(answers.every((r) => r.status === 401)).toBe(true);
  });
});

interface AuditItem {
  action: string;
  ip: string | null;
  target: { label: string | null } | null;
  detail: { reason?: string; count?: number; lockedBy?: string; firstAt?: string; lastAt?: string };
}

async function auditRows(admin: TestAgent, action: string): Promise<AuditItem[]> {
  const res = await admin.get(`/api/v1/admin/audit?action=${action}&limit=200`).expect(200);
  return res.body.items as AuditItem[];
}

const countOf = (rows: AuditItem[]): number => rows.reduce((sum, row) => sum + (row.detail.count ?? 0), 0);

describe('audit log under a flood', () => {
  test('300 failed and throttled sign-ins for one account add four rows whose counts add up to 300', async () => {
    start();
    const { client: admin } = await h.setupAdmin();
    for (let i = 0; i < 300; i++) await login('admin', 'wrong password 123');

    const failures = await auditRows(admin, 'login.failure');
    expect(failures).toHaveLength(2);
    expect(countOf(failures)).toBe(5);
    expect(failures.every((row) => row.detail.reason === 'wrong_password' && row.target?.label === 'admin')).toBe(true);
    const throttled = await auditRows(admin, 'login.throttled');
    expect(throttled).toHaveLength(2);
    expect(countOf(throttled)).toBe(295);
    expect(throttled.every((row) => row.detail.lockedBy === 'account' && row.target?.label === 'admin')).toBe(true);
    // The row of repeats says over which time they came.
    expect(throttled[0]?.detail).toMatchObject({ count: 294, firstAt: expect.any(String), lastAt: expect.any(String) });
  });

  test('an address spraying usernames gets two throttled rows (the first, then its repeats counted) however many usernames it tries', async () => {
    start();
    const { client: admin } = await h.setupAdmin();
    for (let i = 0; i < 120; i++) await login(`user-${i}`, 'wrong password 123');
    const throttled = await auditRows(admin, 'login.throttled');
    expect(throttled).toHaveLength(2);
    expect(countOf(throttled)).toBe(100);
    expect(throttled.every((row) => row.detail.lockedBy === 'address' && row.ip !== null)).toBe(true);
    expect(countOf(await auditRows(admin, 'login.failure'))).toBe(20);
  });

  test('repeats are counted per window: a flood that goes on opens a new window each 15 minutes', async () => {
    start();
    const { client: admin } = await h.setupAdmin();
    for (let i = 0; i < 10; i++) await login('admin', 'wrong password 123');
    h.clock.advance(16 * 60_000);
    for (let i = 0; i < 10; i++) await login('admin', 'wrong password 123');
    const rows = [...(await auditRows(admin, 'login.failure')), ...(await auditRows(admin, 'login.throttled'))];
    expect(rows.length).toBeLessThanOrEqual(8);
    expect(countOf(rows)).toBe(20);
  });

  test('repeats counted but not yet written are written at shutdown', async () => {
    start();
    await h.setupAdmin();
    for (let i = 0; i < 30; i++) await login('admin', 'wrong password 123');
    const { db } = h.platform;
    const file = db.name;
    h.platform.close();
    const Database = (await import('better-sqlite3')).default;
    const reopened = new Database(file, { readonly: true });
    try {
      const rows = reopened.prepare("SELECT detail FROM audit_log WHERE action IN ('login.failure', 'login.throttled')").all() as { detail: string }[];
      expect(rows.length).toBeLessThanOrEqual(4);
      expect(rows.reduce((sum, row) => sum + Number((JSON.parse(row.detail) as { count: number }).count), 0)).toBe(30);
    } finally {
      reopened.close();
    }
  });

  test('a flood of refused setup tokens adds rows by address, not by attempt', async () => {
    start();
    for (let i = 0; i < 50; i++) await h.bareClient().post('/api/v1/setup').send({ token: 'x'.repeat(43), username: 'admin', password: STRONG_PASSWORD });
    const { client: admin } = await h.setupAdmin();
    const rows = await auditRows(admin, 'setup.rejected');
    expect(rows).toHaveLength(2);
    expect(countOf(rows)).toBe(50);
  });
});
