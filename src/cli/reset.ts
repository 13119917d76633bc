/** `redis-once reset --key K [--force]`: forget the key's state, so the next `run` runs again. */
import { type AdminFlags, adminCommand } from './admin-command.js';
import { EXIT } from './exit-codes.js';

export interface ResetFlags extends AdminFlags {
  force?: boolean;
}

/** A refusal (OnceBusyError) names the leader, so the person can decide whether --force is safe. */
export function resetCommand(flags: ResetFlags): Promise<number> {
  return adminCommand(flags, async (once) => {
    const { existed } = await once.reset(flags.key, { force: flags.force === true });
    process.stdout.write(
      existed
        ? `"${flags.key}" was reset${flags.force ? ' (forced)' : ''}; the next run will run the command again\n`
        : `"${flags.key}" had no state; nothing to reset\n`,
    );
    return EXIT.OK;
  });
}
