/**
 * Egress rules and the record of outside connections, over HTTP: the installation's rules and a
 * user's own (what the proxy then judges by), who sees which connections, and the record's
 * retention. The proxy itself is exercised in unit/egressProxy and, from real runtimes, in
 * integration/runtimeEgress; here its reports are added to the record as it adds them.
 */
import { EgressRepository } from '../../src/db/repositories/egressRepository';
import type { EgressOutcome } from '../../src/egress/egressProxy';
import { createHarness, type Harness } from '../support/harness';

let h: Harness;
beforeEach(() => {
  h = createHarness({ env: { CLAWLOOPS_EGRESS_ALLOW: 'git.office.lan', CLAWLOOPS_EGRESS_DENY: 'bad.example.com' } });
});
afterEach(() => h.close());

const PUBLIC = ['93.184.216.34'];
const verdict = (userId: string, host: string, addresses = PUBLIC) => h.platform.egressRules.policyFor(userId).decide(host, addresses).allowed;
const connection = (userId: string, host: string, extra: Partial<EgressOutcome> = {}): EgressOutcome => ({
  userId,
  at: h.clock.now(),
  host,
  port: 443,
  verdict: 'allowed',
  reason: null,
  bytesOut: 100,
  bytesIn: 1000,
  durationMs: 50,
  ...extra,
});

describe('rules', () => {
  test("the environment's rules apply until an administrator changes them; a change applies to the next connection and is audited", async () => {
    const { client: admin, userId: adminId } = await h.setupAdmin();
    const before = await admin.get('/api/v1/admin/egress');
    expect(before.status).toBe(200);
    expect(before.body.installation).toEqual({ profile: 'public', allow: ['git.office.lan'], deny: ['bad.example.com'] });
    expect(verdict(adminId, 'git.office.lan', ['10.1.2.3'])).toBe(true);

    const put = await admin.put('/api/v1/admin/egress').send({ profile: 'public', allow: ['*.intra.example'], deny: ['bad.example.com', 'Tracker.Example'] });
    expect(put.status).toBe(200);
    expect(put.body.installation).toEqual({ profile: 'public', allow: ['*.intra.example'], deny: ['bad.example.com', 'tracker.example'] });
    expect(verdict(adminId, 'git.office.lan', ['10.1.2.3'])).toBe(false);
    expect(verdict(adminId, 'wiki.intra.example', ['10.1.2.3'])).toBe(true);
    expect(verdict(adminId, 'tracker.example')).toBe(false);
    const audit = (await admin.get('/api/v1/admin/audit?action=egress.rules.update')).body.items;
    expect(audit[0]).toMatchObject({ actor: { username: 'admin' }, detail: { after: { allow: ['*.intra.example'] } } });
  });

  test("a user's own rules: \"none\" for one member only, an allowance for one member only, and the installation's deny wins over a user's allow", async () => {
    const { client: admin } = await h.setupAdmin();
    const alice = await h.createMember(admin, 'alice');
    const bob = await h.createMember(admin, 'bob');
    const none = await admin.put(`/api/v1/admin/users/${alice.userId}/egress`).send({ profile: 'none', allow: [], deny: [] });
    expect(none.status).toBe(200);
    expect(none.body).toMatchObject({ overrides: { profile: 'none' }, rules: { profile: 'none' }, installation: { profile: 'public' } });
    expect(verdict(alice.userId, 'example.com')).toBe(false);
    expect(verdict(bob.userId, 'example.com')).toBe(true);

    await admin.put(`/api/v1/admin/users/${bob.userId}/egress`).send({ profile: null, allow: ['10.20.0.0/16', 'bad.example.com'], deny: ['news.example'] });
    expect(verdict(bob.userId, 'build.lan', ['10.20.1.5'])).toBe(true);
    expect(verdict(alice.userId, 'build.lan', ['10.20.1.5'])).toBe(false);
    expect(verdict(bob.userId, 'bad.example.com')).toBe(false);
    expect(verdict(bob.userId, 'news.example')).toBe(false);
    expect(verdict(alice.userId, 'news.example')).toBe(false); // alice is on "none" anyway
    const audit = (await admin.get('/api/v1/admin/audit?action=egress.user_rules.update')).body.items;
    expect(audit.map((e: { target: { label: string } }) => e.target.label)).toEqual(['bob', 'alice']);
  });

  test('bad entries are refused with the reason, naming the entry, and change nothing; members cannot change rules', async () => {
    const { client: admin } = await h.setupAdmin();
    const alice = await h.createMember(admin, 'alice');
    const bad = await admin.put('/api/v1/admin/egress').send({ profile: 'public', allow: ['ok.example', 'http://x.example'], deny: [] });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatchObject({ code: 'VALIDATION_FAILED', message: expect.stringContaining('allow.1: "http://x.example" is not a host name') });
    expect((await admin.put('/api/v1/admin/egress').send({ profile: 'open', allow: [], deny: [] })).body.error.message).toMatch(/profile: must be public/);
    expect((await admin.put('/api/v1/admin/egress').send({ profile: 'public', allow: [] })).status).toBe(400);
    expect((await admin.put('/api/v1/admin/egress').send({ profile: 'public', allow: Array.from({ length: 501 }, (_, i) => `h${i}.example`), deny: [] })).status).toBe(400);
    expect((await admin.get('/api/v1/admin/egress')).body.installation.allow).toEqual(['git.office.lan']);
    expect((await alice.client.put('/api/v1/admin/egress').send({ profile: 'public', allow: ['10.0.0.0/8'], deny: [] })).status).toBe(403);
    expect((await alice.client.put(`/api/v1/admin/users/${alice.userId}/egress`).send({ profile: 'public', allow: ['10.0.0.0/8'], deny: [] })).status).toBe(403);
    expect((await admin.put('/api/v1/admin/users/not-an-id/egress').send({ profile: null, allow: [], deny: [] })).status).toBe(400);
  });
});

