/**
 * Upload framing integrity against the REAL engine. The engine reads the archive stream the file
 * manager writes as tar, so an upload part that brings more or fewer bytes than its manifest entry
 * announced could put a header of the member's choosing into it: an entry anywhere in the volume,
 * owned by root, set-uid, outside the quota and every check. After every refused upload below, a
 * separate container (root, read-only mount, no network) walks the whole volume: the same names,
 * owners and modes as before, nothing owned by uid 0, no set-id bit.
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type TestAgent from 'supertest/lib/agent';
import { LABELS } from '../../src/docker/runtimeBackend';
import { TAR_END, tarHeader, tarPadding } from '../../src/files/tarFraming';
import { errorCode, STRONG_PASSWORD } from '../support/harness';
import { signInCookie } from '../support/hostClient';
import { docker, engineHarness, eventually, newInstanceId, tearDown, volumeEntries, withDiagnostics, type EngineHarness, type VolumeEntry } from '../support/engine';

jest.setTimeout(120_000);

const instance = newInstanceId();
const MIB = 1024 ** 2;
const LIMITS = { quotaBytes: 48 * MIB, maxFileBytes: 4 * MIB, maxRequestBytes: 64 * MIB, textMaxBytes: 64 * 1024, importMaxEntries: 300, maxFilesPerUpload: 100 };
let h: EngineHarness;
let alice: TestAgent;
let aliceId: string;

const it = (name: string, body: () => Promise<void>) => test(name, withDiagnostics(() => instance, () => h.logs.text, body));

/** One forged entry, block-aligned, as a hostile client would smuggle it: root-owned, set-uid, in the workspace. */
function forgedTar(name: string): Buffer {
  const content = Buffer.from('#!/bin/sh\nid\n');
  return Buffer.concat([
    tarHeader({ name, type: 'file', size: content.length, mode: 0o4755, uid: 0, gid: 0, mtime: new Date() }),
    content,
    tarPadding(content.length),
    TAR_END,
  ]);
}

interface Part {
  field?: string;
  filename?: string;
  content: Buffer | string;
}

const BOUNDARY = 'hostile-boundary-7f3a';

/** A multipart body written by hand: the sizes in it are whatever the test says, not what a client library would compute. */
function multipart(parts: Part[]): Buffer {
  const chunks: Buffer[] = [];
  for (const part of parts) {
    const disposition = part.filename !== undefined ? `form-data; name="${part.field ?? 'files'}"; filename="${part.filename}"` : `form-data; name="${part.field ?? 'manifest'}"`;
    chunks.push(Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: ${disposition}\r\n${part.filename !== undefined ? 'Content-Type: application/octet-stream\r\n' : ''}\r\n`));
    chunks.push(Buffer.isBuffer(part.content) ? part.content : Buffer.from(part.content));
    chunks.push(Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${BOUNDARY}--\r\n`));
  return Buffer.concat(chunks);
}

const manifest = (entries: { path: string; size: number }[]): Part => ({ field: 'manifest', content: JSON.stringify(entries) });

async function volumeOf(userId: string): Promise<string> {
  const { Volumes } = await docker.listVolumes({ filters: JSON.stringify({ label: [`${LABELS.instance}=${instance}`, `${LABELS.userId}=${userId}`] }) });
  const name = Volumes?.[0]?.Name;
  if (!name) throw new Error('no volume for the user');
  return name;
}

/** The volume's content as a comparable list, and the two properties a smuggled entry would break. */
async function snapshot(userId: string): Promise<{ entries: VolumeEntry[]; rootOwned: string[]; setId: string[] }> {
  // Staging folders come and go (an upload in flight, a discard); the content around them is what counts.
  const entries = (await volumeEntries(await volumeOf(userId), instance)).filter((e) => !/^\.clawloops-staging\/./.test(e.path));
  return {
    entries,
    rootOwned: entries.filter((e) => e.uid === 0 || e.gid === 0).map((e) => e.path),
    setId: entries.filter((e) => (e.mode & 0o6000) !== 0).map((e) => e.path),
  };
}

async function expectVolumeUnchanged(before: Awaited<ReturnType<typeof snapshot>>): Promise<void> {
  // The discard of the staging folder runs after the answer: wait for the volume to settle back.
  await eventually(async () => {
    const after = await snapshot(aliceId);
    return JSON.stringify(after.entries) === JSON.stringify(before.entries) ? true : undefined;
  }, 'the volume to hold exactly what it held before the refused upload').catch(async (err: unknown) => {
    const after = await snapshot(aliceId);
    const had = new Set(before.entries.map((e) => JSON.stringify(e)));
    process.stderr.write(`--- new or changed entries: ${JSON.stringify(after.entries.filter((e) => !had.has(JSON.stringify(e))))}\n`);
    throw err;
  });
  const after = await snapshot(aliceId);
  expect(after.rootOwned).toEqual([]);
  expect(after.setId).toEqual([]);
}

const upload = (body: Buffer) => alice.post('/api/v1/files/upload?path=in').set('Content-Type', `multipart/form-data; boundary=${BOUNDARY}`).send(body);

