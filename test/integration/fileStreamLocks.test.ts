/**
 * A member-paced file stream never holds a lock the platform depends on, against the REAL engine.
 *
 * The engine holds a container's lock for the whole of an archive stream: a putArchive until its
 * body ends, a getArchive until it has been read to the end. Meanwhile inspecting, exec'ing into,
 * stopping or removing that container waits. The platform inspects runtimes in shared places (the
 * runtime watcher's single event queue, the few lifecycle slots every user's start waits for), so
 * a download nobody reads or an upload that stalls must not run through the runtime: transfers go
 * through the user's file helper, and listing every managed container (the watcher's reconcile)
 * does not inspect helpers. Removing a helper (a purge) cuts its streams first, and a stream whose
 * client went quiet is cut after the idle bound, so not even the helper stays locked.
 *
 * On code where a stream does hold the lock, the waits below would never end; each test lets go
 * of its stream after HOLD_AT_MOST_MS and then fails on "completed while the stream was held".
 */
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type TestAgent from 'supertest/lib/agent';
import { LABELS } from '../../src/docker/runtimeBackend';
import type { FilesSettings } from '../../src/files/filesSettings';
import { docker, engineHarness, eventually, listen, newInstanceId, signIn, sweep, volumeEntries, withDiagnostics, type EngineHarness, type Listening } from '../support/engine';

jest.setTimeout(180_000);

const MIB = 1024 ** 2;
/** Larger than every buffer between the engine and a client that reads nothing (sockets, streams). */
const BIG = 64 * MIB;
/** How long a test keeps its stream open at most while it waits for something that must not wait for it. */
const HOLD_AT_MOST_MS = 20_000;
const SHORT_IDLE_MS = 2_000;
const BOUNDARY = 'locks-boundary';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

interface Member {
  userId: string;
  client: TestAgent;
  cookie: string;
}

interface Platform {
  instance: string;
  h: EngineHarness;
  server: Listening;
  admin: TestAgent;
  members: Record<string, Member>;
}

/** One platform for the describe block it is called in, with these members signed in over HTTP. */
function platformFor(files: Partial<FilesSettings>, names: string[]): Platform {
  const p = { instance: newInstanceId(), members: {} } as Platform;
  beforeAll(async () => {
    p.h = engineHarness({ instance: p.instance, files, fileHelperIdleMs: 60_000 });
    await p.h.platform.watcher.start();
    ({ client: p.admin } = await p.h.setupAdmin());
    p.server = await listen(p.h);
    for (const name of names) {
      const { client, userId } = await p.h.createMember(p.admin, name);
      p.members[name] = { client, userId, cookie: await signIn(p.server, name) };
    }
  });
  afterAll(async () => {
    await p.server.close();
    p.h.platform.watcher.close();
    await p.h.platform.runtimes.drain(30_000);
    await p.h.platform.volumes.closeAll();
    p.h.close();
    await sweep(p.instance);
  });
  return p;
}

interface Held {
  release(): void;
}

/** Streams a test opened: let go of when it ends, whatever happened, so no lock outlives it. */
const opened = new Set<Held>();
const track = <T extends Held>(stream: T): T => {
  opened.add(stream);
  return stream;
};

const on = (p: Platform) => (name: string, body: () => Promise<void>) =>
  test(
    name,
    withDiagnostics(
      () => p.instance,
      () => p.h.logs.text,
      async () => {
        try {
          await body();
        } finally {
          for (const stream of opened) stream.release();
          opened.clear();
        }
      },
    ),
  );

async function startRuntime(p: Platform, member: Member): Promise<{ runtimeId: string; containerId: string }> {
  const res = await member.client.post('/api/v1/runtime/start');
  expect([200, 202]).toContain(res.status);
  const runtimeId = res.body.runtime.id as string;
  await p.h.platform.runtimes.settled(runtimeId);
  expect((await member.client.get('/api/v1/runtime')).body.state).toBe('running');
  const { container_id: containerId } = p.h.platform.db.prepare('SELECT container_id FROM runtimes WHERE id = ?').get(runtimeId) as { container_id: string };
  return { runtimeId, containerId };
}

async function volumeOf(p: Platform, userId: string): Promise<string> {
  const { Volumes } = await docker.listVolumes({ filters: JSON.stringify({ label: [`${LABELS.instance}=${p.instance}`, `${LABELS.userId}=${userId}`] }) });
  const name = Volumes?.[0]?.Name;
  if (!name) throw new Error('no volume for the user');
  return name;
}

