import type TestAgent from 'supertest/lib/agent';
import { createHarness, errorCode, OTHER_STRONG_PASSWORD, STRONG_PASSWORD, type Harness } from '../support/harness';

let h: Harness;
let admin: TestAgent;
let adminId: string;
beforeEach(async () => {
  h = createHarness();
  ({ client: admin, userId: adminId } = await h.setupAdmin());
});
afterEach(() => h.close());

const login = (username: string, password: string) =>
  h.bareClient().post('/api/v1/auth/login').send({ username, password });

describe('listing users', () => {
  test('searches by username, display name and email; SQL-looking and wildcard input is matched literally', async () => {
    await admin.post('/api/v1/admin/users').send({ username: 'alice', displayName: 'Alice Liddell', email: 'alice@wonder.land' });
    await admin.post('/api/v1/admin/users').send({ username: 'bob', displayName: 'Bob 100% Real' });
    const byName = await admin.get('/api/v1/admin/users').query({ search: 'liddell' });
    expect(byName.body.items.map((u: { username: string }) => u.username)).toEqual(['alice']);
    const byEmail = await admin.get('/api/v1/admin/users').query({ search: 'wonder.land' });
    expect(byEmail.body.total).toBe(1);

    for (const search of ["' OR 1=1 --", '_', "alice'; DROP TABLE users; --"]) {
      const res = await admin.get('/api/v1/admin/users').query({ search });
      expect(res.status).toBe(200);
      expect(res.body.total).toBe(0);
    }
    const percent = await admin.get('/api/v1/admin/users').query({ search: '100%' });
    expect(percent.body.items.map((u: { username: string }) => u.username)).toEqual(['bob']);
    expect((await admin.get('/api/v1/admin/users')).body.total).toBe(3);
  });

  test('paginates with limit/offset and reports the total; filters by role and status', async () => {
    for (let i = 0; i < 7; i++) await admin.post('/api/v1/admin/users').send({ username: `user-${i}` });
    const first = await admin.get('/api/v1/admin/users').query({ limit: 3, offset: 0 });
    const second = await admin.get('/api/v1/admin/users').query({ limit: 3, offset: 3 });
    const last = await admin.get('/api/v1/admin/users').query({ limit: 3, offset: 6 });
    expect(first.body).toMatchObject({ total: 8, limit: 3, offset: 0 });
    expect(first.body.items).toHaveLength(3);
    expect(last.body.items).toHaveLength(2);
    const seen = [...first.body.items, ...second.body.items, ...last.body.items].map((u: { id: string }) => u.id);
    expect(new Set(seen).size).toBe(8);

    const admins = await admin.get('/api/v1/admin/users').query({ role: 'admin' });
    expect(admins.body.items.map((u: { username: string }) => u.username)).toEqual(['admin']);
  });

  test.each<[Record<string, string>]>([[{ limit: '0' }], [{ limit: '201' }], [{ offset: '-1' }], [{ limit: 'ten' }], [{ role: 'root' }]])(
    'rejects the query %j with 400',
    async (query) => {
      const res = await admin.get('/api/v1/admin/users').query(query);
      expect(res.status).toBe(400);
      expect(errorCode(res)).toBe('VALIDATION_FAILED');
    },
  );

  test('never exposes password hashes', async () => {
    const res = await admin.get('/api/v1/admin/users');
    expect(JSON.stringify(res.body)).not.toMatch(/scrypt|passwordHash|password_hash/);
  });
});