beforeAll(async () => {
  h = engineHarness({ instance, files: LIMITS, fileHelperIdleMs: 1_000 });
  await h.platform.watcher.start();
  const { client: admin } = await h.setupAdmin();
  ({ client: alice, userId: aliceId } = await h.createMember(admin, 'alice'));
  const started = await alice.post('/api/v1/runtime/start');
  await h.platform.runtimes.settled(started.body.runtime.id);
  expect((await alice.get('/api/v1/runtime')).body.state).toBe('running');
  // A first, honest upload: the volume holds the file manager's own folders from here on.
  const honest = await upload(multipart([manifest([{ path: 'honest.txt', size: 5 }]), { filename: 'honest.txt', content: 'hello' }]));
  expect(honest.status).toBe(201);
});

afterAll(() => tearDown(h));

describe('upload framing integrity: a refused upload leaves exactly the previous content', () => {
  // The announced size is a multiple of 512, so the surplus starts exactly where the engine would read the next header.
  const ANNOUNCED = 1024;
  const cases: [string, () => Buffer][] = [
    [
      'an over-long first part (its surplus a forged root-owned set-uid entry)',
      () => multipart([manifest([{ path: 'a.bin', size: ANNOUNCED }, { path: 'b.bin', size: 3 }]), { filename: 'a.bin', content: Buffer.concat([Buffer.alloc(ANNOUNCED, 0x61), forgedTar('workspace/smuggled-first')]) }, { filename: 'b.bin', content: 'bbb' }]),
    ],
    [
      'an over-long later part',
      () =>
        multipart([
          manifest([{ path: 'a.bin', size: 3 }, { path: 'b.bin', size: 3 }, { path: 'c.bin', size: ANNOUNCED }]),
          { filename: 'a.bin', content: 'aaa' },
          { filename: 'b.bin', content: 'bbb' },
          { filename: 'c.bin', content: Buffer.concat([Buffer.alloc(ANNOUNCED, 0x63), forgedTar('workspace/smuggled-later')]) },
        ]),
    ],
    [
      // Announced 2048, sent 1024: the engine would take the next part's header and first 512 bytes as the rest, then read a header from that part's data.
      'a short first part followed by a part carrying a forged entry',
      () => {
        const carrier = Buffer.concat([Buffer.alloc(512, 0x62), forgedTar('workspace/smuggled-short-first')]);
        return multipart([manifest([{ path: 'a.bin', size: 2048 }, { path: 'b.bin', size: carrier.length }]), { filename: 'a.bin', content: Buffer.alloc(1024, 0x61) }, { filename: 'b.bin', content: carrier }]);
      },
    ],
    [
      'a short later part followed by a part carrying a forged entry',
      () => {
        const carrier = Buffer.concat([Buffer.alloc(512, 0x63), forgedTar('workspace/smuggled-short-later')]);
        return multipart([
          manifest([{ path: 'a.bin', size: 3 }, { path: 'b.bin', size: 2048 }, { path: 'c.bin', size: carrier.length }]),
          { filename: 'a.bin', content: 'aaa' },
          { filename: 'b.bin', content: Buffer.alloc(1024, 0x62) },
          { filename: 'c.bin', content: carrier },
        ]);
      },
    ],
    [
      'a part over the file size limit without a manifest (cut by the parser), carrying forged entries',
      () => multipart([{ filename: 'first.bin', content: forgedTar('workspace/smuggled-spooled') }, { filename: 'big.bin', content: Buffer.concat([Buffer.alloc(LIMITS.maxFileBytes), forgedTar('workspace/smuggled-big')]) }]),
    ],
  ];

  for (const [what, body] of cases) {
    it(`${what} is refused and nothing of it stays in the volume`, async () => {
      const before = await snapshot(aliceId);
      expect(before.entries.some((e) => e.path === 'workspace/honest.txt' || e.path.endsWith('honest.txt'))).toBe(true);
      const res = await upload(body());
      expect([400, 413]).toContain(res.status);
      expect(['SIZE_MISMATCH', 'FILE_TOO_LARGE']).toContain(errorCode(res));
      await expectVolumeUnchanged(before);
    });
  }

  it('a client that cuts the request inside a part, with or without a manifest, leaves nothing either', async () => {
    const server = http.createServer(h.platform.app);
    const sockets: Socket[] = [];
    server.on('connection', (socket) => sockets.push(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const cookie = await signInCookie(port, new URL(h.config.publicOrigin).host, 'alice', STRONG_PASSWORD);
    try {
      for (const withManifest of [true, false]) {
        const before = await snapshot(aliceId);
        const whole = multipart([
          ...(withManifest ? [manifest([{ path: 'x.bin', size: 2 * MIB }])] : []),
          { filename: 'x.bin', content: Buffer.concat([forgedTar('workspace/smuggled-cut'), Buffer.alloc(2 * MIB - 2048)]) },
        ]);
        const req = http.request({
          host: '127.0.0.1',
          port,
          method: 'POST',
          path: '/api/v1/files/upload?path=in',
          headers: { Cookie: cookie, Origin: h.config.publicOrigin, 'Content-Type': `multipart/form-data; boundary=${BOUNDARY}`, 'Content-Length': String(whole.length) },
        });
        req.on('error', () => undefined);
        const sent = Math.floor(whole.length / 2);
        req.write(whole.subarray(0, sent));
        // Cut once the server holds what was sent: inside the part, with the upload under way.
        await eventually(() => (sockets.some((s) => s.bytesRead >= sent) ? true : undefined), 'the server to have read the first half', 20_000, 10);
        req.destroy();
        await expectVolumeUnchanged(before);
      }
    } finally {
      server.close();
    }
  });
});
