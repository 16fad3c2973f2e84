import { hashSecret } from '../../src/lib/secrets';
import {
  createHarness,
  errorCode,
  fastHasher,
  OTHER_STRONG_PASSWORD,
  PUBLIC_URL,
  STRONG_PASSWORD,
  type Harness,
} from '../support/harness';

const DAY = 86_400_000;

let h: Harness;
beforeEach(() => {
  h = createHarness();
});
afterEach(() => {
  jest.restoreAllMocks();
  h.close();
});

function sessionCookie(res: { headers: Record<string, unknown> }, name = 'clawloops_session'): string {
  const cookies = (res.headers['set-cookie'] as string[] | undefined) ?? [];
  const cookie = cookies.find((c) => c.startsWith(`${name}=`));
  if (!cookie) throw new Error('no session cookie set');
  return cookie;
}

describe('login', () => {
  test('sets an HttpOnly, SameSite=Lax, Path=/ session cookie holding a 256-bit token that is stored only hashed', async () => {
    await h.setupAdmin();
    const res = await h.bareClient().post('/api/v1/auth/login').send({ username: 'admin', password: STRONG_PASSWORD });
    expect(res.status).toBe(200);
    expect(res.body.user).toMatchObject({ username: 'admin', role: 'admin', status: 'active' });
    expect(res.body.user.passwordHash).toBeUndefined();
    const cookie = sessionCookie(res);
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Lax/);
    expect(cookie).toMatch(/Path=\//);
    expect(cookie).not.toMatch(/Secure/);
    const token = /^clawloops_session=([^;]+)/.exec(cookie)?.[1] ?? '';
    expect(Buffer.from(token, 'base64url')).toHaveLength(32);
    const rows = h.platform.db.prepare('SELECT token_hash FROM sessions').all() as { token_hash: string }[];
    expect(rows.map((r) => r.token_hash)).toContain(hashSecret(token));
    expect(JSON.stringify(rows)).not.toContain(token);
  });

  test('over https the cookie is Secure and named __Host- (no other host of the domain can set or shadow it)', async () => {
    h.close();
    h = createHarness({ env: { CLAWLOOPS_PUBLIC_URL: 'https://claw.example.com' } });
    await h.setupAdmin();
    const res = await h.bareClient().post('/api/v1/auth/login').send({ username: 'admin', password: STRONG_PASSWORD });
    const cookie = sessionCookie(res, '__Host-clawloops_session');
    expect(cookie).toMatch(/Secure/);
    expect(cookie).toMatch(/Path=\//);
    expect(cookie).not.toMatch(/Domain=/i);
  });

  test('accepts the username in any letter case', async () => {
    await h.setupAdmin();
    const res = await h.bareClient().post('/api/v1/auth/login').send({ username: '  ADMIN ', password: STRONG_PASSWORD });
    expect(res.status).toBe(200);
  });

  test('wrong password, unknown user and disabled user get the identical answer after one password check each', async () => {
    const { client: admin } = await h.setupAdmin();
    const { userId } = await h.createMember(admin, 'bob');
    await admin.patch(`/api/v1/admin/users/${userId}`).send({ status: 'disabled' }).expect(200);
    const verify = jest.spyOn(fastHasher, 'verify');

    const attempts = [
      { username: 'admin', password: 'not the password at all' },
      { username: 'nobody-here', password: STRONG_PASSWORD },
      { username: 'bob', password: STRONG_PASSWORD },
    ];
    const answers = [];
    for (const body of attempts) {
      verify.mockClear();
      const res = await h.bareClient().post('/api/v1/auth/login').send(body);
      // The same amount of password hashing whatever the reason: no timing oracle.
      expect(verify).toHaveBeenCalledTimes(1);
      answers.push({ status: res.status, body: res.body as unknown });
    }
    expect(answers[0]).toEqual({ status: 401, body: { error: { code: 'INVALID_CREDENTIALS', message: 'Invalid username or password.' } } });
    expect(answers[1]).toEqual(answers[0]);
    expect(answers[2]).toEqual(answers[0]);
  });

  test.each<[object, string]>([
    [{}, 'missing fields'],
    [{ username: 'admin' }, 'missing password'],
    [{ username: 42, password: 'x' }, 'number as username'],
    [{ username: 'admin', password: STRONG_PASSWORD, extra: 1 }, 'unknown field'],
    [['admin', STRONG_PASSWORD], 'array body'],
  ])('answers 400 VALIDATION_FAILED for %j (%s)', async (body) => {
    const res = await h.bareClient().post('/api/v1/auth/login').send(body as object);
    expect(res.status).toBe(400);
    expect(errorCode(res)).toBe('VALIDATION_FAILED');
  });

  test('SQL-looking and unicode usernames are just wrong credentials', async () => {
    await h.setupAdmin();
    for (const username of ["admin' OR '1'='1", 'admin"; DROP TABLE users; --', '管理员', 'ad\u0000min']) {
      const res = await h.bareClient().post('/api/v1/auth/login').send({ username, password: STRONG_PASSWORD });
      expect(res.status).toBe(401);
      expect(errorCode(res)).toBe('INVALID_CREDENTIALS');
    }
    expect((h.platform.db.prepare('SELECT COUNT(*) AS n FROM users').get() as { n: number }).n).toBe(1);
  });

  test('unicode passwords work, in either normalization form', async () => {
    const password = 'Grüße aus 東京 ✓ 2026';
    await h.setupAdmin('admin', password);
    const composed = await h.bareClient().post('/api/v1/auth/login').send({ username: 'admin', password });
    expect(composed.status).toBe(200);
    const decomposed = await h.bareClient().post('/api/v1/auth/login').send({ username: 'admin', password: password.normalize('NFD') });
    expect(decomposed.status).toBe(200);
  });
});

describe('login rate limiting', () => {
  const fail = (client = h.bareClient(), username = 'admin') =>
    client.post('/api/v1/auth/login').send({ username, password: 'wrong password 123' });

  test('5 failures lock the username with 429 + Retry-After, even for the right password; the lock expires and grows', async () => {
    await h.setupAdmin();
    for (let i = 0; i < 5; i++) expect((await fail()).status).toBe(401);

    const locked = await h.bareClient().post('/api/v1/auth/login').send({ username: 'admin', password: STRONG_PASSWORD });
    expect(locked.status).toBe(429);
    expect(errorCode(locked)).toBe('TOO_MANY_ATTEMPTS');
    const firstWait = Number(locked.headers['retry-after']);
    expect(firstWait).toBeGreaterThan(0);

    h.clock.advance(firstWait * 1000);
    expect((await fail()).status).toBe(401); // allowed again, and wrong again
    const relocked = await fail();
    expect(relocked.status).toBe(429);
    expect(Number(relocked.headers['retry-after'])).toBeGreaterThan(firstWait);

    h.clock.advance(Number(relocked.headers['retry-after']) * 1000);
    const ok = await h.bareClient().post('/api/v1/auth/login').send({ username: 'admin', password: STRONG_PASSWORD });
    expect(ok.status).toBe(200);
    // Success clears the username's record: the next mistake is not locked out at once.
    expect((await fail()).status).toBe(401);
  });

  test('an unknown username is throttled exactly like a real one', async () => {
    for (let i = 0; i < 5; i++) expect((await fail(undefined, 'ghost')).status).toBe(401);
    expect((await fail(undefined, 'ghost')).status).toBe(429);
  });

  test('one client address guessing many usernames is throttled per IP', async () => {
    await h.setupAdmin();
    for (let i = 0; i < 20; i++) expect((await fail(undefined, `user-${i}`)).status).toBe(401);
    const res = await h.bareClient().post('/api/v1/auth/login').send({ username: 'admin', password: STRONG_PASSWORD });
    expect(res.status).toBe(429);
    expect(res.headers['retry-after']).toBeDefined();
  });

  test('failures are audited with their reason, repeats counted in one row; throttled attempts too', async () => {
    const { client: admin } = await h.setupAdmin();
    for (let i = 0; i < 6; i++) await fail();
    const audit = await admin.get('/api/v1/admin/audit?action=login.*&limit=200');
    const items = audit.body.items as { action: string; detail: { reason?: string; count?: number } }[];
    const failures = items.filter((e) => e.action === 'login.failure');
    // The first failure at once, the four repeats as one row.
    expect(failures.map((e) => e.detail)).toEqual([
      expect.objectContaining({ reason: 'wrong_password', count: 4 }),
      { reason: 'wrong_password', count: 1 },
    ]);
    expect(items.filter((e) => e.action === 'login.throttled').map((e) => e.detail)).toEqual([{ lockedBy: 'account', count: 1 }]);
  });

  // Single sign-on ends in the same place (AuthService.completeSignIn) and adds its method to the detail.
  test('a sign-in is audited as login.success by and for the account, with no detail, and sets its last sign-in time', async () => {
    const { client: admin, userId } = await h.setupAdmin();
    expect((await admin.get(`/api/v1/admin/users/${userId}`)).body.user.lastLoginAt).toBeNull();
    expect((await h.bareClient().post('/api/v1/auth/login').send({ username: 'admin', password: STRONG_PASSWORD })).status).toBe(200);
    const audit = await admin.get('/api/v1/admin/audit?action=login.success&limit=10');
    expect(audit.body.items).toEqual([
      expect.objectContaining({ actor: { id: userId, username: 'admin' }, target: { type: 'user', id: userId, label: 'admin' }, detail: {} }),
    ]);
    expect((await admin.get(`/api/v1/admin/users/${userId}`)).body.user.lastLoginAt).toEqual(expect.any(String));
  });
});

describe('sessions', () => {
  test('logout ends the session and clears the cookie', async () => {
    const { client } = await h.setupAdmin();
    const res = await client.post('/api/v1/auth/logout');
    expect(res.status).toBe(204);
    expect(sessionCookie(res)).toMatch(/Expires=Thu, 01 Jan 1970/);
    const me = await client.get('/api/v1/auth/me');
    expect(me.status).toBe(401);
    expect(errorCode(me)).toBe('AUTH_REQUIRED');
  });

  test('/auth/session answers who is signed in, or nobody, without refusing (the console asks it on every first visit)', async () => {
    expect((await h.bareClient().get('/api/v1/auth/session')).body).toEqual({ user: null, session: null });
    const { client } = await h.setupAdmin();
    const signedIn = await client.get('/api/v1/auth/session');
    expect(signedIn.status).toBe(200);
    expect(signedIn.body).toEqual((await client.get('/api/v1/auth/me')).body);
    expect(signedIn.body.user).toMatchObject({ username: 'admin' });
    await client.post('/api/v1/auth/logout');
    const after = await client.get('/api/v1/auth/session');
    expect({ status: after.status, body: after.body }).toEqual({ status: 200, body: { user: null, session: null } });
  });

  test('a session idle for longer than 7 days ends; activity keeps it alive', async () => {
    const { client } = await h.setupAdmin();
    h.clock.advance(6 * DAY);
    expect((await client.get('/api/v1/auth/me')).status).toBe(200);
    h.clock.advance(6 * DAY);
    expect((await client.get('/api/v1/auth/me')).status).toBe(200);
    h.clock.advance(7 * DAY);
    expect((await client.get('/api/v1/auth/me')).status).toBe(401);
  });

  test('a session ends after 30 days however active it is', async () => {
    const { client } = await h.setupAdmin();
    for (let day = 0; day < 29; day++) {
      h.clock.advance(DAY);
      expect((await client.get('/api/v1/auth/me')).status).toBe(200);
    }
    h.clock.advance(DAY);
    expect((await client.get('/api/v1/auth/me')).status).toBe(401);
  });

  test('timeouts follow CLAWLOOPS_SESSION_IDLE_TIMEOUT', async () => {
    h.close();
    h = createHarness({ env: { CLAWLOOPS_SESSION_IDLE_TIMEOUT: '30m' } });
    const { client } = await h.setupAdmin();
    h.clock.advance(31 * 60_000);
    expect((await client.get('/api/v1/auth/me')).status).toBe(401);
  });

  test('a garbage or forged cookie is simply not signed in', async () => {
    for (const cookie of ['clawloops_session=abc', `clawloops_session=${'A'.repeat(43)}`, 'clawloops_session=', 'other=1']) {
      const res = await h.bareClient().get('/api/v1/auth/me').set('Cookie', cookie);
      expect(res.status).toBe(401);
    }
  });

  test('a user lists their sessions, revokes one, and signs out everywhere else', async () => {
    const { client: first } = await h.setupAdmin();
    const second = h.client();
    await second.post('/api/v1/auth/login').set('User-Agent', 'second-browser').send({ username: 'admin', password: STRONG_PASSWORD }).expect(200);
    const third = h.client();
    await third.post('/api/v1/auth/login').send({ username: 'admin', password: STRONG_PASSWORD }).expect(200);

    const list = await first.get('/api/v1/account/sessions');
    expect(list.status).toBe(200);
    expect(list.body.items).toHaveLength(3);
    expect(list.body.items.filter((s: { current: boolean }) => s.current)).toHaveLength(1);
    const secondSession = list.body.items.find((s: { userAgent: string | null }) => s.userAgent === 'second-browser');
    expect(secondSession).toMatchObject({ ip: expect.any(String), createdAt: expect.any(String), lastSeenAt: expect.any(String) });

    expect((await first.delete(`/api/v1/account/sessions/${secondSession.id}`)).status).toBe(204);
    expect((await second.get('/api/v1/auth/me')).status).toBe(401);
    expect((await third.get('/api/v1/auth/me')).status).toBe(200);

    const others = await first.post('/api/v1/account/sessions/revoke-others');
    expect(others.body).toEqual({ revoked: 1 });
    expect((await third.get('/api/v1/auth/me')).status).toBe(401);
    expect((await first.get('/api/v1/auth/me')).status).toBe(200);
  });

  test("nobody can see or revoke another user's session", async () => {
    const { client: admin } = await h.setupAdmin();
    const { client: bob } = await h.createMember(admin, 'bob');
    const adminSessions = await admin.get('/api/v1/account/sessions');
    const adminSessionId = adminSessions.body.items[0].id as string;
    const res = await bob.delete(`/api/v1/account/sessions/${adminSessionId}`);
    expect(res.status).toBe(404);
    expect(errorCode(res)).toBe('SESSION_NOT_FOUND');
    expect((await admin.get('/api/v1/auth/me')).status).toBe(200);
    const bobSessions = await bob.get('/api/v1/account/sessions');
    expect(bobSessions.body.items.map((s: { id: string }) => s.id)).not.toContain(adminSessionId);
    expect((await bob.delete('/api/v1/account/sessions/not-a-uuid')).status).toBe(400);
  });
});

describe('password change', () => {
  test('needs the current password, applies the policy, and ends every other session', async () => {
    const { client } = await h.setupAdmin();
    const other = h.client();
    await other.post('/api/v1/auth/login').send({ username: 'admin', password: STRONG_PASSWORD }).expect(200);

    const wrong = await client.post('/api/v1/account/password').send({ currentPassword: 'nope nope nope', newPassword: OTHER_STRONG_PASSWORD });
    expect(wrong.status).toBe(400);
    expect(errorCode(wrong)).toBe('INVALID_CURRENT_PASSWORD');

    for (const newPassword of ['short', 'admin', 'admin12345', 'password123', 'aaaaaaaaaaaa']) {
      const weak = await client.post('/api/v1/account/password').send({ currentPassword: STRONG_PASSWORD, newPassword });
      expect([weak.status, errorCode(weak)]).toEqual([400, 'WEAK_PASSWORD']);
    }
    const same = await client.post('/api/v1/account/password').send({ currentPassword: STRONG_PASSWORD, newPassword: STRONG_PASSWORD });
    expect(errorCode(same)).toBe('PASSWORD_UNCHANGED');

    const ok = await client.post('/api/v1/account/password').send({ currentPassword: STRONG_PASSWORD, newPassword: OTHER_STRONG_PASSWORD });
    expect(ok.status).toBe(204);
    expect((await client.get('/api/v1/auth/me')).status).toBe(200);
    expect((await other.get('/api/v1/auth/me')).status).toBe(401);

    const oldLogin = await h.bareClient().post('/api/v1/auth/login').send({ username: 'admin', password: STRONG_PASSWORD });
    expect(oldLogin.status).toBe(401);
    const newLogin = await h.bareClient().post('/api/v1/auth/login').send({ username: 'admin', password: OTHER_STRONG_PASSWORD });
    expect(newLogin.status).toBe(200);
  });

  test('a forced change gates everything but me, logout and the change itself, then lifts', async () => {
    const { client: admin } = await h.setupAdmin();
    const created = await admin.post('/api/v1/admin/users').send({ username: 'carol', role: 'member' });
    const temporaryPassword = created.body.temporaryPassword as string;
    const carol = h.client();
    const login = await carol.post('/api/v1/auth/login').send({ username: 'carol', password: temporaryPassword });
    expect(login.body.user.mustChangePassword).toBe(true);

    expect((await carol.get('/api/v1/auth/me')).status).toBe(200);
    const blocked = await carol.get('/api/v1/account/sessions');
    expect([blocked.status, errorCode(blocked)]).toEqual([403, 'PASSWORD_CHANGE_REQUIRED']);

    await carol.post('/api/v1/account/password').send({ currentPassword: temporaryPassword, newPassword: STRONG_PASSWORD }).expect(204);
    expect((await carol.get('/api/v1/auth/me')).body.user.mustChangePassword).toBe(false);
    expect((await carol.get('/api/v1/account/sessions')).status).toBe(200);
  });
});

describe('cross-origin protection', () => {
  test('a state-changing request with the session cookie from another origin is refused with 403', async () => {
    const { client } = await h.setupAdmin();
    for (const origin of ['http://evil.example', 'http://alice.platform.test:8080', 'https://platform.test:8080', 'null']) {
      const res = await client.post('/api/v1/admin/invitations').set('Origin', origin).send({ role: 'member' });
      expect([res.status, errorCode(res)]).toEqual([403, 'ORIGIN_NOT_ALLOWED']);
    }
    expect((h.platform.db.prepare('SELECT COUNT(*) AS n FROM invitations').get() as { n: number }).n).toBe(0);
  });

  test('without Origin the Referer decides; with neither, a cookie-carrying request is refused', async () => {
    await h.setupAdmin();
    const bare = h.bareClient();
    await bare.post('/api/v1/auth/login').send({ username: 'admin', password: STRONG_PASSWORD }).expect(200);

    const noHeaders = await bare.post('/api/v1/admin/invitations').send({ role: 'member' });
    expect([noHeaders.status, errorCode(noHeaders)]).toEqual([403, 'ORIGIN_NOT_ALLOWED']);
    const badReferer = await bare.post('/api/v1/admin/invitations').set('Referer', 'http://bob.platform.test:8080/page').send({ role: 'member' });
    expect(badReferer.status).toBe(403);
    const goodReferer = await bare.post('/api/v1/admin/invitations').set('Referer', `${PUBLIC_URL}/admin/users`).send({ role: 'member' });
    expect(goodReferer.status).toBe(201);
  });

  test('reads are not origin-checked, and scripts without cookies may sign in', async () => {
    const { client } = await h.setupAdmin();
    expect((await client.get('/api/v1/auth/me').set('Origin', 'http://evil.example')).status).toBe(200);
    expect((await h.bareClient().post('/api/v1/auth/login').send({ username: 'admin', password: STRONG_PASSWORD })).status).toBe(200);
  });

  test('login from a foreign origin is refused (no login CSRF)', async () => {
    await h.setupAdmin();
    const res = await h.bareClient().post('/api/v1/auth/login').set('Origin', 'http://evil.example').send({ username: 'admin', password: STRONG_PASSWORD });
    expect(res.status).toBe(403);
    expect(res.headers['set-cookie']).toBeUndefined();
  });
});

describe('request hygiene', () => {
  test('malformed JSON is a 400 with a JSON error, not a stack trace', async () => {
    const res = await h.bareClient().post('/api/v1/auth/login').set('Content-Type', 'application/json').send('{"username": "admin",');
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: { code: 'MALFORMED_JSON', message: 'The request body is not valid JSON.' } });
  });

  test('an oversized body is a 413', async () => {
    const res = await h.bareClient().post('/api/v1/auth/login').send({ username: 'admin', password: 'x'.repeat(200 * 1024) });
    expect(res.status).toBe(413);
    expect(errorCode(res)).toBe('PAYLOAD_TOO_LARGE');
  });

  test('a non-JSON body is a 415', async () => {
    const res = await h.bareClient().post('/api/v1/auth/login').type('form').send('username=admin&password=x');
    expect(res.status).toBe(415);
    expect(errorCode(res)).toBe('UNSUPPORTED_MEDIA_TYPE');
  });

  test.each([
    ['GET', '/api/v1/does-not-exist'],
    ['POST', '/api/v1/auth/nothing'],
    ['GET', '/nowhere'],
    ['DELETE', '/api/v1/setup'],
  ])('unknown route %s %s is a JSON 404', async (method, path) => {
    const res = await h.bareClient()[method.toLowerCase() as 'get' | 'post' | 'delete'](path);
    expect(res.status).toBe(404);
    expect(errorCode(res)).toBe('NOT_FOUND');
  });

  test('API answers carry no-store and nosniff headers and no X-Powered-By', async () => {
    const res = await h.bareClient().get('/api/v1/setup');
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['x-powered-by']).toBeUndefined();
  });

  test('an unexpected failure is a generic 500 without internals, and is logged', async () => {
    await h.setupAdmin();
    h.platform.db.close();
    const res = await h.bareClient().post('/api/v1/auth/login').send({ username: 'admin', password: STRONG_PASSWORD });
    expect(res.status).toBe(500);
    expect(res.body).toEqual({ error: { code: 'INTERNAL_ERROR', message: 'Something went wrong on the server. The error was logged.' } });
    expect(h.logs.text).toMatch(/unhandled error/);
  });
});

