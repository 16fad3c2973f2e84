import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DockerLogLines, MAX_LOG_LINE_BYTES } from '../../src/docker/logLines';
import type { LogLine } from '../../src/docker/runtimeBackend';

/** One frame of the engine's multiplexed stream: 1 stdout, 2 stderr. */
function frame(kind: 1 | 2, payload: Buffer | string): Buffer {
  const body = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  const header = Buffer.alloc(8);
  header[0] = kind;
  header.writeUInt32BE(body.length, 4);
  return Buffer.concat([header, body]);
}

async function linesOf(chunks: Buffer[]): Promise<LogLine[]> {
  const out: LogLine[] = [];
  await pipeline(Readable.from(chunks), new DockerLogLines(), new Writable({ objectMode: true, write: (line: LogLine, _e, done) => (out.push(line), done()) }));
  return out;
}

describe('log lines from the engine', () => {
  test('frames split anywhere, stdout and stderr interleaved, come out as whole lines of the right stream', async () => {
    const raw = Buffer.concat([frame(1, 'hello wor'), frame(2, 'oops\n'), frame(1, 'ld\nsecond\r\n'), frame(1, 'no newline at the end')]);
    // Cut into 3-byte pieces: headers and payloads split across chunks.
    const pieces: Buffer[] = [];
    for (let i = 0; i < raw.length; i += 3) pieces.push(raw.subarray(i, i + 3));
    expect(await linesOf(pieces)).toEqual([
      { stream: 'stderr', line: 'oops' },
      { stream: 'stdout', line: 'hello world' },
      { stream: 'stdout', line: 'second' },
      { stream: 'stdout', line: 'no newline at the end' },
    ]);
  });

  test('a line longer than the cap is cut, marked, and the rest of it dropped; the next line is whole', async () => {
    const long = 'x'.repeat(MAX_LOG_LINE_BYTES * 3 + 5);
    const lines = await linesOf([frame(1, long.slice(0, 20_000)), frame(1, `${long.slice(20_000)}\nafter\n`)]);
    expect(lines).toEqual([{ stream: 'stdout', line: 'x'.repeat(MAX_LOG_LINE_BYTES), truncated: true }, { stream: 'stdout', line: 'after' }]);
  });

  test('a multi-byte character cut by the cap is dropped, not shown as garbage', async () => {
    const text = `${'a'.repeat(MAX_LOG_LINE_BYTES - 1)}é tail\n`;
    const [first] = await linesOf([frame(1, text)]);
    expect(first).toEqual({ stream: 'stdout', line: 'a'.repeat(MAX_LOG_LINE_BYTES - 1), truncated: true });
  });

  test('an endless line never holds more than the cap, however much arrives', async () => {
    const lines = new DockerLogLines();
    const seen: LogLine[] = [];
    lines.on('data', (line: LogLine) => seen.push(line));
    const chunk = frame(1, Buffer.alloc(1024 * 1024, 0x61));
    for (let i = 0; i < 64; i++) lines.write(chunk);
    lines.end();
    await new Promise((resolve) => lines.on('end', resolve));
    expect(seen).toHaveLength(1);
    expect(seen[0]?.line.length).toBe(MAX_LOG_LINE_BYTES);
  });

  test('a reader that does not read stops the transform: lines do not pile up without bound', async () => {
    const lines = new DockerLogLines();
    let accepted = 0;
    // Write many short lines and never read: the writable side must report backpressure early.
    for (let i = 0; i < 10_000; i++) {
      accepted++;
      if (!lines.write(frame(1, `line ${i}\n`))) break;
    }
    expect(accepted).toBeLessThan(10_000);
    expect(lines.readableLength).toBeLessThanOrEqual(200);
    lines.destroy();
  });
});
