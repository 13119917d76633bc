/**
 * Each script's `--[[ ]]` header is its contract: the KEYS and ARGV it takes and every code it returns.
 * These checks keep the headers, the bodies, the file names and the TS wrappers from drifting apart.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { keyNames } from '../../src/keys.js';
import {
  abandon,
  claim,
  complete,
  fail,
  read,
  renew,
  repair,
  reset,
  type ScriptRunner,
  scripts,
} from '../../src/scripts.js';
import { IDLE } from '../../src/state.js';

const LUA_DIR = fileURLToPath(new URL('../../src/lua/', import.meta.url));

interface Script {
  file: string;
  name: string;
  /** The KEYS count in the file name: `claim-3.lua` → 3. */
  keysInName: number;
  header: string;
  body: string;
}

function loadScripts(): Script[] {
  return readdirSync(LUA_DIR)
    .filter((file) => file.endsWith('.lua'))
    .sort()
    .map((file) => {
      const match = /^(.+)-(\d+)\.lua$/.exec(file);
      if (!match) throw new Error(`${file}: a script is named <name>-<number of KEYS>.lua`);
      const source = readFileSync(`${LUA_DIR}${file}`, 'utf8');
      const header = /^--\[\[([\s\S]*?)\]\]/.exec(source);
      if (!header) throw new Error(`${file}: a script opens with a --[[ ]] header`);
      return {
        file,
        name: match[1]!,
        keysInName: Number(match[2]),
        header: header[1]!,
        body: source.slice(header[0].length),
      };
    });
}

/** The indices documented in the header: lines that start with `KEYS[i]` or `ARGV[i]`. */
function documented(header: string, table: 'KEYS' | 'ARGV'): number[] {
  return [...header.matchAll(new RegExp(`^\\s*${table}\\[(\\d+)\\]`, 'gm'))].map((m) => Number(m[1]));
}

/** Every index of `table` the body uses. */
function used(body: string, table: 'KEYS' | 'ARGV'): number[] {
  const indices = [...body.matchAll(new RegExp(`\\b${table}\\[(\\d+)\\]`, 'g'))].map((m) => Number(m[1]));
  return [...new Set(indices)].sort((a, b) => a - b);
}

/** The header's `Returns` section: everything after the line that says `Returns`. */
function returnsSection(header: string): string {
  const at = header.search(/^\s*Returns\s*$/m);
  if (at === -1) throw new Error('the header has no Returns section');
  return header.slice(at);
}

