/**
 * WebDAV at /dav/ over the workspace-volume port's fake (test/support/fakeWorkspaceVolumes.ts),
 * through the front door on a real port: every method, the refusals, quotas, traversal and
 * authentication. litmus (test/process/webdavLitmus.test.ts) checks the protocol as a whole.
 */
import fs from 'node:fs';
import type http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type TestAgent from 'supertest/lib/agent';
import { alwaysReadyProbe, FakeProvisioner } from '../support/fakeProvisioner';
import { FakeWorkspaceVolumes } from '../support/fakeWorkspaceVolumes';
import { closeServer, rawRequest, servePlatform, type RawResponse } from '../support/hostClient';
import { createHarness, STRONG_PASSWORD, type Harness } from '../support/harness';

const HOST = 'platform.test:8080';
let h: Harness;
let volumes: FakeWorkspaceVolumes;
let volumeDir: string;
let admin: TestAgent;
let server: http.Server;
let port: number;
let auth: string;
let root: string;

async function tokenFor(client: TestAgent, scopes: string[]): Promise<string> {
  const res = await client.post('/api/v1/account/tokens').send({ name: `dav ${scopes.join(' ')}`, scopes, expiresInDays: 30 });
  expect(res.status).toBe(201);
  return (res.body as { secret: string }).secret;
}

const basic = (user: string, secret: string): string => `Basic ${Buffer.from(`${user}:${secret}`).toString('base64')}`;

function dav(method: string, urlPath: string, headers: Record<string, string> = {}, body?: string): Promise<RawResponse> {
  return rawRequest(port, { method, host: HOST, path: urlPath, headers: { authorization: auth, ...(body !== undefined ? { 'content-length': String(Buffer.byteLength(body)) } : {}), ...headers }, ...(body !== undefined ? { body } : {}) });
}

beforeEach(async () => {
  volumeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'clawloops-dav-'));
  volumes = new FakeWorkspaceVolumes(volumeDir);
  root = path.join(volumeDir, 'workspace');
  h = createHarness({
    runtimeProvisioner: new FakeProvisioner(),
    runtimeProbe: alwaysReadyProbe,
    workspaceVolumes: volumes,
    files: { volumeRoot: volumeDir, root, quotaBytes: 1000 },
  });
  ({ client: admin } = await h.setupAdmin());
  auth = basic('admin', await tokenFor(admin, ['files']));
  ({ server, port } = await servePlatform(h.platform));
});

afterEach(async () => {
  await closeServer(server);
  h.close();
  fs.rmSync(volumeDir, { recursive: true, force: true });
});

describe('authentication', () => {
  test('no credentials, a cookie alone, the login password, a token without the files scope, another user name and malformed headers are 401 with the Basic realm', async () => {
    const readToken = await tokenFor(admin, ['read']);
    const cookie = (await h.client().post('/api/v1/auth/login').send({ username: 'admin', password: STRONG_PASSWORD })).headers['set-cookie'] as unknown as string[];
    const refused: Record<string, string>[] = [
      {},
      { authorization: '' },
      { cookie: cookie.map((c) => c.split(';')[0]).join('; ') },
      { authorization: basic('admin', STRONG_PASSWORD) },
      { authorization: basic('admin', readToken) },
      { authorization: basic('someone', auth) },
      { authorization: 'Basic %%%' },
      { authorization: 'Basic ' + Buffer.from('no-colon').toString('base64') },
      { authorization: 'Bearer whatever' },
    ];
    for (const headers of refused) {
      const res = await rawRequest(port, { method: 'PROPFIND', host: HOST, path: '/dav/', headers: { depth: '0', ...headers } });
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toBe('Basic realm="ClawLoops files", charset="UTF-8"');
    }
  });

  test('a revoked app password stops working', async () => {
    const list = await admin.get('/api/v1/account/tokens');
    const id = (list.body as { items: { id: string }[] }).items[0]?.id;
    expect((await dav('PROPFIND', '/dav/', { depth: '0' })).status).toBe(207);
    expect((await admin.delete(`/api/v1/account/tokens/${id}`)).status).toBe(204);
    expect((await dav('PROPFIND', '/dav/', { depth: '0' })).status).toBe(401);
  });
});

