/**
 * The whole appliance backed up and restored onto a fresh machine, on the REAL engine with the
 * REAL OpenClaw image: two members with files (a 256 MiB one, unicode names), an OpenClaw session
 * written by the real `openclaw agent` through the model gateway, and the usage rows it left; a
 * backup taken while another large upload is in flight; then the data directory and every
 * volume of the installation are gone, the operator's CLI restores the backup, both members sign
 * in with their own passwords, every file is byte-identical by SHA-256, OpenClaw lists the
 * earlier session, and the usage history is intact.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { generateIdentity } from '../../src/backup/ageFormat';
import { volumePart } from '../../src/backup/backupFormat';
import { NO_ORIGIN } from '../../src/domain/audit';
import { DEFAULT_RUNTIME_IMAGE } from '../../src/runtime/runtimeSettings';
import { docker, engineHarness, execIn, newInstanceId, OPENCLAW_SETTINGS, SOCKET, STRONG_PASSWORD, sweep, withDiagnostics, type EngineHarness } from '../support/engine';
import { cleanUpProcesses, CLI, spawnNode } from '../support/processes';
import { startTestModelUpstream, type TestModelUpstream } from '../support/testModelUpstream';

jest.setTimeout(600_000);

const instance = newInstanceId();
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'clawloops-appliance-restore-'));
const keyFile = path.join(work, 'backup-key.txt');
fs.writeFileSync(keyFile, generateIdentity().text, { mode: 0o600 });
const backupDir = path.join(work, 'backups');
const env = { CLAWLOOPS_BACKUP_KEY_FILE: keyFile, CLAWLOOPS_BACKUP_DIR: backupDir };
const ANSWER = `Remembered: the blue notebook ${Math.random().toString(36).slice(2, 8)}`;
const MESSAGE = 'Please remember that the notes are in the blue notebook.';
const BIG = 256 * 1024 * 1024;
const DURING = 96 * 1024 * 1024;

let upstream: TestModelUpstream;
let server: http.Server;
let port = 0;
let h: EngineHarness;
let current: EngineHarness | null = null;
const cookies: Record<string, string> = {};
/** name → SHA-256, per member, of what they uploaded. */
const uploaded: Record<string, Record<string, string>> = { alice: {}, bruno: {} };
let sessionsBefore: { key: string; sessionId: string }[] = [];
let usageBefore: unknown[] = [];
let backupId = '';

const it = (name: string, body: () => Promise<void>) => test(name, withDiagnostics(() => instance, () => current?.logs.text ?? '', body));

function harness(dataDir?: string): EngineHarness {
  return engineHarness({
    instance,
    ...(dataDir ? { dataDir } : {}),
    env,
    runtimeSettings: { ...OPENCLAW_SETTINGS, modelGatewayUrl: `http://host.docker.internal:${port}/llm/v1`, models: ['test-model'] },
    llm: { upstreamUrl: `http://127.0.0.1:${upstream.port}/v1`, upstreamKey: 'sk-test' },
  });
}