describe('the record', () => {
  test('a member sees their own connections and totals, never anyone else\'s; the administrator sees everyone\'s, summed, and one user\'s in full', async () => {
    const { client: admin } = await h.setupAdmin();
    const alice = await h.createMember(admin, 'alice');
    const bob = await h.createMember(admin, 'bob');
    const record = h.platform.egressRecord;
    record.add(connection(alice.userId, 'api.github.com'));
    record.add(connection(alice.userId, '169.254.169.254', { port: 80, verdict: 'denied', reason: 'ClawLoops egress policy: 169.254.169.254 is a private, loopback, link-local or reserved address', bytesOut: 0, bytesIn: 0 }));
    record.add(connection(bob.userId, 'secret-project.example', { bytesIn: 5 }));

    const own = await alice.client.get('/api/v1/egress');
    expect(own.status).toBe(200);
    expect(own.body.recent.map((c: { host: string }) => c.host).sort()).toEqual(['169.254.169.254', 'api.github.com']);
    expect(own.body.totals).toMatchObject({ connections: 2, denied: 1, failed: 0, bytesOut: 100, bytesIn: 1000 });
    expect(own.body.rules).toEqual({ profile: 'public', allow: ['git.office.lan'], deny: ['bad.example.com'] });
    expect(JSON.stringify(own.body)).not.toContain('secret-project');
    expect((await alice.client.get('/api/v1/admin/egress')).status).toBe(403);
    expect((await alice.client.get(`/api/v1/admin/users/${bob.userId}/egress`)).status).toBe(403);

    const summary = (await admin.get('/api/v1/admin/egress')).body;
    expect(summary.users.map((u: { username: string; connections: number; denied: number }) => [u.username, u.connections, u.denied])).toEqual([
      ['alice', 2, 1],
      ['bob', 1, 0],
    ]);
    expect(summary.topHosts).toHaveLength(3);
    expect(summary.retentionDays).toBe(30);
    const bobs = (await admin.get(`/api/v1/admin/users/${bob.userId}/egress`)).body;
    expect(bobs.recent).toEqual([expect.objectContaining({ host: 'secret-project.example', verdict: 'allowed', bytesIn: 5 })]);
  });

  test('is kept for its retention and no more rows than its bound; a deleted account takes its record with it', async () => {
    const { client: admin } = await h.setupAdmin();
    const alice = await h.createMember(admin, 'alice');
    const record = h.platform.egressRecord;
    const day = 86_400_000;
    record.add(connection(alice.userId, 'old.example', { at: h.clock.now() - 31 * day }));
    record.add(connection(alice.userId, 'recent.example', { at: h.clock.now() - day }));
    record.flush();
    record.prune();
    expect((await alice.client.get('/api/v1/egress')).body.recent.map((c: { host: string }) => c.host)).toEqual(['recent.example']);

    const rows = () => (h.platform.db.prepare('SELECT COUNT(*) AS n FROM egress_connections').get() as { n: number }).n;
    expect(rows()).toBe(1);
    // Beyond the bound on rows, the oldest go whatever their age.
    record.add(connection(alice.userId, 'newer.example'));
    record.add(connection(alice.userId, 'newest.example'));
    record.flush();
    expect(new EgressRepository(h.platform.db).prune(h.clock.now() - 30 * day, 2)).toBe(1);
    expect((await alice.client.get('/api/v1/egress')).body.recent.map((c: { host: string }) => c.host).sort()).toEqual(['newer.example', 'newest.example']);
    await admin.delete(`/api/v1/admin/users/${alice.userId}`).expect(204);
    expect(rows()).toBe(0);
  });

  test('a flood of connections is recorded in batches, and what a batch cannot hold is counted, not buffered', async () => {
    const { userId } = await h.setupAdmin();
    const record = h.platform.egressRecord;
    for (let i = 0; i < 6_000; i++) record.add(connection(userId, `h${i}.example`));
    record.flush();
    const rows = (h.platform.db.prepare('SELECT COUNT(*) AS n FROM egress_connections').get() as { n: number }).n;
    expect(rows).toBe(5_000);
    expect(h.logs.text).toContain('faster than they could be recorded');
  });
});
