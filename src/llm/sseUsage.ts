import { Transform, type TransformCallback } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';

export interface TokenUsage {
  promptTokens: number;
  completionTokens: number;
}

/** Reads OpenAI's usage object (chat/completions/embeddings, and the Responses API's names). */
export function usageOf(value: unknown): TokenUsage | null {
  if (!value || typeof value !== 'object') return null;
  const usage = (value as { usage?: unknown }).usage ?? (value as { response?: { usage?: unknown } }).response?.usage;
  if (!usage || typeof usage !== 'object') return null;
  const u = usage as Record<string, unknown>;
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
  return { promptTokens: num(u.prompt_tokens ?? u.input_tokens), completionTokens: num(u.completion_tokens ?? u.output_tokens) };
}

const EVENT_END = /\r?\n\r?\n/;

/**
 * Passes a Server-Sent Events stream through event by event, unchanged, while reading the usage
 * the upstream puts in its last chunk. When the gateway turned `include_usage` on for metering and
 * the client had not asked for it, that usage-only chunk is dropped so the client sees exactly the
 * stream it asked for.
 */
export class SseUsageTap extends Transform {
  usage: TokenUsage | null = null;
  private pending = '';
  // A character split across two chunks must not be torn apart.
  private readonly decoder = new StringDecoder('utf8');

  constructor(private readonly stripUsageChunk: boolean) {
    super();
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
    if (this.pending) this.push(this.pending);
    done();
  }

  /** False when the event is the metering-only usage chunk the client did not ask for. */
  private inspect(event: string): boolean {
    const data = event
      .split(/\r?\n/)
      .filter((line) => line.startsWith('data:'))
      .map((line) => line.slice(5).trimStart())
      .join('\n');
    if (!data || data === '[DONE]' || !data.includes('usage')) return true;
    let parsed: unknown;
    try {
      parsed = JSON.parse(data);
    } catch {
      return true;
    }
    const usage = usageOf(parsed);
    if (!usage) return true;
    this.usage = usage;
    const choices = (parsed as { choices?: unknown }).choices;
    return !(this.stripUsageChunk && Array.isArray(choices) && choices.length === 0);
  }
}
