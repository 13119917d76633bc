import { randomBytes } from 'node:crypto';
import createDebug from 'debug';
import type { OnceContext } from './context.js';
import { type Decision, decide, lastError, phaseOf, previousAttempt } from './decide.js';
import { listening, publish } from './diagnostics.js';
import {
  type ErrorSummary,
  LeaseLostError,
  OnceClosedError,
  OnceFailedError,
  RedisUnavailableError,
  summarizeError,
} from './errors.js';
import type { DoneValue, Flight, OnceFn } from './flight.js';
import { KeyWatch } from './key-watch.js';
import type { KeyNames } from './keys.js';
import { Lease } from './lease.js';
import { leadFrame } from './reentry.js';
import type { StandbyRenewer } from './renewer/standby.js';
import { decodeMessage, type Snapshot, type StoredState } from './state.js';
import type { Claim, HeldLease, Store } from './store/store.js';
import type { Subscriptions } from './subscriber.js';
import { decodeStoredValue, decodeValue, encodeValue } from './value.js';

const debug = createDebug('redis-once:coordinator');

export interface CoordinatorDeps {
  store: Store;
  /** One per Redis master (or one for a Cluster). */
  subscriptions: readonly Subscriptions[];
  /** Completion channels use sharded pub/sub (a Cluster). */
  sharded: boolean;
  nodeId: string;
  /** For the point events' messages. */
  namespace: string;
  redisTimeoutMs: number;
  /** The instance's maxAttempts, for flights with no fn to run (`wait`). */
  maxAttempts: number;
  /** Renews leases on another thread while this one is stalled (maxStallMs); none with maxStallMs 0. */
  standby: StandbyRenewer | undefined;
}

/** How a flight ends with the key's value: who produced it, and until when memory may keep it. */
export interface Landing {
  readonly done: DoneValue;
  /** `here`: this flight's fn; `elsewhere`: another node (or attempt) while we waited; `before`: found done. */
  readonly by: 'here' | 'elsewhere' | 'before';
  /** When the done state expires in Redis at the earliest (performance.now()), or Infinity. */
  readonly expiresAt: number;
}

/** The pause before sending a complete again that Redis did not answer. */
const COMPLETE_RETRY_MS = 20;

/** Past a lease deadline before reading again, so the lease has surely expired in Redis. */
const DEADLINE_SLACK_MS = 2;

/** An attempt whose fn runs in this process. */
interface Leading {
  readonly token: number;
  readonly lease: Lease;
  /** Settles once fn has settled and its outcome is recorded (or given up on). */
  readonly ended: Promise<void>;
}

/**
 * One key's story, for one flight of one process:
 *
 *   claim ─▶ taken          → fn under the renewing lease → complete (value + publish) | fail (+ publish)
 *         ─▶ done            → the value
 *         ─▶ attempts spent  → OnceFailedError
 *         ─▶ a leader at work → subscribe (confirmed), claim again, then wait for the message — or for
 *                              the lease deadline it read, and claim again (a takeover if it crashed)
 *
 * A follower subscribes before it reads again, so a completion published in between is never missed,
 * and it wakes only on a message, at the lease deadline, or when its subscription is back after a gap —
 * never on a polling timer. The flight's stop (every caller left, or close) is checked after every
 * await; a claim won by a stopped flight is given back before fn could start. A running fn is never
 * stopped by callers leaving.
 */
export class Coordinator {
  /** The attempt whose fn runs here, per key (the newest, for a forced reset to stop it). */
  private readonly leading = new Map<string, Leading>();
  /** Every attempt whose fn may still run here (an older one may outlive its map entry), for close(). */
  private readonly attempts = new Set<Leading>();
  /**
   * Keys whose claim is on its way, with the highest counter a reset announced meanwhile found (0:
   * none; tokens start at 1): a reset that found our token took the claim before fn could start.
   */
  private readonly claiming = new Map<string, number>();
  private readonly leaseIds = `${randomBytes(8).toString('hex')}.`;
  private leaseCount = 0;
  private closing = false;

