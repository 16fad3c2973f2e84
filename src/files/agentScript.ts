import fs from 'node:fs';
import path from 'node:path';
import { BUNDLE_NAME, bundleFileAgent, bundleFileServer, bundleNodeStatsServer, FILE_SERVER_BUNDLE_NAME, NODE_STATS_BUNDLE_NAME, NODE_STATS_ENTRY } from './agent/build';

/**
 * A bundled script as the volume ports (and a swarm's node-stats service) ship it: the bundle
 * the build wrote into dist/ (production), or, when the control plane runs from its TypeScript
 * sources (tsx, jest), bundled from them once on first use. A failed bundle is not cached: the
 * next use tries again.
 */
function cachedScript(bundleName: string, entry: string, bundle: (entry: string) => Promise<string>, what: string): () => Promise<string> {
  let script: Promise<string> | null = null;
  const load = async (): Promise<string> => {
    const built = path.join(__dirname, 'agent', bundleName);
    if (fs.existsSync(built)) return fs.readFileSync(built, 'utf8');
    if (!__filename.endsWith('.ts')) throw new Error(`the ${what} was not built: ${built} is missing (npm run build writes it)`);
    return bundle(path.join(__dirname, 'agent', entry));
  };
  return () => {
    if (!script) {
      const loading = load();
      loading.catch(() => {
        if (script === loading) script = null;
      });
      script = loading;
    }
    return script;
  };
}

/** The file agent (agent/main.ts), run by `node -e` where the volume is mounted. */
export const fileAgentScript: () => Promise<string> = cachedScript(BUNDLE_NAME, 'main.ts', bundleFileAgent, 'file agent');

/** The file server (agent/server.ts), started as `node -e` in a container beside the volume. */
export const fileServerScript: () => Promise<string> = cachedScript(FILE_SERVER_BUNDLE_NAME, 'server.ts', bundleFileServer, 'file server');

/** A swarm's node-stats server (swarm/nodeStats/server.ts), started as `node -e` on every node. */
export const nodeStatsServerScript: () => Promise<string> = cachedScript(NODE_STATS_BUNDLE_NAME, NODE_STATS_ENTRY, bundleNodeStatsServer, 'node-stats server');
