import fs from 'node:fs';
import path from 'node:path';

/**
 * Bundles the file agent (main.ts and what it imports) into one self-contained CommonJS script:
 * the workspace-volume port runs it as `node -e <script>` in a container that has none of the
 * control plane's files. Only Node's built-ins stay as requires.
 *
 * `npm run build` runs this file (compiled to dist/files/agent/build.js) after tsc, writing
 * BUNDLE_NAME next to it; agentScript.ts reads that file in production. When the control plane
 * runs from its sources (tsx, jest), agentScript.ts bundles on first use instead. esbuild is a
 * build-time tool, so it is loaded only when bundling.
 */
export const BUNDLE_NAME = 'fileAgent.bundle.js';

/** The largest single argument Linux passes to a process (MAX_ARG_STRLEN): the script must fit in it. */
export const MAX_SCRIPT_BYTES = 128 * 1024;

export async function bundleFileAgent(entry: string): Promise<string> {
  const esbuild = await import('esbuild');
  const result = await esbuild.build({
    entryPoints: [entry],
    bundle: true,
    write: false,
    platform: 'node',
    format: 'cjs',
    // The runtime image brings its own Node; the agent needs nothing newer than this.
    target: 'node18',
    legalComments: 'none',
    logLevel: 'silent',
  });
  const script = result.outputFiles[0]?.text;
  if (!script) throw new Error('bundling the file agent produced no output');
  if (Buffer.byteLength(script) > MAX_SCRIPT_BYTES) throw new Error(`the file agent bundle is ${Buffer.byteLength(script)} bytes, more than a command-line argument may hold`);
  return script;
}

/** From dist/files/agent/build.js, the sources are at ../../../src/files/agent. */
async function buildIntoDist(): Promise<void> {
  const entry = path.resolve(__dirname, '..', '..', '..', 'src', 'files', 'agent', 'main.ts');
  const script = await bundleFileAgent(entry);
  fs.writeFileSync(path.join(__dirname, BUNDLE_NAME), script);
}

if (require.main === module) {
  buildIntoDist().catch((err: unknown) => {
    process.stderr.write(`building the file agent failed: ${(err as Error).message}\n`);
    process.exit(1);
  });
}
