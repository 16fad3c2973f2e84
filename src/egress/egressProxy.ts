import { Resolver } from 'node:dns/promises';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import net, { isIP, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '../lib/logger';
import { HOP_BY_HOP_HEADERS } from '../lib/hopByHop';
import type { EgressPolicy } from './egressPolicy';

/** The member a connection came from, known by where it arrived from, never by what it says. */
export interface EgressCaller {
  userId: string;
  username: string;
}

/** What the record keeps of one connection (egressRecord.ts). */
export interface EgressOutcome {
  userId: string;
  at: number;
  host: string;
  port: number;
  verdict: 'allowed' | 'denied' | 'failed';
  reason: string | null;
  bytesOut: number;
  bytesIn: number;
  durationMs: number;
}

export interface EgressProxyDeps {
  /** The runtime whose address this is; null for anyone else (the proxy is no open relay). */
  identify(address: string): EgressCaller | null;
  /** The policy for this member's connections. */
  policy(userId: string): Pick<EgressPolicy, 'decide'>;
  /** Each connection of a known caller once it is over (or refused): the record. */
  record?(outcome: EgressOutcome): void;
  /** The time connections are stamped with (the platform's clock). */
  now?(): number;
  resolve?(host: string): Promise<string[]>;
  logger: Logger;
  /** Connections open at once per member; more are refused (an agent cannot exhaust the process). */
  maxTunnelsPerCaller?: number;
  connectTimeoutMs?: number;
}

const DEFAULT_MAX_TUNNELS = 256;
/** Every connection to the proxy at once, tunnels and requests not yet admitted alike. */
const MAX_CONNECTIONS = 8_192;
const DEFAULT_CONNECT_TIMEOUT_MS = 15_000;
const RESOLVE_TIMEOUT_MS = 10_000;
/** How long one side of a tunnel may take to finish after the other has closed. */
const DRAIN_AFTER_CLOSE_MS = 30_000;
/** One per tunnel, for what the destination sends (the size of a socket read). */
const RELAY_BUFFER = 64 * 1024;

/** Node frames each side itself: the framing the other side used is not passed on either. */
const HOP_BY_HOP = new Set([...HOP_BY_HOP_HEADERS, 'transfer-encoding']);

/**
 * Asks the system's name servers directly (c-ares), not getaddrinfo: that one runs on libuv's
 * four pool threads, which password hashing and file access share, so an agent asking for slow
 * names could stall sign-ins. Names only /etc/hosts knows do not resolve here.
 */
const nameServers = new Resolver({ timeout: 4_000, tries: 2 });
async function systemResolve(host: string): Promise<string[]> {
  const [v4, v6] = await Promise.allSettled([nameServers.resolve4(host), nameServers.resolve6(host)]);
  const addresses = [...(v4.status === 'fulfilled' ? v4.value : []), ...(v6.status === 'fulfilled' ? v6.value : [])];
  if (addresses.length > 0) return addresses;
  const reason = v4.status === 'rejected' ? v4.reason : v6.status === 'rejected' ? v6.reason : null;
  throw reason instanceof Error ? reason : new Error('no address');
}

/** `::ffff:10.0.0.5` as the runtime knows itself: 10.0.0.5. */
export const plainAddress = (address: string | undefined) => (address ?? '').replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '');

interface Target {
  host: string;
  port: number;
}

/** `host:port` of a CONNECT (IPv6 in brackets); null when malformed. */
function parseAuthority(authority: string): Target | null {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s/@]+)):(\d{1,5})$/.exec(authority);
  const host = match?.[1] ?? match?.[2];
  const port = Number(match?.[3]);
  if (!host || !Number.isInteger(port) || port < 1 || port > 65535) return null;
  if (match?.[1] && isIP(host) !== 6) return null;
  return { host, port };
}

class EgressRefusal extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }

  /** How the record calls it: the policy (or a bound) said no, or the destination could not be had. */
  get verdict(): 'denied' | 'failed' {
    return this.code === 'EGRESS_UNRESOLVED' || this.code === 'EGRESS_UNREACHABLE' ? 'failed' : 'denied';
  }
}

