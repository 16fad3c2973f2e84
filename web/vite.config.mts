import fs from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { defineConfig, type Plugin } from 'vite';

/**
 * Writes `<file>.gz` next to every script and stylesheet of the build: the control plane serves
 * them to browsers that accept gzip (src/http/middleware/precompressedAssets.ts), compressed once
 * at the highest level instead of on every request.
 */
function precompress(): Plugin {
  return {
    name: 'clawloops-precompress',
    apply: 'build',
    writeBundle(output, bundle) {
      const dir = output.dir ?? 'dist';
      for (const item of Object.values(bundle)) {
        if (!/\.(js|css)$/.test(item.fileName)) continue;
        const content = item.type === 'chunk' ? item.code : item.source;
        fs.writeFileSync(path.join(dir, `${item.fileName}.gz`), gzipSync(content, { level: 9 }));
      }
    },
  };
}

// The console is served by the control plane itself (src/http/app.ts serves web/dist), so the
// build is all there is: no dev-server proxying. Oxc compiles TSX with React's automatic runtime.
export default defineConfig({
  root: import.meta.dirname,
  base: '/',
  oxc: { jsx: { runtime: 'automatic' } },
  plugins: [precompress()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    // The initial route must stay small (≤ 300 KiB gzipped JS): admin pages are split off by React.lazy.
    chunkSizeWarningLimit: 400,
  },
});
