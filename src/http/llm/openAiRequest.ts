import { z } from 'zod';
import { DEFAULT_COMPLETION_RESERVATION, tokensOfBytes, type CallEstimate } from '../../llm/metering';

/**
 * The request the gateway sends upstream is rebuilt from the OpenAI fields it accepts, one list
 * per endpoint; every other top-level field is dropped. The upstream is LiteLLM called with its
 * master key, and LiteLLM reads its own control fields from the same body (fallbacks, api_base,
 * base_url, api_key, metadata, user_config, extra_body, mock_response, caching, guardrails,
 * per-request prices, …): passed through, they would let a runtime pick the provider, the
 * credentials, the price or the end user a call is billed to. Dropped rather than refused, so a
 * client that adds a vendor extension (OpenClaw does in some provider modes) keeps working.
 *
 * Left out on purpose, though OpenAI defines them: `user` (LiteLLM's end-user id, for its budgets
 * and attribution), `metadata` (LiteLLM's control block), `service_tier`, `web_search_options` and
 * audio output (`modalities`, `audio`: billed beyond, or above, the text tokens the catalog prices,
 * and not countable from a stream), `background` (the answer and its usage would come
 * later, through an endpoint the gateway does not serve), `conversation`, and on embeddings
 * `stream`. Tools are limited to function (and custom) tools: hosted tools (MCP servers, web or
 * file search, code interpreter) act from the upstream's network and cost beyond tokens.
 *
 * An accepted field of the wrong type is a 400 naming it. A top-level `null` counts as absent.
 * Each present field is validated on its own schema (a request carries a handful of the dozens
 * accepted, and the gateway pays for this on every call).
 */

const str = z.string();
const modelName = z.string().min(1, 'the request must name a model').max(200);
const num = z.number();
const int = z.number().int();
const positiveInt = int.min(1);
const bool = z.boolean();
const strings = z.array(str);
const tokenIds = z.array(int);

/** Parts of a message or input item: OpenAI adds kinds over time, and none of them steers the upstream. */
const part = z.looseObject({ type: str });
const message = z.looseObject({
  role: z.enum(['system', 'developer', 'user', 'assistant', 'tool', 'function']),
  content: z.union([str, z.array(part), z.null()]).optional(),
});
const functionTool = z.looseObject({ type: z.literal('function'), function: z.looseObject({ name: str }) });
const customTool = z.looseObject({ type: z.literal('custom'), custom: z.looseObject({ name: str }) });
const toolChoice = z.union([str, z.looseObject({ type: str })]);
const stop = z.union([str, strings]);

/** The accepted fields of one endpoint and their types: each present field is checked on its own. */
type Fields = Record<string, z.ZodType>;

const sampling = {
  temperature: num,
  top_p: num,
  frequency_penalty: num,
  presence_penalty: num,
  seed: int,
  stop,
  logit_bias: z.record(str, num),
};

const CHAT: Fields = {
  model: modelName,
  messages: z.array(message),
  stream: bool,
  stream_options: z.object({ include_usage: bool.optional(), include_obfuscation: bool.optional() }),
  max_tokens: positiveInt,
  max_completion_tokens: positiveInt,
  n: positiveInt.max(128),
  ...sampling,
  logprobs: bool,
  top_logprobs: int.min(0),
  tools: z.array(z.union([functionTool, customTool])),
  tool_choice: toolChoice,
  parallel_tool_calls: bool,
  functions: z.array(z.looseObject({ name: str })),
  function_call: z.union([str, z.looseObject({ name: str })]),
  response_format: z.looseObject({ type: str }),
  reasoning_effort: str,
  verbosity: str,
  prediction: z.looseObject({ type: str }),
  store: bool,
  prompt_cache_key: str,
  prompt_cache_retention: str,
  safety_identifier: str,
};

const COMPLETIONS: Fields = {
  model: modelName,
  prompt: z.union([str, strings, tokenIds, z.array(tokenIds)]),
  stream: bool,
  stream_options: z.object({ include_usage: bool.optional(), include_obfuscation: bool.optional() }),
  max_tokens: positiveInt,
  n: positiveInt.max(128),
  best_of: positiveInt.max(128),
  ...sampling,
  logprobs: int.min(0),
  echo: bool,
  suffix: str,
};

const EMBEDDINGS: Fields = {
  model: modelName,
  input: z.union([str, strings, tokenIds, z.array(tokenIds)]),
  dimensions: positiveInt,
  encoding_format: z.enum(['float', 'base64']),
};

