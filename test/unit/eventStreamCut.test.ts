/**
 * An event stream (src/http/sse.ts) whose client stops reading must not make the control plane
 * buffer for it without end: runtime events are sent as they happen (they are state, the source
 * does not wait), so a browser tab that is frozen or a client that never reads would otherwise
 * grow the process's memory by every event. Once the client is 1 MiB behind, the stream is cut
 * (the browser reconnects and gets the current state first). Here over a real socket, to a client
 * that stops reading after the headers.
 */
import express from 'express';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { LiveConnections } from '../../src/http/liveConnections';
import { EventStreams, type EventStream } from '../../src/http/sse';

const ONE_MIB = 1024 ** 2;
const EVENT_DATA = { state: 'running', detail: 'x'.repeat(32 * 1024) };
const EVENT_BYTES = Buffer.byteLength(`event: state\ndata: ${JSON.stringify(EVENT_DATA)}\n\n`);

interface Served {
  server: http.Server;
  port: number;
  /** The server's side of the one stream, once opened. */
  opened: Promise<{ stream: EventStream; res: express.Response }>;
}

async function serve(streams: EventStreams): Promise<Served> {
  const app = express();
  let resolveOpened: (value: { stream: EventStream; res: express.Response }) => void = () => undefined;
  const opened = new Promise<{ stream: EventStream; res: express.Response }>((resolve) => (resolveOpened = resolve));
  app.get('/events', (req, res) => resolveOpened({ stream: streams.start(req, res, { userId: 'u1', sessionId: 's1' }), res }));
  const server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port, opened };
}

describe('an event stream whose client falls behind', () => {
  test('is cut once 1 MiB is waiting for the client: the buffered bytes never go past that (plus the one event that crossed it), and the stream is forgotten', async () => {
    const connections = new LiveConnections();
    const streams = new EventStreams(connections);
    const { server, port, opened } = await serve(streams);
    try {
      // A client that takes the headers and then reads nothing more.
      const client = new Promise<http.IncomingMessage>((resolve) => {
        const req = http.get({ host: '127.0.0.1', port, path: '/events', agent: false }, (res) => {
          res.pause();
          res.socket.pause();
          res.on('error', () => undefined);
          resolve(res);
        });
        req.on('error', () => undefined);
      });
      const { stream, res } = await opened;
      expect(connections.count('u1', 'stream')).toBe(1);
      let cleanedUp = false;
      stream.onClose(() => (cleanedUp = true));

      // The source sends as events happen, without waiting for the client (as runtime events do).
      let sent = 0;
      let maxBuffered = 0;
      while (!stream.closed) {
        stream.send('state', EVENT_DATA);
        sent++;
        maxBuffered = Math.max(maxBuffered, res.writableLength);
        // Let the socket hand what it can to the kernel, as between real events.
        await new Promise((resolve) => setImmediate(resolve));
        if (sent * EVENT_BYTES > 64 * ONE_MIB) throw new Error(`the stream was never cut (${maxBuffered} bytes waiting for the client)`);
      }

      // The cut came from the buffer, not from the client: more was sent than the bound.
      expect(sent * EVENT_BYTES).toBeGreaterThan(ONE_MIB);
      expect(maxBuffered).toBeLessThanOrEqual(ONE_MIB + EVENT_BYTES);
      expect(cleanedUp).toBe(true);
      expect(res.destroyed).toBe(true);
      // Nothing more is taken once it is cut.
      expect(stream.send('state', EVENT_DATA)).toBe(false);
      // When the client reads again, it finds the connection closed; its place among the user's streams is free again.
      const reader = await client;
      const clientClosed = new Promise<void>((resolve) => (reader.socket.destroyed ? resolve() : reader.socket.once('close', () => resolve())));
      reader.resume();
      reader.socket.resume();
      await clientClosed;
      expect(connections.count('u1', 'stream')).toBe(0);
      expect(streams.size).toBe(0);
      expect(() => streams.assertRoom('u1')).not.toThrow();
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
