import fs from 'node:fs';
import path from 'node:path';

/**
 * Bundles the file agent (main.ts and what it imports), the file server (server.ts, which runs
 * the agent too) and a swarm's node-stats server (swarm/nodeStats/server.ts) into self-contained
 * CommonJS scripts: they run as `node -e <script>` in containers that have none of the control
 * plane's files. Only Node's built-ins stay as requires; the server's tar library (tar-stream)
 * goes into its bundle.
 *
 * `npm run build` runs this file (compiled to dist/files/agent/build.js) after tsc, writing
 * BUNDLE_NAME, FILE_SERVER_BUNDLE_NAME and NODE_STATS_BUNDLE_NAME next to it; agentScript.ts reads those files in
 * production. When the control plane runs from its sources (tsx, jest), agentScript.ts bundles
 * on first use instead. esbuild is a build-time tool, so it is loaded only when bundling.
 */
export const BUNDLE_NAME = 'fileAgent.bundle.js';
export const FILE_SERVER_BUNDLE_NAME = 'fileServer.bundle.js';
export const NODE_STATS_BUNDLE_NAME = 'nodeStats.bundle.js';

/** The largest single argument Linux passes to a process (MAX_ARG_STRLEN): the script must fit in it. */
export const MAX_SCRIPT_BYTES = 128 * 1024;

async function bundle(entry: string, what: string, extra: { define?: Record<string, string>; minifyWhitespace?: boolean; minifySyntax?: boolean } = {}): Promise<string> {
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
    ...extra,
  });
  const script = result.outputFiles[0]?.text;
  if (!script) throw new Error(`bundling the ${what} produced no output`);
  if (Buffer.byteLength(script) > MAX_SCRIPT_BYTES) throw new Error(`the ${what} bundle is ${Buffer.byteLength(script)} bytes, more than a command-line argument may hold`);
  return script;
}

export function bundleFileAgent(entry: string): Promise<string> {
  return bundle(entry, 'file agent');
}

/**
 * The file server's bundle: server.ts starts serving (or runs the agent once) only in it.
 * White space and syntax are minified (names are kept, for readable errors): with tar-stream and
 * its stream library it would not fit in MAX_SCRIPT_BYTES otherwise.
 */
export function bundleFileServer(entry: string): Promise<string> {
  return bundle(entry, 'file server', { define: { CLAWLOOPS_FILE_SERVER_MAIN: 'true' }, minifyWhitespace: true, minifySyntax: true });
}

/** The node-stats server's bundle: server.ts starts serving only in it. */
export function bundleNodeStatsServer(entry: string): Promise<string> {
  return bundle(entry, 'node-stats server', { define: { CLAWLOOPS_NODE_STATS_MAIN: 'true' }, minifyWhitespace: true });
}

/** Where the node-stats server's sources are, from this folder (src/files/agent, or dist/files/agent with src beside dist). */
export const NODE_STATS_ENTRY = path.join('..', '..', 'swarm', 'nodeStats', 'server.ts');

/** From dist/files/agent/build.js, the sources are at ../../../src/files/agent. */
async function buildIntoDist(): Promise<void> {
  const sources = path.resolve(__dirname, '..', '..', '..', 'src', 'files', 'agent');
  fs.writeFileSync(path.join(__dirname, BUNDLE_NAME), await bundleFileAgent(path.join(sources, 'main.ts')));
  fs.writeFileSync(path.join(__dirname, FILE_SERVER_BUNDLE_NAME), await bundleFileServer(path.join(sources, 'server.ts')));
  fs.writeFileSync(path.join(__dirname, NODE_STATS_BUNDLE_NAME), await bundleNodeStatsServer(path.join(sources, NODE_STATS_ENTRY)));
}

if (require.main === module) {
  buildIntoDist().catch((err: unknown) => {
    process.stderr.write(`building the file agent failed: ${(err as Error).message}\n`);
    process.exit(1);
  });
}
