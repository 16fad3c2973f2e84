import express from 'express';
import supertest from 'supertest';
import { bufferStream } from '../../src/files/fileStreams';
import { errorHandler } from '../../src/http/errorHandling';
import { requestedBytes, sendFileBytes } from '../../src/http/fileDownload';

/**
 * The range handling both download endpoints share (the file API's /download and WebDAV's GET,
 * src/http/fileDownload.ts), on a bare Express app: what a client resuming or probing a download
 * gets back, and what the file-traffic metric counts.
 */

const CONTENT = 'hello world';
const MODIFIED = new Date('2026-11-02T10:20:30Z');
const ETAG = '"b-1"';

function appSending(counted: number[]): express.Express {
  const app = express();
  app.get('/file', async (req, res) => {
    const body = requestedBytes(req, res, { size: CONTENT.length, modifiedAt: MODIFIED, body: bufferStream(Buffer.from(CONTENT)) }, ETAG);
    await sendFileBytes(body, res, (direction, bytes) => {
      if (direction === 'out') counted.push(bytes);
    });
  });
  app.use(errorHandler);
  return app;
}

let counted: number[];
let app: express.Express;
const get = (headers: Record<string, string>) => supertest(app).get('/file').set(headers).buffer(true).parse((res, done) => {
  let text = '';
  res.setEncoding('utf8');
  res.on('data', (chunk: string) => (text += chunk));
  res.on('end', () => done(null, text));
});
const sum = (values: number[]): number => values.reduce((a, b) => a + b, 0);

beforeEach(() => {
  counted = [];
  app = appSending(counted);
});

test('no Range: the whole file, its length, every byte counted', async () => {
  const res = await get({});
  expect([res.status, res.body, res.headers['content-length'], res.headers['content-range']]).toEqual([200, CONTENT, '11', undefined]);
  expect(sum(counted)).toBe(11);
});

test.each([
  ['bytes=0-4', 'hello', 'bytes 0-4/11'],
  ['bytes=6-', 'world', 'bytes 6-10/11'],
  ['bytes=-5', 'world', 'bytes 6-10/11'],
  ['bytes=8-99', 'rld', 'bytes 8-10/11'],
])('%s: 206 with only those bytes, and only those counted', async (range, body, contentRange) => {
  const res = await get({ range });
  expect([res.status, res.body, res.headers['content-range'], res.headers['content-length']]).toEqual([206, body, contentRange, String(body.length)]);
  expect(sum(counted)).toBe(body.length);
});

test('a range wholly outside the file is a 416 naming the size, and nothing of the file is sent', async () => {
  const res = await get({ range: 'bytes=50-60' });
  expect(res.status).toBe(416);
  expect(res.headers['content-range']).toBe('bytes */11');
  expect(JSON.parse(res.body as string)).toMatchObject({ error: { code: 'RANGE_NOT_SATISFIABLE' } });
  expect(counted).toEqual([]);
});

test('If-Range: the same version (ETag or date) gets the range, another version the whole file', async () => {
  const byTag = await get({ range: 'bytes=6-', 'if-range': ETAG });
  expect([byTag.status, byTag.body]).toEqual([206, 'world']);
  const byDate = await get({ range: 'bytes=6-', 'if-range': MODIFIED.toUTCString() });
  expect([byDate.status, byDate.body]).toEqual([206, 'world']);
  for (const other of ['"b-2"', new Date(MODIFIED.getTime() + 1000).toUTCString()]) {
    const res = await get({ range: 'bytes=6-', 'if-range': other });
    expect([res.status, res.body, res.headers['content-range'], res.headers['content-length']]).toEqual([200, CONTENT, undefined, '11']);
  }
});

test('several ranges, a malformed header or a unit other than bytes: the whole file (no multipart answers)', async () => {
  for (const range of ['bytes=0-1,4-5', 'bytes=x-y', 'lines=1-2']) {
    const res = await get({ range });
    expect([range, res.status, res.body]).toEqual([range, 200, CONTENT]);
  }
});
