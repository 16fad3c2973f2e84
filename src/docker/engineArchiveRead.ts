import net from 'node:net';
import { Readable } from 'node:stream';
import type { EngineArchiveRequest } from '../files/workspaceVolumes';

/** One read buffer per stream, reused for every read of the socket. */
const READ_BUFFER_BYTES = 1024 * 1024;
/** The pieces readEngineArchive hands on, each a buffer of its own that nothing here touches again. */
const PIECE_BYTES = 1024 * 1024;
const MAX_HEAD_BYTES = 64 * 1024;
const MAX_ERROR_BODY_BYTES = 64 * 1024;
const MAX_FRAMING_LINE = 1024;

/** An engine refusal shaped as dockerode's (statusCode, json), which the engine adapter already reads. */
class EngineRefusal extends Error {
  constructor(
    readonly statusCode: number,
    readonly json: unknown,
  ) {
    const said = json && typeof json === 'object' && 'message' in json ? String((json as { message: unknown }).message) : `HTTP ${statusCode}`;
    super(`(HTTP code ${statusCode}) ${said}`);
  }
}

/**
 * HTTP/1.1 chunked transfer coding, undone a read at a time: `emit` gets views of the input
 * (valid only during the call). `done` once the last chunk and its trailer were read.
 */
class ChunkedBody {
  private state: 'size' | 'data' | 'data-end' | 'trailer' | 'done' = 'size';
  private line = '';
  private left = 0;

  get done(): boolean {
    return this.state === 'done';
  }

  feed(input: Buffer, emit: (view: Buffer) => void): void {
    let i = 0;
    while (i < input.length && this.state !== 'done') {
      if (this.state === 'data') {
        const n = Math.min(this.left, input.length - i);
        emit(input.subarray(i, i + n));
        i += n;
        this.left -= n;
        if (this.left === 0) this.state = 'data-end';
        continue;
      }
      const newline = input.indexOf(10, i);
      const end = newline < 0 ? input.length : newline;
      this.line += input.toString('latin1', i, end);
      if (this.line.length > MAX_FRAMING_LINE) throw new Error('the engine sent a malformed chunked body');
      i = newline < 0 ? input.length : newline + 1;
      if (newline < 0) break;
      const text = this.line.endsWith('\r') ? this.line.slice(0, -1) : this.line;
      this.line = '';
      if (this.state === 'data-end') {
        if (text !== '') throw new Error('the engine sent a malformed chunked body');
        this.state = 'size';
      } else if (this.state === 'size') {
        const digits = (text.split(';')[0] ?? '').trim();
        if (!/^[0-9a-fA-F]{1,12}$/.test(digits)) throw new Error('the engine sent a malformed chunked body');
        this.left = parseInt(digits, 16);
        this.state = this.left === 0 ? 'trailer' : 'data';
      } else if (text === '') {
        this.state = 'done';
      }
    }
  }
}

interface Head {
  status: number;
  chunked: boolean;
  length: number | null;
}

function parseHead(text: string): Head {
  const [statusLine = '', ...lines] = text.split('\r\n');
  const status = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
  if (!status) throw new Error('the engine answered something other than HTTP');
  let chunked = false;
  let length: number | null = null;
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === 'transfer-encoding') chunked = value.toLowerCase().split(',').some((coding) => coding.trim() === 'chunked');
    else if (name === 'content-length' && /^\d+$/.test(value)) length = Number(value);
  }
  return { status: Number(status[1]), chunked, length };
}

/** Where the tar's bytes go as they are read. */
export interface ArchiveSink {
  /**
   * A piece of the tar: a view into a buffer the next read reuses, valid only during the call
   * (copy what you keep). Returning false stops reading the engine after this read, until
   * `resume`.
   */
  data(view: Buffer): boolean;
  /** The whole tar was read. */
  end(): void;
  /** The read failed after the engine had said yes (cut short, malformed, stopped). */
  fail(err: Error): void;
}

