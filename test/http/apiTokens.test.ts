/**
 * Personal API tokens: made by a signed-in person, shown once, used by scripts with
 * `Authorization: Bearer`, held to their scopes, never a way into a workspace, the model gateway
 * or the person's account, and gone when revoked, expired, or their account is disabled or reset.
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import supertest from 'supertest';
import type TestAgent from 'supertest/lib/agent';
import { MAX_TOKENS_PER_USER } from '../../src/domain/apiTokens';
import { alwaysReadyProbe, FakeProvisioner } from '../support/fakeProvisioner';
import { FakeWorkspaceVolumes } from '../support/fakeWorkspaceVolumes';
import { createHarness, errorCode, type Harness } from '../support/harness';
import { closeServer, servePlatform } from '../support/hostClient';

let h: Harness;
let volumeDir: string;
let admin: TestAgent;
let member: TestAgent;
let memberId: string;

beforeEach(async () => {
  volumeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'clawloops-volume-'));
  h = createHarness({
    runtimeProvisioner: new FakeProvisioner(),
    runtimeProbe: alwaysReadyProbe,
    workspaceVolumes: new FakeWorkspaceVolumes(volumeDir),
    files: { volumeRoot: volumeDir, root: path.join(volumeDir, 'workspace') },
  });
  ({ client: admin } = await h.setupAdmin());
  ({ client: member, userId: memberId } = await h.createMember(admin, 'alice'));
});

afterEach(() => {
  h.close();
  fs.rmSync(volumeDir, { recursive: true, force: true });
});

interface Made {
  id: string;
  secret: string;
}

async function makeToken(client: TestAgent, scopes: string[], name = 'script', expiresInDays = 30): Promise<Made> {
  const res = await client.post('/api/v1/account/tokens').send({ name, scopes, expiresInDays });
  if (res.status !== 201) throw new Error(`token: ${res.status} ${JSON.stringify(res.body)}`);
  return { id: res.body.token.id as string, secret: res.body.secret as string };
}

/** A script: no cookies, no Origin, the token in the header. */
const script = (): ReturnType<typeof supertest> => supertest(h.platform.app);
const bearer = (secret: string): string => `Bearer ${secret}`;

