import fs from 'node:fs';
import path from 'node:path';
import supertest from 'supertest';
import { loadConfig } from '../../src/config';
import { createLogger } from '../../src/lib/logger';
import { buildPlatform, type Platform } from '../../src/platform';
import { FakeDockerEngine, fastHasher, tempDataDir } from '../support/harness';

let platform: Platform;
const dataDir = tempDataDir();
beforeAll(() => {
  const config = loadConfig({ CLAWLOOPS_DATA_DIR: dataDir, CLAWLOOPS_LOG_LEVEL: 'silent' });
  platform = buildPlatform(config, createLogger('silent'), {
    hasher: fastHasher,
    docker: new FakeDockerEngine(),
    webRoot: path.resolve(__dirname, '../../web/static'),
  });
});
afterAll(() => {
  platform.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

test.each(['/', '/setup?token=abc', '/invite/some-secret', '/login'])('the page loads at %s with a strict CSP', async (url) => {
  const res = await supertest(platform.app).get(url);
  expect(res.status).toBe(200);
  expect(res.headers['content-type']).toMatch(/text\/html/);
  expect(res.headers['content-security-policy']).toMatch(/default-src 'self'.*frame-ancestors 'none'/);
  expect(res.text).toContain('<script src="/app.js"');
});

test('static assets are served and API misses stay JSON 404s', async () => {
  expect((await supertest(platform.app).get('/app.js')).status).toBe(200);
  const api = await supertest(platform.app).get('/api/v1/unknown');
  expect(api.status).toBe(404);
  expect(api.body.error.code).toBe('NOT_FOUND');
  expect((await supertest(platform.app).get('/healthz')).body).toEqual({ status: 'ok' });
});
