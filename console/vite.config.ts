// The web console (docs/console.md), built by `npm run build` (bin/build.js) into dist/console/
// and served by the server at /console (src/api/console.ts).
//
// `npx vite --config console/vite.config.ts` serves it with live reload on :5173 and passes the
// API through to a Pemba on 127.0.0.1:8080 (`npm start`).
import { fileURLToPath } from 'node:url'
import preact from '@preact/preset-vite'
import { defineConfig } from 'vite'

const API_PATHS = ['/stores', '/models', '/healthz', '/readyz', '/system']

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/console/',
  plugins: [preact()],
  build: {
    outDir: fileURLToPath(new URL('../dist/console', import.meta.url)),
    emptyOutDir: true,
    // The CSP allows no inline script: no polyfill injected into index.html, no data: modules.
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    // cytoscape and dagre (the model graph) are a lazily loaded chunk of ~150 KB gzipped.
    chunkSizeWarningLimit: 700,
    reportCompressedSize: false,
  },
  server: {
    proxy: Object.fromEntries(API_PATHS.map((p) => [p, 'http://127.0.0.1:8080'])),
  },
})
