/**
 * The egress proxy on loopback, with a real TCP echo server and a real HTTP server as the
 * outside world. Who calls is decided by a stand-in for the runtime registry; what is allowed by
 * the real policy (loopback is private, so tests allow it by name or address where they need it).
 */
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { EgressPolicy, type EgressRules } from '../../src/egress/egressPolicy';
import { EgressProxy, type EgressCaller, type EgressOutcome } from '../../src/egress/egressProxy';
import { eventually } from '../support/eventually';
import { createLogger } from '../../src/lib/logger';

const ALICE: EgressCaller = { userId: 'u-alice', username: 'alice' };

let caller: EgressCaller | null;
let rules: EgressRules;
let resolved: string[];
const lookups: string[] = [];
/** What this test's proxy recorded (a tunnel of an earlier test may close late, into its own proxy's list). */
let recorded: EgressOutcome[] = [];
/** The policy each caller got, by user id (the proxy asks per connection). */
const policiesAskedFor: string[] = [];
let proxy: EgressProxy;
let proxyPort: number;
let echo: net.Server;
let echoPort: number;
let echoConnections = 0;
let web: http.Server;
let webPort: number;
const webSeen: http.IncomingHttpHeaders[] = [];

beforeAll(async () => {
  echo = net.createServer((socket) => {
    echoConnections++;
    socket.pipe(socket);
    socket.on('error', () => socket.destroy());
  });
  await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
  echoPort = (echo.address() as AddressInfo).port;
  web = http.createServer((req, res) => {
    webSeen.push(req.headers);
    res.end(`hello from ${req.url}`);
  });
  await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', resolve));
  webPort = (web.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise((resolve) => echo.close(resolve));
  await new Promise((resolve) => web.close(resolve));
});

async function startProxy(options: { maxTunnelsPerCaller?: number } = {}) {
  const mine: EgressOutcome[] = [];
  recorded = mine;
  proxy = new EgressProxy({
    identify: () => caller,
    policy: (userId) => {
      policiesAskedFor.push(userId);
      return new EgressPolicy(rules);
    },
    record: (outcome) => mine.push(outcome),
    resolve: async (host) => {
      lookups.push(host);
      return resolved;
    },
    logger: createLogger('silent'),
    ...options,
  });
  proxyPort = await proxy.listen(0, '127.0.0.1');
}

beforeEach(async () => {
  caller = ALICE;
  rules = { profile: 'public', allow: ['tools.office.lan'], deny: [] };
  resolved = ['127.0.0.1'];
  lookups.length = 0;
  policiesAskedFor.length = 0;
  echoConnections = 0;
  webSeen.length = 0;
  await startProxy();
});

afterEach(() => proxy.close());

/** Sends a CONNECT and resolves with the status line and the socket (open on 200). */
function connectThrough(target: string): Promise<{ status: number; body: string; socket: net.Socket }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(proxyPort, '127.0.0.1', () => socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`));
    let buffered = '';
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString('latin1');
      const end = buffered.indexOf('\r\n\r\n');
      if (end < 0) return;
      const status = Number(buffered.slice(9, 12));
      if (status === 200) {
        socket.off('data', onData);
        // Held until the test reads: what comes meanwhile (and what came after the status in the
        // same read, the tunnel's first bytes) is kept for it.
        socket.pause();
        const rest = buffered.slice(end + 4);
        if (rest.length > 0) socket.unshift(Buffer.from(rest, 'latin1'));
        resolve({ status, body: '', socket });
      } else {
        socket.once('end', () => resolve({ status, body: buffered.slice(end + 4), socket }));
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
  });
}

const roundTrip = (socket: net.Socket, text: string) =>
  new Promise<string>((resolve) => {
    socket.once('data', (chunk: Buffer) => resolve(chunk.toString()));
    socket.resume();
    socket.write(text);
  });

describe('CONNECT (https and anything else over TCP)', () => {
  test('an allowed destination gets a tunnel that carries bytes both ways', async () => {
    const { status, socket } = await connectThrough(`tools.office.lan:${echoPort}`);
    expect(status).toBe(200);
    expect(await roundTrip(socket, 'ping')).toBe('ping');
    socket.destroy();
    expect(lookups).toEqual(['tools.office.lan']);
  });

  test('a connection that does not come from a runtime is refused before anything is resolved or dialled', async () => {
    caller = null;
    const { status, body } = await connectThrough(`tools.office.lan:${echoPort}`);
    expect(status).toBe(403);
    expect(JSON.parse(body)).toEqual({ error: { code: 'EGRESS_NOT_A_RUNTIME', message: expect.any(String) } });
    expect(lookups).toEqual([]);
    expect(echoConnections).toBe(0);
  });

  test('a name that resolves to a private address is refused with the reason, and nothing is dialled', async () => {
    const { status, body } = await connectThrough(`rebind.attacker.example:${echoPort}`);
    expect(status).toBe(403);
    expect(JSON.parse(body).error).toMatchObject({ code: 'EGRESS_DENIED', message: expect.stringMatching(/private.*administrator can allow/) });
    expect(echoConnections).toBe(0);
  });

  test('an address literal is judged as it is (no resolution), so 127.0.0.2 stays refused', async () => {
    const { status } = await connectThrough(`127.0.0.2:${echoPort}`);
    expect(status).toBe(403);
    expect(lookups).toEqual([]);
  });

  test('the name is resolved once and the tunnel goes to the address that was judged', async () => {
    const seen: string[] = [];
    await proxy.close();
    proxy = new EgressProxy({
      identify: () => caller,
      policy: () => ({
        decide: (_host: string, addresses: string[]) => {
          seen.push(...addresses);
          return { allowed: true as const, address: '127.0.0.1' };
        },
      }),
      resolve: async (host) => {
        lookups.push(host);
        return ['127.0.0.9'];
      },
      logger: createLogger('silent'),
    });
    proxyPort = await proxy.listen(0, '127.0.0.1');
    const { status, socket } = await connectThrough(`once.example:${echoPort}`);
    expect(status).toBe(200);
    expect(await roundTrip(socket, 'x')).toBe('x');
    socket.destroy();
    expect(lookups).toEqual(['once.example']);
    expect(seen).toEqual(['127.0.0.9']);
  });

  test('the "none" profile refuses every destination', async () => {
    rules = { ...rules, profile: 'none' };
    const { status, body } = await connectThrough(`tools.office.lan:${echoPort}`);
    expect(status).toBe(403);
    expect(JSON.parse(body).error.message).toContain('no internet');
  });

  test.each(['nohost', 'host:0', 'host:99999', '[not-v6]:443', 'a b:443'])('a malformed target (%s) is a 400', async (target) => {
    const { status } = await connectThrough(target);
    expect(status).toBe(400);
  });

  test('a destination that does not answer is a 502, and its slot is given back', async () => {
    await startBounded(1);
    const closed = net.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const deadPort = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    expect((await connectThrough(`tools.office.lan:${deadPort}`)).status).toBe(502);
    const { status, socket } = await connectThrough(`tools.office.lan:${echoPort}`);
    expect(status).toBe(200);
    socket.destroy();
  });

  test('the per-workspace bound on open connections holds when many arrive at once, and frees up as they close', async () => {
    await startBounded(3);
    const results = await Promise.all(Array.from({ length: 10 }, () => connectThrough(`tools.office.lan:${echoPort}`)));
    const open = results.filter((r) => r.status === 200);
    expect(open).toHaveLength(3);
    expect(results.filter((r) => r.status === 429)).toHaveLength(7);
    expect(JSON.parse(results.find((r) => r.status === 429)?.body ?? '{}').error.code).toBe('EGRESS_TOO_MANY_CONNECTIONS');
    // Another member is not held back by Alice's connections.
    caller = { userId: 'u-bruno', username: 'bruno' };
    const bruno = await connectThrough(`tools.office.lan:${echoPort}`);
    expect(bruno.status).toBe(200);
    bruno.socket.destroy();
    caller = ALICE;
    open[0]?.socket.destroy();
    await new Promise((resolve) => open[0]?.socket.once('close', resolve));
    await waitFor(async () => (await connectThrough(`tools.office.lan:${echoPort}`)).status === 200);
    for (const r of open) r.socket.destroy();
  });
});

describe('the relay', () => {
  test('a runtime that closes its side frees the slot at once, also to a destination that never sent or ended anything', async () => {
    await startBounded(1);
    // Sends nothing and never ends on its own; it closes when told the runtime has (TCP's default).
    const silent = net.createServer((socket) => socket.on('error', () => undefined));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = silent.address() as AddressInfo;
      const first = await connectThrough(`tools.office.lan:${port}`);
      expect(first.status).toBe(200);
      first.socket.end();
      await new Promise((resolve) => first.socket.once('close', resolve));
      // Not after the 30 s a tunnel may take to finish after one side closed: the next tries come at once.
      await waitFor(async () => {
        const next = await connectThrough(`tools.office.lan:${port}`);
        next.socket.destroy();
        return next.status === 200;
      });
    } finally {
      silent.close();
    }
  });

  test('a large download arrives byte for byte, also when the runtime reads slowly (one buffer per tunnel is reused)', async () => {
    const payload = randomBytes(8 * 1024 * 1024);
    const source = net.createServer((socket) => {
      socket.on('error', () => undefined);
      socket.end(payload);
    });
    await new Promise<void>((resolve) => source.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = source.address() as AddressInfo;
      const { status, socket } = await connectThrough(`tools.office.lan:${port}`);
      expect(status).toBe(200);
      const received = await new Promise<Buffer>((resolve, reject) => {
        const chunks: Buffer[] = [];
        let count = 0;
        socket.on('data', (chunk: Buffer) => {
          chunks.push(chunk);
          // A slow reader: at first not at all for a while (every buffer between fills up and the
          // destination has sent its last byte and closed), then in fits: the proxy's writes queue
          // up, its reading must wait, and the end must come after the last queued byte.
          if (++count === 1 || count % 4 === 0) {
            socket.pause();
            setTimeout(() => socket.resume(), count === 1 ? 500 : 10);
          }
        });
        socket.on('end', () => resolve(Buffer.concat(chunks)));
        socket.on('error', reject);
        socket.resume();
      });
      expect(received.length).toBe(payload.length);
      expect(createHash('sha256').update(received).digest('hex')).toBe(createHash('sha256').update(payload).digest('hex'));
    } finally {
      await new Promise((resolve) => source.close(resolve));
    }
  });
});

describe('the record', () => {
  test('a tunnel is recorded once it closes, for the member it came from, with the bytes each way', async () => {
    const { socket } = await connectThrough(`Tools.Office.LAN:${echoPort}`);
    expect(await roundTrip(socket, 'ping-pong')).toBe('ping-pong');
    socket.destroy();
    const [entry] = await eventually(async () => (recorded.length > 0 ? recorded : undefined), 'the tunnel to be recorded');
    expect(entry).toMatchObject({ userId: ALICE.userId, host: 'tools.office.lan', port: echoPort, verdict: 'allowed', reason: null, bytesOut: 9, bytesIn: 9 });
    expect(policiesAskedFor).toEqual([ALICE.userId]);
  });

  test('a refusal is recorded as denied with the reason the agent was given; an unreachable one as failed', async () => {
    const denied = await connectThrough(`127.0.0.2:${echoPort}`);
    expect(denied.status).toBe(403);
    resolved = ['127.0.0.1'];
    const closedPort = await new Promise<number>((resolve) => {
      const probe = net.createServer().listen(0, '127.0.0.1', () => {
        const { port } = probe.address() as AddressInfo;
        probe.close(() => resolve(port));
      });
    });
    const failed = await connectThrough(`tools.office.lan:${closedPort}`);
    expect(failed.status).toBe(502);
    expect(recorded.map((r) => [r.host, r.verdict])).toEqual([
      ['127.0.0.2', 'denied'],
      ['tools.office.lan', 'failed'],
    ]);
    expect(recorded[0]?.reason).toBe(JSON.parse(denied.body).error.message);
  });

  test('a plain http request is recorded with its bytes; a caller that is no runtime is not recorded (it has no member)', async () => {
    await new Promise<void>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: proxyPort, method: 'POST', path: `http://tools.office.lan:${webPort}/upload` }, (res) => {
        res.resume();
        res.on('end', resolve);
      });
      req.on('error', reject);
      req.end('twelve bytes');
    });
    await eventually(async () => (recorded.length > 0 ? true : undefined), 'the request to be recorded');
    expect(recorded[0]).toMatchObject({ host: 'tools.office.lan', port: webPort, verdict: 'allowed', bytesOut: 12, bytesIn: 'hello from /upload'.length });
    caller = null;
    expect((await connectThrough(`tools.office.lan:${echoPort}`)).status).toBe(403);
    expect(recorded).toHaveLength(1);
  });
});

