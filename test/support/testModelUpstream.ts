/**
 * A minimal OpenAI-compatible model server for tests: answers chat completions (streamed or not)
 * with a fixed text, and records what it was asked. Listens on all interfaces so runtime
 * containers reach it through the host gateway (host.docker.internal).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** What the next requests meet; tests change it between calls. */
export interface UpstreamBehaviour {
  /** Answer every request with this status and an OpenAI-shaped error. */
  failStatus: number | null;
  /** Wait this long before answering. */
  delayMs: number;
  /** Hold every answer until this settles (a gate a test opens), after any delay. */
  hold: Promise<void> | null;
  /** Streamed answers: send this many content chunks, then cut the connection without [DONE]; others: cut after half the body. */
  failAfterChunks: number | null;
  /** Streamed answers: content chunks before the final ones. */
  chunks: number;
  /** Streamed answers: send this many content chunks, then go silent with the connection open. */
  stallAfterChunks: number | null;
  /** Report usage (as OpenAI does: non-streamed always, streamed when asked); false: an upstream that never does. */
  reportUsage: boolean;
  /** Non-streamed chat answers: repeat the answer text until the content is at least this many bytes. */
  answerBytes: number;
  /**
   * Chat answers: a tool call to make instead of answering (the agent runs the tool and asks
   * again with its result); null answers with the text. Asked with each request's body.
   */
  toolCall: ((body: Record<string, unknown>) => { name: string; arguments: Record<string, unknown> } | null) | null;
}

export interface TestModelUpstream {
  port: number;
  behaviour: UpstreamBehaviour;
  /** Requests whose client went away before the answer ended. */
  aborted: number;
  /** Requests whose body has arrived (counted before any delay or hold): a test's gate for "the call is at the upstream". */
  received: number;
  /** The model requests received: their headers (names lower-case), path with query, and body. */
  requests: { authorization: string | undefined; headers: http.IncomingHttpHeaders; url: string; body: Record<string, unknown> }[];
  close(): Promise<void>;
}