beforeAll(async () => {
  upstream = await startTestModelUpstream(ANSWER);
  // One listening server for both installations (the runtime reaches /llm/v1 through the host gateway).
  server = http.createServer((req, res) => current?.platform.app(req, res));
  await new Promise<void>((resolve) => server.listen(0, '0.0.0.0', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  await cleanUpProcesses();
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  if (current) {
    current.platform.watcher.close();
    await current.platform.runtimes.drain(30_000);
    await current.platform.volumes.closeAll().catch(() => 0);
    current.close();
  }
  await upstream?.close();
  await sweep(instance);
  fs.rmSync(work, { recursive: true, force: true });
});

const base = () => `http://127.0.0.1:${port}`;
const origin = () => current?.config.publicOrigin ?? '';

async function signIn(username: string): Promise<void> {
  const res = await fetch(`${base()}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json', origin: origin() }, body: JSON.stringify({ username, password: STRONG_PASSWORD }) });
  expect(res.status).toBe(200);
  cookies[username] = (res.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
}

/**
 * Uploads `size` random bytes as `name` in one multipart request, `chunk` bytes at a time with
 * `pauseMs` between them (a slow client), hashing what it sent.
 */
async function upload(username: string, name: string, size: number, chunk = 8 * 1024 * 1024, pauseMs = 0): Promise<void> {
  const boundary = `----clawloops${randomBytes(8).toString('hex')}`;
  const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="files"; filename="${name}"\r\nContent-Type: application/octet-stream\r\n\r\n`);
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const hash = createHash('sha256');
  const status = await new Promise<number>((resolve, reject) => {
    const req = http.request(`${base()}/api/v1/files/upload`, {
      method: 'POST',
      headers: { cookie: cookies[username] ?? '', origin: origin(), 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': head.length + size + tail.length },
    });
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    void (async () => {
      req.write(head);
      for (let sent = 0; sent < size; sent += chunk) {
        const part = randomBytes(Math.min(chunk, size - sent));
        hash.update(part);
        if (!req.write(part)) await new Promise((r) => req.once('drain', r));
        if (pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs));
      }
      req.end(tail);
    })();
  });
  expect(status).toBe(201);
  (uploaded[username] as Record<string, string>)[name] = hash.digest('hex');
}

/** The SHA-256 of a member's file as the platform streams it back. */
async function downloadHash(username: string, name: string): Promise<string> {
  const res = await fetch(`${base()}/api/v1/files/download?path=${encodeURIComponent(name)}`, { headers: { cookie: cookies[username] ?? '' } });
  expect(res.status).toBe(200);
  const hash = createHash('sha256');
  await pipeline(res.body as unknown as NodeJS.ReadableStream, hash);
  return hash.digest('hex');
}

async function openclawSessions(userId: string): Promise<{ key: string; sessionId: string }[]> {
  const runtime = current?.platform.db.prepare('SELECT container_id FROM runtimes WHERE user_id = ?').get(userId) as { container_id: string };
  const listed = await execIn(runtime.container_id, ['openclaw', 'sessions', '--json', '--all-agents'], '1000:1000');
  expect(listed.exitCode).toBe(0);
  const parsed = JSON.parse(listed.stdout.slice(listed.stdout.indexOf('{'))) as { sessions?: { key: string; sessionId: string }[] };
  return (parsed.sessions ?? []).map((s) => ({ key: s.key, sessionId: s.sessionId })).sort((a, b) => a.key.localeCompare(b.key));
}

async function startRuntime(username: string): Promise<string> {
  const userId = current?.platform.users.findByUsername(username).id ?? '';
  const started = current?.platform.runtimes.start({ id: userId, username }, userId, NO_ORIGIN);
  await current?.platform.runtimes.settled(started?.runtime.id ?? '');
  expect(current?.platform.runtimes.viewForUser(userId).state).toBe('running');
  return userId;
}

it('instance A: two members with files, an OpenClaw session through the gateway, usage rows; backed up while a large upload runs', async () => {
  h = harness();
  current = h;
  await h.platform.runtimes.claimInstallation();
  const { client: admin } = await h.setupAdmin();
  await h.createMember(admin, 'alice');
  await h.createMember(admin, 'bruno');
  for (const name of ['alice', 'bruno']) await signIn(name);
  await upload('alice', 'dataset — 数据.bin', BIG);
  await upload('alice', 'Ünïcödé notes.md', 32 * 1024);
  await upload('bruno', 'plan – été.txt', 1024);

  const aliceId = await startRuntime('alice');
  const containerId = (h.platform.db.prepare('SELECT container_id FROM runtimes WHERE user_id = ?').get(aliceId) as { container_id: string }).container_id;
  const agent = await execIn(containerId, ['openclaw', 'agent', '--agent', 'main', '--timeout', '180', '--message', MESSAGE], '1000:1000');
  if (agent.exitCode !== 0 || !agent.stdout.includes(ANSWER)) process.stderr.write(`--- openclaw agent\nstdout: ${agent.stdout}\nstderr: ${agent.stderr}\n`);
  expect(agent.stdout).toContain(ANSWER);
  sessionsBefore = await openclawSessions(aliceId);
  expect(sessionsBefore.length).toBeGreaterThanOrEqual(1);
  h.platform.ledger.flush();
  usageBefore = h.platform.db.prepare('SELECT user_id, model, prompt_tokens, completion_tokens, cost_microdollars FROM llm_usage ORDER BY id').all();
  expect(usageBefore.length).toBeGreaterThanOrEqual(1);

  // Bruno's slow upload is in flight (about 6 s) while the backup reads every volume.
  const during = upload('bruno', 'uploading during the backup.bin', DURING, 8 * 1024 * 1024, 500);
  await new Promise((r) => setTimeout(r, 1_000));
  let uploadDoneWhenBrunoWasRead: boolean | null = null;
  let settled = false;
  void during.finally(() => (settled = true));
  const summary = await h.platform.backups.create((p) => {
    if (p.step === 'volumes' && p.username === 'bruno' && uploadDoneWhenBrunoWasRead === null) uploadDoneWhenBrunoWasRead = settled;
  });
  await during;
  backupId = summary.id;
  process.stdout.write(`backup ${summary.id}: ${summary.bytes} bytes; the upload had ${uploadDoneWhenBrunoWasRead ? 'finished' : 'not finished'} when Bruno's volume was read\n`);

  // The file is in the backup entirely or not at all, and no staging folder is.
  const bruno = h.platform.users.findByUsername('bruno').id;
  const brunoRuntime = h.platform.runtimes.runtimeIdForUser(bruno) ?? '';
  const listing = execFileSync('sh', ['-c', `age -d -i "${keyFile}" "${path.join(backupDir, backupId, volumePart(brunoRuntime))}" | tar -tv`], { maxBuffer: 1 << 26 }).toString();
  expect(listing).not.toContain('.clawloops-staging/');
  const line = listing.split('\n').find((l) => l.includes('uploading during the backup.bin'));
  if (line) expect(line).toContain(` ${DURING} `);
  else delete uploaded.bruno?.['uploading during the backup.bin'];
  if (uploadDoneWhenBrunoWasRead === false) expect(line).toBeUndefined();
});

it('a fresh data directory and no volumes: the CLI restores it, members sign in, files are byte-identical, OpenClaw lists the earlier session, usage is intact', async () => {
  h.platform.watcher.close();
  await h.platform.runtimes.drain(30_000);
  await h.platform.volumes.closeAll();
  h.close();
  current = null;
  await sweep(instance);
  expect((await docker.listVolumes({ filters: JSON.stringify({ label: [`io.clawloops.instance=${instance}`] }) })).Volumes ?? []).toEqual([]);

  const dataDir = path.join(work, 'fresh-machine-data');
  const cli = spawnNode('admin CLI restore', CLI, ['restore', path.join(backupDir, backupId)], {
    ...env,
    CLAWLOOPS_DATA_DIR: dataDir,
    CLAWLOOPS_INSTANCE: instance,
    CLAWLOOPS_RUNTIME_IMAGE: DEFAULT_RUNTIME_IMAGE,
    CLAWLOOPS_DOCKER_SOCKET: SOCKET,
  });
  expect(await cli.waitForExit()).toEqual({ code: 0, signal: null });
  expect(cli.stdout).toMatch(/Restored 3 volume\(s\)/);

  const restored = harness(dataDir);
  current = restored;
  await restored.platform.runtimes.claimInstallation();
  for (const username of ['alice', 'bruno']) {
    await signIn(username);
    for (const [name, sha] of Object.entries(uploaded[username] ?? {})) expect({ name, sha: await downloadHash(username, name) }).toEqual({ name, sha });
  }
  restored.platform.ledger.flush();
  expect(restored.platform.db.prepare('SELECT user_id, model, prompt_tokens, completion_tokens, cost_microdollars FROM llm_usage ORDER BY id').all()).toEqual(usageBefore);
  const aliceId = await startRuntime('alice');
  expect(await openclawSessions(aliceId)).toEqual(sessionsBefore);
});
