import { spawn, type ChildProcess } from 'node:child_process';

/** Only PATH and what the test gives: what a container running the bundle would have. */
function spawnBundle(bundle: string, env: Record<string, string>): ChildProcess & { stderr: NodeJS.ReadableStream } {
  return spawn(process.execPath, ['-e', bundle], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'ignore', 'pipe'] }) as ChildProcess & { stderr: NodeJS.ReadableStream };
}

/** Starts a bundled server the way its container does (`node -e <bundle>`), resolving once it says it listens. */
export async function startBundle(bundle: string, env: Record<string, string>): Promise<ChildProcess> {
  const child = spawnBundle(bundle, env);
  let stderr = '';
  await new Promise<void>((resolve, reject) => {
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      stderr += chunk;
      if (stderr.includes('listening')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`the bundled server exited (${code}): ${stderr}`)));
  });
  return child;
}

/** Runs a bundled server that should refuse to start: its exit code and what it said. */
export function bundleRefusal(bundle: string, env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawnBundle(bundle, env);
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => (stderr += chunk));
    child.once('exit', (code) => resolve({ code, stderr }));
  });
}
