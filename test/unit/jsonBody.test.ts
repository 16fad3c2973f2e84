/**
 * The model gateway's body reader (it replaced Express's JSON parser on /llm/v1): the limit holds
 * for declared, streamed and inflated bodies, and each refusal is told apart.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import zlib from 'node:zlib';
import { readJsonBody, type JsonBodyRead } from '../../src/http/llm/jsonBody';

const LIMIT = 1024;
let server: http.Server;
let port: number;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    void readJsonBody(req, LIMIT).then((read: JsonBodyRead) => res.end(JSON.stringify(read)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

/** Sends a body (chunked when `chunked`) and returns what the reader made of it. */
function send(body: Buffer | string, headers: Record<string, string> = {}, chunked = false): Promise<JsonBodyRead> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/', agent: false, headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as JsonBodyRead));
    });
    req.on('error', reject);
    const data = typeof body === 'string' ? Buffer.from(body) : body;
    if (chunked) {
      // No Content-Length: the limit must hold while reading.
      for (let at = 0; at < data.length; at += 100) req.write(data.subarray(at, at + 100));
      req.end();
    } else req.end(data);
  });
}

test('a JSON object or array is read; an empty body is {}', async () => {
  expect(await send('{"model":"m","n":[1,2]}')).toEqual({ ok: true, value: { model: 'm', n: [1, 2] } });
  expect(await send(' [1] ')).toEqual({ ok: true, value: [1] });
  expect(await send('')).toEqual({ ok: true, value: {} });
});

test('anything else is invalid JSON, as the platform parser had it (a bare string or number too)', async () => {
  expect(await send('{"model": ')).toEqual({ ok: false, error: 'invalid_json' });
  expect(await send('"text"')).toEqual({ ok: false, error: 'invalid_json' });
  expect(await send('42')).toEqual({ ok: false, error: 'invalid_json' });
  expect(await send('   ')).toEqual({ ok: false, error: 'invalid_json' });
});

test('the limit holds for a declared length, a chunked body and an inflated one', async () => {
  const big = JSON.stringify({ text: 'x'.repeat(LIMIT) });
  expect(await send(big)).toEqual({ ok: false, error: 'too_large' });
  expect(await send(big, {}, true)).toEqual({ ok: false, error: 'too_large' });
  // Small on the wire, over the limit once inflated.
  expect(await send(zlib.gzipSync(big), { 'content-encoding': 'gzip' })).toEqual({ ok: false, error: 'too_large' });
  expect(await send(zlib.deflateSync('{"a":1}'), { 'content-encoding': 'deflate' })).toEqual({ ok: true, value: { a: 1 } });
  expect(await send(zlib.gzipSync('{"a":2}'), { 'content-encoding': 'gzip' }, true)).toEqual({ ok: true, value: { a: 2 } });
});

test('unknown encodings and non-UTF charsets are refused; a corrupt gzip body is invalid', async () => {
  expect(await send('{}', { 'content-encoding': 'compress' })).toEqual({ ok: false, error: 'unsupported_encoding' });
  expect(await send('{}', { 'content-type': 'application/json; charset=latin1' })).toEqual({ ok: false, error: 'unsupported_encoding' });
  expect(await send('{"a":1}', { 'content-type': 'application/json; charset=utf-8' })).toEqual({ ok: true, value: { a: 1 } });
  expect(await send('not gzip at all', { 'content-encoding': 'gzip' })).toEqual({ ok: false, error: 'invalid_json' });
});
