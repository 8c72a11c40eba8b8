/**
 * The signals the adaptor handles, installed before anything else runs (see `main.ts`):
 *
 * - SIGINT, SIGTERM: stop; exit 0 within 2 s. One that arrives during start-up stops the
 *   adaptor as soon as it is up (or has failed to start).
 * - SIGHUP: reread `--curve-clients` and `--curve-servers` (`systemctl reload`), then log each
 *   channel's totals; never stops the adaptor.
 * - SIGUSR1, SIGUSR2: ignored (SIG_IGN: the kernel discards them). Deno (≥ 2.9.2) opens the V8
 *   inspector on 127.0.0.1:9229 when a process gets SIGUSR1, whatever JavaScript listens: an
 *   unauthenticated debugger any local user could run code in. So the adaptor claims both
 *   signals in Deno's registry first (the runtime installs its OS handler only for a signal's
 *   first listener), then sets their disposition to SIG_IGN, so that no handler can run, now
 *   or when the runtime subscribes later (`ignoredSignalsHold` checks it).
 *
 * And the shield: `shieldWaits` keeps these signals off the threads that wait in libzmq.
 * Deno's blocking-pool threads do not block signals, so a signal could land on the thread in
 * `zmq_proxy_steerable` or a blocking receive and end its wait with EINTR. The waits survive
 * that anyway (they restart: `zmq/socket.ts`, `adaptor/proxy.ts`), but a restarted proxy starts its counters
 * anew, so the shield keeps the counters exact.
 */

import { blockSignals, ignoreSignals, SIGNAL_NUMBERS, signalDispositions } from "./libc.ts";

/** The signals that stop the adaptor. */
export const STOP_SIGNALS = ["SIGINT", "SIGTERM"] as const;

/** Every signal the adaptor handles. */
export const HANDLED_SIGNALS = [...STOP_SIGNALS, "SIGHUP"] as const;

/** The signals the adaptor ignores: their default action would kill it, and SIGUSR1's handler opens the inspector. */
export const IGNORED_SIGNALS = ["SIGUSR1", "SIGUSR2"] as const;

export type HandledSignal = typeof HANDLED_SIGNALS[number];

/** Listeners for every handled signal, installed by `listenForSignals`. */
export interface SignalListeners {
  /** Resolves with the first stop signal. */
  readonly stop: Promise<HandledSignal>;
  /** Sets what SIGHUP does from now on (until then it goes to `early`). */
  on(signal: Exclude<HandledSignal, "SIGINT" | "SIGTERM">, action: () => void): void;
  /** Removes every listener (tests; a process that stops simply exits). */
  close(): void;
}

/**
 * Installs listeners for every handled signal at once, and ignores SIGUSR1 and SIGUSR2 (throws
 * where that cannot be done: a SIGUSR1 would open the V8 inspector). Before `on()` sets an
 * action, SIGHUP goes to `early(signal)`.
 */
export function listenForSignals(early: (signal: HandledSignal) => void = () => {}): SignalListeners {
  let resolveStop!: (signal: HandledSignal) => void;
  const stop = new Promise<HandledSignal>((resolve) => resolveStop = resolve);
  const actions = new Map<HandledSignal, () => void>();
  const installed: [HandledSignal, () => void][] = [];
  for (const signal of HANDLED_SIGNALS) {
    const listener = (STOP_SIGNALS as readonly string[]).includes(signal)
      ? () => resolveStop(signal)
      : () => (actions.get(signal) ?? (() => early(signal)))();
    Deno.addSignalListener(signal, listener);
    installed.push([signal, listener]);
  }
  ignoreForGood();
  return {
    stop,
    on: (signal, action) => void actions.set(signal, action),
    close() {
      for (const [signal, listener] of installed) Deno.removeSignalListener(signal, listener);
    },
  };
}

// Never called: the kernel discards an ignored signal. It holds the runtime's registry entry.
const claimed = () => {};

/** Claims SIGUSR1/SIGUSR2 in Deno's registry, then sets SIG_IGN; throws where it does not hold. */
function ignoreForGood(): void {
  for (const signal of IGNORED_SIGNALS) Deno.addSignalListener(signal, claimed);
  const numbers = IGNORED_SIGNALS.map((s) => SIGNAL_NUMBERS[s]);
  if (!ignoreSignals(numbers) || !ignoredSignalsHold()) {
    throw new Error(
      `cannot ignore ${IGNORED_SIGNALS.join(" and ")} (libc.so.6 signal(2)): refusing to run, ` +
        "SIGUSR1 would open the V8 inspector",
    );
  }
}

/**
 * Whether SIGUSR1 and SIGUSR2 are still ignored, as /proc/self/status says (SigIgn), and caught
 * by nothing; sets SIG_IGN again if not. False says a handler had been installed meanwhile.
 */
export function ignoredSignalsHold(): boolean {
  const numbers = IGNORED_SIGNALS.map((s) => SIGNAL_NUMBERS[s]);
  const bits = numbers.reduce((all, n) => all | (1n << BigInt(n - 1)), 0n);
  const now = signalDispositions();
  if (now && (now.ignored & bits) === bits && (now.caught & bits) === 0n) return true;
  ignoreSignals(numbers);
  return false;
}

/**
 * Blocks every handled signal on this thread and on Deno's blocking-pool threads (now and to
 * come): the kernel then delivers them to a thread that waits on nothing of libzmq's, and
 * Deno's handlers run as before. Call before the first libzmq wait. Resolves with the number of
 * pool threads left unshielded (0 when all are; undefined without glibc): their waits then rely
 * on restarting alone. `verify: false` blocks them on this thread (so every pool thread started
 * from now on inherits it) and makes one round of calls, without reading the threads back.
 */
export function shieldWaits(options: { verify?: boolean } = {}): Promise<number | undefined> {
  const signals = [...HANDLED_SIGNALS, ...IGNORED_SIGNALS].map((s) => SIGNAL_NUMBERS[s]);
  return blockSignals(signals, options.verify === false ? 0 : 50);
}
