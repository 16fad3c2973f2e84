import type TestAgent from 'supertest/lib/agent';
import { hashSecret } from '../../src/lib/secrets';
import { createHarness, errorCode, PUBLIC_URL, STRONG_PASSWORD, type Harness } from '../support/harness';

const HOUR = 3_600_000;

let h: Harness;
let admin: TestAgent;
beforeEach(async () => {
  h = createHarness();
  admin = (await h.setupAdmin()).client;
});
afterEach(() => h.close());

interface CreatedInvitation {
  id: string;
  secret: string;
  link: string;
  body: Record<string, unknown>;
}

async function invite(body: Record<string, unknown> = {}): Promise<CreatedInvitation> {
  const res = await admin.post('/api/v1/admin/invitations').send(body);
  expect(res.status).toBe(201);
  const link = res.body.link as string;
  return { id: res.body.invitation.id as string, secret: link.split('/invite/')[1] ?? '', link, body: res.body as Record<string, unknown> };
}

function accept(secret: string, body: Record<string, unknown>) {
  return h.client().post(`/api/v1/invitations/${secret}/accept`).send(body);
}

describe('creating an invitation', () => {
  test('returns a link under the public URL exactly once; the server keeps only a hash of its secret', async () => {
    const created = await invite({ role: 'member', email: 'bob@example.com', expiresInHours: 24 });
    expect(created.link).toMatch(new RegExp(`^${PUBLIC_URL}/invite/[A-Za-z0-9_-]{43}$`));
    expect(created.body.invitation).toMatchObject({ role: 'member', email: 'bob@example.com', status: 'pending' });

    const listed = await admin.get('/api/v1/admin/invitations');
    expect(listed.status).toBe(200);
    expect(listed.body.total).toBe(1);
    expect(JSON.stringify(listed.body)).not.toContain(created.secret);

    const dump = JSON.stringify(h.platform.db.prepare('SELECT * FROM invitations').all());
    expect(dump).not.toContain(created.secret);
    expect(dump).toContain(hashSecret(created.secret));
    expect(h.logs.text).not.toContain(created.secret);
    const audit = JSON.stringify(h.platform.db.prepare('SELECT * FROM audit_log').all());
    expect(audit).not.toContain(created.secret);
  });

  test('each invitation has a different secret', async () => {
    const a = await invite();
    const b = await invite();
    expect(a.secret).not.toBe(b.secret);
  });

  test.each<[Record<string, unknown>, string]>([
    [{ role: 'owner' }, 'role'],
    [{ expiresInHours: 0 }, 'expiresInHours'],
    [{ expiresInHours: 721 }, 'expiresInHours'],
    [{ expiresInHours: 1.5 }, 'expiresInHours'],
    [{ email: 'not-an-email' }, 'email'],
    [{ colour: 'red' }, 'colour'],
  ])('rejects %j with 400 naming %s', async (body, field) => {
    const res = await admin.post('/api/v1/admin/invitations').send(body);
    expect(res.status).toBe(400);
    expect(errorCode(res)).toBe('VALIDATION_FAILED');
    expect(res.body.error.message).toContain(field);
  });

  test('refuses a pre-set username that is invalid or already taken', async () => {
    const bad = await admin.post('/api/v1/admin/invitations').send({ username: 'no_underscores' });
    expect(bad.status).toBe(400);
    const taken = await admin.post('/api/v1/admin/invitations').send({ username: 'admin' });
    expect(taken.status).toBe(409);
    expect(errorCode(taken)).toBe('USERNAME_TAKEN');
  });

  test('is for admins only', async () => {
    const { client: member } = await h.createMember(admin, 'bob');
    const res = await member.post('/api/v1/admin/invitations').send({});
    expect(res.status).toBe(403);
    const anonymous = await h.client().post('/api/v1/admin/invitations').send({});
    expect(anonymous.status).toBe(401);
  });
});