describe('creating and listing', () => {
  test('the secret is answered once; the list and the audit log show the token without it', async () => {
    const res = await member.post('/api/v1/account/tokens').send({ name: 'nightly sync', scopes: ['read', 'files'], expiresInDays: 90 });
    expect(res.status).toBe(201);
    const secret = res.body.secret as string;
    expect(secret).toMatch(/^clt_[A-Za-z0-9_-]{43}$/);
    expect(res.body.token).toMatchObject({ name: 'nightly sync', scopes: ['read', 'files'], hint: secret.slice(0, 8), expired: false, lastUsedAt: null });
    expect(Date.parse(res.body.token.expiresAt) - h.clock.now()).toBe(90 * 86_400_000);

    const listed = await member.get('/api/v1/account/tokens');
    expect(listed.status).toBe(200);
    expect(listed.body.items).toHaveLength(1);
    expect(JSON.stringify(listed.body)).not.toContain(secret);

    const me = await script().get('/api/v1/auth/me').set('Authorization', bearer(secret));
    expect(me.status).toBe(200);
    expect(me.body).toMatchObject({ user: { username: 'alice' }, session: null, token: { id: res.body.token.id, scopes: ['read', 'files'] } });
    expect((await member.get('/api/v1/account/tokens')).body.items[0].lastUsedAt).not.toBeNull();

    const audit = await admin.get('/api/v1/admin/audit?action=api_token.*');
    expect(audit.body.items.map((e: { action: string }) => e.action)).toEqual(['api_token.create']);
    expect(JSON.stringify(audit.body)).not.toContain(secret);
    expect(h.logs.text).not.toContain(secret);
  });

  test('bad input is refused with the field named, and a person has at most a fixed number of tokens', async () => {
    const bad = [
      { name: '', scopes: ['read'], expiresInDays: 30 },
      { name: 'x', scopes: [], expiresInDays: 30 },
      { name: 'x', scopes: ['everything'], expiresInDays: 30 },
      { name: 'x', scopes: ['read'], expiresInDays: 0 },
      { name: 'x', scopes: ['read'], expiresInDays: 400 },
      { name: 'x', scopes: ['read'], expiresInDays: 1.5 },
      { name: 'a\u0000b', scopes: ['read'], expiresInDays: 30 },
      { name: 'x', scopes: ['read'], expiresInDays: 30, userId: memberId },
    ];
    for (const body of bad) {
      const res = await member.post('/api/v1/account/tokens').send(body);
      expect([JSON.stringify(body), res.status, errorCode(res)]).toEqual([JSON.stringify(body), 400, 'VALIDATION_FAILED']);
    }
    const adminScope = await member.post('/api/v1/account/tokens').send({ name: 'x', scopes: ['admin'], expiresInDays: 30 });
    expect([adminScope.status, errorCode(adminScope)]).toEqual([403, 'SCOPE_NOT_ALLOWED']);

    for (let i = 0; i < MAX_TOKENS_PER_USER; i++) await makeToken(member, ['read'], `t${i}`);
    const over = await member.post('/api/v1/account/tokens').send({ name: 'one more', scopes: ['read'], expiresInDays: 30 });
    expect([over.status, errorCode(over)]).toEqual([409, 'TOO_MANY_TOKENS']);
  });

  test('tokens are made from the console only: not anonymously, not from another origin, not with a token', async () => {
    const anonymous = await h.client().post('/api/v1/account/tokens').send({ name: 'x', scopes: ['read'], expiresInDays: 30 });
    expect([anonymous.status, errorCode(anonymous)]).toEqual([401, 'AUTH_REQUIRED']);
    const crossSite = await member.post('/api/v1/account/tokens').set('Origin', 'http://alice.platform.test:8080').send({ name: 'x', scopes: ['read'], expiresInDays: 30 });
    expect([crossSite.status, errorCode(crossSite)]).toEqual([403, 'ORIGIN_NOT_ALLOWED']);
    const { secret } = await makeToken(member, ['read', 'runtime', 'files']);
    for (const send of [
      () => script().post('/api/v1/account/tokens').set('Authorization', bearer(secret)).send({ name: 'x', scopes: ['read'], expiresInDays: 30 }),
      () => script().get('/api/v1/account/tokens').set('Authorization', bearer(secret)),
      () => script().get('/api/v1/account/sessions').set('Authorization', bearer(secret)),
      () => script().post('/api/v1/account/password').set('Authorization', bearer(secret)).send({ currentPassword: 'x', newPassword: 'y' }),
      () => script().post('/api/v1/auth/logout').set('Authorization', bearer(secret)),
      () => script().get('/api/v1/auth/session').set('Authorization', bearer(secret)),
      () => script().post('/api/v1/invitations/abc/accept').set('Authorization', bearer(secret)).send({ password: 'x' }),
      () => script().get('/api/v1/setup').set('Authorization', bearer(secret)),
    ]) {
      const res = await send();
      expect([res.status, errorCode(res)]).toEqual([403, 'TOKEN_NOT_ALLOWED']);
    }
  });
});

