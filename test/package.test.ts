/**
 * What npm would publish: `npm pack --dry-run` runs `prepack` (the tsup build) and lists the tarball.
 * A release must carry its entry points and every Lua script, both as files and bundled as strings,
 * and its CLI must start.
 */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runInNewContext } from 'node:vm';
import { beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const PACK_TIMEOUT_MS = 120_000;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], timeout: number): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(
      command,
      args,
      { cwd: ROOT, timeout, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, NO_COLOR: '1' } },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== 'number') {
          reject(new Error(`${command} ${args.join(' ')} failed: ${error.message}\n${stderr}`));
          return;
        }
        resolve({ code: error ? (error.code as number) : 0, stdout, stderr });
      },
    );
  });
}

/** Every `.lua` file under src/lua, includes too, as paths relative to the repository root. */
function luaFiles(dir = join(ROOT, 'src/lua')): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return luaFiles(path);
    return entry.name.endsWith('.lua') ? [relative(ROOT, path)] : [];
  });
}

/**
 * The JSON report `npm pack --json` prints last. The build that `prepack` runs writes to the same
 * stdout first, so the report is the last line that opens a top-level array, up to the end.
 */
function packReport(stdout: string): Array<{ files: Array<{ path: string }> }> {
  const lines = stdout.split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    if (lines[i] !== '[') continue;
    return JSON.parse(lines.slice(i).join('\n'));
  }
  throw new Error(`no JSON report in npm pack's output:\n${stdout}`);
}

/**
 * The string literals in bundled JS that hold a Lua script (they open with its `--[[` header), decoded:
 * esbuild picks the quotes and escapes (`"…\n…"`, or a template literal), so compare values, not text.
 */
function bundledLua(js: string): string[] {
  const literals = js.match(/(["'`])--\[\[(?:\\[\s\S]|(?!\1)[^\\])*\1/g) ?? [];
  return literals.map((literal) => runInNewContext(literal) as string);
}

let packed: Run;
let files: string[];

beforeAll(async () => {
  packed = await run('npm', ['pack', '--dry-run', '--json'], PACK_TIMEOUT_MS);
  expect(packed.code, packed.stderr).toBe(0);
  const report = packReport(packed.stdout);
  expect(report).toHaveLength(1);
  files = report[0]!.files.map((file) => file.path);
}, PACK_TIMEOUT_MS + 10_000);

describe('the packed package', () => {
  it('contains the entry points: ESM, CJS, types and the CLI', () => {
    expect(files).toEqual(
      expect.arrayContaining([
        'package.json',
        'dist/index.js',
        'dist/index.cjs',
        'dist/index.d.ts',
        'dist/cli.js',
      ]),
    );
  });

  it('contains every Lua script, includes too', () => {
    const lua = luaFiles();
    expect(lua.length).toBeGreaterThan(0);
    expect(files).toEqual(expect.arrayContaining(lua));
  });

  it('contains no tests and no TypeScript sources', () => {
    expect(files.filter((file) => file.startsWith('test/') || /^src\/.*\.ts$/.test(file))).toEqual([]);
  });

  for (const bundle of ['dist/index.js', 'dist/index.cjs']) {
    it(`bundles every Lua script's source in ${bundle}, so the scripts cannot go missing`, () => {
      const inBundle = bundledLua(readFileSync(join(ROOT, bundle), 'utf8'));
      for (const file of luaFiles()) {
        const source = readFileSync(join(ROOT, file), 'utf8');
        expect(inBundle, `${file} in ${bundle}`).toContain(source);
      }
    });
  }

  it('has a CLI whose --help exits 0 and lists the run command', async () => {
    const help = await run(process.execPath, [join(ROOT, 'dist/cli.js'), '--help'], 30_000);
    expect(help.code, help.stderr).toBe(0);
    const text = `${help.stdout}${help.stderr}`;
    expect(text).toContain('redis-once');
    expect(text).toMatch(/^\s*(redis-once )?run\b/m);
  });

  it('has a CLI whose run --help exits 0 and shows how to run a command once', async () => {
    const help = await run(process.execPath, [join(ROOT, 'dist/cli.js'), 'run', '--help'], 30_000);
    expect(help.code, help.stderr).toBe(0);
    expect(`${help.stdout}${help.stderr}`).toContain('redis-once run');
  });

  it('has a CLI that starts with a node shebang, so the bin works when installed', () => {
    expect(readFileSync(join(ROOT, 'dist/cli.js'), 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
  });
});
