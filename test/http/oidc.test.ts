/**
 * Single sign-on's rules over HTTP with the protocol stood in (test/support/fakeOidcClient.ts):
 * who a provider's identity signs in as (a linked account, a verified email's account or
 * invitation, a created one), who is refused and why, roles from the admin group, disabled
 * accounts, the transaction's one use, and the audit trail. The protocol itself (openid-client
 * against a real provider) is test/process/oidc.test.ts.
 */
import type TestAgent from 'supertest/lib/agent';
import { FAKE_ISSUER, FakeOidcClient } from '../support/fakeOidcClient';
import { createHarness, errorCode, STRONG_PASSWORD, type Harness } from '../support/harness';

const OIDC_ENV = {
  CLAWLOOPS_OIDC_ISSUER: FAKE_ISSUER,
  CLAWLOOPS_OIDC_CLIENT_ID: 'clawloops',
  CLAWLOOPS_OIDC_CLIENT_SECRET: 'a client secret',
  CLAWLOOPS_OIDC_DISPLAY_NAME: 'Example SSO',
};

type Claims = { sub: string } & Record<string, unknown>;

let h: Harness;
let idp: FakeOidcClient;
let admin: TestAgent;

async function start(env: Record<string, string> = {}): Promise<void> {
  idp = new FakeOidcClient();
  h = createHarness({ env: { ...OIDC_ENV, ...env }, oidcClient: idp });
  admin = (await h.setupAdmin()).client;
}

afterEach(() => h.close());

/** The whole round trip a browser makes: start, the provider's page (signed in with `claims`), the callback. */
async function signIn(client: TestAgent, claims: Claims, next?: string) {
  const started = await client.get(`/api/v1/auth/oidc/start${next ? `?next=${encodeURIComponent(next)}` : ''}`);
  expect(started.status).toBe(303);
  const query = idp.authorize(started.headers.location as string, claims);
  return client.get(`/api/v1/auth/oidc/callback${query}`);
}

const refusedWith = (res: { status: number; headers: Record<string, unknown> }) => {
  expect(res.status).toBe(303);
  expect(String(res.headers['set-cookie'] ?? '')).not.toMatch(/clawloops_session=[^;]/);
  return new URL(res.headers.location as string, 'http://x').searchParams.get('reason');
};

async function auditActions(action: string): Promise<Array<{ actor: { username: string } | null; target: { label: string | null } | null; detail: Record<string, unknown> }>> {
  const res = await admin.get(`/api/v1/admin/audit?action=${encodeURIComponent(action)}&limit=100`);
  expect(res.status).toBe(200);
  return res.body.items;
}

async function me(client: TestAgent) {
  const res = await client.get('/api/v1/auth/me');
  expect(res.status).toBe(200);
  return res.body.user as { id: string; username: string; role: string; email: string | null; displayName: string; mustChangePassword: boolean };
}

const alice: Claims = { sub: 'sub-alice', email: 'alice@example.com', email_verified: true, preferred_username: 'alice', name: 'Alice Liddell', groups: ['staff'] };

describe('sign-in methods', () => {
  test('without a provider: passwords only', async () => {
    h = createHarness();
    const res = await h.client().get('/api/v1/auth/methods');
    expect(res.body).toEqual({ password: true, oidc: null });
    expect((await h.client().get('/api/v1/auth/oidc/start')).status).toBe(404);
  });

  test('with a provider: its button next to passwords; with CLAWLOOPS_OIDC_ONLY password sign-in is refused but setup still works', async () => {
    await start();
    expect((await h.client().get('/api/v1/auth/methods')).body).toEqual({ password: true, oidc: { name: 'Example SSO' } });
    h.close();
    await start({ CLAWLOOPS_OIDC_ONLY: 'true' });
    expect((await h.client().get('/api/v1/auth/methods')).body).toEqual({ password: false, oidc: { name: 'Example SSO' } });
    const res = await h.client().post('/api/v1/auth/login').send({ username: 'admin', password: STRONG_PASSWORD });
    expect([res.status, errorCode(res)]).toEqual([403, 'PASSWORD_SIGN_IN_DISABLED']);
    // setupAdmin() above ran the first-run setup with a password and is signed in.
    expect((await me(admin)).role).toBe('admin');
  });
});

