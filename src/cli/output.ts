/**
 * Error lines: one sentence on stderr, a stack trace only with --verbose, and never a password.
 */
import { format } from 'node:util';
import createDebug from 'debug';
import { scrub } from './connection.js';
import type { Outcome } from './errors.js';

export interface ErrorOutput {
  verbose: boolean;
  /** Strings to mask in everything printed (the Redis password). */
  secrets: readonly string[];
  stream?: NodeJS.WritableStream;
}

export function printError(outcome: Outcome, error: unknown, output: ErrorOutput): void {
  const stream = output.stream ?? process.stderr;
  if (outcome.message) stream.write(`redis-once: error: ${scrub(outcome.message, output.secrets)}.\n`);
  if (output.verbose) stream.write(`${scrub(stackOf(error), output.secrets)}\n`);
}

/** The stack of `error` and of its causes. */
function stackOf(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; current !== undefined && depth < 5; depth++) {
    parts.push(
      current instanceof Error ? (current.stack ?? `${current.name}: ${current.message}`) : String(current),
    );
    current = current instanceof Error ? current.cause : undefined;
    if (current !== undefined) parts.push('Caused by:');
  }
  return parts.join('\n');
}

/** --verbose: the library's debug logs on stderr (masked), as with DEBUG=redis-once:*. */
export function enableDebugLogs(secrets: readonly string[]): void {
  createDebug.log = (...args: unknown[]) => {
    process.stderr.write(`${scrub(format(...args), secrets)}\n`);
  };
  const current = process.env.DEBUG;
  createDebug.enable(current ? `${current},redis-once:*` : 'redis-once:*');
}
