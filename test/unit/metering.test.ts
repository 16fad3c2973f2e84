/**
 * What the gateway charges when the upstream's usage is missing or out of reach: the text a
 * stream carried (SseUsageTap), and the usage of an answer too big to parse whole (JsonUsageMeter).
 */
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { JsonUsageMeter, tokensOfBytes } from '../../src/llm/metering';
import { SseUsageTap } from '../../src/llm/sseUsage';

const sse = (...events: unknown[]) => events.map((e) => `data: ${typeof e === 'string' ? e : JSON.stringify(e)}\n\n`).join('');
const chatChunk = (delta: Record<string, unknown>) => ({ object: 'chat.completion.chunk', choices: [{ index: 0, delta, finish_reason: null }] });

async function tap(stream: string, strip = false, chunkSize = 7): Promise<{ tap: SseUsageTap; out: string }> {
  const t = new SseUsageTap(strip);
  const parts: Buffer[] = [];
  const bytes = Buffer.from(stream);
  for (let i = 0; i < bytes.length; i += chunkSize) parts.push(bytes.subarray(i, i + chunkSize));
  const out = await text(Readable.from(parts).pipe(t));
  return { tap: t, out };
}

describe('SseUsageTap counts the generated text that went by', () => {
  test('content, reasoning and tool-call deltas (chat), text (completions) and Responses deltas; never the framing', async () => {
    const stream = sse(
      chatChunk({ role: 'assistant', content: 'Hello' }),
      chatChunk({ reasoning_content: 'thinking…' }),
      chatChunk({ tool_calls: [{ index: 0, id: 'call_1', type: 'function', function: { name: 'read', arguments: '{"path":"a"}' } }] }),
      { choices: [{ index: 0, text: ' world', finish_reason: null }] },
      { type: 'response.output_text.delta', delta: '你好' },
      { type: 'response.completed', response: { output: [{ content: [{ text: 'Hello world' }] }] } },
      '[DONE]',
    );
    const { tap: t, out } = await tap(stream);
    expect(out).toBe(stream);
    const bytes = Buffer.byteLength('Hello' + 'thinking…' + 'read{"path":"a"}' + ' world' + '你好');
    expect(t.textBytes).toBe(bytes);
    expect(t.textEvents).toBe(5);
    expect(t.streamedTokens).toBe(tokensOfBytes(bytes));
    expect(t.usage).toBeNull();
  });

  test('never fewer tokens than events that carried text (one-character chunks)', async () => {
    const { tap: t } = await tap(sse(...'abcdefghij'.split('').map((c) => chatChunk({ content: c }))));
    expect(t.streamedTokens).toBe(10);
  });

  test('an event cut short by a failing upstream still counts, and the usage chunk wins when it comes', async () => {
    const cut = await tap(`${sse(chatChunk({ content: 'abc' }))}data: {"choices":[{"delta":{"content":"half an ev`);
    expect(cut.tap.textBytes).toBeGreaterThan(3);
    const done = await tap(sse(chatChunk({ content: 'abc' }), { choices: [], usage: { prompt_tokens: 4, completion_tokens: 1 } }), true);
    expect(done.tap.usage).toEqual({ promptTokens: 4, completionTokens: 1 });
    expect(done.out).not.toContain('usage');
  });

  test('usage is whole and never negative: no answer takes tokens back', async () => {
    const { tap: t } = await tap(sse({ choices: [], usage: { prompt_tokens: -1000, completion_tokens: 2.5 } }));
    expect(t.usage).toEqual({ promptTokens: 0, completionTokens: 3 });
  });
});

describe('JsonUsageMeter reads the usage of any answer, whatever its size', () => {
  const answer = (content: string, usage: unknown = { prompt_tokens: 11, completion_tokens: 3, prompt_tokens_details: { cached_tokens: 0 } }) =>
    JSON.stringify({ id: 'x', object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content } }], usage });
  const meter = (body: string, limit: number, chunkSize = 1000) => {
    const m = new JsonUsageMeter(limit);
    const bytes = Buffer.from(body);
    for (let i = 0; i < bytes.length; i += chunkSize) m.push(bytes.subarray(i, i + chunkSize));
    return m;
  };

  test('within the limit: parsed whole', () => {
    expect(meter(answer('hi'), 1024).usage()).toEqual({ promptTokens: 11, completionTokens: 3 });
    expect(meter('not json', 1024).usage()).toBeNull();
  });

  test('past the limit: the usage at the end of the body, with memory bounded to the two windows', () => {
    const m = meter(answer('x'.repeat(1_000_000)), 1024, 4096);
    expect(m.size).toBeGreaterThan(1_000_000);
    expect(m.usage()).toEqual({ promptTokens: 11, completionTokens: 3 });
    expect(meter(answer('x'.repeat(300_000), null), 1024).usage()).toBeNull();
  });

  test('past the limit: text that looks like usage inside the answer cannot stand in for it', () => {
    const fake = '"usage":{"prompt_tokens":0,"completion_tokens":0}';
    expect(meter(answer(`${'x'.repeat(200_000)}${fake}`), 1024).usage()).toEqual({ promptTokens: 11, completionTokens: 3 });
    expect(meter(answer(`${'x'.repeat(200_000)}${fake}`, null), 1024).usage()).toBeNull();
  });

  test('past the limit: usage placed first (as some servers do) is found in the head', () => {
    const body = JSON.stringify({ usage: { prompt_tokens: 5, completion_tokens: 8 }, data: [{ embedding: 'y'.repeat(300_000) }] });
    expect(meter(body, 1024).usage()).toEqual({ promptTokens: 5, completionTokens: 8 });
  });
});
