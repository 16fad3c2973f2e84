/**
 * Disk bounds of the file manager against the REAL engine: uploads without a manifest are spooled
 * on the control plane's disk (where the database lives) before they go into a workspace, and
 * imports learn their sizes only as the archive arrives. Neither may take more than the quota
 * leaves, nor fill the disk, however many run at once.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import fs from 'node:fs';
import type TestAgent from 'supertest/lib/agent';
import { pack } from 'tar-stream';
import { STRONG_PASSWORD } from '../support/harness';
import { signInCookie } from '../support/hostClient';
import { engineHarness, eventually, newInstanceId, tearDown, withDiagnostics, type EngineHarness } from '../support/engine';

jest.setTimeout(120_000);

const instance = newInstanceId();
const MIB = 1024 ** 2;
const LIMITS = { quotaBytes: 40 * MIB, maxFileBytes: 64 * MIB, maxRequestBytes: 128 * MIB, spoolMaxBytes: 24 * MIB, spoolMinFreeBytes: 0 };
let h: EngineHarness;
let alice: TestAgent;
let server: http.Server;
let port: number;
let cookie: string;
let bobCookie: string;
/** What the spool's disk reports as free; tests lower it to simulate a nearly full disk. */
let diskFree = Number.MAX_SAFE_INTEGER;

const it = (name: string, body: () => Promise<void>) => test(name, withDiagnostics(() => instance, () => h.logs.text, body));
const BOUNDARY = 'bounds-boundary';

interface PendingRequest {
  /** Sends more of the body. */
  write(chunk: Buffer): Promise<void>;
  /** Resolves with the answer, whenever it comes (possibly before the body was sent in full). */
  answer: Promise<{ status: number; body: { error?: { code: string } } }>;
  /** Sends the rest and ends the body. */
  end(rest: Buffer): void;
  destroy(): void;
}

/** A multipart request whose body the test sends piece by piece (Content-Length announces all of it). */
function pendingUpload(path: string, field: string, filename: string, total: number, manifest: string | null, as = cookie): PendingRequest {
  const head = Buffer.from(
    (manifest !== null ? `--${BOUNDARY}\r\nContent-Disposition: form-data; name="manifest"\r\n\r\n${manifest}\r\n` : '') +
      `--${BOUNDARY}\r\nContent-Disposition: form-data; name="${field}"; filename="${filename}"\r\nContent-Type: application/octet-stream\r\n\r\n`,
  );
  const tail = Buffer.from(`\r\n--${BOUNDARY}--\r\n`);
  const req = http.request({
    host: '127.0.0.1',
    port,
    method: 'POST',
    path,
    headers: { Cookie: as, Origin: h.config.publicOrigin, 'Content-Type': `multipart/form-data; boundary=${BOUNDARY}`, 'Content-Length': String(head.length + total + tail.length) },
  });
  req.on('error', () => undefined);
  const answer = new Promise<{ status: number; body: { error?: { code: string } } }>((resolve, reject) => {
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as { error?: { code: string } } }));
      res.on('error', reject);
    });
  });
  req.write(head);
  return {
    write: (chunk) => new Promise<void>((resolve) => (req.write(chunk) ? resolve() : req.once('drain', () => resolve()))),
    answer,
    end: (rest) => req.end(Buffer.concat([rest, tail])),
    destroy: () => req.destroy(),
  };
}

/** A tar header (and nothing more) for one file of `size` bytes: the rest is sent as the test likes. */
async function tarHead(name: string, size: number): Promise<Buffer> {
  const archive = pack();
  const chunks: Buffer[] = [];
  archive.on('data', (c) => chunks.push(c as Buffer));
  archive.entry({ name, size, mode: 0o644 }, Buffer.alloc(size));
  archive.finalize();
  await new Promise<void>((resolve) => archive.on('end', () => resolve()));
  return Buffer.concat(chunks).subarray(0, 512);
}

const TAR_TAIL = (size: number) => Buffer.alloc(((512 - (size % 512)) % 512) + 1024);

const spoolFiles = () => fs.readdirSync(h.platform.files.settings.spoolDir);

