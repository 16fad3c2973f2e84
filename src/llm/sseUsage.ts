import { Transform, type TransformCallback } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { tokensOfBytes, usageOf, type TokenUsage } from './metering';

const EVENT_END = /\r?\n\r?\n/;

/**
 * Passes a Server-Sent Events stream through event by event, unchanged, while reading the usage
 * the upstream puts in its last chunk, and counting the generated text that went by (the bytes of
 * the content, reasoning and tool-call deltas, chat, completions and Responses alike): what a call
 * is charged when the usage never comes (the client left, the upstream failed or timed out, or it
 * sends none). When the gateway turned `include_usage` on for metering and the client had not
 * asked for it, that usage-only chunk is dropped so the client sees exactly the stream it asked for.
 */
export class SseUsageTap extends Transform {
  usage: TokenUsage | null = null;
  /** UTF-8 bytes of generated text seen so far. */
  textBytes = 0;
  /** Events that carried generated text (an upstream streams about one token per event, often fewer). */
  textEvents = 0;
  private pending = '';
  // A character split across two chunks must not be torn apart.
  private readonly decoder = new StringDecoder('utf8');

  constructor(private readonly stripUsageChunk: boolean) {
    super();
  }

  /** The completion tokens the text seen so far is worth: never fewer than one per event that carried any. */
  get streamedTokens(): number {
    return Math.max(this.textEvents, tokensOfBytes(this.textBytes));
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.pending += this.decoder.write(chunk);
    for (;;) {
      const match = EVENT_END.exec(this.pending);
      if (!match) break;
      const end = match.index + match[0].length;
      const event = this.pending.slice(0, end);
      this.pending = this.pending.slice(end);
      if (this.inspect(event)) this.push(event);
    }
    done();
  }

  override _flush(done: TransformCallback): void {
    this.pending += this.decoder.end();
    if (this.pending) {
      // An event cut short still reached the client: its text counts.
      this.inspect(this.pending);
      this.push(this.pending);
    }
    done();
  }

  /** False when the event is the metering-only usage chunk the client did not ask for. */
  private inspect(event: string): boolean {
    const data = dataOf(event);
    if (!data || data === '[DONE]') return true;
    let parsed: unknown;
    try {
      parsed = JSON.parse(data);
    } catch {
      // Not JSON (or cut short): whatever it is, the client got it.
      this.countText(Buffer.byteLength(data));
      return true;
    }
    if (!parsed || typeof parsed !== 'object') return true;
    this.countText(generatedTextBytes(parsed as Record<string, unknown>));
    if (!data.includes('usage')) return true;
    const usage = usageOf(parsed);
    if (!usage) return true;
    this.usage = usage;
    const choices = (parsed as { choices?: unknown }).choices;
    return !(this.stripUsageChunk && Array.isArray(choices) && choices.length === 0);
  }

  private countText(bytes: number): void {
    if (bytes === 0) return;
    this.textBytes += bytes;
    this.textEvents++;
  }
}

/** The data of an SSE event (its `data:` lines joined); the common one-line event without copying lines. */
function dataOf(event: string): string {
  if (event.startsWith('data:')) {
    const lineEnd = event.indexOf('\n');
    const rest = event.slice(lineEnd + 1);
    if (rest === '\n' || rest === '\r\n' || rest === '') return event.slice(5, lineEnd).trim();
  }
  return event
    .split(/\r?\n/)
    .filter((line) => line.startsWith('data:'))
    .map((line) => line.slice(5).trimStart())
    .join('\n');
}

const bytesOf = (value: unknown): number => (typeof value === 'string' ? Buffer.byteLength(value) : 0);
const DELTA_TEXT_FIELDS = ['content', 'reasoning_content', 'reasoning', 'refusal'] as const;

/** UTF-8 bytes of the text an event generated: chat deltas (text, reasoning, tool calls), completions' text, Responses' deltas. */
function generatedTextBytes(event: Record<string, unknown>): number {
  let bytes = bytesOf(event.delta);
  const choices = event.choices;
  if (!Array.isArray(choices)) return bytes;
  for (const choice of choices as unknown[]) {
    if (!choice || typeof choice !== 'object') continue;
    const { text, delta } = choice as { text?: unknown; delta?: unknown };
    bytes += bytesOf(text);
    if (!delta || typeof delta !== 'object') continue;
    const d = delta as Record<string, unknown>;
    for (const field of DELTA_TEXT_FIELDS) bytes += bytesOf(d[field]);
    const calls = [...(Array.isArray(d.tool_calls) ? (d.tool_calls as unknown[]) : []), ...(d.function_call ? [{ function: d.function_call }] : [])];
    for (const call of calls) {
      const fn = (call as { function?: { name?: unknown; arguments?: unknown } } | null)?.function;
      if (fn && typeof fn === 'object') bytes += bytesOf(fn.name) + bytesOf(fn.arguments);
    }
  }
  return bytes;
}
