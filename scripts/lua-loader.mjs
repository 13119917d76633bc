// Node module hooks that load `.lua` files as text (`export default "<source>"`), so TypeScript run by
// tsx (test workers, the demo) imports src/lua/*.lua exactly as the tsup bundle and vitest do.
// Use: node --import tsx --import ./scripts/register-lua.mjs file.ts
import { readFile } from 'node:fs/promises';

export async function load(url, context, nextLoad) {
  if (!url.endsWith('.lua')) return nextLoad(url, context);
  const source = await readFile(new URL(url), 'utf8');
  return { format: 'module', source: `export default ${JSON.stringify(source)};`, shortCircuit: true };
}