describe('scopes', () => {
  test('each scope admits its own requests only', async () => {
    const read = await makeToken(member, ['read']);
    const runtime = await makeToken(member, ['runtime']);
    const files = await makeToken(member, ['files']);
    const as = (token: Made) => ({
      get: (url: string) => script().get(url).set('Authorization', bearer(token.secret)),
      post: (url: string, body: object = {}) => script().post(url).set('Authorization', bearer(token.secret)).send(body),
    });

    expect((await as(read).get('/api/v1/runtime')).status).toBe(200);
    expect((await as(read).get('/api/v1/files?path=')).status).toBe(200);
    expect((await as(read).get('/api/v1/usage')).status).toBe(200);
    expect((await as(read).get('/api/v1/models')).status).toBe(200);
    for (const res of [await as(read).post('/api/v1/runtime/start'), await as(read).post('/api/v1/files/mkdir', { path: 'x' })]) {
      expect([res.status, errorCode(res)]).toEqual([403, 'TOKEN_SCOPE_MISSING']);
    }

    const started = await as(runtime).post('/api/v1/runtime/start');
    expect(started.status).toBe(202);
    expect((await as(runtime).get('/api/v1/runtime')).status).toBe(200);
    const runtimeOnFiles = await as(runtime).post('/api/v1/files/mkdir', { path: 'x' });
    expect([runtimeOnFiles.status, errorCode(runtimeOnFiles)]).toEqual([403, 'TOKEN_SCOPE_MISSING']);
    const runtimeOnUsage = await as(runtime).get('/api/v1/usage');
    expect([runtimeOnUsage.status, errorCode(runtimeOnUsage)]).toEqual([403, 'TOKEN_SCOPE_MISSING']);

    expect((await as(files).post('/api/v1/files/mkdir', { path: 'made' })).status).toBe(201);
    const upload = await script().post('/api/v1/files/upload?path=made').set('Authorization', bearer(files.secret)).attach('files', Buffer.from('hello'), { filename: 'a.txt' });
    expect(upload.status).toBe(201);
    const download = await as(files).get('/api/v1/files/download?path=made/a.txt');
    expect([download.status, download.text]).toEqual([200, 'hello']);
    const filesOnRuntime = await as(files).post('/api/v1/runtime/stop');
    expect([filesOnRuntime.status, errorCode(filesOnRuntime)]).toEqual([403, 'TOKEN_SCOPE_MISSING']);

    // A member's tokens never reach the admin API, however the path is spelled.
    for (const url of ['/api/v1/admin/users', '/api/v1/ADMIN/users', '/api/v1/Admin/users/', `/api/v1/admin/users/${memberId}/files?path=`]) {
      const res = await as(read).get(url);
      expect([url, res.status, errorCode(res)]).toEqual([url, 403, 'TOKEN_SCOPE_MISSING']);
    }
  });

  test("an admin token works on the admin API only while its owner is an administrator", async () => {
    const { client: second, userId: secondId } = await h.createMember(admin, 'bob');
    expect((await admin.patch(`/api/v1/admin/users/${secondId}`).send({ role: 'admin' })).status).toBe(200);
    const bobAdmin = h.client();
    expect((await bobAdmin.post('/api/v1/auth/login').send({ username: 'bob', password: 'correct horse battery staple' })).status).toBe(200);
    const token = await makeToken(bobAdmin, ['admin']);
    const users = await script().get('/api/v1/admin/users').set('Authorization', bearer(token.secret));
    expect(users.status).toBe(200);
    const ownRuntime = await script().get('/api/v1/runtime').set('Authorization', bearer(token.secret));
    expect([ownRuntime.status, errorCode(ownRuntime)]).toEqual([403, 'TOKEN_SCOPE_MISSING']);

    expect((await admin.patch(`/api/v1/admin/users/${secondId}`).send({ role: 'member' })).status).toBe(200);
    const demoted = await script().get('/api/v1/admin/users').set('Authorization', bearer(token.secret));
    expect([demoted.status, errorCode(demoted)]).toEqual([403, 'ADMIN_REQUIRED']);
    void second;
  });

  test('a token acts for its owner alone: a session cookie sent with it is ignored, and its Origin does not matter', async () => {
    const read = await makeToken(member, ['read', 'runtime']);
    // The admin's browser cookie rides along; the request is still alice's, with alice's scopes.
    const mixed = await admin.get('/api/v1/auth/me').set('Authorization', bearer(read.secret));
    expect(mixed.body.user.username).toBe('alice');
    const adminApi = await admin.get('/api/v1/admin/users').set('Authorization', bearer(read.secret));
    expect([adminApi.status, errorCode(adminApi)]).toEqual([403, 'TOKEN_SCOPE_MISSING']);
    // No browser attaches a bearer token by itself: the forgery check is for cookies.
    const fromElsewhere = await script().post('/api/v1/runtime/start').set('Origin', 'http://alice.platform.test:8080').set('Authorization', bearer(read.secret)).send({});
    expect(fromElsewhere.status).toBe(202);
  });
});

