/**
 * What npm would publish, and whether it works once installed. `npm pack` runs `prepack` (the tsup
 * build) and writes the tarball to a temporary folder. The first tests read its file list and the
 * bundles; the others install it into an empty application beside it and use it from there, as a
 * user would: processes loading it with `import` and with `require` racing for one key on a real
 * Redis, the installed CLI, and `redis-once/otel` without and then with `@opentelemetry/api`.
 *
 * One file packs once: a second test file packing too would rebuild dist/ (tsup cleans it) while
 * this one reads it. The install is offline: the application's lockfile pins every runtime
 * dependency to the version, integrity and tarball this checkout's package-lock.json has (so the
 * test installs what CI tested), and the `npm ci` that installed this checkout left those tarballs
 * in npm's cache. Nothing but loopback is reached.
 */
import { type ChildProcessWithoutNullStreams, execFile, spawn } from 'node:child_process';
import { once as eventOnce } from 'node:events';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, relative } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RedisServer, startRedis } from './helpers/redis-server.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const PACK_TIMEOUT_MS = 120_000;
const INSTALL_TIMEOUT_MS = 60_000;
/** Bound on each process the installed package runs in (a worker, a CLI call), under a test's own. */
const PROCESS_TIMEOUT_MS = 20_000;
const TEST_TIMEOUT_MS = 60_000;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

