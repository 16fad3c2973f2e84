import { runFileAgent } from './operations';
import type { AgentRequest } from './protocol';

/**
 * One run of the file agent over stdio: one request as JSON on stdin, one response as JSON on
 * stdout. The agent's own bundle (main.ts) does only this; the file server's bundle does it when
 * started with `--agent-run` (server.ts runs every agent request in such a child process).
 */
export function runAgentOverStdio(): void {
  let input = '';
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (chunk: string) => {
    input += chunk;
  });
  process.stdin.on('end', () => {
    process.stdout.write(JSON.stringify(runFileAgent(JSON.parse(input) as AgentRequest)));
  });
}