export async function startTestModelUpstream(answer: string, model = 'test-model'): Promise<TestModelUpstream> {
  const requests: TestModelUpstream['requests'] = [];
  const behaviour: UpstreamBehaviour = { failStatus: null, delayMs: 0, hold: null, failAfterChunks: null, chunks: 1, stallAfterChunks: null, reportUsage: true, answerBytes: 0, toolCall: null };
  const state = { aborted: 0, received: 0 };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    res.on('close', () => {
      if (!res.writableFinished) state.aborted++;
    });
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      state.received++;
      void answerAfterDelay();
    });
    const answerAfterDelay = async () => {
      if (behaviour.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, behaviour.delayMs));
      if (behaviour.hold) await behaviour.hold;
      if (res.destroyed) return;
      respond();
    };
    const respond = () => {
      const path = (req.url ?? '').replace(/\?.*$/, '');
      if (req.method === 'GET' && path.endsWith('/models')) {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ object: 'list', data: [{ id: model, object: 'model', owned_by: 'test' }] }));
        return;
      }
      if (req.method !== 'POST' || !['/chat/completions', '/embeddings', '/responses'].some((endpoint) => path.endsWith(endpoint))) {
        res.statusCode = 404;
        res.end(JSON.stringify({ error: { message: `no route ${req.method} ${path}`, type: 'not_found' } }));
        return;
      }
      if (behaviour.failStatus !== null) {
        res.statusCode = behaviour.failStatus;
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ error: { message: 'injected failure', type: 'server_error', code: 'injected' } }));
        return;
      }
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown>;
      requests.push({ authorization: req.headers.authorization, headers: req.headers, url: req.url ?? '', body });
      if (path.endsWith('/embeddings')) {
        res.setHeader('content-type', 'application/json');
        const vector = [0.1, 0.2, 0.3];
        // The openai client asks for base64 (little-endian float32) unless told otherwise.
        const embedding = body.encoding_format === 'base64' ? Buffer.from(new Float32Array(vector).buffer).toString('base64') : vector;
        res.end(JSON.stringify({ object: 'list', model, data: [{ object: 'embedding', index: 0, embedding }], ...(behaviour.reportUsage ? { usage: { prompt_tokens: 5, total_tokens: 5 } } : {}) }));
        return;
      }
      if (path.endsWith('/responses')) {
        respondAsResponsesApi(res, body, answer, model, behaviour.reportUsage);
        return;
      }
      const usage = { prompt_tokens: 11, completion_tokens: 3, total_tokens: 14 };
      const id = `chatcmpl-${requests.length}`;
      const created = Math.floor(Date.now() / 1000);
      const call = behaviour.toolCall?.(body) ?? null;
      if (call) {
        const toolCall = { id: `call_${requests.length}`, type: 'function', function: { name: call.name, arguments: JSON.stringify(call.arguments) } };
        if (body.stream) {
          res.setHeader('content-type', 'text/event-stream');
          const send = (data: unknown) => res.write(`data: ${JSON.stringify(data)}\n\n`);
          send({ id, object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta: { role: 'assistant', content: null, tool_calls: [{ index: 0, ...toolCall }] }, finish_reason: null }] });
          send({ id, object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta: {}, finish_reason: 'tool_calls' }] });
          if (behaviour.reportUsage && (body.stream_options as { include_usage?: boolean } | undefined)?.include_usage) send({ id, object: 'chat.completion.chunk', created, model, choices: [], usage });
          res.end('data: [DONE]\n\n');
          return;
        }
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ id, object: 'chat.completion', created, model, choices: [{ index: 0, message: { role: 'assistant', content: null, tool_calls: [toolCall] }, finish_reason: 'tool_calls' }], ...(behaviour.reportUsage ? { usage } : {}) }));
        return;
      }
      if (body.stream) {
        res.setHeader('content-type', 'text/event-stream');
        const send = (data: unknown) => res.write(`data: ${JSON.stringify(data)}\n\n`);
        for (let i = 0; i < behaviour.chunks; i++) {
          if (behaviour.failAfterChunks !== null && i >= behaviour.failAfterChunks) {
            // Let what was written reach the client first: a failure MID-stream.
            setTimeout(() => res.destroy(), 50);
            return;
          }
          if (behaviour.stallAfterChunks !== null && i >= behaviour.stallAfterChunks) return;
          send({ id, object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta: { role: 'assistant', content: answer }, finish_reason: null }] });
        }
        send({ id, object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] });
        // Usage only when asked, as OpenAI does.
        if (behaviour.reportUsage && (body.stream_options as { include_usage?: boolean } | undefined)?.include_usage) send({ id, object: 'chat.completion.chunk', created, model, choices: [], usage });
        res.end('data: [DONE]\n\n');
        return;
      }
      res.setHeader('content-type', 'application/json');
      const content = behaviour.answerBytes > answer.length ? answer.repeat(Math.ceil(behaviour.answerBytes / answer.length)) : answer;
      const completion = JSON.stringify({ id, object: 'chat.completion', created, model, choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }], ...(behaviour.reportUsage ? { usage } : {}) });
      if (behaviour.failAfterChunks !== null) {
        // Half an answer, then the connection is cut.
        res.setHeader('content-length', String(completion.length));
        res.write(completion.slice(0, completion.length >> 1));
        setTimeout(() => res.destroy(), 50);
        return;
      }
      res.end(completion);
    };
  });
  await new Promise<void>((resolve) => server.listen(0, '0.0.0.0', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    behaviour,
    get aborted() {
      return state.aborted;
    },
    get received() {
      return state.received;
    },
    requests,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** OpenAI's Responses API (`POST /responses`), which LiteLLM also serves: usage as input/output tokens. */
function respondAsResponsesApi(res: http.ServerResponse, body: Record<string, unknown>, answer: string, model: string, reportUsage: boolean): void {
  const usage = { input_tokens: 7, output_tokens: 2, total_tokens: 9 };
  const message = { type: 'message', id: 'msg_1', status: 'completed', role: 'assistant', content: [{ type: 'output_text', text: answer, annotations: [] }] };
  const response = (status: string, done: boolean) => ({
    id: 'resp_1',
    object: 'response',
    created_at: Math.floor(Date.now() / 1000),
    status,
    model,
    output: done ? [message] : [],
    usage: done && reportUsage ? usage : null,
  });
  if (!body.stream) {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(response('completed', true)));
    return;
  }
  res.setHeader('content-type', 'text/event-stream');
  const send = (type: string, data: Record<string, unknown>) => res.write(`event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`);
  send('response.created', { response: response('in_progress', false), sequence_number: 0 });
  send('response.output_text.delta', { item_id: 'msg_1', output_index: 0, content_index: 0, delta: answer, sequence_number: 1 });
  send('response.completed', { response: response('completed', true), sequence_number: 2 });
  res.end();
}