describe('first sign-in', () => {
  test('a verified email finds the existing account and links it; later the subject finds it even with a new email', async () => {
    await start();
    const created = await admin.post('/api/v1/admin/users').send({ username: 'alice', email: 'Alice@Example.com', password: STRONG_PASSWORD });
    expect(created.status).toBe(201);
    const browser = h.client();
    const res = await signIn(browser, alice);
    expect([res.status, res.headers.location]).toEqual([303, '/']);
    expect(String(res.headers['set-cookie'])).toMatch(/clawloops_session=[^;]+; .*HttpOnly/);
    expect(await me(browser)).toMatchObject({ id: created.body.user.id, username: 'alice', mustChangePassword: false });
    // The temporary password the admin set is gone with the forced change it came with.
    expect((await h.client().post('/api/v1/auth/login').send({ username: 'alice', password: STRONG_PASSWORD })).status).toBe(401);
    expect(await auditActions('oidc.temporary_password_cleared')).toHaveLength(1);
    expect(await auditActions('oidc.link')).toEqual([expect.objectContaining({ detail: expect.objectContaining({ issuer: FAKE_ISSUER, subject: 'sub-alice', via: 'email' }) })]);
    expect(await auditActions('login.success')).toContainEqual(expect.objectContaining({ actor: expect.objectContaining({ username: 'alice' }), detail: expect.objectContaining({ method: 'oidc' }) }));

    const later = h.client();
    await signIn(later, { ...alice, email: 'alice.liddell@elsewhere.example', preferred_username: 'someone-else' });
    expect((await me(later)).id).toBe(created.body.user.id);
  });

  test('an email the provider does not vouch for matches nothing: refused with a reason, and audited', async () => {
    await start();
    await admin.post('/api/v1/admin/users').send({ username: 'alice', email: 'alice@example.com', password: STRONG_PASSWORD });
    const browser = h.client();
    expect(refusedWith(await signIn(browser, { ...alice, email_verified: false }))).toBe('email_unverified');
    expect((await browser.get('/api/v1/auth/me')).status).toBe(401);
    expect(refusedWith(await signIn(browser, { ...alice, email_verified: 'true' }))).toBe('email_unverified');
    const refusals = await auditActions('oidc.refused');
    expect(refusals).toHaveLength(2);
    expect(refusals[0]?.detail).toMatchObject({ reason: 'email_unverified', subject: 'sub-alice', emailVerified: false });
  });

  test('an open invitation for the verified email is accepted: the account gets its role and username', async () => {
    await start();
    const inv = await admin.post('/api/v1/admin/invitations').send({ role: 'admin', username: 'ally', email: 'alice@example.com' });
    expect(inv.status).toBe(201);
    const browser = h.client();
    await signIn(browser, alice);
    expect(await me(browser)).toMatchObject({ username: 'ally', role: 'admin', email: 'alice@example.com', displayName: 'Alice Liddell' });
    const listed = await admin.get('/api/v1/admin/invitations');
    expect(listed.body.items[0]).toMatchObject({ status: 'accepted' });
    expect(await auditActions('invitation.accept')).toEqual([expect.objectContaining({ detail: expect.objectContaining({ method: 'oidc', role: 'admin' }) })]);
    // It is used: a second person with the same email gets nothing from it.
    expect(refusedWith(await signIn(h.client(), { ...alice, sub: 'sub-other' }))).toBe('ambiguous');
  });

  test('an invitation whose username was taken meanwhile ends on the refusal page, not in a JSON error', async () => {
    await start();
    expect((await admin.post('/api/v1/admin/invitations').send({ role: 'member', username: 'ally', email: 'alice@example.com' })).status).toBe(201);
    expect((await admin.post('/api/v1/admin/users').send({ username: 'ally', password: STRONG_PASSWORD })).status).toBe(201);
    expect(refusedWith(await signIn(h.client(), alice))).toBe('failed');
    expect(h.logs.text).toContain('"code":"USERNAME_TAKEN"');
  });

  test('nobody known and no auto-create: refused (no_account), no account made', async () => {
    await start();
    expect(refusedWith(await signIn(h.client(), alice))).toBe('no_account');
    const users = await admin.get('/api/v1/admin/users');
    expect(users.body.items.map((u: { username: string }) => u.username)).toEqual(['admin']);
  });

  test('with auto-create: a member whose username comes from the claim, cleaned and made unique; the admin group makes an admin', async () => {
    await start({ CLAWLOOPS_OIDC_AUTO_CREATE: 'true', CLAWLOOPS_OIDC_ADMIN_GROUP: 'clawloops-admins' });
    const first = h.client();
    await signIn(first, { sub: 's1', preferred_username: 'Zoë.Admin', email: 'zoe@example.com', email_verified: true });
    expect(await me(first)).toMatchObject({ username: 'zoe-admin', role: 'member', email: 'zoe@example.com' });
    const second = h.client();
    await signIn(second, { sub: 's2', preferred_username: 'zoe-admin', email: 'z2@example.com', email_verified: false, groups: ['clawloops-admins'] });
    expect(await me(second)).toMatchObject({ username: 'zoe-admin-2', role: 'admin', email: null });
    const third = h.client();
    await signIn(third, { sub: 's3', preferred_username: '张伟', email: 'zhang.wei@example.com', email_verified: true });
    expect((await me(third)).username).toBe('zhang-wei');
    expect((await auditActions('oidc.user_create')).map((e) => e.target?.label).sort()).toEqual(['zhang-wei', 'zoe-admin', 'zoe-admin-2']);
    // The password set for such an account is random and unknown: it cannot sign in with one.
    const pw = await h.client().post('/api/v1/auth/login').send({ username: 'zoe-admin', password: STRONG_PASSWORD });
    expect(pw.status).toBe(401);
  });
});

