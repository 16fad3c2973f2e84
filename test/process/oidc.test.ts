/**
 * Single sign-on in the BUILT server (which loads openid-client, ESM only, at run time) against a
 * real OpenID provider in its own process (oidc-provider, certified; test/support/oidcProviderMain.mjs),
 * through the provider's own login pages: a verified email's account, the admin group with role
 * sync, a refused person, sign-out and the provider's end-session; and what must fail in the
 * client library itself: a tampered state, a replayed code, an ID token for another audience,
 * from another issuer, or expired.
 */
import { assertBuilt, call, cleanUpProcesses, field, MAIN, processTest } from '../support/processes';
import { CLIENT_ID, CLIENT_SECRET, CookieJar, signInThroughProvider, startOidcAppliance, visit, type OidcAppliance as Appliance } from '../support/oidcProvider';

const ADMIN_PASSWORD = 'correct horse battery staple';
const startAppliance = startOidcAppliance;

beforeAll(() => assertBuilt([MAIN]));
afterEach(cleanUpProcesses);

async function adminCall(a: Appliance, method: string, urlPath: string, json?: unknown) {
  return call(a.server, method, urlPath, { ...(json === undefined ? {} : { json }), headers: { Cookie: a.admin, Origin: a.server.publicUrl } });
}

async function me(a: Appliance, jar: CookieJar) {
  const cookie = jar.get(a.server.publicUrl, 'clawloops_session');
  return call(a.server, 'GET', '/api/v1/auth/me', { headers: cookie ? { Cookie: `clawloops_session=${cookie}` } : {} });
}

async function audit(a: Appliance, action: string): Promise<Array<{ detail: Record<string, unknown> }>> {
  const res = await adminCall(a, 'GET', `/api/v1/admin/audit?action=${action}&limit=100`);
  expect(res.status).toBe(200);
  return field(res.body, 'items') as Array<{ detail: Record<string, unknown> }>;
}

const reasonOf = (location: URL | null) => (location?.pathname === '/sign-in-refused' ? location.searchParams.get('reason') : `not refused: ${location?.href}`);

processTest('signs in through the provider\'s pages: a verified email finds the account, the admin group makes an admin, an unverified one is refused; sign-out ends the session and offers the provider\'s', async () => {
  const a = await startAppliance();
  expect(await call(a.server, 'GET', '/api/v1/auth/methods')).toMatchObject({ status: 200, body: { password: true, oidc: { name: 'Test IdP' } } });
  expect((await adminCall(a, 'POST', '/api/v1/admin/users', { username: 'alice', email: 'alice@example.com', password: ADMIN_PASSWORD })).status).toBe(201);
  expect((await adminCall(a, 'POST', '/api/v1/admin/invitations', { role: 'member', email: 'root@example.com' })).status).toBe(201);

  const alice = new CookieJar();
  const aliceIn = await signInThroughProvider(alice, a.server.publicUrl, 'alice');
  expect([aliceIn.answer.status, aliceIn.answer.location?.pathname]).toEqual([303, '/']);
  expect(field((await me(a, alice)).body, 'user')).toMatchObject({ username: 'alice', role: 'member' });

  // Invited as a member; in the admin group at the provider, and roles follow it.
  const root = new CookieJar();
  await signInThroughProvider(root, a.server.publicUrl, 'root');
  expect(field((await me(a, root)).body, 'user')).toMatchObject({ username: 'root', role: 'admin', email: 'root@example.com' });

  const mallory = new CookieJar();
  const refused = await signInThroughProvider(mallory, a.server.publicUrl, 'mallory');
  expect(reasonOf(refused.answer.location)).toBe('email_unverified');
  expect((await me(a, mallory)).status).toBe(401);

  const cookie = `clawloops_session=${alice.get(a.server.publicUrl, 'clawloops_session')}`;
  expect((await call(a.server, 'POST', '/api/v1/auth/logout', { headers: { Cookie: cookie, Origin: a.server.publicUrl } })).status).toBe(204);
  expect((await me(a, alice)).status).toBe(401);
  const end = await visit(alice, new URL('/api/v1/auth/oidc/end-session', a.server.publicUrl));
  expect(end.status).toBe(303);
  expect(end.location?.origin).toBe(a.provider.issuer);
  expect(end.location?.searchParams.get('post_logout_redirect_uri')).toBe(`${a.server.publicUrl}/login`);
  expect(end.location?.searchParams.get('client_id')).toBe(CLIENT_ID);

  expect((await audit(a, 'login.success')).filter((e) => e.detail.method === 'oidc')).toHaveLength(2);
  expect(await audit(a, 'oidc.refused')).toEqual([expect.objectContaining({ detail: expect.objectContaining({ reason: 'email_unverified' }) })]);
  expect(a.server.child.output).not.toContain(CLIENT_SECRET);
});

processTest('the client library refuses a tampered state, a replayed code, and ID tokens for another audience, from another issuer, or expired', async () => {
  const a = await startAppliance({ CLAWLOOPS_OIDC_AUTO_CREATE: 'true' });
  const browser = new CookieJar();

  // A state other than the one this browser's sign-in was started with.
  const tampered = await signInThroughProvider(browser, a.server.publicUrl, 'alice', (url) => {
    url.searchParams.set('state', 'not-the-state-we-sent');
    return url;
  });
  expect(reasonOf(tampered.answer.location)).toBe('failed');

  // A code used once, then sent again: first with the spent transaction, then inside a fresh one.
  const first = await signInThroughProvider(browser, a.server.publicUrl, 'alice');
  expect(first.answer.location?.pathname).toBe('/');
  expect(reasonOf((await visit(browser, first.callbackUrl)).location)).toBe('expired');
  const fresh = await visit(browser, new URL('/api/v1/auth/oidc/start', a.server.publicUrl));
  const freshState = new URL(String(fresh.location)).searchParams.get('state') ?? '';
  const replay = new URL(first.callbackUrl);
  replay.searchParams.set('state', freshState);
  expect(reasonOf((await visit(browser, replay)).location)).toBe('failed');

  for (const mode of ['wrong-audience', 'wrong-issuer', 'expired'] as const) {
    await a.provider.badIdTokens(mode);
    const bad = await signInThroughProvider(new CookieJar(), a.server.publicUrl, 'alice');
    expect([mode, reasonOf(bad.answer.location)]).toEqual([mode, 'failed']);
  }
  await a.provider.badIdTokens('normal');
  expect((await signInThroughProvider(new CookieJar(), a.server.publicUrl, 'alice')).answer.location?.pathname).toBe('/');

  // Each refusal names the check of openid-client that failed.
  const failures = (await audit(a, 'oidc.failure')).map((e) => String(e.detail.message));
  for (const check of [
    'unexpected "state" response parameter value',
    'invalid_grant',
    'unexpected JWT "aud" (audience) claim value',
    'unexpected JWT "iss" (issuer) claim value',
    'unexpected JWT "exp" (expiration time) claim value, expiration is past current timestamp',
  ]) {
    expect(failures.filter((m) => m.includes(check))).toHaveLength(1);
  }
});

processTest('a public client (no secret) signs in with PKCE alone', async () => {
  const a = await startAppliance({ CLAWLOOPS_OIDC_AUTO_CREATE: 'true' }, { publicClient: true });
  const browser = new CookieJar();
  const signedIn = await signInThroughProvider(browser, a.server.publicUrl, 'alice');
  expect(signedIn.answer.location?.pathname).toBe('/');
  expect(field((await me(a, browser)).body, 'user')).toMatchObject({ username: 'alice', role: 'member' });
});
