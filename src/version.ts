import fs from 'node:fs';
import path from 'node:path';

/** This build's version (package.json), as backups record it. */
export const CLAWLOOPS_VERSION: string = (() => {
  try {
    return (JSON.parse(fs.readFileSync(path.resolve(__dirname, '..', 'package.json'), 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'unknown';
  }
})();