describe('creating users directly', () => {
  test('without a password: a temporary one is returned once, and the user must change it before anything else', async () => {
    const res = await admin.post('/api/v1/admin/users').send({ username: 'carol', role: 'member', email: 'carol@example.com' });
    expect(res.status).toBe(201);
    expect(res.body.user).toMatchObject({ username: 'carol', role: 'member', mustChangePassword: true });
    const temporary = res.body.temporaryPassword as string;
    expect(temporary.length).toBeGreaterThanOrEqual(12);
    expect(h.logs.text).not.toContain(temporary);
    expect(JSON.stringify((await admin.get(`/api/v1/admin/users/${res.body.user.id}`)).body)).not.toContain(temporary);

    const carol = h.client();
    expect((await carol.post('/api/v1/auth/login').send({ username: 'carol', password: temporary })).status).toBe(200);
    const blocked = await carol.get('/api/v1/account/sessions');
    expect(blocked.status).toBe(403);
    expect(errorCode(blocked)).toBe('PASSWORD_CHANGE_REQUIRED');
    const changed = await carol.post('/api/v1/account/password').send({ currentPassword: temporary, newPassword: STRONG_PASSWORD });
    expect(changed.status).toBe(204);
    expect((await carol.get('/api/v1/account/sessions')).status).toBe(200);
  });

  test('with a chosen password: no temporary password is returned, and the user must still change it', async () => {
    const res = await admin.post('/api/v1/admin/users').send({ username: 'dan', password: STRONG_PASSWORD, role: 'admin' });
    expect(res.status).toBe(201);
    expect(res.body.temporaryPassword).toBeNull();
    expect(res.body.user).toMatchObject({ role: 'admin', mustChangePassword: true });
  });

  test('refuses taken, reserved-looking or invalid usernames and weak passwords', async () => {
    const taken = await admin.post('/api/v1/admin/users').send({ username: 'ADMIN' });
    expect(taken.status).toBe(409);
    expect(errorCode(taken)).toBe('USERNAME_TAKEN');
    for (const username of ['a', '-lead', 'has space', 'x'.repeat(32), 'ünïcode']) {
      const res = await admin.post('/api/v1/admin/users').send({ username });
      expect(res.status).toBe(400);
    }
    const weak = await admin.post('/api/v1/admin/users').send({ username: 'erin', password: 'abc' });
    expect(weak.status).toBe(400);
    expect((await admin.get('/api/v1/admin/users')).body.total).toBe(1);
  });
});

