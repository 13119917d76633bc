/**
 * Re-entry detection without a process-wide cost.
 *
 * `run(key)` awaited from inside its own fn would wait for itself. fn runs inside an async function
 * with a name unique to its attempt; V8's async stack traces follow `await` chains, so a call made
 * from fn — directly, or through any depth of awaited async functions — sees that name among its
 * frames. A call reached through a timer, an event or a bare `.then()` does not: it is not fn waiting
 * on itself (fn has returned, or goes on without waiting for it), so it is not refused.
 *
 * The frames are read only on the rare path: a call for a key whose fn runs in this process right now.
 * Nothing else pays, unlike AsyncLocalStorage, which on Node 20 turns on promise hooks for the whole
 * process once used.
 */
let named = 0;
/** Frames free to run the next fn: making a named function costs, so each is used again once free. */
const free: LeadFrame[] = [];

export interface LeadFrame {
  readonly name: string;
  /** Calls fn(ctx) inside the named frame. */
  run<C, T>(fn: (ctx: C) => T | Promise<T>, ctx: C): Promise<T>;
  /** fn has settled: the frame may run another fn (its name then means that one). */
  release(): void;
}

/** A frame with a name no fn running now has. */
export function leadFrame(): LeadFrame {
  const reused = free.pop();
  if (reused) return reused;
  const name = `redisOnceFn${++named}`;
  // A computed property key names the function; `await` keeps the frame on the async stack.
  const holder = {
    async [name]<C, T>(fn: (ctx: C) => T | Promise<T>, ctx: C): Promise<T> {
      return await fn(ctx);
    },
  };
  const frame: LeadFrame = {
    name,
    run: holder[name as keyof typeof holder] as LeadFrame['run'],
    release: () => {
      if (free.length < 16384) free.push(frame);
    },
  };
  return frame;
}

/** True when the current (async) stack passes through the frame named `name`. */
export function isInside(name: string): boolean {
  const { prepareStackTrace, stackTraceLimit } = Error;
  try {
    Error.stackTraceLimit = Number.POSITIVE_INFINITY;
    // Structured call sites, whatever format the application (or a source-map tool) set for stacks.
    Error.prepareStackTrace = (_, callSites) => callSites;
    const holder: { stack?: NodeJS.CallSite[] } = {};
    Error.captureStackTrace(holder);
    return (holder.stack ?? []).some((site) => site.getFunctionName() === name);
  } finally {
    Error.prepareStackTrace = prepareStackTrace;
    Error.stackTraceLimit = stackTraceLimit;
  }
}