  constructor(private readonly deps: CoordinatorDeps) {}

  /**
   * Coordinates one flight until the key is done (resolves with the landing), its attempts are spent
   * or Redis fails (rejects), or every caller left (resolves undefined). The flight's callers are its
   * own: the coordinator only takes fn from it (`startRunning`) and hands back a failed attempt
   * (`endRun`).
   */
  async fly(flight: Flight, names: KeyNames): Promise<Landing | undefined> {
    const { store } = this.deps;
    let watch: KeyWatch | undefined;
    let waited = false;
    // When the last read that found the key not done was sent: a completion we hear of later happened
    // after it, so its done TTL is counted from there, and the memo never outlives the state.
    let lastReadAt = 0;
    try {
      for (;;) {
        if (flight.stopped) return undefined;
        const settings = flight.nextRunner();
        const sentAt = performance.now();
        let snapshot: Snapshot;
        if (settings) {
          const leaseValue = `${this.leaseIds}${++this.leaseCount}`;
          this.claiming.set(flight.key, 0);
          let resetFound: number;
          let claim: Claim;
          try {
            claim = await store.claim(names, {
              leaseValue,
              leaseMs: settings.leaseMs,
              owner: this.deps.nodeId,
              maxAttempts: settings.maxAttempts,
            });
          } finally {
            resetFound = this.claiming.get(flight.key) ?? 0;
            this.claiming.delete(flight.key);
          }
          if (claim.kind === 'claimed') {
            // The attempts before this one are spent for callers who allow no more.
            this.failSpent(flight, { state: claim.replaced, leasePttl: -2, statePttl: -1, fence: 0 });
            const resetMayHaveTaken = resetFound >= claim.token;
            const landing = await this.lead(flight, claim, settings.leaseMs, sentAt, resetMayHaveTaken);
            if (landing) return landing;
            waited = true;
            continue;
          }
          snapshot = claim.snapshot;
        } else {
          snapshot = await store.read(names);
        }
        // Each caller judges "attempts spent" by its own maxAttempts: the flight by the most any allows.
        const decision: Decision = decide(snapshot, flight.maxAttempts() || this.deps.maxAttempts);
        if (decision.kind === 'done') {
          return landing(
            names,
            snapshot.state,
            waited ? 'elsewhere' : 'before',
            expiry(sentAt, snapshot.statePttl),
          );
        }
        if (decision.kind === 'failed')
          throw failedError(flight.key, decision.attempts, decision.last, snapshot.state.owner);
        this.failSpent(flight, snapshot);
        lastReadAt = sentAt;
        waited = true;
        if (!watch) {
          // Someone else leads (or nobody, and this flight only waits). Subscribe first, then read again,
          // so no completion can slip in between.
          watch = await KeyWatch.open(
            this.deps.subscriptions,
            names.done,
            this.deps.sharded,
            flight,
            this.deps.redisTimeoutMs,
          );
          continue;
        }
        const wake = await watch.next(this.wakeAt(decision, settings !== undefined));
        if (wake.kind === 'stopped') return undefined;
        if (wake.kind === 'lost') {
          throw new RedisUnavailableError(
            `The subscription to "${flight.key}"'s completions dropped and did not come back within ` +
              `${this.deps.redisTimeoutMs} ms (redisTimeoutMs).`,
            { key: flight.key },
          );
        }
        if (wake.kind === 'message' && !store.isQuorum) {
          // One master: its message is the state itself. A quorum reads again, to count a majority.
          const message = decodeMessage(wake.text);
          if (message?.state.status === 'done' && !message.valueOmitted) {
            return landing(
              names,
              message.state,
              'elsewhere',
              expiry(lastReadAt, message.state.doneTtlMs ?? -1),
            );
          }
        }
        debug('%s: woke on %s; reading again', flight.key, wake.kind);
      }
    } finally {
      // After the callers are released: unsubscribing can wait for their continuations to run.
      const opened = watch;
      if (opened) setImmediate(() => opened.close());
    }
  }

