import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import type { AgentLimits, AgentRun } from '../workspaceVolumes';
import { ServerRefusal } from './serverErrors';

/**
 * How the file server (server.ts) runs the file agent: each request in a child process of its
 * own. The agent's operations are synchronous (a `usage` walk of a large volume takes seconds)
 * and must neither hold up the archive streams the server serves meanwhile nor take the server
 * down with them when they crash or run out of memory.
 */

export type { AgentLimits, AgentRun } from '../workspaceVolumes';
export type AgentRunner = (input: string, limits: AgentLimits) => Promise<AgentRun>;

/** The flag that makes the file server's bundle run the agent once over stdio instead of serving. */
export const AGENT_RUN_FLAG = '--agent-run';

export interface AgentCommand {
  file: string;
  args: string[];
}

/**
 * This very process's script started again as an agent run. Under `node -e <script>` (how the
 * bundle is started) Node would take a flag after the script for one of its own, so the flag
 * goes after `--`: `node -e <script> -- --agent-run`. Started from a file, the file is run again.
 */
export function ownAgentCommand(): AgentCommand {
  const evaluated = process.execArgv.some((arg) => arg === '-e' || arg === '--eval');
  if (evaluated) return { file: process.execPath, args: [...process.execArgv, '--', AGENT_RUN_FLAG] };
  const script = process.argv[1];
  if (!script) throw new Error('the file server cannot tell how it was started, so it cannot run the file agent');
  return { file: process.execPath, args: [...process.execArgv, script, AGENT_RUN_FLAG] };
}

/** Whether this process was started to run the agent once (see ownAgentCommand). */
export const isAgentRun = (argv: string[] = process.argv): boolean => argv.slice(1).includes(AGENT_RUN_FLAG);

/**
 * Runs `command` with the request on its stdin, collecting stdout and stderr (together at most
 * `maxOutputBytes`) until it exits. Output beyond the limit or a run beyond `timeoutMs` kills the
 * child and fails with 413 OUTPUT_TOO_LARGE / 504 AGENT_TIMEOUT. A child killed by a signal
 * (the kernel's OOM killer) exits with 128 + the signal's number, as `docker exec` reports it.
 */
export function spawnAgent(command: AgentCommand): AgentRunner {
  return (input, limits) =>
    new Promise<AgentRun>((resolve, reject) => {
      const child = spawn(command.file, command.args, { stdio: ['pipe', 'pipe', 'pipe'] });
      const stdout: Buffer[] = [];
      const stderr: Buffer[] = [];
      let size = 0;
      let failure: Error | null = null;
      const stop = (err: Error) => {
        if (failure) return;
        failure = err;
        child.kill('SIGKILL');
      };
      const timer = setTimeout(
        () => stop(new ServerRefusal(504, 'AGENT_TIMEOUT', `The file agent did not finish within ${limits.timeoutMs} ms; it was stopped.`)),
        limits.timeoutMs,
      );
      const collect = (into: Buffer[]) => (chunk: Buffer) => {
        if (failure) return;
        size += chunk.length;
        if (size > limits.maxOutputBytes) stop(new ServerRefusal(413, 'OUTPUT_TOO_LARGE', `The file agent wrote more than ${limits.maxOutputBytes} bytes; it was stopped.`));
        else into.push(chunk);
      };
      child.stdout.on('data', collect(stdout));
      child.stderr.on('data', collect(stderr));
      // A child that dies before reading its input: its exit says what happened.
      child.stdin.on('error', () => undefined);
      child.on('error', (err) => stop(new ServerRefusal(500, 'AGENT_START_FAILED', `The file agent could not be started: ${(err as NodeJS.ErrnoException).code ?? err.message}`)));
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        if (failure) return reject(failure);
        const exitCode = code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0);
        resolve({ exitCode, stdout: Buffer.concat(stdout).toString('utf8'), stderr: Buffer.concat(stderr).toString('utf8') });
      });
      child.stdin.end(input);
    });
}

/**
 * At most `running` agent runs at once; up to `waiting` more wait their turn in arrival order,
 * and one more than that is refused (503 AGENT_BUSY). A waiting run whose caller went away
 * (`signal`) leaves the queue; a started one runs to its end (an operation cut in the middle
 * could leave a half-done move), bounded by its own time limit.
 */
export class AgentQueue {
  private active = 0;
  private readonly queue: { start: () => void }[] = [];

  constructor(
    private readonly running: number,
    private readonly waiting: number,
  ) {}

  async run<T>(work: () => Promise<T>, signal: AbortSignal): Promise<T> {
    if (this.active >= this.running) {
      if (this.queue.length >= this.waiting) {
        throw new ServerRefusal(503, 'AGENT_BUSY', `${this.running} file operations are running and ${this.waiting} are waiting; try again shortly.`);
      }
      await new Promise<void>((resolve, reject) => {
        if (signal.aborted) return reject(new Error('the caller went away'));
        const slot = {
          start: () => {
            signal.removeEventListener('abort', onAbort);
            resolve();
          },
        };
        const onAbort = () => {
          const at = this.queue.indexOf(slot);
          if (at >= 0) this.queue.splice(at, 1);
          reject(new Error('the caller went away'));
        };
        signal.addEventListener('abort', onAbort, { once: true });
        this.queue.push(slot);
      });
    } else this.active++;
    try {
      return await work();
    } finally {
      const next = this.queue.shift();
      // The slot passes straight to the next in line: nobody can jump the queue in between.
      if (next) next.start();
      else this.active--;
    }
  }

  get stats(): { running: number; waiting: number } {
    return { running: this.active, waiting: this.queue.length };
  }
}