describe('first-run setup', () => {
  test('reports whether setup is needed, refuses a wrong or missing token, and the token works once', async () => {
    const client = h.bareClient();
    expect((await client.get('/api/v1/setup')).body).toEqual({ needed: true });
    const token = h.platform.setup.issueToken() as string;

    const missing = await client.post('/api/v1/setup').send({ username: 'admin', password: STRONG_PASSWORD });
    expect([missing.status, errorCode(missing)]).toEqual([400, 'VALIDATION_FAILED']);
    // The operator's log says why, naming the field (never what was sent).
    expect(h.logs.lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'request' && l.status === 400)).toMatchObject({ error: 'VALIDATION_FAILED', invalid: expect.stringContaining('token') });
    const wrong = await client.post('/api/v1/setup').send({ token: 'x'.repeat(43), username: 'admin', password: STRONG_PASSWORD });
    expect([wrong.status, errorCode(wrong)]).toEqual([403, 'INVALID_SETUP_TOKEN']);
    const weak = await client.post('/api/v1/setup').send({ token, username: 'admin', password: 'admin' });
    expect([weak.status, errorCode(weak)]).toEqual([400, 'WEAK_PASSWORD']);

    const ok = await client.post('/api/v1/setup').send({ token, username: 'Admin', password: STRONG_PASSWORD, displayName: 'Ada Admin' });
    expect(ok.status).toBe(201);
    expect(ok.body.user).toMatchObject({ username: 'admin', displayName: 'Ada Admin', role: 'admin' });
    expect(sessionCookie(ok)).toBeTruthy();
    expect((await client.get('/api/v1/auth/me')).status).toBe(200);

    const replay = await h.bareClient().post('/api/v1/setup').send({ token, username: 'mallory', password: STRONG_PASSWORD });
    expect([replay.status, errorCode(replay)]).toEqual([409, 'SETUP_ALREADY_DONE']);
    expect((await client.get('/api/v1/setup')).body).toEqual({ needed: false });
    expect(h.platform.setup.issueToken()).toBeNull();
  });

  test('each issued token replaces the previous one', async () => {
    const first = h.platform.setup.issueToken() as string;
    const second = h.platform.setup.issueToken() as string;
    expect(first).not.toEqual(second);
    const res = await h.bareClient().post('/api/v1/setup').send({ token: first, username: 'admin', password: STRONG_PASSWORD });
    expect(res.status).toBe(403);
  });

  test('two racing setups with the valid token create exactly one admin', async () => {
    const token = h.platform.setup.issueToken() as string;
    const results = await Promise.all(
      ['admin-one', 'admin-two'].map((username) => h.bareClient().post('/api/v1/setup').send({ token, username, password: STRONG_PASSWORD })),
    );
    expect(results.map((r) => r.status).sort()).toEqual([201, 409]);
    expect((h.platform.db.prepare("SELECT COUNT(*) AS n FROM users WHERE role = 'admin'").get() as { n: number }).n).toBe(1);
  });
});