describe('who may come in', () => {
  test('allowed groups and email domains', async () => {
    await start({ CLAWLOOPS_OIDC_AUTO_CREATE: 'true', CLAWLOOPS_OIDC_ALLOWED_GROUPS: 'staff, contractors', CLAWLOOPS_OIDC_ALLOWED_EMAIL_DOMAINS: 'example.com' });
    expect(refusedWith(await signIn(h.client(), { ...alice, groups: ['visitors'] }))).toBe('not_allowed');
    expect(refusedWith(await signIn(h.client(), { ...alice, groups: undefined }))).toBe('not_allowed');
    expect(refusedWith(await signIn(h.client(), { ...alice, email: 'alice@example.org' }))).toBe('not_allowed');
    expect(refusedWith(await signIn(h.client(), { ...alice, email_verified: false }))).toBe('not_allowed');
    const ok = h.client();
    expect((await signIn(ok, alice)).headers.location).toBe('/');
    expect((await me(ok)).username).toBe('alice');
  });

  test('an account disabled in ClawLoops stays out whatever the provider says', async () => {
    await start({ CLAWLOOPS_OIDC_AUTO_CREATE: 'true' });
    const browser = h.client();
    await signIn(browser, alice);
    const { id } = await me(browser);
    expect((await admin.patch(`/api/v1/admin/users/${id}`).send({ status: 'disabled' })).status).toBe(200);
    expect((await browser.get('/api/v1/auth/me')).status).toBe(401);
    expect(refusedWith(await signIn(h.client(), alice))).toBe('disabled');
    expect((await auditActions('oidc.refused'))[0]).toMatchObject({ target: { label: 'alice' }, detail: { reason: 'disabled' } });
  });
});

