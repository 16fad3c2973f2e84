/**
 * SseUsageTap (src/llm/sseUsage.ts) is a hand-written SSE reader on the model gateway's hot path:
 * whatever way the upstream's bytes are cut into chunks (inside an event, inside its `\r\n\r\n`,
 * inside a multi-byte character), the client must get the same bytes and the call the same
 * charge. Each stream here is fed split at every byte position, and one byte at a time.
 */
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import type { TokenUsage } from '../../src/llm/metering';
import { SseUsageTap } from '../../src/llm/sseUsage';

interface Outcome {
  out: string;
  usage: TokenUsage | null;
  textBytes: number;
  textEvents: number;
}

async function run(pieces: Buffer[], strip: boolean): Promise<Outcome> {
  const tap = new SseUsageTap(strip);
  const out = await text(Readable.from(pieces).pipe(tap));
  return { out, usage: tap.usage, textBytes: tap.textBytes, textEvents: tap.textEvents };
}

const chat = (delta: Record<string, unknown>) => JSON.stringify({ object: 'chat.completion.chunk', choices: [{ index: 0, delta, finish_reason: null }] });
const TAIL_DATA = '{"choices":[{"delta":{"content":"half an ev';
const USAGE_EVENT = `data: ${JSON.stringify({ choices: [], usage: { prompt_tokens: 12, completion_tokens: 9 } })}\n\n`;

/** A chat stream with every framing the tap meets, and what it must make of it. */
const events = [
  ': keep-alive\n\n',
  `data: ${chat({ role: 'assistant', content: 'Hallo, ' })}\n\n`,
  // Three- and four-byte characters: a split inside one must not tear it.
  `data: ${chat({ content: '日本🦀' })}\n\n`,
  // CRLF framing, as some proxies send it.
  `data: ${chat({ content: 'ü' })}\r\n\r\n`,
  // Named event with an id and its data over two lines (joined with a newline, still JSON).
  `event: message\nid: 7\ndata: {"choices":[{"index":0,"delta":\ndata: {"content":"x"}}]}\n\n`,
  `data: ${chat({ tool_calls: [{ index: 0, id: 'c1', type: 'function', function: { name: 'read', arguments: '{"p":1}' } }] })}\n\n`,
  USAGE_EVENT,
  'data: [DONE]\n\n',
  // The upstream failed mid-event: what arrived still reached the client, and counts.
  `data: ${TAIL_DATA}`,
];
const STREAM = Buffer.from(events.join(''));
const TEXT_BYTES = Buffer.byteLength('Hallo, ' + '日本🦀' + 'ü' + 'x' + 'read{"p":1}') + Buffer.byteLength(TAIL_DATA);

const expected = (strip: boolean): Outcome => ({
  out: strip ? events.filter((e) => e !== USAGE_EVENT).join('') : events.join(''),
  usage: { promptTokens: 12, completionTokens: 9 },
  textBytes: TEXT_BYTES,
  textEvents: 6,
});

describe.each([false, true])('SseUsageTap (strip the usage chunk: %s)', (strip) => {
  test('the stream in one chunk', async () => {
    await expect(run([STREAM], strip)).resolves.toEqual(expected(strip));
  });

  test('split in two at every byte position', async () => {
    const want = expected(strip);
    for (let at = 0; at <= STREAM.length; at++) {
      const got = await run([STREAM.subarray(0, at), STREAM.subarray(at)], strip);
      // One readable failure naming the position, instead of hundreds of expectations.
      if (JSON.stringify(got) !== JSON.stringify(want)) expect({ at, got }).toEqual({ at, got: want });
    }
  });

  test('one byte at a time', async () => {
    const pieces = Array.from({ length: STREAM.length }, (_, i) => STREAM.subarray(i, i + 1));
    await expect(run(pieces, strip)).resolves.toEqual(expected(strip));
  });
});

describe('SseUsageTap with the Responses API', () => {
  const stream = Buffer.from(
    [
      `event: response.output_text.delta\ndata: ${JSON.stringify({ type: 'response.output_text.delta', delta: 'Grüße 👋' })}\n\n`,
      `event: response.completed\ndata: ${JSON.stringify({ type: 'response.completed', response: { usage: { input_tokens: 5, output_tokens: 4 } } })}\n\n`,
    ].join(''),
  );

  test('reads the usage inside the completed response, never strips it, at every split', async () => {
    const want: Outcome = { out: stream.toString(), usage: { promptTokens: 5, completionTokens: 4 }, textBytes: Buffer.byteLength('Grüße 👋'), textEvents: 1 };
    for (let at = 0; at <= stream.length; at++) {
      const got = await run([stream.subarray(0, at), stream.subarray(at)], true);
      if (JSON.stringify(got) !== JSON.stringify(want)) expect({ at, got }).toEqual({ at, got: want });
    }
  });
});