describe('accepting an invitation', () => {
  test('preview shows what the invitation is for, without secrets', async () => {
    const { secret } = await invite({ role: 'admin', username: 'carol', email: 'carol@example.com' });
    const res = await h.bareClient().get(`/api/v1/invitations/${secret}`);
    expect(res.status).toBe(200);
    expect(res.body.invitation).toEqual({
      role: 'admin',
      username: 'carol',
      email: 'carol@example.com',
      expiresAt: new Date(h.clock.now() + 72 * HOUR).toISOString(),
    });
  });

  test('creates the account with the invited role, signs the new user in, and is recorded in the audit log', async () => {
    const { secret, id } = await invite({ role: 'member' });
    const res = await accept(secret, { username: 'Dave', password: STRONG_PASSWORD, displayName: ' Dave D ' });
    expect(res.status).toBe(201);
    expect(res.body.user).toMatchObject({ username: 'dave', displayName: 'Dave D', role: 'member', mustChangePassword: false });
    expect(String(res.headers['set-cookie'])).toMatch(/clawloops_session=/);

    const me = await h.bareClient().get('/api/v1/auth/me').set('Cookie', String(res.headers['set-cookie']).split(';')[0] ?? '');
    expect(me.status).toBe(200);
    expect(me.body.user.username).toBe('dave');

    const listed = await admin.get('/api/v1/admin/invitations');
    expect(listed.body.items[0]).toMatchObject({ id, status: 'accepted', acceptedUserId: res.body.user.id });
    const audit = await admin.get('/api/v1/admin/audit').query({ action: 'invitation.accept' });
    expect(audit.body.items).toHaveLength(1);
    expect(audit.body.items[0].actor.username).toBe('dave');
  });

  test('an invitation for a set username only accepts that username', async () => {
    const { secret } = await invite({ username: 'erin' });
    const wrong = await accept(secret, { username: 'mallory', password: STRONG_PASSWORD });
    expect(wrong.status).toBe(400);
    expect(errorCode(wrong)).toBe('USERNAME_MISMATCH');
    const right = await accept(secret, { password: STRONG_PASSWORD });
    expect(right.status).toBe(201);
    expect(right.body.user.username).toBe('erin');
  });

  test('a weak password or a taken username leaves the invitation usable', async () => {
    const { secret } = await invite();
    const weak = await accept(secret, { username: 'frank', password: 'short' });
    expect(weak.status).toBe(400);
    const taken = await accept(secret, { username: 'admin', password: STRONG_PASSWORD });
    expect(taken.status).toBe(409);
    expect(errorCode(taken)).toBe('USERNAME_TAKEN');
    const ok = await accept(secret, { username: 'frank', password: STRONG_PASSWORD });
    expect(ok.status).toBe(201);
  });

  test('a used link answers 410 on preview and on a replayed accept, and creates nobody else', async () => {
    const { secret } = await invite();
    expect((await accept(secret, { username: 'gina', password: STRONG_PASSWORD })).status).toBe(201);
    const preview = await h.bareClient().get(`/api/v1/invitations/${secret}`);
    expect(preview.status).toBe(410);
    expect(errorCode(preview)).toBe('INVITATION_ALREADY_USED');
    const replay = await accept(secret, { username: 'gina2', password: STRONG_PASSWORD });
    expect(replay.status).toBe(410);
    expect(errorCode(replay)).toBe('INVITATION_ALREADY_USED');
    const users = await admin.get('/api/v1/admin/users');
    expect(users.body.items.map((u: { username: string }) => u.username).sort()).toEqual(['admin', 'gina']);
  });

  test('a revoked link answers 410 INVITATION_REVOKED; revoking twice is harmless; an accepted one cannot be revoked', async () => {
    const { secret, id } = await invite();
    const revoked = await admin.post(`/api/v1/admin/invitations/${id}/revoke`);
    expect(revoked.status).toBe(200);
    expect(revoked.body.invitation.status).toBe('revoked');
    expect((await admin.post(`/api/v1/admin/invitations/${id}/revoke`)).status).toBe(200);
    const res = await accept(secret, { username: 'hank', password: STRONG_PASSWORD });
    expect(res.status).toBe(410);
    expect(errorCode(res)).toBe('INVITATION_REVOKED');

    const used = await invite();
    await accept(used.secret, { username: 'ivy', password: STRONG_PASSWORD });
    const late = await admin.post(`/api/v1/admin/invitations/${used.id}/revoke`);
    expect(late.status).toBe(409);
    expect(errorCode(late)).toBe('INVITATION_ALREADY_ACCEPTED');

    const unknown = await admin.post('/api/v1/admin/invitations/00000000-0000-4000-8000-000000000000/revoke');
    expect(unknown.status).toBe(404);
  });

  test('an expired link answers 410 INVITATION_EXPIRED and is listed as expired', async () => {
    const { secret, id } = await invite({ expiresInHours: 1 });
    h.clock.advance(HOUR - 1);
    expect((await h.bareClient().get(`/api/v1/invitations/${secret}`)).status).toBe(200);
    h.clock.advance(1);
    const res = await accept(secret, { username: 'jack', password: STRONG_PASSWORD });
    expect(res.status).toBe(410);
    expect(errorCode(res)).toBe('INVITATION_EXPIRED');
    const listed = await admin.get('/api/v1/admin/invitations');
    expect(listed.body.items.find((i: { id: string }) => i.id === id).status).toBe('expired');
  });

  test('an unknown or malformed secret is 404, never a crash', async () => {
    for (const secret of ['x', 'A'.repeat(43), "' OR 1=1 --", '%00', 'a'.repeat(200)]) {
      const res = await h.bareClient().get(`/api/v1/invitations/${encodeURIComponent(secret)}`);
      expect(res.status).toBe(404);
      expect(errorCode(res)).toBe('INVITATION_NOT_FOUND');
    }
    const tooLong = await h.bareClient().get(`/api/v1/invitations/${'a'.repeat(201)}`);
    expect(tooLong.status).toBe(400);
  });

  test('of concurrent accepts of one link exactly one succeeds', async () => {
    const { secret } = await invite();
    const results = await Promise.all(
      ['kim', 'lee', 'max', 'ned'].map((username) => accept(secret, { username, password: STRONG_PASSWORD })),
    );
    const statuses = results.map((r) => r.status).sort();
    expect(statuses).toEqual([201, 410, 410, 410]);
    const users = await admin.get('/api/v1/admin/users');
    expect(users.body.total).toBe(2);
  });
});
