import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const live = new Set<ChildProcess>();

afterEach(() => {
  // npm, the demo, its pods and its redis-server share one process group.
  for (const child of live) {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  live.clear();
});

/** `npm run demo -- ...args`, to its end; its output and how long it took. */
async function demo(...args: string[]): Promise<{ code: number | null; output: string; ms: number }> {
  const t0 = performance.now();
  const child = spawn('npm', ['run', '--silent', 'demo', '--', ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  live.add(child);
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr!.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const [code] = (await once(child, 'close')) as [number | null];
  live.delete(child);
  return { code, output, ms: performance.now() - t0 };
}

/** The table's rows: node → role, fencing token. */
function rows(output: string): Array<{ node: string; role: string; token: string }> {
  return [
    ...output.matchAll(
      /^ {2}(pod-\d+) +(leader|follower|cached|crashed|error: \S+) +\S+(?: s)? +(\S+) +\S+$/gm,
    ),
  ].map((match) => ({ node: match[1]!, role: match[2]!, token: match[3]! }));
}

describe('npm run demo', () => {
  it('runs the migration once across 6 pods, then serves a 7th from the cache, in under 30 s', async () => {
    const { code, output, ms } = await demo();
    expect(code, output).toBe(0);
    const table = rows(output);
    expect(table, output).toHaveLength(7);
    expect(table.filter((row) => row.role === 'leader')).toHaveLength(1);
    expect(table.filter((row) => row.role === 'follower')).toHaveLength(5);
    expect(table.find((row) => row.node === 'pod-7')?.role).toBe('cached');
    expect(new Set(table.map((row) => row.token)).size).toBe(1);
    expect(output).toMatch(/Redis commands used by all 7 pods \(INFO commandstats delta\): \d+ = /);
    expect(output).toMatch(/The migration ran exactly once/);
    expect(ms).toBeLessThan(30_000);
  }, 60_000);

  it('--crash: SIGKILLs the leader mid-run, and one follower takes over and finishes it', async () => {
    const { code, output, ms } = await demo('--crash');
    expect(code, output).toBe(0);
    const table = rows(output);
    expect(table, output).toHaveLength(7);
    const crashed = table.filter((row) => row.role === 'crashed');
    const leaders = table.filter((row) => row.role === 'leader');
    expect(crashed).toHaveLength(1);
    expect(leaders).toHaveLength(1);
    expect(Number(leaders[0]!.token)).toBeGreaterThan(Number(crashed[0]!.token));
    expect(output).toMatch(/💥 demo: SIGKILL pod-\d/);
    expect(output).toMatch(/taking over: the previous attempt \(pod-\d, token \d+\) crashed/);
    expect(output).toMatch(/already applied under token \d+, skipped/);
    expect(ms).toBeLessThan(30_000);
  }, 60_000);
});