describe('changing users', () => {
  test('PATCH changes profile, role and status, and records what changed in the audit log', async () => {
    const { userId } = await h.createMember(admin, 'fred');
    const res = await admin.patch(`/api/v1/admin/users/${userId}`).send({ displayName: 'Fred F', email: 'fred@example.com', role: 'admin' });
    expect(res.status).toBe(200);
    expect(res.body.user).toMatchObject({ displayName: 'Fred F', email: 'fred@example.com', role: 'admin' });
    const cleared = await admin.patch(`/api/v1/admin/users/${userId}`).send({ email: null });
    expect(cleared.body.user.email).toBeNull();

    const audit = await admin.get('/api/v1/admin/audit').query({ action: 'user.update' });
    expect(audit.body.items[1].detail.changed).toEqual({
      displayName: { from: 'fred', to: 'Fred F' },
      email: { from: null, to: 'fred@example.com' },
      role: { from: 'member', to: 'admin' },
    });
  });

  test('an empty or unknown change is a 400; an unknown id is a 404; a malformed id is a 400', async () => {
    const { userId } = await h.createMember(admin, 'gail');
    expect((await admin.patch(`/api/v1/admin/users/${userId}`).send({})).status).toBe(400);
    expect((await admin.patch(`/api/v1/admin/users/${userId}`).send({ username: 'other' })).status).toBe(400);
    expect((await admin.patch(`/api/v1/admin/users/${userId}`).send({ role: 'root' })).status).toBe(400);
    const missing = await admin.patch('/api/v1/admin/users/00000000-0000-4000-8000-000000000000').send({ role: 'member' });
    expect(missing.status).toBe(404);
    expect(errorCode(missing)).toBe('USER_NOT_FOUND');
    expect((await admin.get('/api/v1/admin/users/not-an-id')).status).toBe(400);
  });

  test('disabling a user ends all their sessions at once and blocks sign-in; enabling lets them back', async () => {
    const { client: member, userId } = await h.createMember(admin, 'hana');
    expect((await member.get('/api/v1/auth/me')).status).toBe(200);
    const res = await admin.patch(`/api/v1/admin/users/${userId}`).send({ status: 'disabled' });
    expect(res.status).toBe(200);
    expect((await member.get('/api/v1/auth/me')).status).toBe(401);
    const denied = await login('hana', STRONG_PASSWORD);
    expect(denied.status).toBe(401);
    expect(errorCode(denied)).toBe('INVALID_CREDENTIALS');

    await admin.patch(`/api/v1/admin/users/${userId}`).send({ status: 'active' });
    expect((await login('hana', STRONG_PASSWORD)).status).toBe(200);
  });

  test('an admin cannot disable, demote or delete themselves, nor remove the last active admin', async () => {
    const self = await admin.patch(`/api/v1/admin/users/${adminId}`).send({ status: 'disabled' });
    expect(self.status).toBe(409);
    expect(errorCode(self)).toBe('CANNOT_MODIFY_SELF');
    expect(errorCode(await admin.patch(`/api/v1/admin/users/${adminId}`).send({ role: 'member' }))).toBe('CANNOT_MODIFY_SELF');
    expect(errorCode(await admin.delete(`/api/v1/admin/users/${adminId}`))).toBe('CANNOT_MODIFY_SELF');

    // A second admin may demote the first, but then not themselves: one active admin always remains.
    const second = await admin.post('/api/v1/admin/users').send({ username: 'ivan', role: 'admin', password: STRONG_PASSWORD });
    const ivan = h.client();
    await ivan.post('/api/v1/auth/login').send({ username: 'ivan', password: STRONG_PASSWORD });
    await ivan.post('/api/v1/account/password').send({ currentPassword: STRONG_PASSWORD, newPassword: OTHER_STRONG_PASSWORD });
    expect((await ivan.patch(`/api/v1/admin/users/${adminId}`).send({ role: 'member' })).status).toBe(200);
    const last = await ivan.patch(`/api/v1/admin/users/${second.body.user.id}`).send({ role: 'member' });
    expect(last.status).toBe(409);
    expect(errorCode(last)).toBe('CANNOT_MODIFY_SELF');
    // The demoted admin was signed out by the role change: nothing granted as an admin outlives it.
    expect((await admin.get('/api/v1/admin/users')).status).toBe(401);
  });

  test('the last active admin cannot be removed by disabling the other admins first', async () => {
    const other = await admin.post('/api/v1/admin/users').send({ username: 'jade', role: 'admin' });
    expect((await admin.patch(`/api/v1/admin/users/${other.body.user.id}`).send({ status: 'disabled' })).status).toBe(200);
    // jade is disabled, so admin is the last active admin; a disabled admin may still be deleted.
    expect((await admin.delete(`/api/v1/admin/users/${other.body.user.id}`)).status).toBe(204);
    const counts = h.platform.db.prepare("SELECT COUNT(*) AS n FROM users WHERE role = 'admin' AND status = 'active'").get() as { n: number };
    expect(counts.n).toBe(1);
  });

  test('DELETE removes the account, its sessions and its sign-in, and keeps the audit trail', async () => {
    const { client: member, userId } = await h.createMember(admin, 'kate');
    expect((await admin.delete(`/api/v1/admin/users/${userId}`)).status).toBe(204);
    expect((await member.get('/api/v1/auth/me')).status).toBe(401);
    expect((await login('kate', STRONG_PASSWORD)).status).toBe(401);
    expect((await admin.get(`/api/v1/admin/users/${userId}`)).status).toBe(404);
    expect((await admin.delete(`/api/v1/admin/users/${userId}`)).status).toBe(404);
    const audit = await admin.get('/api/v1/admin/audit').query({ action: 'user.delete' });
    expect(audit.body.items[0].target).toMatchObject({ type: 'user', id: userId, label: 'kate' });
    // The name is free again.
    expect((await admin.post('/api/v1/admin/users').send({ username: 'kate' })).status).toBe(201);
  });

  test('password reset returns a temporary password once, ends every session of the user, and forces a change', async () => {
    const { client: member, userId } = await h.createMember(admin, 'liam');
    const res = await admin.post(`/api/v1/admin/users/${userId}/password-reset`);
    expect(res.status).toBe(200);
    const temporary = res.body.temporaryPassword as string;
    expect(res.body.user.mustChangePassword).toBe(true);
    expect((await member.get('/api/v1/auth/me')).status).toBe(401);
    expect((await login('liam', STRONG_PASSWORD)).status).toBe(401);
    expect((await login('liam', temporary)).status).toBe(200);
    expect(h.logs.text).not.toContain(temporary);
    expect(JSON.stringify(h.platform.db.prepare('SELECT * FROM audit_log').all())).not.toContain(temporary);

    const self = await admin.post(`/api/v1/admin/users/${adminId}/password-reset`);
    expect(self.status).toBe(409);
    expect(errorCode(self)).toBe('CANNOT_MODIFY_SELF');
  });

  test('members cannot reach any admin endpoint', async () => {
    const { client: member, userId } = await h.createMember(admin, 'mia');
    const attempts = [
      member.get('/api/v1/admin/users'),
      member.post('/api/v1/admin/users').send({ username: 'evil', role: 'admin' }),
      member.patch(`/api/v1/admin/users/${userId}`).send({ role: 'admin' }),
      member.delete(`/api/v1/admin/users/${adminId}`),
      member.post(`/api/v1/admin/users/${adminId}/password-reset`),
      member.get('/api/v1/admin/audit'),
    ];
    for (const res of await Promise.all(attempts)) {
      expect(res.status).toBe(403);
      expect(errorCode(res)).toBe('ADMIN_REQUIRED');
    }
    expect((await admin.get(`/api/v1/admin/users/${userId}`)).body.user.role).toBe('member');
  });
});

