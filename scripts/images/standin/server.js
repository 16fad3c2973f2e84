'use strict';
// A stand-in for the OpenClaw gateway, baked into the image clawloops/runtime-standin:1 by
// scripts/images/build-standin-image.sh. It boots in well under a second (the real gateway
// needs ~10 s and ~700 MiB), so lifecycle tests of the runtime manager stay fast, while it
// keeps the traits those tests care about:
//   - the same port (18789), user (1000:1000) and state directory (/home/node/.openclaw);
//   - a strict config file: present but unparsable JSON stops start-up (exit 1), as OpenClaw's
//     strict validation does;
//   - a write into the state directory at every boot, so a volume not writable by uid 1000
//     fails loudly (exit 1) instead of passing silently;
//   - /healthz and /readyz probes, with an optional readiness delay or permanent failure;
//   - test hooks under /__standin/ to inspect the process and to make it misbehave
//     (allocate memory until the cgroup OOM-kills it, exit with a code, probe a TCP peer);
//   - for bench/workspaceRouting.ts: a fixed body of any size (/__standin/bytes?n=) and a
//     WebSocket echo (/__standin/echo, a plain RFC 6455 server: every data frame comes back).
// Plain CommonJS with Node built-ins only: the image holds nothing but the node binary.

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const net = require('net');
const path = require('path');

const STATE_DIR = process.env.STANDIN_STATE_DIR || '/home/node/.openclaw';
const CONFIG_PATH = path.join(STATE_DIR, 'openclaw.json');
const BOOT_LOG_PATH = path.join(STATE_DIR, 'standin-boots.log');
const PORT = parsePort(process.env.PORT, 18789);
const READY_DELAY_MS = parseNonNegativeInt(process.env.STANDIN_READY_DELAY_MS, 0);
const FAIL_READY = process.env.STANDIN_FAIL_READY === '1';
const CONNECT_TIMEOUT_MS = 2000;
const MIB = 1024 * 1024;
const MAX_BYTES = 64 * MIB; // largest /__standin/bytes body
const MAX_ECHO_FRAME = 16 * MIB; // largest WebSocket frame echoed
const WEBSOCKET_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

function fatal(message) {
  process.stderr.write(`standin: ${message}\n`);
  process.exit(1);
}

function parseNonNegativeInt(raw, fallback) {
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) fatal(`invalid non-negative integer: ${JSON.stringify(raw)}`);
  return n;
}

function parsePort(raw, fallback) {
  const n = parseNonNegativeInt(raw, fallback);
  if (n < 1 || n > 65535) fatal(`invalid port: ${JSON.stringify(raw)}`);
  return n;
}

// --- boot: config, then a write proving the state directory belongs to us -----------------

