/**
 * The frame of a one-shot command (`status`, `reset`, `list`, `doctor`): connect, do one thing, print,
 * close. Errors
 * become one sentence and their exit code; secrets in the Redis URL never reach the output.
 */
import { DEFAULTS, type Once } from '../index.js';
import { type AdminClient, openAdminClient } from './admin-client.js';
import { type Connection, type OnceFlags, openOnce, resolveConnection } from './connection.js';
import { describeError } from './errors.js';
import { enableDebugLogs, printError } from './output.js';

export interface CommandFlags extends OnceFlags {
  /** The key the command is about, if any: named in its errors. */
  key?: string;
  verbose?: boolean;
}

export interface AdminFlags extends CommandFlags {
  key: string;
}

/**
 * Runs `action` with a Once for the flags (and the resolved connection, for a command that also
 * opens an admin client: `withAdminClient`). `check` runs first, before anything connects: a bad flag
 * value is a usage error that touches nothing.
 */
export async function adminCommand(
  flags: CommandFlags,
  action: (once: Once, connection: Connection) => Promise<number>,
  check?: () => void,
): Promise<number> {
  let secrets: readonly string[] = [];
  let redis: string | undefined;
  let once: Once | undefined;
  try {
    check?.();
    const connection = resolveConnection(flags);
    secrets = connection.secrets;
    redis = connection.display;
    if (flags.verbose) enableDebugLogs(secrets);
    once = openOnce(connection, flags);
    return await action(once, connection);
  } catch (error) {
    const outcome = describeError(error, { key: flags.key, redis });
    printError(outcome, error, { verbose: flags.verbose === true, secrets });
    return outcome.code;
  } finally {
    await once?.close();
  }
}

/** `use` with a plain admin connection (SCAN, INFO, CONFIG GET), closed afterwards. */
export async function withAdminClient<T>(
  connection: Connection,
  flags: CommandFlags,
  use: (admin: AdminClient) => Promise<T>,
): Promise<T> {
  const admin = openAdminClient(connection, flags.redisTimeout ?? DEFAULTS.redisTimeoutMs);
  try {
    return await use(admin);
  } finally {
    await admin.close();
  }
}
