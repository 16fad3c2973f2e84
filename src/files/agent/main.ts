import { runFileAgent } from './operations';
import type { AgentRequest } from './protocol';

/**
 * The file agent's entry: one request as JSON on stdin, one response as JSON on stdout. The
 * build bundles this file with what it imports into one self-contained script (build.ts).
 */
let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk: string) => {
  input += chunk;
});
process.stdin.on('end', () => {
  process.stdout.write(JSON.stringify(runFileAgent(JSON.parse(input) as AgentRequest)));
});
