import { readFileSync } from 'node:fs';
import { defineConfig, type Plugin } from 'vitest/config';

/** Loads `src/lua/*.lua` as a string, as tsup's `text` loader does for the published bundle. */
function luaAsText(): Plugin {
  return {
    name: 'lua-as-text',
    enforce: 'pre',
    load(id) {
      if (!id.endsWith('.lua')) return null;
      return `export default ${JSON.stringify(readFileSync(id, 'utf8'))};`;
    },
  };
}

export default defineConfig({
  plugins: [luaAsText()],
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Integration files start their own redis-server processes and child workers; two cores are
    // shared, so keep file-level parallelism modest to stay deterministic.
    maxWorkers: 2,
    globalSetup: ['test/helpers/global-setup.ts'],
  },
});
