import type { Request, Response } from 'express';
import { AppError } from '../lib/errors';
import type { ConnectionOwner, LiveConnections } from './liveConnections';

export interface EventStream {
  /** False when the client's buffer is full: pause the source until `onWritable` calls back. */
  send(event: string, data: unknown): boolean;
  /** Runs once the client has taken what was buffered. */
  onWritable(resume: () => void): void;
  /** Sends a last event and closes the response. */
  end(event?: string, data?: unknown): void;
  /** Runs when the client goes away or the stream is ended, whichever comes first. */
  onClose(cleanup: () => void): void;
  readonly closed: boolean;
}

export type StreamOwner = Omit<ConnectionOwner, 'kind'>;

const KEEPALIVE_MS = 15_000;
/** A client this far behind is cut off (events are state: on reconnect it gets the current state first). */
const MAX_BUFFERED_BYTES = 1024 ** 2;
/** What every stream's id is: only its coming back in Last-Event-ID means anything. */
export const STREAM_ID = '0';
/** Open event and log streams per user (all their tabs together): each holds a connection and a subscription. */
export const MAX_STREAMS_PER_USER = 16;

/** Told of every stream opened (the metrics count reconnects). */
export interface EventStreamObserver {
  opened(reconnect: boolean): void;
}

/**
 * Tracks open event streams: a shutdown ends them (they never go idle by themselves and would
 * otherwise hold the server open until the shutdown timeout), the end of the session they were
 * opened under ends them, and one user can hold only so many at once.
 */
export class EventStreams {
  private readonly open = new Set<EventStream>();

  constructor(
    private readonly connections: LiveConnections,
    private readonly maxPerUser = MAX_STREAMS_PER_USER,
    private readonly observer: EventStreamObserver | null = null,
  ) {}

  /** A 429 when `userId` already holds the maximum of open streams. */
  assertRoom(userId: string): void {
    if (this.connections.count(userId, 'stream') >= this.maxPerUser) {
      throw new AppError(429, 'TOO_MANY_STREAMS', `You have ${this.maxPerUser} event or log streams open already (other tabs or windows); close some and try again.`, { 'Retry-After': '5' });
    }
  }

  /** Opens a stream for `owner`; a 429 (before any byte is written) when they already hold the maximum. */
  start(req: Request, res: Response, owner: StreamOwner): EventStream {
    this.assertRoom(owner.userId);
    const stream = openEventStream(req, res);
    // A browser's EventSource sends back the last id it saw when it reconnects by itself.
    this.observer?.opened(req.headers['last-event-id'] !== undefined);
    this.open.add(stream);
    const forget = this.connections.add({ ...owner, kind: 'stream' }, () => stream.end('session-ended', { reason: 'The session this stream belonged to has ended; sign in again.' }));
    stream.onClose(() => {
      this.open.delete(stream);
      forget();
    });
    return stream;
  }

  endAll(reason: string): void {
    for (const stream of [...this.open]) stream.end('shutdown', { reason });
  }

  get size(): number {
    return this.open.size;
  }
}

/**
 * Turns a response into a Server-Sent Events stream. A comment line every 15 s keeps proxies
 * (and Traefik's idle timeout) from cutting a quiet stream; `X-Accel-Buffering: no` stops a
 * buffering proxy from holding events back.
 */
export function openEventStream(req: Request, res: Response): EventStream {
  res.status(200);
  res.setHeader('Content-Type', 'text/event-stream; charset=utf-8');
  res.setHeader('Cache-Control', 'no-cache, no-transform');
  res.setHeader('X-Accel-Buffering', 'no');
  res.setHeader('Connection', 'keep-alive');
  res.flushHeaders();
  // The id (the same on every stream: events are state, nothing is replayed) only makes a browser
  // that reconnects by itself say so, with Last-Event-ID, so reconnects can be counted.
  res.write(`retry: 3000\nid: ${STREAM_ID}\n\n`);

  const cleanups: (() => void)[] = [];
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    clearInterval(keepalive);
    for (const cleanup of cleanups.splice(0)) cleanup();
  };
  const keepalive = setInterval(() => {
    if (!res.writableNeedDrain) res.write(': keepalive\n\n');
  }, KEEPALIVE_MS);
  keepalive.unref();
  req.on('close', close);
  res.on('close', close);

  const write = (event: string, data: unknown): boolean => {
    // JSON never contains a raw newline, so one data: line per event is always well-formed.
    const writable = res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    if (res.writableLength > MAX_BUFFERED_BYTES) {
      close();
      res.destroy();
      return false;
    }
    return writable;
  };

  return {
    send(event, data) {
      return closed ? false : write(event, data);
    },
    onWritable(resume) {
      if (closed) return;
      if (!res.writableNeedDrain) return resume();
      res.once('drain', resume);
    },
    end(event, data) {
      if (closed) return;
      if (event) write(event, data);
      close();
      res.end();
      // A client that stopped reading must not keep the connection (and what it buffered) alive.
      if (res.writableNeedDrain) res.destroy();
    },
    onClose(cleanup) {
      if (closed) cleanup();
      else cleanups.push(cleanup);
    },
    get closed() {
      return closed;
    },
  };
}