/** The numeric codes the body returns: `return {<code>, …}`. */
function returnedCodes(body: string): number[] {
  const codes = [...body.matchAll(/\breturn\s*\{\s*(-?\d+)/g)].map((m) => Number(m[1]));
  return [...new Set(codes)].sort((a, b) => a - b);
}

/** The codes the Returns section lists: lines that start with `{<code>`. */
function documentedCodes(returns: string): number[] {
  const codes = [...returns.matchAll(/^\s*\{\s*(-?\d+)/gm)].map((m) => Number(m[1]));
  return [...new Set(codes)].sort((a, b) => a - b);
}

const oneToN = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

interface Include {
  file: string;
  source: string;
  /** The functions it defines: `local function name(`. */
  functions: string[];
  /** Per function: the reply codes it hands back (table literals that open with a number, `{-10, …}`,
   *  `{-1}`), and the other functions of the include it calls. */
  functionCodes: Map<string, { codes: number[]; calls: string[] }>;
}

function loadIncludes(): Include[] {
  const dir = `${LUA_DIR}includes/`;
  return readdirSync(dir)
    .filter((file) => file.endsWith('.lua'))
    .map((file) => {
      const source = readFileSync(`${dir}${file}`, 'utf8');
      const body = source.replace(/^--\[\[[\s\S]*?\]\]/, '');
      const functions = [...body.matchAll(/\blocal\s+function\s+(\w+)\s*\(/g)].map((m) => m[1]!);
      const functionCodes = new Map<string, { codes: number[]; calls: string[] }>();
      // Each function's text runs from its `local function` line to the next one.
      const parts = body.split(/(?=\blocal\s+function\s+\w+\s*\()/);
      for (const part of parts) {
        const name = /\blocal\s+function\s+(\w+)/.exec(part)?.[1];
        if (!name) continue;
        const inside = part.replace(/^.*\n/, '');
        functionCodes.set(name, {
          codes: [...new Set([...inside.matchAll(/\{\s*(-?\d+)\s*[,}]/g)].map((m) => Number(m[1])))],
          calls: functions.filter((other) => other !== name && new RegExp(`\\b${other}\\s*\\(`).test(inside)),
        });
      }
      return { file, source, functions, functionCodes };
    });
}

/** The codes the include functions a script calls can hand back, following calls between them. */
function includeCodes(script: Script): number[] {
  const codes = new Set<number>();
  for (const include of includes) {
    const seen = new Set<string>();
    const visit = (name: string) => {
      if (seen.has(name)) return;
      seen.add(name);
      const fn = include.functionCodes.get(name);
      for (const code of fn?.codes ?? []) codes.add(code);
      for (const callee of fn?.calls ?? []) visit(callee);
    };
    for (const name of include.functions) if (new RegExp(`\\b${name}\\s*\\(`).test(script.body)) visit(name);
  }
  return [...codes];
}

/** The includes whose functions the script's body calls. */
function includesOf(script: Script): Include[] {
  return includes.filter((include) =>
    include.functions.some((name) => new RegExp(`\\b${name}\\s*\\(`).test(script.body)),
  );
}

const all = loadScripts();
const includes = loadIncludes();

it('finds every script, and a wrapper in `scripts` for each', () => {
  expect(all.map((script) => script.name)).toEqual(expect.arrayContaining(['claim', 'complete', 'fail']));
  expect(all.map((script) => script.name).sort()).toEqual(Object.keys(scripts).sort());
});

describe.each(all)('$file', (script) => {
  const keys = documented(script.header, 'KEYS');
  const argv = documented(script.header, 'ARGV');

  it('documents KEYS[1..n] and ARGV[1..m] in order, each once', () => {
    expect(keys).toEqual(oneToN(keys.length));
    expect(argv).toEqual(oneToN(argv.length));
  });

  it('documents as many KEYS as its file name says, and as its LuaScript passes', () => {
    expect(keys.length).toBe(script.keysInName);
    const lua = scripts[script.name as keyof typeof scripts];
    expect(lua, `scripts.${script.name}`).toBeDefined();
    expect(lua.numberOfKeys).toBe(script.keysInName);
    expect(lua.name).toBe(script.name);
  });

  it('uses exactly the KEYS it documents', () => {
    expect(used(script.body, 'KEYS')).toEqual(keys);
  });

  it('uses exactly the ARGV it documents', () => {
    expect(used(script.body, 'ARGV')).toEqual(argv);
  });

  it('documents every code it returns, and returns every code it documents', () => {
    const inBody = returnedCodes(script.body);
    expect(inBody.length).toBeGreaterThan(0);
    // A refusal an included function hands back is returned by the script too.
    const fromIncludes = includeCodes(script);
    const returned = [...new Set([...inBody, ...fromIncludes])].sort((a, b) => a - b);
    expect(documentedCodes(returnsSection(script.header))).toEqual(returned);
  });

  it('is loaded by its LuaScript as it is on disk, its @include lines replaced by the includes it calls', () => {
    const lua = scripts[script.name as keyof typeof scripts];
    const source = readFileSync(`${LUA_DIR}${script.file}`, 'utf8');
    const directives = [...source.matchAll(/^-- @include (\S+)$/gm)].map((m) => m[1]!);
    const called = includesOf(script).map((include) => include.file.replace(/\.lua$/, ''));
    // An include is named exactly when its functions are called: no hidden dependency, no dead one.
    expect(directives.sort()).toEqual(called.sort());
    let expected = source;
    for (const include of includes) {
      expected = expected.replace(`-- @include ${include.file.replace(/\.lua$/, '')}`, () => include.source);
    }
    expect(lua.source).toBe(expected);
  });
});

describe('the TS wrappers pass each script the KEYS and ARGV its header documents', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  const names = keyNames('ns', 'key');
  const lease = { leaseValue: 'l', token: 1 };
  const calls: Array<[(runner: ScriptRunner) => Promise<unknown>, keyof typeof scripts, unknown[]]> = [
    [
      (r) =>
        claim(r, names, {
          leaseValue: 'l',
          leaseMs: 1000,
          owner: 'o',
          maxAttempts: 3,
          token: undefined,
          sharded: false,
        }),
      'claim',
      [1, '7', '1', '1700000000000', [], '0'],
    ],
    [(r) => read(r, names), 'read', [0, [], -2, -1, '0']],
    [(r) => renew(r, names, { leaseValue: 'l', leaseMs: 1000 }), 'renew', [0]],
    [
      (r) => complete(r, names, { ...lease, valueJson: '1', doneTtlMs: 10, sharded: false }),
      'complete',
      [0, '1'],
    ],
    [
      (r) =>
        fail(r, names, {
          ...lease,
          error: { name: 'Error', message: 'm' },
          outcome: 'failed',
          sharded: true,
        }),
      'fail',
      [0],
    ],
    [(r) => abandon(r, names, { ...lease, sharded: false }), 'abandon', [0]],
    [
      (r) => reset(r, names, { force: false, sharded: false, controlChannel: 'ns:control' }),
      'reset',
      [0, 1, '7'],
    ],
    [
      (r) =>
        repair(r, names, {
          state: { ...IDLE, status: 'done', token: 7, attempts: 1, valueJson: '1' },
          statePttl: -1,
        }),
      'repair',
      [0],
    ],
  ];

  for (const [call, name, reply] of calls) {
    it(`${name}`, async () => {
      const script = all.find((s) => s.name === name)!;
      const evalScript = vi.fn(async (..._args: Parameters<ScriptRunner['evalScript']>) => reply);
      await call({ evalScript });
      expect(evalScript).toHaveBeenCalledTimes(1);
      const [lua, keys, args] = evalScript.mock.calls[0]!;
      expect(lua).toBe(scripts[name]);
      expect(keys).toHaveLength(documented(script.header, 'KEYS').length);
      expect(args).toHaveLength(documented(script.header, 'ARGV').length);
      // Every ARGV is a string: nothing is left to a client's own conversion.
      for (const arg of args) expect(typeof arg).toBe('string');
      // KEYS are always this key's own names, so they share its hash tag.
      for (const redisKey of keys) expect(redisKey).toMatch(/^ns:\{key\}:/);
    });
  }
});