describe('logs', () => {
  test('never contain passwords, session tokens, invitation secrets or temporary passwords', async () => {
    const { client: admin } = await h.setupAdmin();
    const inv = await admin.post('/api/v1/admin/invitations').send({ role: 'member' });
    const secret = (inv.body.link as string).split('/invite/')[1] as string;
    await h.client().get(`/api/v1/invitations/${secret}`).expect(200);
    const member = h.client();
    const accepted = await member.post(`/api/v1/invitations/${secret}/accept`).send({ username: 'dave', password: OTHER_STRONG_PASSWORD });
    const memberToken = /clawloops_session=([^;]+)/.exec(sessionCookie(accepted))?.[1] as string;
    const reset = await admin.post(`/api/v1/admin/users/${accepted.body.user.id}/password-reset`);
    await h.bareClient().post('/api/v1/auth/login').send({ username: 'admin', password: 'a wrong password guess' });

    const text = h.logs.text;
    expect(h.logs.lines.length).toBeGreaterThan(5);
    for (const secretValue of [STRONG_PASSWORD, OTHER_STRONG_PASSWORD, 'a wrong password guess', secret, memberToken, reset.body.temporaryPassword]) {
      expect(text).not.toContain(secretValue);
    }
    expect(text).toContain('/api/v1/invitations/:secret');
  });
});
