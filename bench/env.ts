import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';

export interface Environment {
  date: string;
  node: string;
  redis: string;
  /** package → installed version; `redis-once` is this repository (with its commit). */
  libraries: Record<string, string>;
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  os: string;
  /** Share of all cores other processes kept busy in the second before the bench started (0–1). */
  busyBefore: number;
  /** 1-, 5- and 15-minute load averages when the bench started and ended. */
  loadStart: number[];
  loadEnd?: number[];
}

const root = new URL('../', import.meta.url);

export function environment(redisVersion: string, busyBefore: number): Environment {
  const cpus = os.cpus();
  return {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    node: process.version,
    redis: redisVersion,
    libraries: {
      'redis-once': `${packageVersion('.')} (${commit()})`,
      redlock: packageVersion('node_modules/redlock'),
      'redis-semaphore': packageVersion('node_modules/redis-semaphore'),
      ioredis: packageVersion('node_modules/ioredis'),
      vega: packageVersion('node_modules/vega'),
      'vega-lite': packageVersion('node_modules/vega-lite'),
    },
    cpuModel: (cpus[0]?.model ?? 'unknown').trim(),
    cores: cpus.length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    busyBefore,
    loadStart: loadAverage(),
  };
}

/**
 * How busy the machine is without us: the share of all cores' time not idle over `ms`. Load averages
 * lag by minutes; this is what the bench is about to compete with.
 */
export async function cpuBusy(ms = 1_000): Promise<number> {
  const idleAndTotal = () =>
    os.cpus().reduce(
      (acc, cpu) => {
        const t = cpu.times;
        return { idle: acc.idle + t.idle, total: acc.total + t.idle + t.user + t.nice + t.sys + t.irq };
      },
      { idle: 0, total: 0 },
    );
  const a = idleAndTotal();
  await new Promise((resolve) => setTimeout(resolve, ms));
  const b = idleAndTotal();
  const total = b.total - a.total;
  return total > 0 ? Math.round((1 - (b.idle - a.idle) / total) * 100) / 100 : 0;
}

export function loadAverage(): number[] {
  return os.loadavg().map((load) => Math.round(load * 100) / 100);
}

function packageVersion(dir: string): string {
  try {
    return (JSON.parse(readFileSync(new URL(`${dir}/package.json`, root), 'utf8')) as { version: string })
      .version;
  } catch {
    return 'not installed';
  }
}

/** The commit measured, and whether src/ had uncommitted changes (the bench runs the work tree). */
function commit(): string {
  try {
    const cwd = new URL('.', root).pathname;
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src'], {
      cwd,
      encoding: 'utf8',
    }).trim();
    return dirty ? `${head}, src/ modified` : head;
  } catch {
    return 'no git';
  }
}
