/** `redis-once reset --key K [--force]`: forget the key's state, so the next `run` runs again. */
import { type ConnectionFlags, openOnce, resolveConnection } from './connection.js';
import { describeError } from './errors.js';
import { EXIT } from './exit-codes.js';
import { enableDebugLogs, printError } from './output.js';

export interface ResetFlags extends ConnectionFlags {
  key: string;
  force?: boolean;
  verbose?: boolean;
}

export async function resetCommand(flags: ResetFlags): Promise<number> {
  let secrets: readonly string[] = [];
  let redis: string | undefined;
  let once: ReturnType<typeof openOnce> | undefined;
  try {
    const connection = resolveConnection(flags);
    secrets = connection.secrets;
    redis = connection.display;
    if (flags.verbose) enableDebugLogs(secrets);
    once = openOnce(connection, flags);
    const { existed } = await once.reset(flags.key, { force: flags.force === true });
    process.stdout.write(
      existed
        ? `"${flags.key}" was reset${flags.force ? ' (forced)' : ''}; the next run will run the command again\n`
        : `"${flags.key}" had no state; nothing to reset\n`,
    );
    return EXIT.OK;
  } catch (error) {
    // A refusal names the leader (OnceBusyError.owner), so the person can decide whether --force is safe.
    const outcome = describeError(error, { key: flags.key, redis });
    printError(outcome, error, { verbose: flags.verbose === true, secrets });
    return outcome.code;
  } finally {
    await once?.close();
  }
}