describe('audit log', () => {
  test('records who did what, filterable by actor, action and time, newest first, paginated', async () => {
    await h.createMember(admin, 'nora');
    h.clock.advance(60_000);
    const mark = new Date(h.clock.now()).toISOString();
    h.clock.advance(1_000);
    await admin.post('/api/v1/admin/users').send({ username: 'otto' });
    const all = await admin.get('/api/v1/admin/audit');
    expect(all.status).toBe(200);
    const actions = all.body.items.map((e: { action: string }) => e.action);
    expect(actions[0]).toBe('user.create');
    expect(actions).toEqual(expect.arrayContaining(['setup.complete', 'invitation.create', 'invitation.accept', 'user.create']));

    const byActor = await admin.get('/api/v1/admin/audit').query({ actor: 'nora' });
    expect(byActor.body.items.every((e: { actor: { username: string } }) => e.actor.username === 'nora')).toBe(true);
    expect(byActor.body.total).toBeGreaterThan(0);

    const since = await admin.get('/api/v1/admin/audit').query({ from: mark });
    expect(since.body.items.map((e: { action: string }) => e.action)).toEqual(['user.create']);
    const before = await admin.get('/api/v1/admin/audit').query({ to: mark });
    expect(before.body.items.map((e: { action: string }) => e.action)).not.toContain('user.create');

    const paged = await admin.get('/api/v1/admin/audit').query({ limit: 1, offset: 1 });
    expect(paged.body.items).toHaveLength(1);
    expect(paged.body.total).toBe(all.body.total);
    expect(paged.body.items[0].id).toBe(all.body.items[1].id);

    expect((await admin.get('/api/v1/admin/audit').query({ from: 'yesterday' })).status).toBe(400);
  });

  test('cannot be changed or deleted, even with direct SQL', async () => {
    const db = h.platform.db;
    expect(() => db.prepare("UPDATE audit_log SET action = 'forged'").run()).toThrow(/append-only/);
    expect(() => db.prepare('DELETE FROM audit_log').run()).toThrow(/append-only/);
    const count = db.prepare('SELECT COUNT(*) AS n FROM audit_log').get() as { n: number };
    expect(count.n).toBeGreaterThan(0);
  });
});
