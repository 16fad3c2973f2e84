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
  // Whole, non-negative tokens: no answer may take tokens back from a budget.
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? Math.ceil(v) : 0);
  return { promptTokens: num(u.prompt_tokens ?? u.input_tokens), completionTokens: num(u.completion_tokens ?? u.output_tokens) };
}

/**
 * How the gateway counts tokens it could not read from the upstream. One token per 3 bytes of
 * UTF-8: real tokenizers give about 4 for English prose and about 3 for code and CJK text, so an
 * estimate errs toward the caller paying a little more, never toward a call passing for free.
 */
export const BYTES_PER_TOKEN = 3;

/** Completion tokens reserved for a call that sets no cap of its own. */
export const DEFAULT_COMPLETION_RESERVATION = 256;

export const tokensOfBytes = (bytes: number): number => Math.ceil(bytes / BYTES_PER_TOKEN);

/** What a call is charged: the upstream's usage, or (estimated) the gateway's conservative count. */
export interface Charge extends TokenUsage {
  estimated: boolean;
}

/** A call's tokens as known before it runs, from the request actually forwarded upstream. */
export interface CallEstimate {
  /** The forwarded body's size in tokens: prompt, tool schemas and framing. */
  promptTokens: number;
  /** The most completion tokens the call asked for (its cap times its choices), or the default reservation. */
  completionTokens: number;
}

export const fromUpstream = (usage: TokenUsage): Charge => ({ ...usage, estimated: false });
export const nothingCharged: Charge = { promptTokens: 0, completionTokens: 0, estimated: false };
/** The whole reservation: the prompt and every completion token the call could have produced. */
export const reservationCharge = (estimate: CallEstimate): Charge => ({ ...estimate, estimated: true });
/** The prompt, and the completion tokens counted from what reached the gateway. */
export const partialCharge = (estimate: CallEstimate, completionTokens: number): Charge => ({ promptTokens: estimate.promptTokens, completionTokens, estimated: true });

const WINDOW_BYTES = 64 * 1024;
const USAGE_KEY = /"usage"\s*:\s*\{/g;

/**
 * Reads a non-streamed answer's usage. Up to `fullLimit` bytes the body is kept and parsed whole;
 * beyond that only its first and last 64 KiB are, and the usage object is found there by its key.
 * That search cannot be fooled by the answer's text: inside a JSON string every quote is escaped,
 * so `"usage":{` only ever appears as a real key. Memory per call stays bounded whatever the size.
 */
export class JsonUsageMeter {
  /** Bytes received so far. */
  size = 0;
  private chunks: Buffer[] = [];
  private head: Buffer | null = null;
  private tailBytes = 0;

  constructor(private readonly fullLimit: number) {}

  push(chunk: Buffer): void {
    this.size += chunk.length;
    this.chunks.push(chunk);
    if (this.size <= this.fullLimit) return;
    if (this.head === null) {
      // Copies: a view would keep the whole body alive.
      const all = Buffer.concat(this.chunks);
      this.head = Buffer.from(all.subarray(0, WINDOW_BYTES));
      this.chunks = [Buffer.from(all.subarray(Math.max(0, all.length - WINDOW_BYTES)))];
      this.tailBytes = this.chunks[0]?.length ?? 0;
      return;
    }
    this.tailBytes += chunk.length;
    while (this.chunks.length > 1 && this.tailBytes - (this.chunks[0]?.length ?? 0) >= WINDOW_BYTES) {
      this.tailBytes -= this.chunks.shift()?.length ?? 0;
    }
  }

  /** The upstream's usage, or null when the answer carries none (or is not JSON). */
  usage(): TokenUsage | null {
    if (this.head === null) {
      try {
        return usageOf(JSON.parse(Buffer.concat(this.chunks).toString('utf8')));
      } catch {
        return null;
      }
    }
    // The top-level usage follows the choices (OpenAI and LiteLLM alike): the tail's last one is it.
    return usageIn(Buffer.concat(this.chunks).toString('utf8'), 'last') ?? usageIn(this.head.toString('utf8'), 'first');
  }
}

function usageIn(text: string, which: 'first' | 'last'): TokenUsage | null {
  let start = -1;
  for (const match of text.matchAll(USAGE_KEY)) {
    start = match.index + match[0].length - 1;
    if (which === 'first') break;
  }
  if (start < 0) return null;
  const end = objectEnd(text, start);
  if (end < 0) return null;
  try {
    return usageOf({ usage: JSON.parse(text.slice(start, end)) as unknown });
  } catch {
    return null;
  }
}

/** The index just past the JSON object that opens at `start`, or -1 when it does not close in `text`. */
function objectEnd(text: string, start: number): number {
  let depth = 0;
  let inString = false;
  for (let i = start; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '{') depth++;
    else if (c === '}' && --depth === 0) return i + 1;
  }
  return -1;
}