describe('methods', () => {
  test('OPTIONS announces class 1 and 2', async () => {
    const res = await dav('OPTIONS', '/dav/');
    expect(res.status).toBe(200);
    expect(res.headers.dav).toBe('1, 2');
    expect(res.headers.allow).toContain('PROPFIND');
  });

  test('PUT, GET with a range, HEAD, PROPFIND depth 0 and 1, quota properties, DELETE', async () => {
    expect((await dav('MKCOL', '/dav/docs')).status).toBe(201);
    expect((await dav('MKCOL', '/dav/docs')).status).toBe(405);
    expect((await dav('MKCOL', '/dav/none/deeper')).status).toBe(409);
    expect((await dav('PUT', '/dav/docs/h%C3%A9llo.txt', {}, 'hello world')).status).toBe(201);
    expect(fs.readFileSync(path.join(root, 'docs', 'héllo.txt'), 'utf8')).toBe('hello world');
    const put2 = await dav('PUT', '/dav/docs/h%C3%A9llo.txt', {}, 'HELLO WORLD');
    expect(put2.status).toBe(204);
    const got = await dav('GET', '/dav/docs/h%C3%A9llo.txt');
    expect([got.status, got.body]).toEqual([200, 'HELLO WORLD']);
    const etag = got.headers.etag as string;
    const range = await dav('GET', '/dav/docs/h%C3%A9llo.txt', { range: 'bytes=6-' });
    expect([range.status, range.body, range.headers['content-range']]).toEqual([206, 'WORLD', 'bytes 6-10/11']);
    const head = await dav('HEAD', '/dav/docs/h%C3%A9llo.txt');
    expect([head.status, head.headers['content-length'], head.body]).toEqual([200, '11', '']);
    expect((await dav('PUT', '/dav/docs/h%C3%A9llo.txt', { 'if-match': '"nope"' }, 'x')).status).toBe(412);
    expect((await dav('PUT', '/dav/docs/h%C3%A9llo.txt', { 'if-none-match': '*' }, 'x')).status).toBe(412);
    expect((await dav('PUT', '/dav/docs/h%C3%A9llo.txt', { 'if-match': etag }, 'hello again')).status).toBe(204);
    expect((await dav('PUT', '/dav/missing/a.txt', {}, 'x')).status).toBe(409);

    const one = await dav('PROPFIND', '/dav/docs/', { depth: '1' });
    expect(one.status).toBe(207);
    expect(one.body).toContain('<D:href>/dav/docs/</D:href>');
    expect(one.body).toContain('<D:href>/dav/docs/h%C3%A9llo.txt</D:href>');
    expect(one.body).toContain('<D:getcontentlength>11</D:getcontentlength>');
    const infinite = await dav('PROPFIND', '/dav/', { depth: 'infinity' });
    expect(infinite.status).toBe(403);
    expect(infinite.body).toContain('propfind-finite-depth');
    const quota = await dav(
      'PROPFIND',
      '/dav/',
      { depth: '0', 'content-type': 'application/xml' },
      '<?xml version="1.0"?><propfind xmlns="DAV:"><prop><quota-used-bytes/><quota-available-bytes/><foo xmlns="urn:x"/></prop></propfind>',
    );
    expect(quota.status).toBe(207);
    expect(quota.body).toContain('<D:quota-used-bytes>11</D:quota-used-bytes>');
    expect(quota.body).toContain('<D:quota-available-bytes>989</D:quota-available-bytes>');
    expect(quota.body).toMatch(/<x:foo xmlns:x="urn:x"\/><\/D:prop><D:status>HTTP\/1.1 404/);
    expect((await dav('PROPFIND', '/dav/', { depth: '0' }, '<propfind xmlns="DAV:"><prop>')).status).toBe(400);
    expect((await dav('PROPFIND', '/dav/', { depth: '0' }, '<!DOCTYPE x [<!ENTITY a "b">]><propfind xmlns="DAV:"><allprop/></propfind>')).status).toBe(400);

    expect((await dav('DELETE', '/dav/docs')).status).toBe(204);
    expect(fs.existsSync(path.join(root, 'docs'))).toBe(false);
    expect((await dav('DELETE', '/dav/docs')).status).toBe(404);
    const actions = (h.platform.db.prepare("SELECT action FROM audit_log WHERE action LIKE 'files.%' ORDER BY id").all() as { action: string }[]).map((r) => r.action);
    expect(actions).toEqual(expect.arrayContaining(['files.mkdir', 'files.upload', 'files.delete']));
  });

  test('COPY and MOVE follow Destination and Overwrite', async () => {
    await dav('MKCOL', '/dav/a');
    await dav('PUT', '/dav/a/one.txt', {}, 'one');
    await dav('PUT', '/dav/two.txt', {}, 'two');
    const dest = (p: string) => ({ destination: `http://${HOST}/dav/${p}` });
    expect((await dav('COPY', '/dav/a', dest('b'))).status).toBe(201);
    expect(fs.readFileSync(path.join(root, 'b', 'one.txt'), 'utf8')).toBe('one');
    expect((await dav('COPY', '/dav/a', { ...dest('b'), overwrite: 'F' })).status).toBe(412);
    expect((await dav('COPY', '/dav/two.txt', dest('a/one.txt'))).status).toBe(204);
    expect(fs.readFileSync(path.join(root, 'a', 'one.txt'), 'utf8')).toBe('two');
    expect((await dav('COPY', '/dav/a', { ...dest('empty'), depth: '0' })).status).toBe(201);
    expect(fs.readdirSync(path.join(root, 'empty'))).toEqual([]);
    expect((await dav('COPY', '/dav/a', dest('a/inside'))).status).toBe(400);
    expect((await dav('MOVE', '/dav/two.txt', dest('nowhere/two.txt'))).status).toBe(409);
    expect((await dav('MOVE', '/dav/two.txt', { destination: 'http://elsewhere.test/dav/x' })).status).toBe(502);
    expect((await dav('MOVE', '/dav/b', { ...dest('a'), overwrite: 'F' })).status).toBe(412);
    expect((await dav('MOVE', '/dav/b', dest('a'))).status).toBe(204);
    expect(fs.existsSync(path.join(root, 'b'))).toBe(false);
    expect(fs.readFileSync(path.join(root, 'a', 'one.txt'), 'utf8')).toBe('one');
    expect((await dav('MOVE', '/dav/two.txt', dest('three.txt'))).status).toBe(201);
    const actions = (h.platform.db.prepare("SELECT action FROM audit_log WHERE action LIKE 'files.%'").all() as { action: string }[]).map((r) => r.action);
    expect(actions).toEqual(expect.arrayContaining(['files.copy', 'files.move', 'files.delete']));
  });

  test('LOCK, writes without and with the token, UNLOCK', async () => {
    await dav('PUT', '/dav/f.txt', {}, 'x');
    const lockBody = '<?xml version="1.0"?><lockinfo xmlns="DAV:"><lockscope><exclusive/></lockscope><locktype><write/></locktype><owner>me</owner></lockinfo>';
    const locked = await dav('LOCK', '/dav/f.txt', { depth: '0', timeout: 'Second-60' }, lockBody);
    expect(locked.status).toBe(200);
    const token = /<([^>]+)>/.exec(locked.headers['lock-token'] as string)?.[1] as string;
    expect(locked.body).toContain(token);
    expect((await dav('PUT', '/dav/f.txt', {}, 'y')).status).toBe(423);
    expect((await dav('LOCK', '/dav/f.txt', { depth: '0' }, lockBody)).status).toBe(423);
    expect((await dav('PUT', '/dav/f.txt', { if: `(<${token}>)` }, 'y')).status).toBe(204);
    expect((await dav('PUT', '/dav/f.txt', { if: '(<urn:uuid:bogus>)' }, 'y')).status).toBe(412);
    expect((await dav('LOCK', '/dav/f.txt', { if: `(<${token}>)`, timeout: 'Second-120' })).status).toBe(200);
    expect((await dav('UNLOCK', '/dav/f.txt', { 'lock-token': `<${token}>` })).status).toBe(204);
    expect((await dav('PUT', '/dav/f.txt', {}, 'z')).status).toBe(204);
    const unmapped = await dav('LOCK', '/dav/new.txt', { depth: '0' }, lockBody);
    expect(unmapped.status).toBe(201);
    expect(fs.readFileSync(path.join(root, 'new.txt'), 'utf8')).toBe('');
  });

  test('PROPPATCH stores dead properties, which move and copy with their file; live ones are refused', async () => {
    await dav('PUT', '/dav/f.txt', {}, 'x');
    const set = await dav('PROPPATCH', '/dav/f.txt', {}, '<propertyupdate xmlns="DAV:"><set><prop><x:a xmlns:x="urn:x">1 &amp; <x:b>2</x:b></x:a></prop></set></propertyupdate>');
    expect(set.status).toBe(207);
    expect(set.body).toContain('HTTP/1.1 200 OK');
    const live = await dav('PROPPATCH', '/dav/f.txt', {}, '<propertyupdate xmlns="DAV:"><set><prop><getetag>x</getetag><x:c xmlns:x="urn:x">3</x:c></prop></set></propertyupdate>');
    expect(live.body).toMatch(/<D:getetag\/><\/D:prop><D:status>HTTP\/1.1 403/);
    expect(live.body).toContain('424');
    expect(h.platform.db.prepare("SELECT COUNT(*) AS n FROM audit_log WHERE action = 'files.properties'").get()).toEqual({ n: 1 });
    await dav('MOVE', '/dav/f.txt', { destination: `http://${HOST}/dav/g.txt` });
    await dav('COPY', '/dav/g.txt', { destination: `http://${HOST}/dav/h.txt` });
    for (const name of ['g.txt', 'h.txt']) {
      const got = await dav('PROPFIND', `/dav/${name}`, { depth: '0' }, '<propfind xmlns="DAV:"><prop><a xmlns="urn:x"/><c xmlns="urn:x"/></prop></propfind>');
      expect(got.body).toMatch(/<ns0:a xmlns:ns0="urn:x"[^>]*>1 &amp; <x:b>2<\/x:b><\/ns0:a>/);
      expect(got.body).toMatch(/<x:c xmlns:x="urn:x"\/><\/D:prop><D:status>HTTP\/1.1 404/);
    }
  });

  test('PROPFIND Depth 1 shows each child its own dead properties, and none of a folder whose name only begins alike', async () => {
    await dav('MKCOL', '/dav/p');
    await dav('MKCOL', '/dav/p/a');
    await dav('MKCOL', '/dav/p/ab');
    await dav('PUT', '/dav/p/a/deep.txt', {}, 'x');
    const tag = (where: string, value: string) => dav('PROPPATCH', where, {}, `<propertyupdate xmlns="DAV:"><set><prop><t xmlns="urn:t">${value}</t></prop></set></propertyupdate>`);
    for (const [where, value] of [['/dav/p/a', 'A'], ['/dav/p/ab', 'AB'], ['/dav/p/a/deep.txt', 'DEEP']] as const) expect((await tag(where, value)).status).toBe(207);
    const listed = await dav('PROPFIND', '/dav/p/', { depth: '1' }, '<propfind xmlns="DAV:"><prop><t xmlns="urn:t"/></prop></propfind>');
    expect(listed.status).toBe(207);
    const valueOf = (href: string) => new RegExp(`<D:href>${href}</D:href>(.*?)</D:response>`).exec(listed.body)?.[1] ?? '';
    expect([/>A</.test(valueOf('/dav/p/a/')), /AB/.test(valueOf('/dav/p/a/')), /DEEP/.test(valueOf('/dav/p/a/'))]).toEqual([true, false, false]);
    expect(/>AB</.test(valueOf('/dav/p/ab/'))).toBe(true);
    expect(valueOf('/dav/p/')).toContain('HTTP/1.1 404');
  });
});

