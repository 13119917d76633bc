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
    // import.meta.url in the CommonJS build too: the standby renewer finds its thread's file by it.
    shims: true,
  },
  {
    // The standby renewer's thread (src/renewer/thread.ts), loaded by path beside the bundles.
    entry: { 'renewer-thread': 'src/renewer/thread.ts' },
    format: ['esm'],
    sourcemap: true,
    target: 'node20',
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
