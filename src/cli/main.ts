/**
 * `redis-once`: the CLI entry point (bundled to dist/cli.js). Parses, runs one command, exits with
 * its code. See docs/cli.md.
 */
import { CommanderError } from 'commander';
import { EXIT } from './exit-codes.js';
import { buildProgram, type Result } from './program.js';

// `redis-once status | head`: a closed pipe is the reader's choice, not an error worth a stack trace.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? EXIT.OK);
  throw error;
});
// Nothing can be said on a stderr that cannot be written (its reader gone, a full disk); a leader goes
// on supervising its command all the same (command.ts decides what the command sees).
process.stderr.on('error', () => {});

export async function main(argv: readonly string[]): Promise<number> {
  const result: Result = { code: EXIT.OK };
  const program = buildProgram(result);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return result.code;
  } catch (error) {
    // Help and --version end with exitCode 0; every other parse error is a usage error.
    if (error instanceof CommanderError) return error.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
    process.stderr.write(`redis-once: error: ${error instanceof Error ? error.message : String(error)}.\n`);
    return EXIT.INTERNAL;
  }
}

function flush(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => stream.write('', () => resolve()));
}

// No top-level await: the single executable's bundle is CommonJS (Node's SEA runs one CJS script).
void main(process.argv.slice(2)).then(async (code) => {
  process.exitCode = code;
  // Everything of ours is closed by now, but a Redis client that never connected may keep a reconnect
  // timer alive for seconds (ioredis); a deploy step must not wait on it. Flush, then leave.
  await Promise.all([flush(process.stdout), flush(process.stderr)]);
  process.exit(code);
});