/** Staged entries in the volume, seen from a separate container (the platform's own containers may be locked). */
async function stagedEntries(p: Platform, userId: string): Promise<string[]> {
  return (await volumeEntries(await volumeOf(p, userId), p.instance)).map((e) => e.path).filter((path) => /^\.clawloops-staging\/[^/]+\//.test(path));
}

/**
 * Runs `work` while `stream` is held open, and tells whether it completed before the stream was
 * let go of: after HOLD_AT_MOST_MS the stream is released so that a `work` that waits for it ends.
 */
async function whileHeld<T>(stream: Held, work: () => Promise<T>): Promise<{ result: T; whileHeld: boolean }> {
  let released = false;
  const timer = setTimeout(() => {
    released = true;
    stream.release();
  }, HOLD_AT_MOST_MS);
  try {
    const result = await work();
    return { result, whileHeld: !released };
  } finally {
    clearTimeout(timer);
  }
}

interface HeldDownload extends Held {
  status: number;
  /**
   * Reads the rest of the body: its hash and size, and whether the message arrived in full. (A
   * client that reads nothing does not see the server close the connection either: the end waits
   * behind the unread bytes.)
   */
  readRest(): Promise<{ sha: string; bytes: number; complete: boolean }>;
}

/** A download whose body nobody reads: the server's writes back up through the socket to the engine. */
function holdDownload(server: Listening, cookie: string, path: string): Promise<HeldDownload> {
  return new Promise((resolve, reject) => {
    const req = http.get(`${server.baseUrl}/api/v1/files/download?path=${encodeURIComponent(path)}`, { headers: { cookie }, agent: false }, (res) => {
      res.on('error', () => undefined); // a cut: readRest tells
      resolve(track<HeldDownload>({
        status: res.statusCode ?? 0,
        release: () => req.destroy(),
        readRest: () =>
          new Promise((done) => {
            const hash = createHash('sha256');
            let bytes = 0;
            res.on('data', (chunk: Buffer) => {
              hash.update(chunk);
              bytes += chunk.length;
            });
            res.once('close', () => done({ sha: hash.digest('hex'), bytes, complete: res.complete }));
          }),
      }));
    });
    req.on('error', reject);
  });
}

interface PendingUpload extends Held {
  write(chunk: Buffer): Promise<void>;
  end(rest: Buffer): void;
  /** The answer, whenever it comes (possibly before the body was sent in full). */
  answer: Promise<{ status: number; code: string | null }>;
}

/** A multipart request whose file part the test sends piece by piece (Content-Length announces all of it). */
function pendingUpload(server: Listening, cookie: string, path: string, part: { field: string; filename: string; size: number; manifest: string | null }): PendingUpload {
  const head = Buffer.from(
    (part.manifest !== null ? `--${BOUNDARY}\r\nContent-Disposition: form-data; name="manifest"\r\n\r\n${part.manifest}\r\n` : '') +
      `--${BOUNDARY}\r\nContent-Disposition: form-data; name="${part.field}"; filename="${part.filename}"\r\nContent-Type: application/octet-stream\r\n\r\n`,
  );
  const tail = Buffer.from(`\r\n--${BOUNDARY}--\r\n`);
  const req = http.request(`${server.baseUrl}${path}`, {
    method: 'POST',
    agent: false,
    headers: { cookie, origin: server.origin, 'content-type': `multipart/form-data; boundary=${BOUNDARY}`, 'content-length': String(head.length + part.size + tail.length) },
  });
  req.on('error', () => undefined);
  const answer = new Promise<{ status: number; code: string | null }>((resolve) => {
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', () => undefined);
      res.on('close', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let code: string | null = null;
        try {
          code = (JSON.parse(text) as { error?: { code?: string } }).error?.code ?? null;
        } catch {
          // not JSON: no code
        }
        resolve({ status: res.statusCode ?? 0, code });
      });
    });
  });
  req.write(head);
  return track<PendingUpload>({
    write: (chunk) => new Promise<void>((resolve) => (req.write(chunk) ? resolve() : req.once('drain', () => resolve()))),
    end: (rest) => req.end(Buffer.concat([rest, tail])),
    answer,
    release: () => req.destroy(),
  });
}

async function uploadBig(member: Member, name: string): Promise<Buffer> {
  const content = randomBytes(BIG);
  const res = await member.client
    .post('/api/v1/files/upload')
    .field('manifest', JSON.stringify([{ path: name, size: content.length }]))
    .attach('files', content, { filename: name });
  expect(res.status).toBe(201);
  return content;
}