/** The parsed config, or undefined when there is no config file. */
function loadConfig() {
  let text;
  try {
    text = fs.readFileSync(CONFIG_PATH, 'utf8');
  } catch (err) {
    if (err.code === 'ENOENT') return undefined;
    fatal(`cannot read ${CONFIG_PATH}: ${err.message}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    fatal(`invalid config ${CONFIG_PATH}: ${err.message}`);
  }
  return undefined; // not reached: fatal() exits
}

const config = loadConfig();

try {
  fs.appendFileSync(BOOT_LOG_PATH, `${new Date().toISOString()} pid=${process.pid}\n`);
} catch (err) {
  const uid = typeof process.getuid === 'function' ? process.getuid() : '?';
  fatal(`state directory ${STATE_DIR} is not writable by uid ${uid}: ${err.message}`);
}

// --- HTTP -------------------------------------------------------------------------------------

let readyAt = Infinity; // set once listening
const retained = []; // buffers kept alive by /__standin/allocate
let retainedMb = 0;

function send(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

function intParam(url, name, min, max) {
  const raw = url.searchParams.get(name);
  if (raw === null || !/^\d+$/.test(raw)) return undefined;
  const n = Number(raw);
  return n >= min && n <= max ? n : undefined;
}

function allocate(mb) {
  // allocUnsafe + fill with a non-zero byte: every page is really written, so the memory
  // counts against the cgroup (a zero-filled calloc could stay untouched virtual memory).
  for (let i = 0; i < mb; i += 1) {
    const chunk = Buffer.allocUnsafe(MIB);
    chunk.fill((i % 251) + 1);
    retained.push(chunk);
    retainedMb += 1;
  }
}

function tryConnect(host, port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    let done = false;
    const finish = (result) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(
      () => finish({ ok: false, error: `timeout after ${CONNECT_TIMEOUT_MS} ms` }),
      CONNECT_TIMEOUT_MS,
    );
    socket.once('connect', () => finish({ ok: true }));
    socket.once('error', (err) => finish({ ok: false, error: err.code || err.message }));
  });
}

async function handle(req, res) {
  const url = new URL(req.url, 'http://standin.invalid');
  const route = `${req.method} ${url.pathname}`;
  switch (route) {
    case 'GET /healthz':
      return send(res, 200, { ok: true });

    case 'GET /readyz': {
      const ready = !FAIL_READY && Date.now() >= readyAt;
      return send(res, ready ? 200 : 503, { ok: ready });
    }

    case 'GET /__standin/config':
      if (config === undefined) return send(res, 404, { error: 'no config file' });
      return send(res, 200, config);

    case 'GET /__standin/whoami':
      return send(res, 200, {
        uid: process.getuid(),
        gid: process.getgid(),
        pid: process.pid,
        env: Object.keys(process.env).sort(), // names only: values may be secrets
      });

    case 'POST /__standin/allocate': {
      const mb = intParam(url, 'mb', 1, 1024 * 1024);
      if (mb === undefined) return send(res, 400, { error: 'mb must be an integer >= 1' });
      allocate(mb);
      return send(res, 200, { ok: true, allocatedMb: mb, retainedMb });
    }

    case 'POST /__standin/exit': {
      const code = intParam(url, 'code', 0, 255);
      if (code === undefined) return send(res, 400, { error: 'code must be an integer 0..255' });
      process.stderr.write(`standin: exiting with code ${code} on request\n`);
      res.once('finish', () => process.exit(code));
      res.once('close', () => process.exit(code));
      return send(res, 200, { ok: true, code });
    }

    case 'GET /__standin/bytes': {
      const n = intParam(url, 'n', 0, MAX_BYTES);
      if (n === undefined) return send(res, 400, { error: `n must be an integer 0..${MAX_BYTES}` });
      const body = fixedBody(n);
      res.writeHead(200, {
        'content-type': 'text/plain; charset=utf-8',
        'content-length': body.length,
        'cache-control': 'no-store',
      });
      return res.end(body);
    }

    case 'GET /__standin/connect': {
      const host = url.searchParams.get('host');
      const port = intParam(url, 'port', 1, 65535);
      if (!host || port === undefined) {
        return send(res, 400, { error: 'host and port (1..65535) are required' });
      }
      return send(res, 200, await tryConnect(host, port));
    }

    default: {
      const known = ['/healthz', '/readyz', '/__standin/config', '/__standin/whoami',
        '/__standin/allocate', '/__standin/exit', '/__standin/connect', '/__standin/bytes',
        '/__standin/echo'];
      if (known.includes(url.pathname)) return send(res, 405, { error: 'method not allowed' });
      return send(res, 404, { error: 'not found' });
    }
  }
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((err) => {
    process.stderr.write(`standin: request failed: ${err.stack || err}\n`);
    if (!res.headersSent) send(res, 500, { error: 'internal error' });
    else res.destroy();
  });
});

// --- WebSocket echo (benchmarks) ----------------------------------------------------------------

/** Bodies of /__standin/bytes, built once per size: the benchmark measures the path, not this. */
const bodies = new Map();
function fixedBody(n) {
  let body = bodies.get(n);
  if (!body) {
    body = Buffer.alloc(n, 'x');
    if (bodies.size >= 8) bodies.clear();
    bodies.set(n, body);
  }
  return body;
}

/** An unmasked server frame (RFC 6455 5.2). */
function frame(fin, opcode, payload) {
  const length = payload.length;
  const head = length < 126 ? Buffer.alloc(2) : length < 65536 ? Buffer.alloc(4) : Buffer.alloc(10);
  head[0] = (fin ? 0x80 : 0) | opcode;
  if (length < 126) head[1] = length;
  else if (length < 65536) {
    head[1] = 126;
    head.writeUInt16BE(length, 2);
  } else {
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(length), 2);
  }
  return Buffer.concat([head, payload]);
}

const echoSockets = new Set();

/**
 * Echoes every data frame (text, binary, continuation) as it arrives, answers pings, and
 * returns a close frame. Client frames must be masked; anything malformed ends the socket.
 */
function echo(socket, head) {
  echoSockets.add(socket);
  socket.once('close', () => echoSockets.delete(socket));
  socket.on('error', () => socket.destroy());
  socket.setNoDelay(true);
  let buffered = head && head.length > 0 ? Buffer.from(head) : Buffer.alloc(0);
  const consume = () => {
    while (buffered.length >= 2) {
      const fin = (buffered[0] & 0x80) !== 0;
      const opcode = buffered[0] & 0x0f;
      const masked = (buffered[1] & 0x80) !== 0;
      let length = buffered[1] & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (buffered.length < 4) return;
        length = buffered.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (buffered.length < 10) return;
        const big = buffered.readBigUInt64BE(2);
        length = big > BigInt(MAX_ECHO_FRAME) ? Infinity : Number(big);
        offset = 10;
      }
      if (!masked || length > MAX_ECHO_FRAME) return socket.destroy();
      if (buffered.length < offset + 4 + length) return;
      const mask = buffered.subarray(offset, offset + 4);
      const payload = Buffer.from(buffered.subarray(offset + 4, offset + 4 + length));
      for (let i = 0; i < payload.length; i += 1) payload[i] ^= mask[i & 3];
      buffered = buffered.subarray(offset + 4 + length);
      if (opcode === 0x8) {
        socket.end(frame(true, 0x8, payload));
        return;
      }
      if (opcode === 0x9) socket.write(frame(true, 0xa, payload));
      else if (opcode <= 0x2) socket.write(frame(fin, opcode, payload));
      // pongs (0xa) are dropped
    }
  };
  socket.on('data', (chunk) => {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
    consume();
  });
  consume();
}

// Only /__standin/echo upgrades. Any other upgrade request is answered as the plain request it
// also is, as Node does when a server has no upgrade listener (then the connection closes).
server.on('upgrade', (req, socket, head) => {
  const url = new URL(req.url, 'http://standin.invalid');
  const key = req.headers['sec-websocket-key'];
  const isWebSocket = String(req.headers.upgrade || '').toLowerCase() === 'websocket';
  if (req.method !== 'GET' || url.pathname !== '/__standin/echo' || !isWebSocket || typeof key !== 'string') {
    socket.on('error', () => socket.destroy());
    const res = new http.ServerResponse(req);
    res.shouldKeepAlive = false;
    res.assignSocket(socket);
    res.once('finish', () => socket.end());
    handle(req, res).catch(() => socket.destroy());
    return;
  }
  const accept = crypto.createHash('sha1').update(`${key}${WEBSOCKET_GUID}`).digest('base64');
  socket.write(
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Accept: ${accept}\r\n\r\n`,
  );
  echo(socket, head);
});

server.on('error', (err) => fatal(`cannot listen on 0.0.0.0:${PORT}: ${err.message}`));

server.listen(PORT, '0.0.0.0', () => {
  readyAt = Date.now() + READY_DELAY_MS;
  process.stdout.write(`standin gateway listening on ${PORT}\n`);
  process.stderr.write('standin: stderr check\n');
});

// Docker stops a container with SIGTERM: close at once (keep-alive connections included) and
// exit 0, so a stop takes milliseconds rather than the engine's kill timeout.
function shutdown(signal) {
  process.stdout.write(`standin: ${signal} received, shutting down\n`);
  server.close(() => process.exit(0));
  server.closeAllConnections();
  for (const socket of echoSockets) socket.destroy();
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