/** A whole HTTP response on a raw socket (CONNECT and parse errors have no ServerResponse). */
function refusalResponse(refusal: EgressRefusal): string {
  const body = JSON.stringify({ error: { code: refusal.code, message: refusal.message } });
  return `HTTP/1.1 ${refusal.status} ${http.STATUS_CODES[refusal.status] ?? ''}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;
}

/**
 * The only way out of a runtime (runtime networks are internal): an HTTP forward proxy with
 * CONNECT, in the control plane, which already sits on every runtime network and so tells
 * callers apart by the address a connection arrives from. Names are resolved here and judged by
 * the policy on the addresses they resolve to; the connection then goes to exactly that address.
 */
export class EgressProxy {
  readonly server: http.Server;
  private readonly open = new Map<string, number>();
  private readonly resolve: (host: string) => Promise<string[]>;
  private readonly maxTunnels: number;
  private readonly connectTimeoutMs: number;
  private readonly sockets = new Set<Duplex>();
  private readonly now: () => number;

  constructor(private readonly deps: EgressProxyDeps) {
    this.resolve = deps.resolve ?? systemResolve;
    this.maxTunnels = deps.maxTunnelsPerCaller ?? DEFAULT_MAX_TUNNELS;
    this.connectTimeoutMs = deps.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    this.now = deps.now ?? Date.now;
    this.server = http.createServer((req, res) => void this.forward(req, res));
    this.server.on('connect', (req: IncomingMessage, socket: Duplex, head: Buffer) => void this.tunnel(req, socket, head));
    this.server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    // A connection that never finishes its request line is cut soon: each holds a descriptor.
    this.server.headersTimeout = 10_000;
    this.server.maxConnections = MAX_CONNECTIONS;
    this.server.on('clientError', (_err, socket: Duplex) => {
      if (socket.writable) socket.end(refusalResponse(new EgressRefusal(400, 'EGRESS_BAD_REQUEST', 'Malformed proxy request.')));
      else socket.destroy();
    });
  }

  listen(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve((this.server.address() as net.AddressInfo).port);
      });
    });
  }

  /** Stops listening and cuts every tunnel: they carry no state of ours worth finishing. */
  close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private caller(req: IncomingMessage): EgressCaller {
    const caller = this.deps.identify(plainAddress(req.socket.remoteAddress));
    if (!caller) throw new EgressRefusal(403, 'EGRESS_NOT_A_RUNTIME', 'This proxy serves ClawLoops workspaces only.');
    return caller;
  }

  /**
   * Reserves one of the caller's slots, then resolves and judges; the returned release must be
   * called exactly once. The slot is taken before the lookup, so lookups in flight count too: an
   * agent cannot pile up unbounded work behind a slow name server.
   */
  private async admit(caller: EgressCaller, target: Target): Promise<{ address: string; release: () => void }> {
    const count = this.open.get(caller.userId) ?? 0;
    if (count >= this.maxTunnels) {
      throw new EgressRefusal(429, 'EGRESS_TOO_MANY_CONNECTIONS', `At most ${this.maxTunnels} outside connections may be open at once per workspace.`);
    }
    this.open.set(caller.userId, count + 1);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      const left = (this.open.get(caller.userId) ?? 1) - 1;
      if (left <= 0) this.open.delete(caller.userId);
      else this.open.set(caller.userId, left);
    };
    try {
      const addresses = isIP(target.host) !== 0 ? [target.host] : await this.lookup(target.host);
      const verdict = this.deps.policy(caller.userId).decide(target.host, addresses);
      if (!verdict.allowed) {
        this.deps.logger.info({ userId: caller.userId, username: caller.username, host: target.host, port: target.port, verdict: 'denied' }, 'egress refused');
        throw new EgressRefusal(403, 'EGRESS_DENIED', `ClawLoops egress policy: ${verdict.reason}.`);
      }
      this.deps.logger.debug({ userId: caller.userId, host: target.host, address: verdict.address, port: target.port, verdict: 'allowed' }, 'egress allowed');
      return { address: verdict.address, release };
    } catch (err) {
      release();
      throw err;
    }
  }

  private async lookup(host: string): Promise<string[]> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        this.resolve(host),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error('timed out')), RESOLVE_TIMEOUT_MS);
        }),
      ]);
    } catch (err) {
      throw new EgressRefusal(502, 'EGRESS_UNRESOLVED', `${host} could not be resolved (${(err as Error).message}).`);
    } finally {
      clearTimeout(timer);
    }
  }

  private async tunnel(req: IncomingMessage, client: Duplex, head: Buffer): Promise<void> {
    client.on('error', () => client.destroy());
    let release = () => {};
    let caller: EgressCaller | null = null;
    let target: Target | null = null;
    const startedAt = this.now();
    try {
      caller = this.caller(req);
      target = parseAuthority(req.url ?? '');
      if (!target) throw new EgressRefusal(400, 'EGRESS_BAD_TARGET', 'CONNECT needs host:port.');
      const admitted = await this.admit(caller, target);
      release = admitted.release;
      // Downloads are the bulk of what goes through: the destination's bytes are read into one
      // buffer per tunnel (not a new 64 KiB buffer per read for the collector), so a piece must be
      // in the runtime's socket before the next read. Usually the kernel takes it at once (nothing
      // is left queued) and reading goes on; otherwise reading pauses until the write is done.
      const downloaded = Buffer.allocUnsafe(RELAY_BUFFER);
      let upstream: Socket | null = null;
      let paused = false;
      const relay = {
        buffer: downloaded,
        callback: (n: number) => {
          client.write(downloaded.subarray(0, n), () => {
            if (!paused) return;
            paused = false;
            upstream?.resume();
          });
          if (client.writableLength === 0) return true;
          paused = true;
          return false;
        },
      };
      upstream = await this.connect(admitted.address, target.port, relay);
      if (client.destroyed) {
        upstream.destroy();
        release();
        return;
      }
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      const opened = upstream;
      // Each side's end is passed on after what is queued for the other side has been written:
      // a destination that sends its last bytes and closes must not cut a runtime that reads
      // them slowly (nor the other way round). Both closed, or either failing, ends the tunnel.
      opened.once('end', () => client.end());
      client.pipe(opened);
      opened.on('error', () => opened.destroy());
      const known = { caller, target };
      let finished = false;
      let straggler: NodeJS.Timeout | undefined;
      const finish = () => {
        if (finished) return;
        finished = true;
        clearTimeout(straggler);
        release();
        opened.destroy();
        client.destroy();
        this.record(known.caller, known.target, startedAt, { verdict: 'allowed', reason: null, bytesOut: opened.bytesWritten, bytesIn: opened.bytesRead });
      };
      // However one side ends, the tunnel is over within DRAIN_AFTER_CLOSE_MS.
      const backstop = () => {
        if (straggler || finished) return;
        straggler = setTimeout(finish, DRAIN_AFTER_CLOSE_MS);
        straggler.unref();
      };
      // The runtime is gone: once what it sent has gone out, nothing more can pass.
      client.once('close', (hadError: boolean) => {
        if (hadError || opened.destroyed || opened.writableFinished) finish();
        else {
          opened.once('finish', finish);
          backstop();
        }
      });
      // The destination is gone: the runtime's socket was ended after the last byte, and its
      // close ends the tunnel (a runtime that never closes it is cut after the backstop).
      opened.once('close', (hadError: boolean) => {
        if (hadError || client.destroyed) finish();
        else backstop();
      });
    } catch (err) {
      release();
      const refusal = err instanceof EgressRefusal ? err : new EgressRefusal(502, 'EGRESS_UNREACHABLE', `The destination could not be reached (${(err as Error).message}).`);
      if (caller && target) this.record(caller, target, startedAt, { verdict: refusal.verdict, reason: refusal.message, bytesOut: 0, bytesIn: 0 });
      client.end(refusalResponse(refusal));
    }
  }

  private record(caller: EgressCaller, target: Target, startedAt: number, outcome: Pick<EgressOutcome, 'verdict' | 'reason' | 'bytesOut' | 'bytesIn'>): void {
    this.deps.record?.({ userId: caller.userId, at: startedAt, host: target.host.toLowerCase(), port: target.port, durationMs: this.now() - startedAt, ...outcome });
  }

  private connect(address: string, port: number, onread?: net.OnReadOpts): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: address, port, ...(onread ? { onread } : {}) });
      socket.setTimeout(this.connectTimeoutMs, () => socket.destroy(new Error(`no answer within ${this.connectTimeoutMs / 1000} s`)));
      socket.once('connect', () => {
        socket.setTimeout(0);
        socket.off('error', reject);
        resolve(socket);
      });
      socket.once('error', reject);
    });
  }

  /** Plain http:// requests in absolute form (`GET http://host/path`); https goes through CONNECT. */
  private async forward(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let release = () => {};
    let caller: EgressCaller | null = null;
    let target: Target | null = null;
    const startedAt = this.now();
    let bytesOut = 0;
    let bytesIn = 0;
    let recorded = false;
    const finish = (verdict: EgressOutcome['verdict'], reason: string | null) => {
      if (recorded || !caller || !target) return;
      recorded = true;
      this.record(caller, target, startedAt, { verdict, reason, bytesOut, bytesIn });
    };
    const fail = (refusal: EgressRefusal) => {
      release();
      finish(refusal.verdict, refusal.message);
      if (res.headersSent) {
        res.destroy();
        return;
      }
      res.writeHead(refusal.status, { 'content-type': 'application/json', connection: 'close' }).end(JSON.stringify({ error: { code: refusal.code, message: refusal.message } }));
    };
    try {
      caller = this.caller(req);
      let url: URL;
      try {
        url = new URL(req.url ?? '');
      } catch {
        throw new EgressRefusal(400, 'EGRESS_BAD_TARGET', 'This is an HTTP proxy: send absolute http:// URLs, or CONNECT for https.');
      }
      if (url.protocol !== 'http:') throw new EgressRefusal(400, 'EGRESS_BAD_TARGET', 'Only http:// URLs are forwarded; https goes through CONNECT.');
      target = { host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port) || 80 };
      const admitted = await this.admit(caller, target);
      release = admitted.release;
      const headers: http.OutgoingHttpHeaders = {};
      for (const [name, value] of Object.entries(req.headers)) if (!HOP_BY_HOP.has(name) && value !== undefined) headers[name] = value;
      headers.host = url.host;
      const upstream = http.request({ host: admitted.address, port: target.port, method: req.method, path: `${url.pathname}${url.search}`, headers, timeout: this.connectTimeoutMs });
      upstream.on('timeout', () => upstream.destroy(new Error('no answer in time')));
      upstream.on('error', (err) => fail(new EgressRefusal(502, 'EGRESS_UNREACHABLE', `The destination could not be reached (${err.message}).`)));
      upstream.on('response', (answer) => {
        upstream.setTimeout(0);
        const out: http.OutgoingHttpHeaders = {};
        for (const [name, value] of Object.entries(answer.headers)) if (!HOP_BY_HOP.has(name) && value !== undefined) out[name] = value;
        res.writeHead(answer.statusCode ?? 502, out);
        answer.on('data', (chunk: Buffer) => (bytesIn += chunk.length));
        answer.pipe(res);
        answer.on('error', () => res.destroy());
      });
      req.on('data', (chunk: Buffer) => (bytesOut += chunk.length));
      res.once('close', () => {
        release();
        upstream.destroy();
        finish('allowed', null);
      });
      req.pipe(upstream);
    } catch (err) {
      fail(err instanceof EgressRefusal ? err : new EgressRefusal(502, 'EGRESS_UNREACHABLE', (err as Error).message));
    }
  }
}