describe('a stream nobody reads or feeds holds no runtime (idle bound at its default)', () => {
  const p = platformFor({}, ['alice', 'bob', 'carol', 'erin']);
  const it = on(p);

  it('a download nobody reads holds neither its runtime\'s inspect nor a stop through the API, and still brings every byte afterwards', async () => {
    const alice = p.members.alice!;
    const { runtimeId, containerId } = await startRuntime(p, alice);
    const content = await uploadBig(alice, 'big.bin');
    const download = await holdDownload(p.server, alice.cookie, 'big.bin');
    expect(download.status).toBe(200);

    const inspected = await whileHeld(download, () => docker.getContainer(containerId).inspect());
    expect(inspected.whileHeld).toBe(true);
    expect(inspected.result.State.Running).toBe(true);

    const stopped = await whileHeld(download, async () => {
      const res = await alice.client.post('/api/v1/runtime/stop');
      expect(res.status).toBe(202);
      await p.h.platform.runtimes.settled(runtimeId);
      return (await alice.client.get('/api/v1/runtime')).body.state as string;
    });
    expect(stopped).toEqual({ result: 'stopped', whileHeld: true });

    // The transfer never depended on the runtime: read now, it is whole.
    expect(await download.readRest()).toEqual({ sha: sha(content), bytes: BIG, complete: true });
  });

  it('an upload that stalls after a few bytes holds neither its runtime\'s inspect nor a stop through the API, and leaves nothing once dropped', async () => {
    const bob = p.members.bob!;
    const { runtimeId, containerId } = await startRuntime(p, bob);
    const upload = pendingUpload(p.server, bob.cookie, '/api/v1/files/upload?path=in', { field: 'files', filename: 'stalled.bin', size: 8 * MIB, manifest: JSON.stringify([{ path: 'stalled.bin', size: 8 * MIB }]) });
    await upload.write(randomBytes(256 * 1024));
    // The engine is unpacking it (and so holds the lock of the container it goes into).
    await eventually(async () => ((await stagedEntries(p, bob.userId)).length > 0 ? true : undefined), 'the stalled upload to reach the volume');

    const inspected = await whileHeld(upload, () => docker.getContainer(containerId).inspect());
    expect(inspected.whileHeld).toBe(true);
    expect(inspected.result.State.Running).toBe(true);

    const stopped = await whileHeld(upload, async () => {
      const res = await bob.client.post('/api/v1/runtime/stop');
      expect(res.status).toBe(202);
      await p.h.platform.runtimes.settled(runtimeId);
      return (await bob.client.get('/api/v1/runtime')).body.state as string;
    });
    expect(stopped).toEqual({ result: 'stopped', whileHeld: true });

    upload.release();
    await eventually(async () => ((await stagedEntries(p, bob.userId)).length === 0 ? true : undefined), 'the dropped upload to be cleaned up');
    expect((await bob.client.get('/api/v1/files?path=in')).status).toBe(404);
  });

  it('a purge does not wait for a download nobody reads: the stream is cut, the helper and the volume go', async () => {
    const carol = p.members.carol!;
    await uploadBig(carol, 'big.bin');
    const download = await holdDownload(p.server, carol.cookie, 'big.bin');
    expect(download.status).toBe(200);

    const purged = await whileHeld(download, async () => {
      const res = await p.admin.delete(`/api/v1/admin/users/${carol.userId}/runtime?purge=1&confirm=carol`);
      expect(res.status).toBe(202);
      await p.h.platform.runtimes.settled(res.body.runtime.id);
      return (await docker.listVolumes({ filters: JSON.stringify({ label: [`${LABELS.instance}=${p.instance}`, `${LABELS.userId}=${carol.userId}`] }) })).Volumes ?? [];
    });
    expect(purged).toEqual({ result: [], whileHeld: true });
    expect(await download.readRest()).toMatchObject({ complete: false });
    const helpers = await docker.listContainers({ all: true, filters: JSON.stringify({ label: [`${LABELS.instance}=${p.instance}`, `${LABELS.role}=files`, `${LABELS.userId}=${carol.userId}`] }) });
    expect(helpers).toEqual([]);
  });

  it('the watcher\'s reconcile, which lists every managed container, completes while a download nobody reads holds a helper', async () => {
    const erin = p.members.erin!;
    await uploadBig(erin, 'big.bin');
    const download = await holdDownload(p.server, erin.cookie, 'big.bin');
    expect(download.status).toBe(200);
    const reconciled = await whileHeld(download, () => p.h.platform.watcher.reconcile());
    expect(reconciled.whileHeld).toBe(true);
    expect(reconciled.result).toMatchObject({ orphanContainersRemoved: 0 });
  });
});