describe('roles from the admin group', () => {
  test('with role sync the role follows the group at every sign-in, and a role change ends older sessions', async () => {
    await start({ CLAWLOOPS_OIDC_AUTO_CREATE: 'true', CLAWLOOPS_OIDC_ADMIN_GROUP: 'admins', CLAWLOOPS_OIDC_ROLE_SYNC: 'true' });
    const first = h.client();
    await signIn(first, alice);
    expect((await me(first)).role).toBe('member');
    const second = h.client();
    await signIn(second, { ...alice, groups: ['staff', 'admins'] });
    expect((await me(second)).role).toBe('admin');
    expect((await first.get('/api/v1/auth/me')).status).toBe(401);
    const third = h.client();
    await signIn(third, alice);
    expect((await me(third)).role).toBe('member');
    expect((await auditActions('oidc.role_change')).map((e) => e.detail)).toEqual([
      expect.objectContaining({ from: 'admin', to: 'member' }),
      expect.objectContaining({ from: 'member', to: 'admin' }),
    ]);
  });

  test('without role sync the group decides only when the account is made', async () => {
    await start({ CLAWLOOPS_OIDC_AUTO_CREATE: 'true', CLAWLOOPS_OIDC_ADMIN_GROUP: 'admins' });
    const first = h.client();
    await signIn(first, { ...alice, groups: ['admins'] });
    expect((await me(first)).role).toBe('admin');
    const second = h.client();
    await signIn(second, { ...alice, groups: [] });
    expect((await me(second)).role).toBe('admin');
  });

  test('role sync never demotes the last active admin', async () => {
    await start({ CLAWLOOPS_OIDC_ADMIN_GROUP: 'admins', CLAWLOOPS_OIDC_ROLE_SYNC: 'true' });
    await admin.patch(`/api/v1/admin/users/${(await me(admin)).id}`).send({ email: 'root@example.com' });
    const browser = h.client();
    await signIn(browser, { sub: 'root', email: 'root@example.com', email_verified: true, groups: [] });
    expect(await me(browser)).toMatchObject({ username: 'admin', role: 'admin' });
    expect(await auditActions('oidc.role_sync_skipped')).toHaveLength(1);
  });
});