  /**
   * A reset of `key` that found the counter at `fence` was announced: an attempt of ours with a token up
   * to it had claimed the key when the reset came, so the reset took its lease (a forced one took a
   * live lease; a plain one succeeds only on an expired lease). On one master that is proof, and fn
   * hears at once. On a quorum, one master may apply a reset late, after this attempt took the key
   * from the majority, and announce its own counter: the lease renews at once, and fn hears as soon as
   * the majority refuses. A claim still on its way notes the counter, to check when it returns.
   */
  onReset(key: string, fence: number): void {
    const claiming = this.claiming.get(key);
    if (claiming !== undefined && fence > claiming) this.claiming.set(key, fence);
    const attempt = this.leading.get(key);
    if (!attempt || attempt.token > fence) return;
    const reason = new LeaseLostError(`Lease lost: "${key}" was reset (with force) while its fn ran here.`, {
      key,
    });
    if (this.deps.store.isQuorum) attempt.lease.confirm(reason);
    else attempt.lease.lose(reason);
  }

  /**
   * Ends every attempt running here (close): fn's signal aborts, renewal stops, and each attempt is
   * recorded as failed (releasing its lease) once its fn settles — or, if fn ignores the signal, its
   * lease is left to expire. No other node starts while fn may still run. Resolves when each attempt
   * has ended or its lease has expired.
   */
  async close(): Promise<void> {
    this.closing = true;
    const attempts = [...this.attempts];
    for (const attempt of attempts) {
      attempt.lease.lose(
        new LeaseLostError('Lease given up: this Once instance is closing; fn should stop now.', {}),
      );
    }
    await Promise.all(
      attempts.map((attempt) => {
        const untilExpiry = Math.max(0, attempt.lease.expiresAt - performance.now());
        return new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, untilExpiry);
          attempt.ended.then(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }),
    );
  }

  /** Callers whose own maxAttempts the key's ended attempts reach fail now; the others stay. */
  private failSpent(flight: Flight, snapshot: Snapshot): void {
    const phase = phaseOf(snapshot).kind;
    if (phase !== 'failed' && phase !== 'crashed') return;
    const { attempts } = snapshot.state;
    flight.failSpent(attempts, () =>
      failedError(flight.key, attempts, lastError(snapshot)!, snapshot.state.owner),
    );
  }

  /** When a waiting flight reads again if no message comes first. */
  private wakeAt(decision: Decision, canLead: boolean): number {
    if (decision.kind === 'wait') return performance.now() + decision.leaseMs + DEADLINE_SLACK_MS;
    // Nobody leads. A flight with an fn lost a race on a quorum (a claim half-way through its masters):
    // try again after a short, random pause. A flight that only waits waits for a message.
    return canLead ? performance.now() + 20 + Math.random() * 50 : Number.POSITIVE_INFINITY;
  }