interface RunOptions {
  timeout: number;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

function run(
  command: string,
  args: string[],
  { timeout, cwd = ROOT, env = process.env }: RunOptions,
): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(
      command,
      args,
      { cwd, timeout, maxBuffer: 64 * 1024 * 1024, env: { ...env, NO_COLOR: '1' } },
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

interface PackReport {
  filename: string;
  integrity: string;
  size: number;
  unpackedSize: number;
  files: Array<{ path: string }>;
}

/**
 * The JSON report `npm pack --json` prints last. The build that `prepack` runs writes to the same
 * stdout first, so the report is the last line that opens a top-level array, up to the end.
 */
function packReport(stdout: string): PackReport[] {
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

/** Every path package.json's "exports" (any condition), "main", "module", "types" and "bin" name. */
function entryPaths(): string[] {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  const paths: string[] = [];
  const walk = (value: unknown): void => {
    if (typeof value === 'string') paths.push(value.replace(/^\.\//, ''));
    else if (value && typeof value === 'object') for (const inner of Object.values(value)) walk(inner);
  };
  walk([pkg.exports, pkg.main, pkg.module, pkg.types, pkg.bin]);
  return [...new Set(paths)];
}

let tmp: string;
let report: PackReport;
let files: string[];

beforeAll(async () => {
  tmp = realpathSync(mkdtempSync(join(tmpdir(), 'redis-once-package-')));
  const packed = await run('npm', ['pack', '--json', '--pack-destination', tmp], {
    timeout: PACK_TIMEOUT_MS,
  });
  expect(packed.code, packed.stderr).toBe(0);
  const reports = packReport(packed.stdout);
  expect(reports).toHaveLength(1);
  report = reports[0]!;
  files = report.files.map((file) => file.path);
}, PACK_TIMEOUT_MS + 10_000);

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('the packed package', () => {
  it('contains the entry points: ESM, CJS, their types, the OpenTelemetry bridge, the CLI and the standby renewer’s thread', () => {
    expect(files).toEqual(
      expect.arrayContaining([
        'package.json',
        'README.md',
        'LICENSE',
        'dist/index.js',
        'dist/index.cjs',
        'dist/index.d.ts',
        'dist/index.d.cts',
        'dist/otel.js',
        'dist/otel.cjs',
        'dist/otel.d.ts',
        'dist/otel.d.cts',
        'dist/cli.js',
        'dist/renewer-thread.js',
      ]),
    );
  });

  it('contains every file that package.json names as an entry point', () => {
    const named = entryPaths();
    expect(named).toContain('dist/otel.d.cts');
    expect(named.filter((path) => !files.includes(path))).toEqual([]);
  });

  it('contains every Lua script, includes too', () => {
    const lua = luaFiles();
    expect(lua.length).toBeGreaterThan(0);
    expect(files).toEqual(expect.arrayContaining(lua));
  });

  it('contains only what an installation uses: bundles, types, their maps, Lua, README, LICENSE', () => {
    const allowed = [
      /^package\.json$/,
      /^README\.md$/,
      /^LICENSE$/,
      /^dist\/[\w.-]+\.(js|cjs|d\.ts|d\.cts)$/,
      /^dist\/[\w.-]+\.(js|cjs)\.map$/,
      /^src\/lua\/([\w-]+\/)*[\w.-]+\.lua$/,
    ];
    expect(files.filter((file) => !allowed.some((pattern) => pattern.test(file)))).toEqual([]);
  });

  it('contains no tests, scripts, TypeScript sources, CI files, benchmarks, demos or docs', () => {
    const unwanted = /^(test|scripts|bench|demo|examples|docs|\.ci|dist\/sea)\/|^src\/.*\.ts$|\.tgz$/;
    expect(files.filter((file) => unwanted.test(file))).toEqual([]);
  });

  it("has a source map for each bundle, made from the library's own sources and carrying them", () => {
    const maps = files.filter((file) => file.endsWith('.map'));
    expect(maps.sort()).toEqual(
      files
        .filter((file) => /^dist\/.*\.(js|cjs)$/.test(file))
        .map((file) => `${file}.map`)
        .sort(),
    );
    for (const map of maps) {
      const { sources, sourcesContent } = JSON.parse(readFileSync(join(ROOT, map), 'utf8')) as {
        sources: string[];
        sourcesContent?: Array<string | null>;
      };
      expect(
        sources.filter((source) => /(^|\/)(test|bench|scripts)\//.test(source)),
        map,
      ).toEqual([]);
      expect(sourcesContent?.length, map).toBe(sources.length);
    }
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
    const help = await run(process.execPath, [join(ROOT, 'dist/cli.js'), '--help'], { timeout: 30_000 });
    expect(help.code, help.stderr).toBe(0);
    const text = `${help.stdout}${help.stderr}`;
    expect(text).toContain('redis-once');
    expect(text).toMatch(/^\s*(redis-once )?run\b/m);
  });

  it('has a CLI whose run --help exits 0 and shows how to run a command once', async () => {
    const help = await run(process.execPath, [join(ROOT, 'dist/cli.js'), 'run', '--help'], {
      timeout: 30_000,
    });
    expect(help.code, help.stderr).toBe(0);
    expect(`${help.stdout}${help.stderr}`).toContain('redis-once run');
  });

  it('has a CLI that starts with a node shebang, so the bin works when installed', () => {
    expect(readFileSync(join(ROOT, 'dist/cli.js'), 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------------
// Installed from the tarball
// ---------------------------------------------------------------------------------------------------

interface LockEntry {
  version: string;
  resolved?: string;
  integrity?: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
  [field: string]: unknown;
}

/** The registry that tarball URLs name; with --offline npm takes the tarball from its cache by integrity. */
const REGISTRY = (process.env.npm_config_registry ?? 'https://registry.npmjs.org/').replace(/\/?$/, '/');

/**
 * package.json and package-lock.json of an application depending on the tarball and on `extra`
 * (packages this checkout installed, such as @opentelemetry/api). Every other package is the one this
 * checkout's package-lock.json holds at the place Node would find it from its dependent, so the tree
 * resolves as it does here. With "resolved" and "integrity" on every entry, `npm ci --offline` needs
 * no registry metadata, only the tarballs in npm's cache.
 */
function writeApp(app: string, extra: string[] = []): void {
  const rootPkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  const rootLock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, LockEntry>;
  };
  const packages: Record<string, LockEntry> = {};
  const locate = (from: string, name: string): string | undefined => {
    for (let dir = from; ; ) {
      const path = `${dir ? `${dir}/` : ''}node_modules/${name}`;
      if (rootLock.packages[path]) return path;
      if (!dir) return undefined;
      const parent = dir.lastIndexOf('/node_modules/');
      dir = parent < 0 ? '' : dir.slice(0, parent);
    }
  };
  const add = (from: string, name: string, optional = false): void => {
    const path = locate(from, name);
    if (!path) {
      if (optional) return;
      throw new Error(`${name} (needed by ${from || 'redis-once'}) is not in package-lock.json`);
    }
    if (packages[path]) return;
    // Flags that describe this checkout (dev, peer…) are npm's to compute for the application.
    const { dev, devOptional, peer, optional: _, ...entry } = rootLock.packages[path]!;
    const basename = name.split('/').pop();
    packages[path] = { resolved: `${REGISTRY}${name}/-/${basename}-${entry.version}.tgz`, ...entry };
    for (const dependency of Object.keys(entry.dependencies ?? {})) add(path, dependency);
    for (const dependency of Object.keys(entry.optionalDependencies ?? {})) add(path, dependency, true);
    for (const peerName of Object.keys(entry.peerDependencies ?? {})) {
      if (!entry.peerDependenciesMeta?.[peerName]?.optional) add(path, peerName);
    }
  };
  for (const name of Object.keys(rootPkg.dependencies)) add('node_modules/redis-once', name);
  for (const name of extra) add('', name);

  const tarball = `file:${relative(app, join(tmp, report.filename))}`;
  const dependencies: Record<string, string> = { 'redis-once': tarball };
  for (const name of extra) dependencies[name] = packages[`node_modules/${name}`]!.version;
  const pkg = { name: 'app', version: '1.0.0', private: true, dependencies };
  const lock = {
    name: 'app',
    version: '1.0.0',
    lockfileVersion: 3,
    requires: true,
    packages: {
      '': { name: 'app', version: '1.0.0', dependencies },
      'node_modules/redis-once': {
        version: rootPkg.version,
        resolved: tarball,
        integrity: report.integrity,
        license: rootPkg.license,
        dependencies: rootPkg.dependencies,
        bin: rootPkg.bin,
        engines: rootPkg.engines,
        peerDependencies: rootPkg.peerDependencies,
        peerDependenciesMeta: rootPkg.peerDependenciesMeta,
      },
      ...packages,
    },
  };
  mkdirSync(app, { recursive: true });
  writeFileSync(join(app, 'package.json'), `${JSON.stringify(pkg, null, 2)}\n`);
  writeFileSync(join(app, 'package-lock.json'), `${JSON.stringify(lock, null, 2)}\n`);
}

/**
 * The environment of everything run in the application: this one, less what ties it to this checkout
 * (`npm test` describes the repository in npm_* variables; module paths and preloads from
 * NODE_OPTIONS/NODE_PATH), with this Node.js first on PATH for the CLI's `#!/usr/bin/env node`.
 */
function appEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (
      /^(npm_config_local_prefix|npm_package_|npm_lifecycle_|INIT_CWD$|NODE_OPTIONS$|NODE_PATH$)/.test(name)
    ) {
      continue;
    }
    env[name] = value;
  }
  env.PATH = [dirname(process.execPath), process.env.PATH].filter(Boolean).join(delimiter);
  return env;
}

/** `npm <args>` in the application, offline, bounded; fails with npm's own output. */
async function npmInApp(app: string, args: string[]): Promise<void> {
  const result = await run('npm', [...args, '--offline', '--no-audit', '--no-fund'], {
    cwd: app,
    env: appEnv(),
    timeout: INSTALL_TIMEOUT_MS,
  });
  expect(result.code, `npm ${args.join(' ')}: ${result.stdout}\n${result.stderr}`).toBe(0);
}

// The workers' sources, written into the application. They get the Redis URL, the namespace and
// the key as arguments, and say what happens as JSON lines on stdout.

/**
 * Calls run(key, fn); fn records its pid in the ledger file and returns once released. Then leads a key
 * of its own.
 */
const RACE_MAIN = String.raw`
async function main() {
  const [url, namespace, key, ledger] = process.argv.slice(2);
  const say = (event) => console.log(JSON.stringify({ pid: process.pid, ...event }));
  const once = createOnce({ redis: url, namespace });
  try {
    const result = once.run(key, async (ctx) => {
      appendFileSync(ledger, process.pid + '\n');
      say({ event: 'running' });
      await released();
      return { by: process.pid, fencingToken: ctx.fencingToken };
    });
    say({ event: 'calling', entry });
    say({ event: 'result', value: await result });
    // And a key of its own, so that each build, ESM and CommonJS, also leads a run to its end — one
    // whose fn blocks the event loop for twice its lease: the standby thread beside the installed
    // bundle (dist/renewer-thread.js) must keep the lease.
    const blocking = (ctx) => {
      const until = Date.now() + 4_000;
      while (Date.now() < until) {}
      return ctx.key;
    };
    say({ event: 'led', value: await once.run(key + ':' + process.pid, blocking, { leaseMs: 2_000 }) });
  } finally {
    await once.close();
  }
}

/** The test's word that the leader may finish: a line on stdin, or stdin closed. */
function released() {
  return new Promise((resolve) => {
    const lines = createInterface({ input: process.stdin });
    let done = false;
    const release = () => {
      if (done) return;
      done = true;
      lines.close();
      process.stdin.destroy();
      resolve();
    };
    lines.once('line', release);
    lines.once('close', release);
  });
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
`;

const RACE_ESM = `import { appendFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { createOnce } from 'redis-once';

const entry = fileURLToPath(import.meta.resolve('redis-once'));
${RACE_MAIN}`;

const RACE_CJS = `const { appendFileSync } = require('node:fs');
const { createInterface } = require('node:readline');
const { createOnce } = require('redis-once');

const entry = require.resolve('redis-once');
${RACE_MAIN}`;

/** Loads the core both ways, and tries the bridge, which must fail for want of @opentelemetry/api. */
const CORE_ALONE = `import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const failure = async (load) => {
  try {
    await load();
    return null;
  } catch (error) {
    return { code: error.code, message: error.message };
  }
};
const esm = await import('redis-once');
const cjs = require('redis-once');
console.log(JSON.stringify({
  esm: Object.keys(esm).sort(),
  cjs: Object.keys(cjs).sort(),
  otelImport: await failure(() => import('redis-once/otel')),
  otelRequire: await failure(() => require('redis-once/otel')),
}));
`;

/**
 * enableOpenTelemetry() with the global (no-op) providers, then with a tracer provider that records
 * the names of the spans it starts, around one run.
 */
const OTEL_MAIN = `
async function main() {
  const [url, namespace, key] = process.argv.slice(2);
  const stopGlobal = enableOpenTelemetry();
  const enabled = typeof stopGlobal;
  stopGlobal();
  const spans = [];
  const noop = trace.getTracer('noop');
  const tracerProvider = {
    getTracer: () => ({
      startSpan(name, options, context) {
        spans.push(name);
        return noop.startSpan(name, options, context);
      },
      startActiveSpan() {
        throw new Error('not expected: startActiveSpan');
      },
    }),
  };
  const stop = enableOpenTelemetry({ tracerProvider });
  const once = createOnce({ redis: url, namespace });
  try {
    const value = await once.run(key, () => 'traced');
    console.log(JSON.stringify({ enabled, value, spans }));
  } finally {
    stop();
    await once.close();
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
`;

const OTEL_ESM = `import { trace } from '@opentelemetry/api';
import { createOnce } from 'redis-once';
import { enableOpenTelemetry } from 'redis-once/otel';
${OTEL_MAIN}`;

const OTEL_CJS = `const { trace } = require('@opentelemetry/api');
const { createOnce } = require('redis-once');
const { enableOpenTelemetry } = require('redis-once/otel');
${OTEL_MAIN}`;

interface WorkerEvent {
  event: string;
  pid?: number;
  [field: string]: unknown;
}

/** A Node.js process running a script of the application, its stdout read as JSON lines. */
class Worker {
  readonly child: ChildProcessWithoutNullStreams;
  readonly events: WorkerEvent[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr = '';
  #listeners = new Set<() => void>();

  constructor(
    readonly app: string,
    readonly script: string,
    args: string[],
  ) {
    this.child = spawn(process.execPath, [script, ...args], {
      cwd: app,
      env: appEnv(),
      timeout: PROCESS_TIMEOUT_MS,
    });
    live.add(this);
    // A worker that died cannot take the release line: that is reported by its exit, not by EPIPE.
    this.child.stdin.on('error', () => {});
    this.child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr += chunk;
    });
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      let event: WorkerEvent;
      try {
        event = JSON.parse(line) as WorkerEvent;
      } catch {
        event = { event: 'text', text: line };
      }
      this.events.push(event);
      for (const listener of this.#listeners) listener();
    });
    this.exited = eventOnce(this.child, 'close').then(([code, signal]) => {
      live.delete(this);
      for (const listener of this.#listeners) listener();
      return { code: code as number | null, signal: signal as NodeJS.Signals | null };
    });
  }

  get done(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null;
  }

  /** The first event named `name`; rejects if the process ends first (its timeout bounds the wait). */
  waitFor(name: string): Promise<WorkerEvent> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.events.find((event) => event.event === name);
        if (!found && !this.done) return;
        this.#listeners.delete(check);
        if (found) resolve(found);
        else reject(new Error(`${this.script} ended before '${name}' (${this.exitText()}):\n${this.stderr}`));
      };
      this.#listeners.add(check);
      check();
    });
  }

  exitText(): string {
    return `exit code ${this.child.exitCode}, signal ${this.child.signalCode}`;
  }

  /** Ends the process and resolves once it is gone; for cleanup after a failed test. */
  async kill(): Promise<void> {
    if (!this.done) this.child.kill('SIGKILL');
    await this.exited;
  }
}

/** Workers not yet exited, killed after the tests whatever happened. */
const live = new Set<Worker>();

async function runWorker(app: string, script: string, args: string[]): Promise<WorkerEvent[]> {
  const worker = new Worker(app, script, args);
  worker.child.stdin.end();
  const exit = await worker.exited;
  expect(exit, `${script}:\n${worker.stderr}`).toEqual({ code: 0, signal: null });
  return worker.events;
}

describe('installed from its tarball into an empty application', { timeout: TEST_TIMEOUT_MS }, () => {
  let app: string;
  let redis: RedisServer;
  let bin: string;
  let env: NodeJS.ProcessEnv;
  /** Its own namespace, so that a REDIS_URL shared with other runs is no trouble. */
  const namespace = `package-test-${process.pid}-${Date.now()}`;

  beforeAll(async () => {
    app = join(tmp, 'app');
    writeApp(app);
    env = appEnv();
    const started = startRedis({ name: 'package-install' });
    try {
      await npmInApp(app, ['ci']);
    } finally {
      redis = await started;
    }
    bin = join(app, 'node_modules/.bin/redis-once');
    writeFileSync(join(app, 'race.mjs'), RACE_ESM);
    writeFileSync(join(app, 'race.cjs'), RACE_CJS);
    writeFileSync(join(app, 'core-alone.mjs'), CORE_ALONE);
    writeFileSync(join(app, 'otel.mjs'), OTEL_ESM);
    writeFileSync(join(app, 'otel.cjs'), OTEL_CJS);
  }, INSTALL_TIMEOUT_MS + 20_000);

  afterAll(async () => {
    await Promise.all([...live].map((worker) => worker.kill()));
    await redis?.stop();
  });

  it('installs the runtime dependencies, not the optional peers', () => {
    const installed = JSON.parse(readFileSync(join(app, 'node_modules/redis-once/package.json'), 'utf8'));
    expect(installed.version).toBe(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version);
    for (const name of Object.keys(installed.dependencies)) {
      expect(existsSync(join(app, 'node_modules', name, 'package.json')), name).toBe(true);
    }
    expect(existsSync(join(app, 'node_modules/@opentelemetry/api'))).toBe(false);
    expect(existsSync(join(app, 'node_modules/redis'))).toBe(false);
  });

  it('runs fn exactly once for processes racing with import and require, and hands all its value', async () => {
    const ledger = join(app, 'race-ledger');
    const args = [redis.url, namespace, 'race', ledger];
    const workers = [
      new Worker(app, 'race.mjs', args),
      new Worker(app, 'race.cjs', args),
      new Worker(app, 'race.mjs', args),
    ];
    // Every process has called run() and one of them runs fn: the others are waiting on it now, and
    // nobody gets a value until the leader is released.
    await Promise.all(workers.map((worker) => worker.waitFor('calling')));
    await Promise.any(workers.map((worker) => worker.waitFor('running'))).catch((error: AggregateError) => {
      throw new Error(error.errors.map(String).join('\n'));
    });
    expect(workers.flatMap((worker) => worker.events).filter((event) => event.event === 'result')).toEqual(
      [],
    );
    for (const worker of workers) worker.child.stdin.end('release\n');
    const exits = await Promise.all(workers.map((worker) => worker.exited));
    expect(exits, workers.map((worker) => worker.stderr).join('\n')).toEqual(
      workers.map(() => ({ code: 0, signal: null })),
    );

    const ran = readFileSync(ledger, 'utf8').trim().split('\n').map(Number);
    expect(ran).toHaveLength(1);
    const running = workers.flatMap((worker) => worker.events).filter((event) => event.event === 'running');
    expect(running).toEqual([{ pid: ran[0], event: 'running' }]);
    const values = workers.map((worker) => worker.events.find((event) => event.event === 'result')?.value);
    expect(values).toEqual(workers.map(() => ({ by: ran[0], fencingToken: expect.any(Number) })));
    expect(new Set(values.map((value) => JSON.stringify(value))).size).toBe(1);

    expect(workers.map((worker) => worker.events.find((event) => event.event === 'led')?.value)).toEqual(
      workers.map((worker) => `race:${worker.child.pid}`),
    );

    // `import` took the ESM build and `require` the CommonJS one, both from the installed package.
    const entries = workers.map((worker) => worker.events.find((event) => event.event === 'calling')?.entry);
    const installed = join(app, 'node_modules/redis-once/dist');
    expect(entries).toEqual([
      join(installed, 'index.js'),
      join(installed, 'index.cjs'),
      join(installed, 'index.js'),
    ]);
  });

  it('has a CLI on the bin path whose --version is the package version', async () => {
    const version = await run(bin, ['--version'], { cwd: app, env, timeout: PROCESS_TIMEOUT_MS });
    expect(version.code, version.stderr).toBe(0);
    expect(version.stdout.trim()).toBe(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version);
  });

  it('has a CLI whose run runs a command once, passes its exit code and reports the key done', async () => {
    const ledger = join(app, 'cli-ledger');
    const command = (...args: string[]) => [
      'run',
      '--redis',
      redis.url,
      '--namespace',
      namespace,
      ...args,
      '--',
      process.execPath,
      '-e',
      `require('node:fs').appendFileSync(process.argv[1], process.env.ONCE_KEY + ' ' + process.env.ONCE_FENCING_TOKEN + '\\n');
       console.log('ran ' + process.env.ONCE_KEY);
       process.exitCode = Number(process.argv[2]);`,
    ];
    const options = { cwd: app, env, timeout: PROCESS_TIMEOUT_MS };

    const first = await run(bin, [...command('--key', 'cli'), ledger, '0'], options);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toBe('ran cli\n');
    const again = await run(bin, [...command('--key', 'cli'), ledger, '0'], options);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toBe('');
    expect(readFileSync(ledger, 'utf8')).toMatch(/^cli \d+\n$/);

    const failing = await run(
      bin,
      [...command('--key', 'cli-fails', '--max-attempts', '1'), ledger, '3'],
      options,
    );
    expect(failing.code, failing.stderr).toBe(3);
    expect(failing.stdout).toBe('ran cli-fails\n');

    const status = await run(
      bin,
      ['status', '--redis', redis.url, '--namespace', namespace, '--key', 'cli', '--json'],
      options,
    );
    expect(status.code, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ state: 'done', attempts: 1 });
  });

  it('loads the core with import and require without @opentelemetry/api; only redis-once/otel needs it', async () => {
    expect(existsSync(join(app, 'node_modules/@opentelemetry/api'))).toBe(false);
    const [loaded] = await runWorker(app, 'core-alone.mjs', []);
    expect(loaded).toMatchObject({
      otelImport: { code: 'ERR_MODULE_NOT_FOUND', message: expect.stringContaining("'@opentelemetry/api'") },
      otelRequire: { code: 'MODULE_NOT_FOUND', message: expect.stringContaining("'@opentelemetry/api'") },
    });
    expect(loaded!.esm).toEqual(expect.arrayContaining(['createOnce', 'DEFAULTS', 'OnceError']));
    expect(loaded!.cjs).toEqual(loaded!.esm);
  });

  it('traces runs through redis-once/otel, with import and require, once @opentelemetry/api is installed', async () => {
    writeApp(app, ['@opentelemetry/api']);
    await npmInApp(app, ['install']);
    expect(existsSync(join(app, 'node_modules/@opentelemetry/api/package.json'))).toBe(true);
    for (const script of ['otel.mjs', 'otel.cjs']) {
      const [traced] = await runWorker(app, script, [redis.url, namespace, script]);
      expect(traced, script).toEqual({ enabled: 'function', value: 'traced', spans: ['redis-once.run'] });
    }
  });
});