export interface EngineArchiveRead {
  /**
   * Settles once the engine has answered: true when the tar follows (what the answer's first
   * read held has gone to the sink already, and a fault in that read rejects), false when the
   * container or the path is not there; rejects with the engine's refusal (statusCode and json,
   * as dockerode's errors carry) or with why no answer came.
   */
  answered: Promise<boolean>;
  resume(): void;
  /** Hangs up on the engine; nothing more reaches the sink. */
  stop(): void;
}

/**
 * `GET /containers/{id}/archive?path=` on the engine's Unix socket, read with one reused buffer:
 * the chunked framing is undone in place and the sink sees views of that buffer, so reading
 * costs no new memory at all. Through dockerode the same read costs the control plane about
 * twice the CPU (a new buffer per 64 KiB socket read, then the HTTP parser's and the stream's
 * work per 32 KiB chunk of the engine's): on two cores that is CPU a backup's encryption needs
 * (bench/backup.ts). An answer cut short fails the read; `signal` ends it with its reason.
 */
export function openEngineArchive(request: EngineArchiveRequest, sink: ArchiveSink, signal?: AbortSignal): EngineArchiveRead {
  const target = `${request.apiVersion ? `/${request.apiVersion}` : ''}/containers/${encodeURIComponent(request.containerId)}/archive?path=${encodeURIComponent(request.path)}`;
  let socket: net.Socket | null = null;
  let wantsMore = true;
  /** Stopped by the caller: the sink hears nothing more. */
  let stopped = false;
  const answered = new Promise<boolean>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    let settled = false;
    let head: Head | null = null;
    let headText = '';
    const chunked = new ChunkedBody();
    let received = 0;
    const errorBody: Buffer[] = [];
    let errorBytes = 0;
    /** The tar was read to its end or failed (or the answer refused): nothing more to tell. */
    let ended = false;

    const fail = (err: Error) => {
      connection.destroy();
      if (ended) return;
      // From here on nothing more is said: the caller hears of the fault once.
      ended = true;
      signal?.removeEventListener('abort', onAbort);
      if (!settled) {
        settled = true;
        reject(err);
      } else if (!stopped) sink.fail(err);
    };
    const onAbort = () => fail(signal?.reason instanceof Error ? signal.reason : new Error('the archive read was stopped'));
    signal?.addEventListener('abort', onAbort, { once: true });

    const emitBody = (view: Buffer) => {
      if (!sink.data(view)) wantsMore = false;
    };
    const finishBody = () => {
      ended = true;
      signal?.removeEventListener('abort', onAbort);
      connection.destroy();
      sink.end();
    };
    const collectError = (view: Buffer) => {
      if (errorBytes >= MAX_ERROR_BODY_BYTES) return;
      errorBody.push(Buffer.from(view.subarray(0, MAX_ERROR_BODY_BYTES - errorBytes)));
      errorBytes += view.length;
    };
    const refuse = () => {
      if (!head || settled) return;
      signal?.removeEventListener('abort', onAbort);
      settled = true;
      ended = true;
      connection.destroy();
      if (head.status === 404) return resolve(false);
      const text = Buffer.concat(errorBody).toString('utf8');
      let json: unknown = Buffer.from(text);
      try {
        json = JSON.parse(text);
      } catch {
        // Not JSON: the raw text is what the engine said.
      }
      reject(new EngineRefusal(head.status, json));
    };

    /** A body's bytes in this read: the tar, or an error answer's text. */
    const onBody = (input: Buffer) => {
      const current = head as Head;
      const into = current.status === 200 ? emitBody : collectError;
      if (current.chunked) {
        chunked.feed(input, into);
        if (chunked.done) {
          if (current.status === 200) finishBody();
          else refuse();
        }
        return;
      }
      const take = current.length === null ? input.length : Math.min(input.length, current.length - received);
      received += take;
      into(input.subarray(0, take));
      if (current.length !== null && received >= current.length) {
        if (current.status === 200) finishBody();
        else refuse();
      }
    };

    const onRead = (bytes: number, buffer: Buffer): boolean => {
      // The answer is said to be a yes only after the read that brought the head is through: a
      // fault in it rejects, rather than failing a read the caller has not taken up yet.
      let handOver = false;
      try {
        let input = buffer.subarray(0, bytes);
        if (!head) {
          const before = headText.length;
          headText += input.toString('latin1');
          const end = headText.indexOf('\r\n\r\n');
          if (end < 0) {
            if (headText.length > MAX_HEAD_BYTES) throw new Error('the engine sent an answer head that does not end');
            return true;
          }
          head = parseHead(headText.slice(0, end));
          input = input.subarray(end + 4 - before);
          handOver = head.status === 200;
          if (!head.chunked && head.length === 0) {
            if (head.status === 200) finishBody();
            else refuse();
            input = input.subarray(input.length);
          }
        }
        if (input.length > 0 && !ended) onBody(input);
      } catch (err) {
        fail(err as Error);
        return false;
      }
      if (handOver && !settled) {
        settled = true;
        resolve(true);
      }
      // Not by returning false: that stops the reads in a way only net's internals restart.
      if (!wantsMore) connection.pause();
      return true;
    };

    const connection = net.connect({ path: request.socketPath, onread: { buffer: Buffer.allocUnsafeSlow(READ_BUFFER_BYTES), callback: onRead } });
    socket = connection;
    connection.on('connect', () => connection.write(`GET ${target} HTTP/1.1\r\nHost: docker\r\nUser-Agent: clawloops\r\nConnection: close\r\n\r\n`));
    connection.on('error', (err) => fail(err));
    connection.on('end', () => {
      if (!head) return fail(new Error('the engine closed the connection without answering'));
      // An answer delimited by the end of the connection ends here; any other is cut short.
      if (!head.chunked && head.length === null) {
        if (head.status === 200 && !ended) finishBody();
        else refuse();
      } else if (!ended && head.status === 200) fail(new Error('the engine ended the archive before its end'));
      else refuse();
    });
    connection.on('close', () => {
      signal?.removeEventListener('abort', onAbort);
      if (!settled) fail(new Error('the engine closed the connection without answering'));
      else if (!ended && head?.status === 200) fail(new Error('the engine ended the archive before its end'));
    });
  });
  return {
    answered,
    resume: () => {
      wantsMore = true;
      // net.Socket's own resume starts reading into the user buffer again (its pause stopped it).
      socket?.resume();
    },
    stop: () => {
      stopped = true;
      socket?.destroy();
    },
  };
}

