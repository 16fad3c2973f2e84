/**
 * A minimal OpenAI-compatible model server for tests: answers chat completions (streamed or not)
 * with a fixed text, and records what it was asked. Listens on all interfaces so runtime
 * containers reach it through the host gateway (host.docker.internal).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface TestModelUpstream {
  port: number;
  /** Bodies of the chat completion requests received. */
  requests: { authorization: string | undefined; body: Record<string, unknown> }[];
  close(): Promise<void>;
}

export async function startTestModelUpstream(answer: string, model = 'test-model'): Promise<TestModelUpstream> {
  const requests: TestModelUpstream['requests'] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const path = (req.url ?? '').replace(/\?.*$/, '');
      if (req.method === 'GET' && path.endsWith('/models')) {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ object: 'list', data: [{ id: model, object: 'model', owned_by: 'test' }] }));
        return;
      }
      if (req.method !== 'POST' || !path.endsWith('/chat/completions')) {
        res.statusCode = 404;
        res.end(JSON.stringify({ error: { message: `no route ${req.method} ${path}`, type: 'not_found' } }));
        return;
      }
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<string, unknown>;
      requests.push({ authorization: req.headers.authorization, body });
      const usage = { prompt_tokens: 11, completion_tokens: 3, total_tokens: 14 };
      const id = `chatcmpl-${requests.length}`;
      const created = Math.floor(Date.now() / 1000);
      if (body.stream) {
        res.setHeader('content-type', 'text/event-stream');
        const send = (data: unknown) => res.write(`data: ${JSON.stringify(data)}\n\n`);
        send({ id, object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta: { role: 'assistant', content: answer }, finish_reason: null }] });
        send({ id, object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] });
        send({ id, object: 'chat.completion.chunk', created, model, choices: [], usage });
        res.end('data: [DONE]\n\n');
        return;
      }
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({ id, object: 'chat.completion', created, model, choices: [{ index: 0, message: { role: 'assistant', content: answer }, finish_reason: 'stop' }], usage }),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '0.0.0.0', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    requests,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
