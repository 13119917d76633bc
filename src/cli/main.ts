// Placeholder until the CLI lands: prints usage.
const usage = `redis-once — run a command exactly once across a cluster, backed by Redis.

Usage:
  redis-once run --key KEY [--redis URL] [--lease 30s] [--timeout 10m] [--max-attempts 3] -- COMMAND [ARGS...]
  redis-once status --key KEY [--redis URL] [--json]
  redis-once reset --key KEY [--redis URL] [--force]
`;
process.stdout.write(usage);
process.exitCode = process.argv.length > 2 && !['--help', '-h'].includes(process.argv[2] ?? '') ? 64 : 0;
