import { defineConfig } from 'vite';

// The console is served by the control plane itself (src/http/app.ts serves web/dist), so the
// build is all there is: no dev-server proxying, no plugins. Oxc compiles TSX with React's
// automatic runtime.
export default defineConfig({
  root: import.meta.dirname,
  base: '/',
  oxc: { jsx: { runtime: 'automatic' } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    // The initial route must stay small (≤ 300 KiB gzipped JS): admin pages are split off by React.lazy.
    chunkSizeWarningLimit: 400,
  },
});
