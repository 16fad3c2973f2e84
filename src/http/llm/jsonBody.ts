import type { IncomingMessage } from 'node:http';
import type { Readable, Transform } from 'node:stream';
import zlib from 'node:zlib';

export type JsonBodyRead = { ok: true; value: unknown } | { ok: false; error: 'too_large' | 'invalid_json' | 'unsupported_encoding' | 'aborted' };

/**
 * Reads a request body as JSON, at most `limit` bytes once decoded, the way the platform's JSON
 * parser did: an empty body is `{}`, only an object or array is JSON here (a bare string or number
 * is not), gzip and deflate bodies are inflated (the limit counts the inflated bytes), and a declared
 * length above the limit is refused before anything is read. A refused body is drained, not read
 * into memory, so the client still gets the answer.
 */
export function readJsonBody(req: IncomingMessage, limit: number): Promise<JsonBodyRead> {
  const encoding = (req.headers['content-encoding'] ?? 'identity').toLowerCase();
  const charset = /;\s*charset=["']?([^"';\s]+)/i.exec(req.headers['content-type'] ?? '')?.[1]?.toLowerCase();
  if (charset !== undefined && !charset.startsWith('utf-')) return refuse(req, 'unsupported_encoding');
  let inflate: Transform | null = null;
  if (encoding === 'gzip' || encoding === 'x-gzip') inflate = zlib.createGunzip();
  else if (encoding === 'deflate') inflate = zlib.createInflate();
  else if (encoding !== 'identity') return refuse(req, 'unsupported_encoding');
  else {
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (declared > limit) return refuse(req, 'too_large');
  }

  const source: Readable = inflate ? req.pipe(inflate) : req;

  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const settle = (result: JsonBodyRead) => {
      if (settled) return;
      settled = true;
      source.off('data', onData);
      if (!result.ok && result.error !== 'aborted') {
        if (inflate) {
          req.unpipe(inflate);
          inflate.destroy();
        }
        // The rest of the body is read and dropped: the client gets its answer, not a reset.
        req.resume();
      }
      resolve(result);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) return settle({ ok: false, error: 'too_large' });
      chunks.push(chunk);
    };
    source.on('data', onData);
    // `on`, not `once`: a decompressor can fail again after the first failure was answered.
    source.on('error', () => settle(source === req ? { ok: false, error: 'aborted' } : { ok: false, error: 'invalid_json' }));
    req.once('close', () => {
      if (!req.complete) settle({ ok: false, error: 'aborted' });
    });
    source.once('end', () => {
      if (size === 0) return settle({ ok: true, value: {} });
      const text = Buffer.concat(chunks, size).toString('utf8');
      const first = /\S/.exec(text)?.[0];
      if (first !== '{' && first !== '[') return settle({ ok: false, error: 'invalid_json' });
      try {
        settle({ ok: true, value: JSON.parse(text) as unknown });
      } catch {
        settle({ ok: false, error: 'invalid_json' });
      }
    });
  });
}

function refuse(req: IncomingMessage, error: 'too_large' | 'unsupported_encoding'): Promise<JsonBodyRead> {
  req.resume();
  return Promise.resolve({ ok: false, error });
}