/**
 * The archive as a stream of 1 MiB pieces, each a buffer of its own. Resolves with it once the
 * engine said yes, null when the container or the path is not there; rejects with the engine's
 * refusal. An answer cut short fails the stream; `signal` ends it with its reason.
 */
export async function readEngineArchive(request: EngineArchiveRequest, signal?: AbortSignal): Promise<Readable | null> {
  let piece = Buffer.allocUnsafeSlow(PIECE_BYTES);
  let filled = 0;
  const out = new Readable({
    highWaterMark: 4 * PIECE_BYTES,
    read: () => read.resume(),
    destroy(err, done) {
      read.stop();
      done(err);
    },
  });
  const read = openEngineArchive(
    request,
    {
      data: (view) => {
        let wantsMore = true;
        for (let offset = 0; offset < view.length; ) {
          const n = Math.min(PIECE_BYTES - filled, view.length - offset);
          view.copy(piece, filled, offset, offset + n);
          filled += n;
          offset += n;
          if (filled === PIECE_BYTES) {
            wantsMore = out.push(piece) && wantsMore;
            piece = Buffer.allocUnsafeSlow(PIECE_BYTES);
            filled = 0;
          }
        }
        return wantsMore;
      },
      end: () => {
        if (filled > 0) out.push(piece.subarray(0, filled));
        out.push(null);
      },
      fail: (err) => out.destroy(err),
    },
    signal,
  );
  return (await read.answered) ? out : null;
}