describe(`a stream whose client went quiet is cut after the idle bound (${SHORT_IDLE_MS} ms here)`, () => {
  const p = platformFor({ streamIdleMs: SHORT_IDLE_MS }, ['dave']);
  const it = on(p);
  /** Resolves with the outcome, or 'still open' when nothing cut the stream within HOLD_AT_MOST_MS. */
  const cutWithin = async <T>(outcome: Promise<T>): Promise<T | 'still open'> => {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'still open'>((resolve) => (timer = setTimeout(() => resolve('still open'), HOLD_AT_MOST_MS)));
    try {
      return await Promise.race([outcome, deadline]);
    } finally {
      clearTimeout(timer);
    }
  };
  const CUT_LOG = 'a download was cut: its client read nothing for too long';

  it('a download whose client reads nothing is cut, and its user\'s files answer again at once', async () => {
    const dave = p.members.dave!;
    const content = await uploadBig(dave, 'big.bin');
    const download = await holdDownload(p.server, dave.cookie, 'big.bin');
    expect(download.status).toBe(200);
    await eventually(async () => (p.h.logs.text.includes(CUT_LOG) ? true : undefined), 'the server to cut the download', HOLD_AT_MOST_MS);
    // Read now, the body ends short of its Content-Length.
    const rest = await download.readRest();
    expect(rest.complete).toBe(false);
    expect(rest.bytes).toBeLessThan(BIG);
    // The helper's lock went with the stream: an exec in it (a listing) answers.
    const listed = await dave.client.get('/api/v1/files');
    expect(listed.status).toBe(200);
    // A client that reads is never cut, however long the whole transfer takes.
    const whole = await holdDownload(p.server, dave.cookie, 'big.bin');
    expect(await whole.readRest()).toEqual({ sha: sha(content), bytes: BIG, complete: true });
  });

  it('an upload or an import whose client sends nothing is answered 408 UPLOAD_IDLE, and leaves nothing behind', async () => {
    const dave = p.members.dave!;
    const upload = pendingUpload(p.server, dave.cookie, '/api/v1/files/upload?path=quiet', { field: 'files', filename: 'quiet.bin', size: 4 * MIB, manifest: JSON.stringify([{ path: 'quiet.bin', size: 4 * MIB }]) });
    await upload.write(randomBytes(64 * 1024));
    const uploadOutcome = await cutWithin(upload.answer);
    upload.release();
    expect(uploadOutcome).toEqual({ status: 408, code: 'UPLOAD_IDLE' });

    const tarHeader = Buffer.alloc(512);
    const imported = pendingUpload(p.server, dave.cookie, '/api/v1/files/import?path=quiet-import', { field: 'archive', filename: 'quiet.tar', size: 4 * MIB, manifest: null });
    await imported.write(tarHeader.subarray(0, 100));
    const importOutcome = await cutWithin(imported.answer);
    imported.release();
    expect(importOutcome).toEqual({ status: 408, code: 'UPLOAD_IDLE' });

    await eventually(async () => ((await stagedEntries(p, dave.userId)).length === 0 ? true : undefined), 'the cut uploads to be cleaned up');
    expect((await dave.client.get('/api/v1/files?path=quiet')).status).toBe(404);
    expect((await dave.client.get('/api/v1/files?path=quiet-import')).status).toBe(404);
  });

  it('a slow upload that keeps sending is not cut, however long it takes in all', async () => {
    const dave = p.members.dave!;
    const piece = 32 * 1024;
    const pieces = Math.ceil((4 * SHORT_IDLE_MS) / 500);
    const content = randomBytes(piece * pieces);
    const upload = pendingUpload(p.server, dave.cookie, '/api/v1/files/upload?path=slow', { field: 'files', filename: 'slow.bin', size: content.length, manifest: JSON.stringify([{ path: 'slow.bin', size: content.length }]) });
    for (let i = 0; i < pieces - 1; i++) {
      await upload.write(content.subarray(i * piece, (i + 1) * piece));
      await sleep(500);
    }
    upload.end(content.subarray((pieces - 1) * piece));
    expect(await upload.answer).toEqual({ status: 201, code: null });
    const download = await holdDownload(p.server, dave.cookie, 'slow/slow.bin');
    expect(await download.readRest()).toEqual({ sha: sha(content), bytes: content.length, complete: true });
  });
});
