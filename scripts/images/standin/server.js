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
//     (allocate memory until the cgroup OOM-kills it, exit with a code, probe a TCP peer).
// Plain CommonJS with Node built-ins only: the image holds nothing but the node binary.

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
        '/__standin/allocate', '/__standin/exit', '/__standin/connect'];
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
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
