/**
 * The one writer of `{"error":{"code","message"}}` (src/http/jsonError.ts), on a plain node
 * response (as the workspace router's proxy and refusals use it) and on an upgrade's socket.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeJsonError, writeUpgradeRefusal } from '../../src/http/jsonError';

async function answerOf(handler: http.RequestListener): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: unknown }> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
    return { status: res.status, headers: Object.fromEntries(res.headers), body: await res.json() };
  } finally {
    server.close();
  }
}

describe('writeJsonError', () => {
  test('writes the error shape with its details and top-level companions, uncached, without a download header left over', async () => {
    const answer = await answerOf((_req, res) => {
      res.setHeader('Content-Disposition', 'attachment; filename="x.bin"');
      writeJsonError(res, 409, 'CONFLICT', 'Those names exist.', { details: { conflicts: ['a'] }, alongside: { checks: { db: true } } });
    });
    expect(answer.status).toBe(409);
    expect(answer.body).toEqual({ error: { code: 'CONFLICT', message: 'Those names exist.', conflicts: ['a'] }, checks: { db: true } });
    expect(answer.headers).toMatchObject({ 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
    expect(answer.headers['content-disposition']).toBeUndefined();
  });

  test('a response already under way is cut rather than finished as if it succeeded', () => {
    let destroyed = false;
    const res = { headersSent: true, destroy: () => (destroyed = true) } as unknown as http.ServerResponse;
    writeJsonError(res, 500, 'INTERNAL_ERROR', 'late');
    expect(destroyed).toBe(true);
  });
});

describe('writeUpgradeRefusal', () => {
  test('a whole HTTP answer with the same body, then the socket closes', () => {
    let written = '';
    let destroyed = false;
    writeUpgradeRefusal({ write: (data: string) => (written += data), destroy: () => (destroyed = true) }, 403, 'ORIGIN_NOT_ALLOWED', 'Not from here.');
    const [head = '', body = ''] = written.split('\r\n\r\n');
    expect(head.split('\r\n')[0]).toBe('HTTP/1.1 403 Forbidden');
    expect(head).toContain(`Content-Length: ${Buffer.byteLength(body)}`);
    expect(JSON.parse(body)).toEqual({ error: { code: 'ORIGIN_NOT_ALLOWED', message: 'Not from here.' } });
    expect(destroyed).toBe(true);
  });
});
