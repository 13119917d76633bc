import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { parseDuration } from '../../src/cli/durations.js';
import { type RedisServer, startRedis } from '../helpers/redis-server.js';
import { killAllClis, runCli } from './cli.js';

const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');

interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile_inline?: string };
  entrypoint?: string[];
  command?: string[];
  environment?: Record<string, string>;
  container_name?: string;
  ports?: unknown[];
  depends_on?: Record<string, { condition: string }>;
}

describe('docker-compose.yml', () => {
  const compose = parse(read('docker-compose.yml')) as { services: Record<string, ComposeService> };

  it('has redis and an app service that can be scaled', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['app', 'redis']);
    const app = compose.services.app!;
    expect(compose.services.redis!.image).toMatch(/^redis:7/);
    expect(app.environment?.REDIS_URL).toBe('redis://redis:6379');
    expect(app.depends_on?.redis?.condition).toBe('service_healthy');
    // --scale app=5 needs no fixed name and no fixed host port.
    expect(app.container_name).toBeUndefined();
    expect(app.ports).toBeUndefined();
    expect(app.build?.dockerfile_inline).toMatch(/npm run build/);
  });

  it("wraps the sample migration with redis-once run in the app's entrypoint", () => {
    const app = compose.services.app!;
    const line = [...(app.entrypoint ?? []), ...(app.command ?? [])].join(' ');
    expect(line).toMatch(
      /redis-once run --key "migrate:\$\$\{GIT_SHA\}" .*-- node examples\/sample-migration\.mjs && exec /,
    );
  });
});

describe('examples/kubernetes.yaml', () => {
  it('is a Deployment whose init container runs the migration under redis-once run', () => {
    const docs = parseAllDocuments(read('examples/kubernetes.yaml')).map((doc) => doc.toJS());
    const deployment = docs.find((doc) => doc.kind === 'Deployment');
    expect(deployment).toBeDefined();
    const init = deployment.spec.template.spec.initContainers[0];
    const command: string[] = init.command;
    const run = command.indexOf('run');
    expect(command.slice(0, run + 1)).toEqual(['npx', 'redis-once', 'run']);
    expect(command[command.indexOf('--key') + 1]).toBe('migrate:$(APP_VERSION)');
    expect(command.slice(command.indexOf('--') + 1)).toEqual(['npx', 'prisma', 'migrate', 'deploy']);
    expect(
      init.env.find((e: { name: string }) => e.name === 'REDIS_URL').valueFrom.secretKeyRef,
    ).toBeDefined();
    expect(deployment.spec.replicas).toBeGreaterThan(1);
  });
});

describe('examples/kubernetes-job.yaml', () => {
  it('waits for the migration Job in an initContainer, with timeouts that each give up before the next', () => {
    const docs = parseAllDocuments(read('examples/kubernetes-job.yaml')).map((doc) => doc.toJS());
    const job = docs.find((doc) => doc.kind === 'Job');
    const deployment = docs.find((doc) => doc.kind === 'Deployment');
    const run: string[] = job.spec.template.spec.containers[0].command;
    const wait: string[] = deployment.spec.template.spec.initContainers[0].command;
    expect(run.slice(0, 2)).toEqual(['redis-once', 'run']);
    expect(wait.slice(0, 2)).toEqual(['redis-once', 'wait']);
    const keyOf = (command: string[]) => command[command.indexOf('--key') + 1];
    expect(keyOf(wait)).toBe(keyOf(run));
    const jobDeadlineMs = job.spec.activeDeadlineSeconds * 1000;
    const waitMs = parseDuration(wait[wait.indexOf('--timeout') + 1]!);
    const helmDefaultMs = 5 * 60_000;
    const progressMs = deployment.spec.progressDeadlineSeconds * 1000;
    expect(jobDeadlineMs).toBeLessThan(waitMs);
    expect(waitMs).toBeLessThan(helmDefaultMs);
    expect(helmDefaultMs).toBeLessThan(progressMs);
  });
});

describe('examples/README.md', () => {
  it('has recipes for node-pg-migrate, knex and Prisma', () => {
    const readme = read('examples/README.md');
    expect(readme).toMatch(
      /redis-once run --key migrate:\$\(git rev-parse --short HEAD\) -- npx prisma migrate deploy/,
    );
    expect(readme).toMatch(
      /redis-once run --key migrate:\$\(git rev-parse --short HEAD\) -- npx node-pg-migrate up/,
    );
    expect(readme).toMatch(
      /redis-once run --key migrate:\$\(git rev-parse --short HEAD\) -- npx knex migrate:latest/,
    );
  });
});

describe('the sample migration of docker-compose.yml', () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await startRedis({ name: 'cli-files' });
  });
  afterEach(killAllClis);
  afterAll(async () => {
    await redis.stop();
  });

  it('runs under redis-once run and sees its fencing token', async () => {
    const cli = await runCli(
      [
        'run',
        '--key',
        'migrate:dev',
        '--redis',
        redis.url,
        '--namespace',
        `files-${randomUUID()}`,
        '--',
      ].concat(['node', 'examples/sample-migration.mjs']),
      { env: { SAMPLE_STEP_MS: '1' } },
    );
    expect(cli.result.code, cli.describe()).toBe(0);
    expect(cli.stdout).toMatch(/^migration: attempt 1, fencing token \d+\n/);
    expect(cli.stdout).toMatch(/migration: done\n$/);
  });
});