describe('the transaction', () => {
  test('the callback works once: a replay, a wrong state and a callback without a started sign-in are refused and audited', async () => {
    await start({ CLAWLOOPS_OIDC_AUTO_CREATE: 'true' });
    const browser = h.client();
    const started = await browser.get('/api/v1/auth/oidc/start');
    const query = idp.authorize(started.headers.location as string, alice);
    const cookie = String(started.headers['set-cookie']);
    expect(cookie).toMatch(/^clawloops_oidc=[A-Za-z0-9_-]{43}; Max-Age=600; Path=\/api\/v1\/auth\/oidc; Expires=[^;]+; HttpOnly; SameSite=Lax$/);
    expect((await browser.get(`/api/v1/auth/oidc/callback${query}`)).headers.location).toBe('/');
    // The same callback again, with the same transaction cookie replayed by hand.
    const replay = await h.client().get(`/api/v1/auth/oidc/callback${query}`).set('Cookie', cookie.split(';')[0] as string);
    expect(refusedWith(replay)).toBe('expired');

    const other = h.client();
    const again = await other.get('/api/v1/auth/oidc/start');
    const good = idp.authorize(again.headers.location as string, alice);
    expect(refusedWith(await other.get(`/api/v1/auth/oidc/callback${good.replace(/state=[^&]+/, 'state=tampered')}`))).toBe('failed');
    expect(refusedWith(await h.client().get(`/api/v1/auth/oidc/callback${good}`))).toBe('expired');
    expect(refusedWith(await h.client().get('/api/v1/auth/oidc/callback?error=access_denied'))).toBe('expired');

    const failures = await auditActions('oidc.failure');
    // Three callbacks without a sign-in in progress: one row, then one counting the repeats.
    expect(failures.map((f) => [f.detail.reason, f.detail.count]).sort()).toEqual([
      ['invalid_response', 1],
      ['no_transaction', 1],
      ['no_transaction', 2],
    ]);
    expect(JSON.stringify(failures)).not.toContain(good.slice(6, 20));
  });

  test('over https the transaction cookie is a Secure __Host- cookie, which no other host of the domain can plant', async () => {
    await start({ CLAWLOOPS_PUBLIC_URL: 'https://claw.example.com' });
    const started = await h.client().get('/api/v1/auth/oidc/start').set('Origin', 'https://claw.example.com');
    expect(String(started.headers['set-cookie'])).toMatch(/^__Host-clawloops_oidc=[A-Za-z0-9_-]{43}; Max-Age=600; Path=\/; Expires=[^;]+; HttpOnly; Secure; SameSite=Lax$/);
    // Two of them (one planted): neither is trusted.
    const secret = /=([^;]+)/.exec(String(started.headers['set-cookie']))?.[1];
    const query = idp.authorize(started.headers.location as string, alice);
    const res = await h.bareClient().get(`/api/v1/auth/oidc/callback${query}`).set('Cookie', `__Host-clawloops_oidc=${secret}; __Host-clawloops_oidc=${'x'.repeat(43)}`);
    expect(refusedWith(res)).toBe('expired');
  });

  test('the provider saying no, and a provider that cannot be reached, end on the refusal page', async () => {
    await start();
    const browser = h.client();
    await browser.get('/api/v1/auth/oidc/start');
    expect(refusedWith(await browser.get('/api/v1/auth/oidc/callback?error=access_denied&state=x'))).toBe('provider_error');
    idp.reachable = false;
    const res = await h.client().get('/api/v1/auth/oidc/start');
    expect([res.status, res.headers.location]).toEqual([303, '/sign-in-refused?reason=unavailable']);
  });

  test('after signing in the browser goes back to where it was sent from, on this site only', async () => {
    await start({ CLAWLOOPS_OIDC_AUTO_CREATE: 'true' });
    const res = await signIn(h.client(), alice, '/_clawloops/open?host=alice.localhost');
    expect(res.headers.location).toBe('/_clawloops/open?host=alice.localhost');
    for (const next of ['//evil.example/', 'https://evil.example/', '/\\evil.example']) {
      const bad = await h.client().get(`/api/v1/auth/oidc/start?next=${encodeURIComponent(next)}`);
      expect([bad.status, errorCode(bad)]).toEqual([400, 'VALIDATION_FAILED']);
    }
  });

  test('signing out ends the ClawLoops session; the provider\'s end-session is offered', async () => {
    await start({ CLAWLOOPS_OIDC_AUTO_CREATE: 'true' });
    const browser = h.client();
    await signIn(browser, alice);
    expect((await browser.post('/api/v1/auth/logout')).status).toBe(204);
    expect((await browser.get('/api/v1/auth/me')).status).toBe(401);
    const end = await browser.get('/api/v1/auth/oidc/end-session');
    expect([end.status, end.headers.location]).toEqual([303, `${FAKE_ISSUER}/logout`]);
    idp.endSession = null;
    const none = await browser.get('/api/v1/auth/oidc/end-session');
    expect([none.status, errorCode(none)]).toEqual([404, 'NO_END_SESSION']);
    expect((await auditActions('logout')).length).toBe(1);
    expect((await auditActions('oidc.start'))[0]?.detail).toMatchObject({ issuer: FAKE_ISSUER, count: 1 });
    expect((await auditActions('oidc.end_session')).map((e) => e.detail.available)).toEqual([false, true]);
  });
});
