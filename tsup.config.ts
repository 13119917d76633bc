import { defineConfig } from 'tsup';

export default defineConfig([
  {
    // The OpenTelemetry bridge is its own entry: importing the core never loads @opentelemetry/api.
    entry: { index: 'src/index.ts', otel: 'src/otel.ts' },
    external: ['@opentelemetry/api'],
    format: ['esm', 'cjs'],
    dts: true,
    sourcemap: true,
    clean: true,
    target: 'node20',
    // Lua scripts are bundled as strings, so a published package can never ship without them.
    loader: { '.lua': 'text' },
  },
  {
    entry: { cli: 'src/cli/main.ts' },
    format: ['esm'],
    sourcemap: true,
    target: 'node20',
    loader: { '.lua': 'text' },
    banner: { js: '#!/usr/bin/env node' },
  },
]);
