/**
 * How the control plane serves the web console (web/dist, built by Vite): the page at every
 * client-side route with a strict CSP, hashed assets cached for good, and API misses kept JSON.
 * A small stand-in build keeps this test independent of the console's own build.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import supertest from 'supertest';
import { loadConfig } from '../../src/config';
import { createLogger } from '../../src/lib/logger';
import { buildPlatform, type Platform } from '../../src/platform';
import { FakeDockerEngine, fastHasher, tempDataDir } from '../support/harness';

let platform: Platform;
const dataDir = tempDataDir();
const webRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'clawloops-web-'));
beforeAll(() => {
  fs.mkdirSync(path.join(webRoot, 'assets'));
  fs.writeFileSync(path.join(webRoot, 'index.html'), '<!doctype html><script type="module" src="/assets/index-abc123.js"></script>');
  fs.writeFileSync(path.join(webRoot, 'assets', 'index-abc123.js'), 'console.log(1)');
  fs.writeFileSync(path.join(webRoot, 'assets', 'index-abc123.js.gz'), zlib.gzipSync('console.log(1)'));
  fs.writeFileSync(path.join(webRoot, 'favicon.svg'), '<svg/>');
  const config = loadConfig({ CLAWLOOPS_DATA_DIR: dataDir, CLAWLOOPS_LOG_LEVEL: 'silent' });
  platform = buildPlatform(config, createLogger('silent'), { hasher: fastHasher, docker: new FakeDockerEngine(), webRoot });
});
afterAll(() => {
  platform.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
  fs.rmSync(webRoot, { recursive: true, force: true });
});

test.each(['/', '/setup?token=abc', '/invite/some-secret', '/login', '/sign-in-refused?reason=no_account', '/files', '/admin/users'])('the page loads at %s with a strict CSP and no caching', async (url) => {
  const res = await supertest(platform.app).get(url);
  expect(res.status).toBe(200);
  expect(res.headers['content-type']).toMatch(/text\/html/);
  expect(res.headers['content-security-policy']).toMatch(/default-src 'self'.*frame-ancestors 'none'/);
  expect(res.headers['cache-control']).toBe('no-cache');
  expect(res.text).toContain('/assets/index-abc123.js');
});

test('hashed assets are cached for good; a missing asset is a 404, not the page', async () => {
  const asset = await supertest(platform.app).get('/assets/index-abc123.js');
  expect(asset.status).toBe(200);
  expect(asset.headers['cache-control']).toBe('public, max-age=31536000, immutable');
  const missing = await supertest(platform.app).get('/assets/index-old999.js');
  expect(missing.status).toBe(404);
  expect(missing.headers['content-type']).not.toMatch(/text\/html/);
  expect((await supertest(platform.app).get('/favicon.svg')).status).toBe(200);
});

test('browsers that accept gzip get the build\'s precompressed file; others the plain one', async () => {
  // supertest unzips the body for us: the bytes were gzip on the wire.
  const gzipped = await supertest(platform.app).get('/assets/index-abc123.js').set('Accept-Encoding', 'gzip, deflate, br');
  expect(gzipped.headers['content-encoding']).toBe('gzip');
  expect(gzipped.headers['content-type']).toBe('text/javascript; charset=utf-8');
  expect(gzipped.headers.vary).toBe('Accept-Encoding');
  expect(gzipped.headers['cache-control']).toBe('public, max-age=31536000, immutable');
  expect(gzipped.text).toBe('console.log(1)');
  const plain = await supertest(platform.app).get('/assets/index-abc123.js').set('Accept-Encoding', 'identity');
  expect(plain.headers['content-encoding']).toBeUndefined();
  expect(plain.text).toBe('console.log(1)');
});

test('a precompressed file that disappears falls back to the plain one, not labelled gzip', async () => {
  fs.writeFileSync(path.join(webRoot, 'assets', 'late-x1.js'), 'console.log(2)');
  fs.writeFileSync(path.join(webRoot, 'assets', 'late-x1.js.gz'), zlib.gzipSync('console.log(2)'));
  expect((await supertest(platform.app).get('/assets/late-x1.js').set('Accept-Encoding', 'gzip')).headers['content-encoding']).toBe('gzip');
  fs.rmSync(path.join(webRoot, 'assets', 'late-x1.js.gz'));
  const plain = await supertest(platform.app).get('/assets/late-x1.js').set('Accept-Encoding', 'gzip');
  expect(plain.status).toBe(200);
  expect(plain.headers['content-encoding']).toBeUndefined();
  expect(plain.text).toBe('console.log(2)');
});

test('API misses stay JSON 404s and probes answer', async () => {
  const api = await supertest(platform.app).get('/api/v1/unknown');
  expect(api.status).toBe(404);
  expect(api.body.error.code).toBe('NOT_FOUND');
  expect((await supertest(platform.app).get('/healthz')).body).toEqual({ status: 'ok' });
});
