import fs from 'node:fs';
import path from 'node:path';
import { BUNDLE_NAME, bundleFileAgent } from './agent/build';

let script: Promise<string> | null = null;

/**
 * The file agent's script as the workspace-volume port ships it: the bundle the build wrote into
 * dist/ (production), or, when the control plane runs from its TypeScript sources (tsx, jest),
 * bundled from them once on first use.
 */
export function fileAgentScript(): Promise<string> {
  if (!script) {
    const loading = load();
    // A failed bundle must not be cached: the next operation tries again.
    loading.catch(() => {
      if (script === loading) script = null;
    });
    script = loading;
  }
  return script;
}

async function load(): Promise<string> {
  const built = path.join(__dirname, 'agent', BUNDLE_NAME);
  if (fs.existsSync(built)) return fs.readFileSync(built, 'utf8');
  if (!__filename.endsWith('.ts')) throw new Error(`the file agent was not built: ${built} is missing (npm run build writes it)`);
  return bundleFileAgent(path.join(__dirname, 'agent', 'main.ts'));
}