describe('tokens that do not work', () => {
  test('a malformed, unknown, expired or revoked bearer token is 401 TOKEN_INVALID, never a fall-back to the cookie; other schemes are left alone', async () => {
    const token = await makeToken(member, ['read'], 'short', 1);
    const answers: [string, string][] = [
      ['Bearer', 'empty'],
      ['Bearer a b', 'two words'],
      [`Bearer clt_${'A'.repeat(43)}`, 'unknown'],
      [`Bearer ${token.secret}x`, 'altered'],
    ];
    for (const [header, what] of answers) {
      const res = await member.get('/api/v1/runtime').set('Authorization', header);
      expect([what, res.status, errorCode(res), res.headers['www-authenticate']]).toEqual([what, 401, 'TOKEN_INVALID', 'Bearer realm="ClawLoops API"']);
    }
    // Another scheme is not ours (a proxy in front may use Basic for itself): the cookie counts.
    expect((await member.get('/api/v1/runtime').set('Authorization', 'Basic YWxpY2U6cGFzcw==')).status).toBe(200);
    expect((await script().get('/api/v1/runtime').set('Authorization', 'Basic YWxpY2U6cGFzcw==')).status).toBe(401);
    expect((await script().get('/api/v1/runtime').set('Authorization', bearer(token.secret))).status).toBe(200);
    h.clock.advance(86_400_000);
    const expired = await script().get('/api/v1/runtime').set('Authorization', bearer(token.secret));
    expect([expired.status, errorCode(expired)]).toEqual([401, 'TOKEN_INVALID']);
    expect((await member.get('/api/v1/account/tokens')).body.items[0].expired).toBe(true);

    const other = await makeToken(member, ['read']);
    expect((await member.delete(`/api/v1/account/tokens/${other.id}`)).status).toBe(204);
    const revoked = await script().get('/api/v1/runtime').set('Authorization', bearer(other.secret));
    expect([revoked.status, errorCode(revoked)]).toEqual([401, 'TOKEN_INVALID']);
    const audit = await admin.get('/api/v1/admin/audit?action=api_token.*');
    expect(audit.body.items.map((e: { action: string }) => e.action).sort()).toEqual(['api_token.create', 'api_token.create', 'api_token.revoke']);
  });

  test("nobody revokes someone else's token (it looks like none)", async () => {
    const token = await makeToken(member, ['read']);
    const res = await admin.delete(`/api/v1/account/tokens/${token.id}`);
    expect([res.status, errorCode(res)]).toEqual([404, 'TOKEN_NOT_FOUND']);
    expect((await script().get('/api/v1/runtime').set('Authorization', bearer(token.secret))).status).toBe(200);
  });

  test("disabling the account or an administrator's password reset removes its tokens for good", async () => {
    const beforeDisable = await makeToken(member, ['read']);
    expect((await admin.patch(`/api/v1/admin/users/${memberId}`).send({ status: 'disabled' })).status).toBe(200);
    expect((await script().get('/api/v1/runtime').set('Authorization', bearer(beforeDisable.secret))).status).toBe(401);
    expect((await admin.patch(`/api/v1/admin/users/${memberId}`).send({ status: 'active' })).status).toBe(200);
    // Enabled again, the account does not get its old credentials back.
    expect((await script().get('/api/v1/runtime').set('Authorization', bearer(beforeDisable.secret))).status).toBe(401);

    const signedIn = h.client();
    expect((await signedIn.post('/api/v1/auth/login').send({ username: 'alice', password: 'correct horse battery staple' })).status).toBe(200);
    const beforeReset = await makeToken(signedIn, ['read']);
    const reset = await admin.post(`/api/v1/admin/users/${memberId}/password-reset`).send({});
    expect(reset.status).toBe(200);
    expect((await script().get('/api/v1/runtime').set('Authorization', bearer(beforeReset.secret))).status).toBe(401);
    const audit = await admin.get('/api/v1/admin/audit?action=password.reset');
    expect(audit.body.items[0].detail).toMatchObject({ tokensRevoked: 1 });
  });
});

describe('what a token never opens', () => {
  test('the workspace, the model gateway and forward-auth do not take a token', async () => {
    const token = await makeToken(member, ['read', 'runtime', 'files']);
    expect((await script().post('/api/v1/runtime/start').set('Authorization', bearer(token.secret)).send({})).status).toBe(202);
    const open = await script().get('/_clawloops/open').set('Authorization', bearer(token.secret));
    // Not signed in: the console's sign-in, never a ticket to the workspace.
    expect(open.status).not.toBe(200);
    expect(String(open.headers.location ?? '')).not.toContain('ticket=');
    const models = await script().get('/llm/v1/models').set('Authorization', bearer(token.secret));
    expect(models.status).toBe(401);
    const forward = await script()
      .get('/_clawloops/forward-auth')
      .set('Authorization', bearer(token.secret))
      .set('X-Forwarded-Host', 'alice.platform.test:8080')
      .set('X-Forwarded-Uri', '/')
      .set('X-Forwarded-Proto', 'http')
      .set('X-Forwarded-Method', 'GET');
    expect(forward.status).toBeGreaterThanOrEqual(300);
  });

  test("revoking a token closes the event stream it opened at once", async () => {
    const token = await makeToken(member, ['read']);
    const { server, port } = await servePlatform(h.platform);
    try {
      // Wrapped: a promise resolved with a promise would wait for the stream to close.
      const { closed } = await new Promise<{ closed: Promise<void> }>((resolve, reject) => {
        const req = http.get(
          { host: '127.0.0.1', port, path: '/api/v1/runtime/events', agent: false, headers: { host: 'platform.test:8080', authorization: bearer(token.secret), accept: 'text/event-stream' } },
          (res) => {
            if (res.statusCode !== 200) return reject(new Error(`events: ${res.statusCode}`));
            res.resume();
            resolve({ closed: new Promise<void>((done) => res.once('close', () => done())) });
          },
        );
        req.on('error', () => undefined);
      });
      expect((await member.delete(`/api/v1/account/tokens/${token.id}`)).status).toBe(204);
      await closed;
    } finally {
      await closeServer(server);
    }
  });
});
