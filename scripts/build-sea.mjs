// `npm run build:sea`: the CLI as one executable file (Node's single executable applications), for
// migration images that have no Node.js: dist/sea/redis-once, about the size of the node binary it
// is made from (this machine's: same OS, same CPU architecture). See docs/cli.md.
//
// 1. esbuild bundles the CLI and every dependency into one CommonJS file (the Lua scripts as text);
// 2. node --experimental-sea-config turns it into a blob;
// 3. postject injects the blob into a copy of the node binary.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { build } from 'esbuild';

const require = createRequire(import.meta.url);
const out = process.argv[2] ?? 'dist/sea';
mkdirSync(out, { recursive: true });
const bundle = join(out, 'cli.cjs');
const blob = join(out, 'cli.blob');
const executable = join(out, process.platform === 'win32' ? 'redis-once.exe' : 'redis-once');

await build({
  entryPoints: ['src/cli/main.ts'],
  outfile: bundle,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  loader: { '.lua': 'text' },
  // The node-redis adapter is only reached with a node-redis client, which the CLI never makes.
  external: ['redis'],
  // debug asks for supports-color in a try: in an executable, require() reaches built-ins only.
  plugins: [
    {
      name: 'no-supports-color',
      setup(esbuild) {
        esbuild.onResolve({ filter: /^supports-color$/ }, () => ({
          path: 'supports-color',
          namespace: 'empty',
        }));
        esbuild.onLoad({ filter: /.*/, namespace: 'empty' }, () => ({ contents: 'module.exports = {};' }));
      },
    },
  ],
  logLevel: 'warning',
});
const config = join(out, 'sea-config.json');
writeFileSync(config, JSON.stringify({ main: bundle, output: blob, disableExperimentalSEAWarning: true }));
execFileSync(process.execPath, ['--experimental-sea-config', config], {
  stdio: ['ignore', 'ignore', 'inherit'],
});
copyFileSync(process.execPath, executable);
if (process.platform === 'darwin') execFileSync('codesign', ['--remove-signature', executable]);
execFileSync(
  process.execPath,
  [
    require.resolve('postject/dist/cli.js'),
    executable,
    'NODE_SEA_BLOB',
    blob,
    '--sentinel-fuse',
    'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2',
    ...(process.platform === 'darwin' ? ['--macho-segment-name', 'NODE_SEA'] : []),
  ],
  // postject's own "Can't find string offset" notes about the ELF sections are noise.
  { stdio: 'ignore' },
);
if (process.platform === 'darwin') execFileSync('codesign', ['--sign', '-', executable]);
console.log(`built ${executable}`);