beforeAll(async () => {
  h = engineHarness({ instance, files: LIMITS, fileHelperIdleMs: 5_000, spoolFreeBytes: () => diskFree });
  const { client: admin } = await h.setupAdmin();
  ({ client: alice } = await h.createMember(admin, 'alice'));
  await h.createMember(admin, 'bob');
  server = http.createServer(h.platform.app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
  cookie = await signInCookie(port, new URL(h.config.publicOrigin).host, 'alice', STRONG_PASSWORD);
  bobCookie = await signInCookie(port, new URL(h.config.publicOrigin).host, 'bob', STRONG_PASSWORD);
});

afterAll(async () => {
  server.closeAllConnections();
  server.close();
  await tearDown(h);
});

afterEach(async () => {
  diskFree = Number.MAX_SAFE_INTEGER;
  await eventually(async () => (spoolFiles().length === 0 && h.platform.spool.heldBytes === 0 ? true : undefined), 'the spool to be empty').catch((err: unknown) => {
    process.stderr.write(`--- spool: ${JSON.stringify(spoolFiles())}, held ${h.platform.spool.heldBytes}\n`);
    throw err;
  });
});

describe('spooled uploads (no manifest) are bounded before their bytes are written', () => {
  it('an upload passing the quota is refused with 413 as soon as it passes it, while the client is still sending', async () => {
    // 30 of the 40 MiB quota taken (streamed with a manifest: nothing spooled), so the quota binds before the spool's cap.
    const filler = await alice
      .post('/api/v1/files/upload')
      .field('manifest', JSON.stringify([{ path: 'filler.bin', size: 30 * MIB }]))
      .attach('files', Buffer.alloc(30 * MIB), { filename: 'filler.bin' });
    expect(filler.status).toBe(201);
    const upload = pendingUpload('/api/v1/files/upload', 'files', 'big.bin', 20 * MIB, null);
    // 12 MiB of 20: past the 10 MiB left. The rest is never sent: only an early refusal can answer.
    for (let i = 0; i < 12; i++) await upload.write(Buffer.alloc(MIB));
    const answer = await upload.answer;
    upload.destroy();
    expect(answer.status).toBe(413);
    expect(answer.body.error?.code).toBe('QUOTA_EXCEEDED');
    expect((await alice.get('/api/v1/files?path=big.bin')).status).toBe(404);
    await alice.delete('/api/v1/files?path=filler.bin').expect(200);
  });

  it('the spool has its own cap: an upload that would pass it is refused with 507 SPOOL_FULL, also when two members share it', async () => {
    const alone = pendingUpload('/api/v1/files/upload', 'files', 'alone.bin', 30 * MIB, null);
    for (let i = 0; i < 26; i++) await alone.write(Buffer.alloc(MIB));
    const refused = await alone.answer;
    alone.destroy();
    expect([refused.status, refused.body.error?.code]).toEqual([507, 'SPOOL_FULL']);

    // Each fits alone (16 MiB of a 24 MiB spool); together they do not. Alice's holds its bytes while Bob's arrives.
    const first = pendingUpload('/api/v1/files/upload?path=one', 'files', 'a.bin', 16 * MIB, null);
    for (let i = 0; i < 15; i++) await first.write(Buffer.alloc(MIB));
    await eventually(async () => (h.platform.spool.heldBytes >= 14 * MIB ? true : undefined), 'the first upload to be spooled');
    const second = pendingUpload('/api/v1/files/upload?path=two', 'files', 'b.bin', 16 * MIB, null, bobCookie);
    for (let i = 0; i < 15; i++) await second.write(Buffer.alloc(MIB));
    const secondAnswer = await second.answer;
    second.destroy();
    expect([secondAnswer.status, secondAnswer.body.error?.code]).toEqual([507, 'SPOOL_FULL']);
    first.end(Buffer.alloc(MIB));
    expect((await first.answer).status).toBe(201);
    await alice.delete('/api/v1/files?path=one&recursive=1').expect(200);
  });

  it('a nearly full disk refuses spooling with 507 SERVER_DISK_LOW before the floor is reached', async () => {
    diskFree = 0;
    const upload = pendingUpload('/api/v1/files/upload', 'files', 'x.bin', 4 * MIB, null);
    await upload.write(Buffer.alloc(MIB));
    const answer = await upload.answer;
    upload.destroy();
    expect([answer.status, answer.body.error?.code]).toEqual([507, 'SERVER_DISK_LOW']);
    // A manifest streams straight into the workspace: the host's disk is not involved.
    const streamed = await alice
      .post('/api/v1/files/upload')
      .field('manifest', JSON.stringify([{ path: 'streamed.bin', size: MIB }]))
      .attach('files', Buffer.alloc(MIB), { filename: 'streamed.bin' });
    expect(streamed.status).toBe(201);
    await alice.delete('/api/v1/files?path=streamed.bin').expect(200);
  });
});

describe('an upload\'s manifest', () => {
  it('is parsed once per request, not once per file part (it may list 100,000 entries)', async () => {
    const files = Array.from({ length: 40 }, (_, i) => ({ path: `many/f${i}.txt`, content: Buffer.from(`file ${i}`) }));
    const manifest = JSON.stringify(files.map((f) => ({ path: f.path, size: f.content.length })));
    const parse = jest.spyOn(JSON, 'parse');
    try {
      let req = alice.post('/api/v1/files/upload').field('manifest', manifest);
      for (const f of files) req = req.attach('files', f.content, { filename: 'named-by-the-manifest' });
      const res = await req;
      expect(res.status).toBe(201);
      expect(parse.mock.calls.filter(([text]) => text === manifest)).toHaveLength(1);
    } finally {
      parse.mockRestore();
    }
    await alice.delete('/api/v1/files?path=many&recursive=1').expect(200);
  });
});

describe('concurrent imports reserve their declared bytes', () => {
  it('two imports that fit the quota alone but not together: the one whose header is reserved second is refused as soon as that header arrives', async () => {
    const size = 25 * MIB;
    const imports = ['a', 'b'].map((path) => ({ path, request: pendingUpload(`/api/v1/files/import?path=${path}`, 'archive', `${path}.tar`, 512 + size + TAR_TAIL(size).length, null) }));
    for (const { path, request } of imports) {
      await request.write(await tarHead(`${path}.bin`, size));
      await request.write(Buffer.alloc(MIB));
    }
    // Which header the server reserves first depends on scheduling (each request measures usage on
    // its own when the figure is stale), so the test follows whichever is refused; the other still
    // waits for its body, which only an early refusal lets the test see.
    const refusal = await Promise.race(imports.map((i, index) => i.request.answer.then((answer) => ({ answer, index }))));
    const [refused, admitted] = refusal.index === 0 ? [imports[0], imports[1]] : [imports[1], imports[0]];
    if (!refused || !admitted) throw new Error('two imports were started');
    refused.request.destroy();
    expect([refusal.answer.status, refusal.answer.body.error?.code]).toEqual([413, 'QUOTA_EXCEEDED']);
    admitted.request.end(Buffer.concat([Buffer.alloc(size - MIB), TAR_TAIL(size)]));
    expect((await admitted.request.answer).status).toBe(201);
    expect((await alice.get(`/api/v1/files?path=${refused.path}`)).status).toBe(404);
    await alice.delete(`/api/v1/files?path=${admitted.path}&recursive=1`).expect(200);
  });
});