  /**
   * We hold the key: run fn under the renewing lease and record its outcome. Resolves with the landing
   * when the value is recorded, or undefined when this attempt ended without it (the flight decides
   * again).
   */
  private async lead(
    flight: Flight,
    claim: Extract<Claim, { kind: 'claimed' }>,
    leaseMs: number,
    sentAt: number,
    resetMayHaveTaken: boolean,
  ): Promise<Landing | undefined> {
    const { key } = flight;
    const { held } = claim;
    const event = () => ({
      key,
      namespace: this.deps.namespace,
      nodeId: this.deps.nodeId,
      fencingToken: claim.token,
      attempt: claim.attempt,
    });
    const lease = new Lease({
      key,
      leaseMs,
      sentAt,
      repliedAt: performance.now(),
      renew: (withinMs) => held.renew(withinMs),
      onRenewed: () => listening('renew') && publish('renew', event()),
      onLost: (reason) =>
        listening('lease-lost') && publish('lease-lost', { ...event(), reason: errorName(reason) }),
    });
    // A reset announced while the claim was on its way found its token: on one master it took the
    // claim; on a quorum, the majority says with a renewal.
    const taken =
      resetMayHaveTaken &&
      (!this.deps.store.isQuorum ||
        (await held.renew(Math.max(0, lease.abortAt - performance.now()))) !== 'renewed');
    // fn never starts for a flight nobody waits on, in an instance that is closing, or on a lease that
    // a reset took or that came back too late to be trusted: give the claim back (no attempt is spent).
    const fn =
      taken || flight.stopped || this.closing || !lease.isValid() ? undefined : flight.startRunning();
    if (!fn) {
      debug('%s: giving the claim back before fn started', key);
      await held.abandon().catch((error: unknown) => debug('%s: abandon: %s', key, errorText(error)));
      return undefined;
    }
    const { standby } = this.deps;
    lease.start(
      standby &&
        ((watched) =>
          standby.watch(held.names, held.leaseValue, leaseMs, sentAt, () => watched.refusedElsewhere())),
    );
    debug('%s: leading attempt %d with token %d', key, claim.attempt, claim.token);
    const previous = previousAttempt(claim.replaced);
    if (previous) {
      if (listening('takeover')) publish('takeover', { ...event(), previous: { ...previous } });
    } else if (listening('lead')) publish('lead', event());
    // The caller whose fn runs may not be the one whose settings claimed the key (that one's attempts
    // were spent): its own doneTtlMs counts. The lease keeps the leaseMs it was claimed with.
    const { doneTtlMs } = flight.runnerSettings!;
    const trace = flight.runnerTrace;

    let endAttempt!: () => void;
    const leading: Leading = {
      token: claim.token,
      lease,
      ended: new Promise((resolve) => (endAttempt = resolve)),
    };
    this.leading.set(key, leading);
    this.attempts.add(leading);
    const frame = leadFrame();
    flight.leadFrame = frame.name;
    const ctx = context(key, claim, this.deps.nodeId, lease);
    const settled = frame.run(fn as OnceFn, ctx).then(
      (value) => ({ threw: false as const, value }),
      (error: unknown) => ({ threw: true as const, error }),
    );
    const first = await Promise.race([settled, lease.whenLost().then(() => 'aborted' as const)]);

    const finish = () => {
      if (this.leading.get(key) === leading) this.leading.delete(key);
      this.attempts.delete(leading);
      // fn has settled and its outcome is recorded: its frame's name may mean another fn from now on.
      if (flight.leadFrame === frame.name) flight.leadFrame = undefined;
      frame.release();
      endAttempt();
    };
    if (first === 'aborted') {
      // The lease is lost, taken by a forced reset, or given up (close). The caller whose fn it is hears
      // now; the attempt is recorded (releasing the lease) only once fn has settled, so nobody else
      // starts while fn may still run here.
      flight.endRun(this.closing ? new OnceClosedError(key) : lease.reason);
      void settled.then(async () => {
        await this.record(key, held, lease.reason, this.closing ? 'failed' : 'lease-lost', event);
        finish();
      });
      return undefined;
    }

    try {
      let valueJson: string | undefined;
      try {
        if (first.threw) throw first.error;
        valueJson = encodeValue(first.value, key);
      } catch (error) {
        lease.stop();
        await this.record(key, held, error, 'failed', event);
        flight.endRun(error);
        return undefined;
      }
      if (!lease.isValid()) {
        // fn settled after the deadline (the process was paused, say) before our timers could abort it.
        const error = new LeaseLostError(
          `Lease lost: the lease of "${key}" expired before its value could be recorded.`,
          { key },
        );
        lease.lose(error);
        await this.record(key, held, error, 'lease-lost', event);
        flight.endRun(error);
        return undefined;
      }
      // fn has settled: from here the complete script, which checks the lease in the same step, decides.
      // No more renewals (here or on the standby thread), and no abort timer that a stall before the
      // reply is read would fire first, reporting a loss for a value that was recorded.
      lease.stop();
      const completeAt = performance.now(); // the done state's TTL starts after this
      const reply = await this.completeWhileValid(key, held, lease, valueJson, doneTtlMs, trace);
      if (!reply.ok) {
        const error = new LeaseLostError(
          `Lease lost: the value of "${key}" was not recorded (${reply.reason}); another attempt may have taken over.`,
          { key },
        );
        lease.lose(error);
        flight.endRun(error);
        return undefined;
      }
      if (listening('done')) publish('done', event());
      // Every caller gets the value as a follower would: a copy made from its JSON, which fn cannot
      // change afterwards through a reference it kept.
      const done: DoneValue = {
        value: decodeValue(valueJson),
        fencingToken: claim.token,
        attempt: claim.attempt,
      };
      if (trace !== undefined) done.leaderTrace = trace;
      return { done, by: 'here', expiresAt: expiry(completeAt, doneTtlMs ?? -1) };
    } catch (error) {
      // complete threw (a foreign value at the key, Redis gone past the lease): the attempt ends here
      // unrecorded, and observers hear of it as of any other failed attempt.
      lease.stop();
      if (listening('fail')) publish('fail', { ...event(), outcome: 'failed', error: errorName(error) });
      flight.endRun(error);
      return undefined;
    } finally {
      finish();
    }
  }

