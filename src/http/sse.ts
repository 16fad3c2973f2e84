import type { Request, Response } from 'express';

export interface EventStream {
  send(event: string, data: unknown): void;
  /** Sends a last event and closes the response. */
  end(event?: string, data?: unknown): void;
  /** Runs when the client goes away or the stream is ended, whichever comes first. */
  onClose(cleanup: () => void): void;
  readonly closed: boolean;
}

const KEEPALIVE_MS = 15_000;

/**
 * Tracks open event streams so a shutdown can end them: they never go idle by themselves and
 * would otherwise hold the server open until the shutdown timeout.
 */
export class EventStreams {
  private readonly open = new Set<EventStream>();

  start(req: Request, res: Response): EventStream {
    const stream = openEventStream(req, res);
    this.open.add(stream);
    stream.onClose(() => this.open.delete(stream));
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
  res.write('retry: 3000\n\n');

  const cleanups: (() => void)[] = [];
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    clearInterval(keepalive);
    for (const cleanup of cleanups.splice(0)) cleanup();
  };
  const keepalive = setInterval(() => res.write(': keepalive\n\n'), KEEPALIVE_MS);
  keepalive.unref();
  req.on('close', close);
  res.on('close', close);

  const write = (event: string, data: unknown) => {
    // JSON never contains a raw newline, so one data: line per event is always well-formed.
    res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  };

  return {
    send(event, data) {
      if (!closed) write(event, data);
    },
    end(event, data) {
      if (closed) return;
      if (event) write(event, data);
      close();
      res.end();
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
