/**
 * `redis-once list [--state S] [--json]`: every once-key of a namespace with its state, owner,
 * attempts and age. It walks the keyspace with SCAN (a bounded COUNT per call, never KEYS) on every
 * master of a Cluster, and reads each key's state through the library, as `status` does.
 */
import { refusedError } from '../drivers/refusal.js';
import type { Once, OnceStatus } from '../index.js';
import type { AdminClient } from './admin-client.js';
import { adminCommand, type CommandFlags, withAdminClient } from './admin-command.js';
import { formatDuration } from './durations.js';
import { UsageError } from './errors.js';
import { EXIT } from './exit-codes.js';

export interface ListFlags extends CommandFlags {
  state?: string;
  json?: boolean;
}

/** Keys SCAN looks at per call: enough to be quick, small enough never to hold Redis up. */
const SCAN_COUNT = 250;
/** Key states read at once. */
const READ_BATCH = 50;
// An idle key has no state in Redis (never run, reset, or expired): there is nothing to list.
const STATES: ReadonlyArray<OnceStatus['state']> = ['running', 'done', 'failed'];

export interface ListedKey extends Omit<OnceStatus, 'value'> {
  key: string;
}

export function listCommand(flags: ListFlags): Promise<number> {
  const check = () => {
    if (flags.state !== undefined && !STATES.includes(flags.state as OnceStatus['state'])) {
      throw new UsageError(`--state "${flags.state}" is not one of ${STATES.join(', ')}`);
    }
  };
  return adminCommand(
    flags,
    (once, connection) => withAdminClient(connection, flags, (admin) => list(once, admin, flags)),
    check,
  );
}

async function list(once: Once, admin: AdminClient, flags: ListFlags): Promise<number> {
  const namespace = flags.namespace ?? 'once';
  const { keys, unnamed } = await scanKeys(admin, namespace);
  const listed = (await readAll(once, keys)).filter(
    (k) => flags.state === undefined || k.state === flags.state,
  );
  process.stdout.write(flags.json ? `${JSON.stringify(listed, null, 2)}\n` : formatList(namespace, listed));
  if (unnamed > 0) {
    process.stderr.write(
      `redis-once: ${unnamed} key(s) of "${namespace}" contain a brace or start with #; Redis holds only a digest of their name, so they are not listed\n`,
    );
  }
  return EXIT.OK;
}

/** The once-keys of `namespace` on every master, from their state hashes' names. */
async function scanKeys(admin: AdminClient, namespace: string): Promise<{ keys: string[]; unnamed: number }> {
  // `<ns>:{<key>}:state`; the namespace is the user's: escaped, so it matches only itself.
  const pattern = `${escapeGlob(namespace)}:{*}:state`;
  const names = new Set<string>();
  for (const master of await admin.masters()) {
    let cursor = '0';
    do {
      const [next, batch] = (await admin
        .call(master, 'SCAN', cursor, 'MATCH', pattern, 'COUNT', SCAN_COUNT, 'TYPE', 'hash')
        .catch((error: unknown) => {
          // An ACL user without SCAN: say so (exit 69), not "unexpected error".
          throw refusedError(error, admin.label, 'SCAN') ?? error;
        })) as [string, string[]];
      for (const name of batch) names.add(name);
      cursor = next;
    } while (cursor !== '0');
  }
  const prefix = `${namespace}:{`;
  const keys: string[] = [];
  let unnamed = 0;
  for (const name of names) {
    const tag = name.slice(prefix.length, -'}:state'.length);
    if (tag.startsWith('#')) unnamed++;
    else keys.push(tag);
  }
  return { keys: keys.sort(), unnamed };
}

async function readAll(once: Once, keys: string[]): Promise<ListedKey[]> {
  const listed: ListedKey[] = [];
  for (let i = 0; i < keys.length; i += READ_BATCH) {
    const batch = keys.slice(i, i + READ_BATCH);
    const statuses = await Promise.all(batch.map((key) => once.status(key)));
    statuses.forEach((status, j) => {
      const { value: _value, ...rest } = status;
      listed.push({ key: batch[j]!, ...rest });
    });
  }
  return listed;
}

export function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}

/** An aligned table: key, state, owner, attempts, age (since it finished, or started). */
export function formatList(namespace: string, listed: readonly ListedKey[], now = Date.now()): string {
  if (listed.length === 0) return `no once-keys in namespace "${namespace}"\n`;
  const rows = [
    ['KEY', 'STATE', 'OWNER', 'ATTEMPTS', 'AGE'],
    ...listed.map((k) => {
      const since = k.finishedAt ?? k.startedAt;
      return [
        k.key,
        k.state,
        k.owner ?? '-',
        String(k.attempts),
        since === undefined ? '-' : formatDuration(Math.max(0, now - since)),
      ];
    }),
  ];
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return `${rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  ')).join('\n')}\n`;
}
