/**
 * The frame of a one-shot command (`status`, `reset`): connect, do one thing, print, close. Errors
 * become one sentence and their exit code; secrets in the Redis URL never reach the output.
 */
import type { Once } from '../index.js';
import { type OnceFlags, openOnce, resolveConnection } from './connection.js';
import { describeError } from './errors.js';
import { enableDebugLogs, printError } from './output.js';

export interface AdminFlags extends OnceFlags {
  key: string;
  verbose?: boolean;
}

export async function adminCommand(
  flags: AdminFlags,
  action: (once: Once) => Promise<number>,
): Promise<number> {
  let secrets: readonly string[] = [];
  let redis: string | undefined;
  let once: Once | undefined;
  try {
    const connection = resolveConnection(flags);
    secrets = connection.secrets;
    redis = connection.display;
    if (flags.verbose) enableDebugLogs(secrets);
    once = openOnce(connection, flags);
    return await action(once);
  } catch (error) {
    const outcome = describeError(error, { key: flags.key, redis });
    printError(outcome, error, { verbose: flags.verbose === true, secrets });
    return outcome.code;
  } finally {
    await once?.close();
  }
}