  /**
   * complete, tried again while the lease is ours when Redis does not answer: the script is idempotent
   * (a retry finds its own done state), so a lost reply cannot leave the value unrecorded while we
   * could still record it.
   */
  private async completeWhileValid(
    key: string,
    held: HeldLease,
    lease: Lease,
    valueJson: string | undefined,
    doneTtlMs: number | undefined,
    trace: string | undefined,
  ) {
    for (;;) {
      try {
        return await held.complete(valueJson, doneTtlMs, trace);
      } catch (error) {
        if (!(error instanceof RedisUnavailableError) || !lease.isValid()) throw error;
        debug('%s: complete not answered (%s); trying again', key, error.message);
        // A refusal that comes at once (a closed connection) must not spin.
        await new Promise((resolve) => setTimeout(resolve, COMPLETE_RETRY_MS).unref());
      }
    }
  }

  /**
   * Records an attempt that ended without the value, releasing the lease in the same script, so a
   * waiter takes over at once. Best effort: if Redis is unreachable, the lease simply expires.
   */
  private async record(
    key: string,
    held: HeldLease,
    error: unknown,
    outcome: 'failed' | 'lease-lost',
    event: () => Record<string, unknown>,
  ): Promise<void> {
    if (listening('fail')) publish('fail', { ...event(), outcome, error: errorName(error) });
    try {
      const reply = await held.fail(summarizeError(error), outcome);
      if (!reply.ok) debug('%s: failure not recorded (%s)', key, reply.reason);
    } catch (recordError) {
      debug('%s: could not record the failure: %s', key, errorText(recordError));
    }
  }
}

function failedError(
  key: string,
  attempts: number,
  last: ErrorSummary,
  lastOwner: string | undefined,
): OnceFailedError {
  return new OnceFailedError({
    key,
    attempts,
    lastErrorName: last.name,
    lastErrorMessage: last.message,
    lastOwner,
  });
}

function landing(names: KeyNames, state: StoredState, by: Landing['by'], expiresAt: number): Landing {
  const done: DoneValue = {
    value: decodeStoredValue(state.valueJson, names.key, names.state),
    fencingToken: state.token,
    attempt: state.attempts,
  };
  if (state.trace !== undefined) done.leaderTrace = state.trace;
  return { done, by, expiresAt };
}

/** `ttlMs` from `from` (a performance.now() instant); a negative TTL means none. */
function expiry(from: number, ttlMs: number): number {
  return ttlMs >= 0 ? from + ttlMs : Number.POSITIVE_INFINITY;
}

/** What fn receives; its signal is made only if fn looks at it. */
function context(
  key: string,
  claim: Extract<Claim, { kind: 'claimed' }>,
  nodeId: string,
  lease: Lease,
): OnceContext {
  return {
    key,
    fencingToken: claim.token,
    attempt: claim.attempt,
    nodeId,
    get signal() {
      return lease.signal;
    },
    previous: previousAttempt(claim.replaced),
  };
}

function errorName(error: unknown): string {
  return error instanceof Error ? error.name : typeof error;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