describe('refusals', () => {
  test('traversal in every spelling stays inside the root', async () => {
    fs.mkdirSync(root, { recursive: true });
    fs.writeFileSync(path.join(volumeDir, 'secret.txt'), 'TOPSECRET');
    for (const p of ['/dav/../secret.txt', '/dav/%2e%2e/secret.txt', '/dav/%2E%2E%2Fsecret.txt', '/dav/a%2f..%2f..%2fsecret.txt', '/dav/%ff', '/dav/x%00y']) {
      const res = await dav('GET', p);
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(res.body).not.toContain('TOPSECRET');
    }
    expect((await dav('MOVE', '/dav/x', { destination: `http://${HOST}/dav/%2e%2e/y` })).status).toBeGreaterThanOrEqual(400);
    fs.symlinkSync(path.join(volumeDir, 'secret.txt'), path.join(root, 'link'));
    const viaLink = await dav('GET', '/dav/link');
    expect(viaLink.status).toBe(403);
    expect(viaLink.body).not.toContain('TOPSECRET');
  });

  test('an engine that does not answer is a 503 in words, and nothing is held', async () => {
    volumes.unreachable = true;
    for (const [method, p] of [['PROPFIND', '/dav/'], ['GET', '/dav/a.txt'], ['PUT', '/dav/a.txt'], ['MKCOL', '/dav/x']] as const) {
      const res = await dav(method, p, { depth: '0' }, method === 'PUT' ? 'abc' : undefined);
      expect(res.status).toBe(503);
      expect(JSON.parse(res.body)).toMatchObject({ error: { code: 'ENGINE_UNAVAILABLE' } });
    }
    volumes.unreachable = false;
    expect(volumes.held).toBe(0);
  });

  test('a PUT over the quota is 507 and leaves nothing behind', async () => {
    const big = 'x'.repeat(1200);
    const res = await dav('PUT', '/dav/big.bin', {}, big);
    expect(res.status).toBe(507);
    expect(fs.existsSync(path.join(root, 'big.bin'))).toBe(false);
    await dav('PUT', '/dav/half.bin', {}, 'x'.repeat(600));
    expect((await dav('COPY', '/dav/half.bin', { destination: `http://${HOST}/dav/copy.bin` })).status).toBe(507);
    expect(fs.existsSync(path.join(root, 'copy.bin'))).toBe(false);
    expect(volumes.held).toBe(0);
  });
});