const RESPONSES: Fields = {
  model: modelName,
  input: z.union([str, z.array(z.looseObject({}))]),
  instructions: str,
  stream: bool,
  stream_options: z.object({ include_obfuscation: bool.optional() }),
  max_output_tokens: positiveInt,
  max_tool_calls: positiveInt,
  temperature: num,
  top_p: num,
  top_logprobs: int.min(0),
  tools: z.array(z.union([z.looseObject({ type: z.literal('function'), name: str }), z.looseObject({ type: z.literal('custom'), name: str })])),
  tool_choice: toolChoice,
  parallel_tool_calls: bool,
  previous_response_id: str,
  prompt: z.looseObject({ id: str }),
  reasoning: z.object({ effort: str.nullable(), summary: str.nullable(), generate_summary: str.nullable() }).partial(),
  text: z.looseObject({}),
  truncation: z.enum(['auto', 'disabled']),
  include: strings,
  store: bool,
  prompt_cache_key: str,
  prompt_cache_retention: str,
  safety_identifier: str,
};

export const OPENAI_ENDPOINTS = { '/chat/completions': CHAT, '/completions': COMPLETIONS, '/embeddings': EMBEDDINGS, '/responses': RESPONSES } as const;
export type OpenAiEndpoint = keyof typeof OPENAI_ENDPOINTS;

/** A request as the gateway forwards it. */
export interface ForwardedRequest {
  model: string;
  stream: boolean;
  /** The client asked for the usage chunk itself (chat and completions streams). */
  clientWantsUsage: boolean;
  body: Buffer;
  estimate: CallEstimate;
}

export type Rebuilt = { ok: true; request: ForwardedRequest } | { ok: false; param: string; message: string };

const invalid = (param: string, message: string): Rebuilt => ({ ok: false, param, message: `Invalid request: ${param}: ${message}.` });

/**
 * Rebuilds a runtime's request body for `endpoint` from the accepted fields. `upstreamModel` maps
 * the model the runtime named (a catalog alias) to the upstream's. A stream of chat or completions
 * always asks for its usage: metering needs it.
 */
export function rebuildRequest(endpoint: OpenAiEndpoint, body: Record<string, unknown>, upstreamModel: (model: string) => string): Rebuilt {
  const accepted = OPENAI_ENDPOINTS[endpoint];
  // Only accepted keys are ever assigned, so no key of the body (`__proto__` included) can reach the prototype.
  const fields: Record<string, unknown> & { model?: unknown; stream?: boolean; stream_options?: Record<string, unknown> } = {};
  for (const key of Object.keys(body)) {
    const value = body[key];
    const schema = Object.hasOwn(accepted, key) ? accepted[key] : undefined;
    if (value === null || !schema) continue;
    const checked = schema.safeParse(value);
    if (!checked.success) {
      const issue = checked.error.issues[0];
      return invalid([key, ...(issue?.path.map(String) ?? [])].join('.'), issue?.message ?? 'invalid');
    }
    fields[key] = checked.data;
  }
  if (fields.model === undefined) return invalid('model', 'the request must name a model');
  const model = fields.model as string;
  const stream = fields.stream === true;
  const clientWantsUsage = fields.stream_options?.include_usage === true;
  if (stream && (endpoint === '/chat/completions' || endpoint === '/completions')) fields.stream_options = { ...fields.stream_options, include_usage: true };
  else if (!stream) delete fields.stream_options;
  const forwarded = Buffer.from(JSON.stringify({ ...fields, model: upstreamModel(model) }));
  return { ok: true, request: { model, stream, clientWantsUsage, body: forwarded, estimate: estimateOf(endpoint, fields, forwarded.length) } };
}

/** Before the call: the forwarded body as prompt, and the most completion tokens the call may produce. */
function estimateOf(endpoint: OpenAiEndpoint, fields: Record<string, unknown>, bodyBytes: number): CallEstimate {
  if (endpoint === '/embeddings') return { promptTokens: tokensOfBytes(bodyBytes), completionTokens: 0 };
  const count = (v: unknown) => (typeof v === 'number' ? v : 1);
  const cap = fields.max_completion_tokens ?? fields.max_tokens ?? fields.max_output_tokens;
  const choices = Math.max(count(fields.n), count(fields.best_of));
  return { promptTokens: tokensOfBytes(bodyBytes), completionTokens: (typeof cap === 'number' ? cap : DEFAULT_COMPLETION_RESERVATION) * choices };
}