describe('lookups in flight', () => {
  test('count against the bound: an agent cannot pile up work behind a slow name server', async () => {
    await proxy.close();
    let answer: (addresses: string[]) => void = () => {};
    const gate = new Promise<string[]>((resolve) => (answer = resolve));
    let asked = 0;
    const resolve = () => {
      asked++;
      return gate;
    };
    proxy = new EgressProxy({ identify: () => caller, policy: () => new EgressPolicy(rules), resolve, logger: createLogger('silent'), maxTunnelsPerCaller: 2 });
    proxyPort = await proxy.listen(0, '127.0.0.1');
    const slow = [connectThrough(`tools.office.lan:${echoPort}`), connectThrough(`tools.office.lan:${echoPort}`)];
    while (asked < 2) await new Promise((r) => setImmediate(r));
    const third = await connectThrough(`tools.office.lan:${echoPort}`);
    expect(third.status).toBe(429);
    expect(asked).toBe(2);
    answer(['127.0.0.1']);
    const done = await Promise.all(slow);
    expect(done.map((d) => d.status)).toEqual([200, 200]);
    for (const d of done) d.socket.destroy();
  });
});

describe('plain http:// requests', () => {
  const get = (url: string, headers: http.OutgoingHttpHeaders = {}) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port: proxyPort, path: url, headers }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        })
        .on('error', reject);
    });

  test('are forwarded to an allowed destination, without the proxy credentials a tool may add', async () => {
    const res = await get(`http://tools.office.lan:${webPort}/page?q=1`, { 'proxy-authorization': 'Basic c2VjcmV0', 'x-kept': 'yes' });
    expect(res).toEqual({ status: 200, body: 'hello from /page?q=1' });
    expect(webSeen[0]).toMatchObject({ host: `tools.office.lan:${webPort}`, 'x-kept': 'yes' });
    expect(webSeen[0]?.['proxy-authorization']).toBeUndefined();
  });

  test('are refused with a JSON error when the policy says no, and never reach the destination', async () => {
    const res = await get(`http://internal.example:${webPort}/`);
    expect(res.status).toBe(403);
    expect(JSON.parse(res.body).error.code).toBe('EGRESS_DENIED');
    expect(webSeen).toHaveLength(0);
  });

  test('a request that is not in absolute form gets a 400 that says what this port is', async () => {
    const res = await get('/');
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body).error.message).toContain('proxy');
  });
});

async function startBounded(max: number) {
  await proxy.close();
  await startProxy({ maxTunnelsPerCaller: max });
}

async function waitFor(check: () => Promise<boolean>) {
  for (let i = 0; i < 50; i++) if (await check()) return;
  throw new Error('condition never held');
}
