/**
 * The Files page's upload queue (web/src/lib/uploadQueue.ts) with a scripted transport, a fake
 * clock and frames run by hand: what a member relies on when dropping many files.
 */
import {
  fileBytesSent,
  multipartLayout,
  UploadQueue,
  type BatchResult,
  type NewUpload,
  type TransferError,
  type UploadBatch,
  type UploadQueueOptions,
} from '../../web/src/lib/uploadQueue';

const KiB = 1024;
const MiB = 1024 * KiB;

interface Sent {
  batch: UploadBatch<string>;
  progress: (bytes: number) => void;
  answer: (result: BatchResult) => Promise<void>;
  aborted: boolean;
}

/** Lets the queue's promise callbacks run. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

function harness(options: Partial<UploadQueueOptions<string>> = {}) {
  const sent: Sent[] = [];
  const frames: (() => void)[] = [];
  let clock = 0;
  const queue = new UploadQueue<string>({
    transport: {
      send(batch, progress) {
        let resolve: (result: BatchResult) => void = () => undefined;
        const done = new Promise<BatchResult>((r) => (resolve = r));
        const entry: Sent = {
          batch,
          progress,
          aborted: false,
          answer: async (result) => {
            resolve(result);
            await settle();
          },
        };
        sent.push(entry);
        return {
          abort: () => {
            entry.aborted = true;
            resolve({ ok: false, error: { status: 0, code: 'ABORTED', message: 'aborted', details: {} } });
          },
          done,
        };
      },
    },
    now: () => clock,
    schedule: (flush) => frames.push(flush),
    ...options,
  });
  const frame = () => {
    for (const flush of frames.splice(0)) flush();
    return queue.getSnapshot();
  };
  const row = (name: string) => {
    const found = frame().rows.find((r) => r.name === name);
    if (!found) throw new Error(`no row ${name}`);
    return found;
  };
  const names = (s: Sent) => s.batch.files.map((f) => f.path);
  return { queue, sent, frames, frame, row, names, tick: (ms: number) => (clock += ms) };
}

const files = (count: number, size: number, prefix = 'f'): NewUpload<string>[] =>
  Array.from({ length: count }, (_, i) => ({ file: `${prefix}${i}`, relativePath: `${prefix}${i}.txt`, size }));

const refusal = (status: number, code: string, message: string, details: Record<string, unknown> = {}): BatchResult => ({
  ok: false,
  error: { status, code, message, details } satisfies TransferError,
});

test('small files travel together: 120 files are 3 requests of at most 50, two at a time', async () => {
  const { queue, sent, frame } = harness();
  queue.add(files(120, 2 * KiB), '');
  expect(sent.map((s) => s.batch.files.length)).toEqual([50, 50]);
  await sent[0]?.answer({ ok: true });
  expect(sent.map((s) => s.batch.files.length)).toEqual([50, 50, 20]);
  await sent[1]?.answer({ ok: true });
  await sent[2]?.answer({ ok: true });
  expect(sent).toHaveLength(3);
  expect(frame().counts.done).toBe(120);
});

test('a big file goes alone, and a request stays within the byte limit', async () => {
  const { queue, sent, names } = harness();
  queue.add(
    [
      { file: 'a', relativePath: 'a.txt', size: KiB },
      { file: 'big', relativePath: 'big.iso', size: 100 * MiB },
      ...files(5, 7 * MiB, 'm'),
    ],
    'in',
  );
  // The first request takes the small ones that fit in 32 MiB; the big file goes alone beside it.
  expect(names(sent[0] as Sent)).toEqual(['a.txt', 'm0.txt', 'm1.txt', 'm2.txt', 'm3.txt']);
  expect(sent[0]?.batch.bytes).toBe(KiB + 28 * MiB);
  expect(names(sent[1] as Sent)).toEqual(['big.iso']);
  await sent[0]?.answer({ ok: true });
  expect(names(sent[2] as Sent)).toEqual(['m4.txt']);
  expect(sent.every((s) => s.batch.dir === 'in')).toBe(true);
});

test('the manifest comes first in the body and lists the files in the order they are sent', () => {
  const contents = [new Uint8Array([1, 2, 3]), new Uint8Array(0), new Uint8Array([9, 9, 9, 9, 9])];
  const batch: UploadBatch<Uint8Array> = {
    id: 1,
    dir: 'docs',
    overwrite: false,
    bytes: 8,
    files: [
      { id: 1, path: 'a/b.txt', size: 3, file: contents[0] as Uint8Array },
      { id: 2, path: 'empty "quoted".txt', size: 0, file: contents[1] as Uint8Array },
      { id: 3, path: '中文.bin', size: 5, file: contents[2] as Uint8Array },
    ],
  };
  const layout = multipartLayout(batch, 'XyZ');
  const body = Buffer.concat(layout.parts.map((p) => Buffer.from(p)));
  expect(body.length).toBe(layout.totalBytes);
  expect(layout.contentType).toBe('multipart/form-data; boundary=XyZ');
  const text = body.toString('latin1');
  const manifestAt = text.indexOf('name="manifest"');
  expect(manifestAt).toBeGreaterThan(-1);
  expect(manifestAt).toBeLessThan(text.indexOf('name="files"'));
  const manifest = body.toString('utf8').match(/name="manifest"\r\nContent-Type: application\/json\r\n\r\n(.*)\r\n/)?.[1];
  expect(JSON.parse(manifest ?? 'null')).toEqual([
    { path: 'a/b.txt', size: 3 },
    { path: 'empty "quoted".txt', size: 0 },
    { path: '中文.bin', size: 5 },
  ]);
  expect(body.toString('utf8')).toContain('filename="empty %22quoted%22.txt"');
  // Each file's bytes are where the layout says, so progress can be told per file.
  layout.fileStarts.forEach((start, i) => expect(body.subarray(start, start + (contents[i]?.length ?? 0))).toEqual(Buffer.from(contents[i] as Uint8Array)));
  expect(body.toString('latin1').endsWith('--XyZ--\r\n')).toBe(true);
  // Request bytes → file bytes: the headers before the first file count for nothing.
  expect(fileBytesSent(layout, 0)).toBe(0);
  expect(fileBytesSent(layout, (layout.fileStarts[0] ?? 0) + 2)).toBe(2);
  expect(fileBytesSent(layout, layout.fileStarts[2] ?? 0)).toBe(3);
  expect(fileBytesSent(layout, layout.totalBytes)).toBe(8);
});

test('each file shows its own progress, derived from the bytes of its request sent so far', async () => {
  const { queue, sent, row, tick } = harness();
  queue.add(
    [
      { file: 'a', relativePath: 'a', size: 100 },
      { file: 'b', relativePath: 'b', size: 200 },
      { file: 'c', relativePath: 'c', size: 300 },
    ],
    '',
  );
  expect(row('a').state).toBe('uploading');
  tick(500);
  sent[0]?.progress(150);
  expect([row('a').loaded, row('b').loaded, row('c').loaded]).toEqual([100, 50, 0]);
  // The file moving now has the request's speed; the one through and the one waiting have none.
  expect(row('b').rate).toBe(300);
  expect(row('a').rate).toBe(0);
  expect(row('c').rate).toBe(0);
  tick(500);
  sent[0]?.progress(600);
  // All bytes sent, still uploading until the server has put them in place.
  expect(row('c')).toMatchObject({ loaded: 300, state: 'uploading' });
  await sent[0]?.answer({ ok: true });
  expect(row('a')).toMatchObject({ state: 'done', loaded: 100 });
  expect(row('c').rate).toBe(600);
});

test('cancelling one file aborts its request and sends the others again, in their order', async () => {
  const { queue, sent, row, names, frame } = harness();
  const [, middle] = queue.add(files(3, KiB), 'x');
  sent[0]?.progress(1500);
  queue.cancel(middle as number);
  expect(sent[0]?.aborted).toBe(true);
  expect(row('f1.txt').state).toBe('cancelled');
  expect(names(sent[1] as Sent)).toEqual(['f0.txt', 'f2.txt']);
  expect(row('f0.txt')).toMatchObject({ state: 'uploading', loaded: 0 });
  // The aborted request settling late changes nothing.
  await settle();
  expect(row('f0.txt').state).toBe('uploading');
  await sent[1]?.answer({ ok: true });
  expect(frame().counts).toEqual({ queued: 0, uploading: 0, done: 2, failed: 0, cancelled: 1 });
  // A queued file is just dropped.
  const { queue: q2, sent: s2, row: r2 } = harness({ maxInFlight: 1, maxBatchFiles: 1 });
  const ids = q2.add(files(3, KiB), '');
  q2.cancel(ids[2] as number);
  expect(r2('f2.txt').state).toBe('cancelled');
  expect(s2[0]?.aborted).toBe(false);
});

test('a refused request marks its files failed with the server’s words; retry sends them again', async () => {
  const { queue, sent, row, frame } = harness();
  queue.add(files(2, KiB), '');
  await sent[0]?.answer(refusal(413, 'QUOTA_EXCEEDED', 'This would exceed your workspace quota of 1048576 bytes: 10 bytes are free.', { quotaBytes: MiB, availableBytes: 10 }));
  expect(row('f0.txt')).toMatchObject({ state: 'failed', error: { status: 413, code: 'QUOTA_EXCEEDED', message: expect.stringContaining('quota') } });
  expect(row('f1.txt').error?.details.availableBytes).toBe(10);
  expect(frame().active).toBe(0);
  queue.retry(row('f0.txt').id);
  expect(sent).toHaveLength(2);
  expect(row('f0.txt')).toMatchObject({ state: 'uploading', error: null });
  // A lost connection is a failure too, with its own code.
  await sent[1]?.answer(refusal(0, 'NETWORK', 'The connection to the server was lost during the upload.'));
  expect(row('f0.txt').error?.code).toBe('NETWORK');
});

test('409: only the files whose names are taken fail, each can be overwritten or skipped; the rest go again', async () => {
  const { queue, sent, row, names, frame } = harness();
  queue.add([...files(3, KiB), { file: 'deep', relativePath: 'sub/deep.txt', size: 5 }], 'docs');
  await sent[0]?.answer(
    refusal(409, 'NAME_CONFLICT', '2 names are already taken', {
      conflicts: [
        { path: 'docs/f1.txt', reason: 'exists' },
        { path: 'docs/sub', reason: 'blocked-by-file' },
      ],
    }),
  );
  expect(row('f1.txt')).toMatchObject({ state: 'failed', error: { conflict: 'exists' } });
  expect(row('sub/deep.txt')).toMatchObject({ state: 'failed', error: { conflict: 'blocked-by-file' } });
  expect(names(sent[1] as Sent)).toEqual(['f0.txt', 'f2.txt']);
  expect(frame().conflicts).toBe(1);
  queue.overwrite(row('f1.txt').id);
  expect(sent[2]?.batch).toMatchObject({ overwrite: true, dir: 'docs' });
  expect(names(sent[2] as Sent)).toEqual(['f1.txt']);
  // A request goes with one overwrite choice: skipped ones stay as they are.
  const { queue: q2, sent: s2, row: r2, frame: f2 } = harness();
  q2.add(files(2, KiB), '');
  await s2[0]?.answer(refusal(409, 'NAME_CONFLICT', 'taken', { conflicts: [{ path: 'f0.txt', reason: 'exists' }, { path: 'f1.txt', reason: 'exists' }] }));
  expect(f2().conflicts).toBe(2);
  q2.skipAllConflicts();
  expect(r2('f0.txt')).toMatchObject({ state: 'cancelled', skipped: true });
  expect(s2).toHaveLength(1);
});

test('a 409 that names none of the files fails them all instead of sending them forever', async () => {
  const { queue, sent, row } = harness();
  queue.add(files(2, KiB), '');
  await sent[0]?.answer(refusal(409, 'NAME_CONFLICT', 'taken', { conflicts: [{ path: 'elsewhere.txt', reason: 'exists' }] }));
  expect(row('f0.txt').state).toBe('failed');
  expect(sent).toHaveLength(1);
});

test('413 for a file over the size limit fails that file only', async () => {
  const { queue, sent, row, names } = harness();
  queue.add([...files(2, KiB), { file: 'x', relativePath: 'x.bin', size: 2 * MiB }], '');
  await sent[0]?.answer(refusal(413, 'FILE_TOO_LARGE', '"x.bin" is larger than 1048576 bytes', { limitBytes: MiB }));
  expect(row('x.bin').state).toBe('failed');
  expect(names(sent[1] as Sent)).toEqual(['f0.txt', 'f1.txt']);
});

test('never more than two requests at once', async () => {
  const { queue, sent } = harness();
  queue.add(files(6, 20 * MiB), '');
  expect(sent).toHaveLength(2);
  sent[0]?.progress(10 * MiB);
  expect(sent).toHaveLength(2);
  await sent[1]?.answer({ ok: true });
  expect(sent).toHaveLength(3);
  queue.cancel(sent[2]?.batch.files[0]?.id as number);
  expect(sent).toHaveLength(4);
  expect(sent.filter((s) => !s.aborted)).toHaveLength(4 - 1);
});

test('subscribers hear of changes once per frame, and unchanged rows keep their identity', () => {
  const { queue, sent, frames, frame } = harness();
  let calls = 0;
  queue.subscribe(() => calls++);
  queue.add(files(150, KiB), '');
  for (let i = 1; i <= 20; i++) sent[0]?.progress(i * 100);
  expect(calls).toBe(0);
  expect(frames).toHaveLength(1);
  const first = frame();
  expect(calls).toBe(1);
  expect(queue.getSnapshot()).toBe(first);
  sent[0]?.progress(5 * KiB);
  const second = frame();
  expect(calls).toBe(2);
  // Bytes 2,000..5,120 of the first request belong to files 1 to 4: every other row is the same object.
  const changed = second.rows.filter((r, i) => r !== first.rows[i]).map((r) => r.name);
  expect(changed).toEqual(['f1.txt', 'f2.txt', 'f3.txt', 'f4.txt']);
  frame();
  expect(calls).toBe(2);
});

test('200 dropped files: 4 requests, all 200 rows, done quickly', async () => {
  const { queue, sent, frame } = harness();
  const finished: string[][] = [];
  queue.onFinished((batch) => finished.push(batch.paths));
  const started = performance.now();
  queue.add(files(200, 10 * KiB), 'drop');
  const snapshot = frame();
  expect(performance.now() - started).toBeLessThan(100);
  expect(snapshot.rows).toHaveLength(200);
  expect(snapshot.counts).toMatchObject({ uploading: 100, queued: 100 });
  expect(snapshot.bytesTotal).toBe(200 * 10 * KiB);
  for (let i = 0; i < 4; i++) {
    const request = sent[i] as Sent;
    request.progress(request.batch.bytes);
    await request.answer({ ok: true });
  }
  expect(sent).toHaveLength(4);
  const end = frame();
  expect(end.counts.done).toBe(200);
  expect(end.bytesDone).toBe(end.bytesTotal);
  expect(finished.flat()).toHaveLength(200);
  expect(finished[0]?.[0]).toBe('drop/f0.txt');
  queue.clearFinished();
  expect(frame().rows).toHaveLength(0);
});

test('cancel all stops what runs and what waits; a name appears once per request', async () => {
  const { queue, sent, frame, names } = harness();
  queue.add(files(120, KiB), '');
  queue.cancelAll();
  expect(sent.every((s) => s.aborted)).toBe(true);
  expect(frame().counts.cancelled).toBe(120);
  expect(sent).toHaveLength(2);
  // The same path twice (dropped twice): the second goes in a later request.
  const { queue: q2, sent: s2, names: n2 } = harness({ maxInFlight: 1 });
  q2.add([...files(2, 1), ...files(1, 1)], '');
  expect(n2(s2[0] as Sent)).toEqual(['f0.txt', 'f1.txt']);
  await s2[0]?.answer({ ok: true });
  expect(n2(s2[1] as Sent)).toEqual(['f0.txt']);
  expect(names(sent[0] as Sent)).toHaveLength(50);
});
