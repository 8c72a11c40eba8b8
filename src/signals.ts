/**
 * The signals the adaptor handles, installed before anything else runs (see `main.ts`):
 *
 * - SIGINT, SIGTERM: stop; exit 0 within 2 s. One that arrives during start-up stops the
 *   adaptor as soon as it is up (or has failed to start).
 * - SIGHUP: reread `--curve-clients` (`systemctl reload`); never stops the adaptor.
 * - SIGUSR1: log each channel's totals. SIGUSR2: ignored. Both would otherwise kill the process
 *   with their default action and leave its socket files behind.
 *
 * And the shield: `shieldWaits` keeps these signals off the threads that wait in libzmq.
 * Deno's blocking-pool threads do not block signals, so a signal could land on the thread in
 * `zmq_proxy_steerable` or a blocking receive and end its wait with EINTR. The waits survive
 * that anyway (they restart: `zmq.ts`, `proxy.ts`), but a restarted proxy starts its counters
 * anew, so the shield keeps the counters exact.
 */

import { blockSignals, SIGNAL_NUMBERS } from "./libc.ts";

/** The signals that stop the adaptor. */
export const STOP_SIGNALS = ["SIGINT", "SIGTERM"] as const;

/** Every signal the adaptor handles. */
export const HANDLED_SIGNALS = [...STOP_SIGNALS, "SIGHUP", "SIGUSR1", "SIGUSR2"] as const;

export type HandledSignal = typeof HANDLED_SIGNALS[number];

/** Listeners for every handled signal, installed by `listenForSignals`. */
export interface SignalListeners {
  /** Resolves with the first stop signal. */
  readonly stop: Promise<HandledSignal>;
  /** Sets what SIGHUP, SIGUSR1 and SIGUSR2 do from now on (until then each is logged by `early`). */
  on(signal: Exclude<HandledSignal, "SIGINT" | "SIGTERM">, action: () => void): void;
  /** Removes every listener (tests; a process that stops simply exits). */
  close(): void;
}

/**
 * Installs listeners for every handled signal at once. Before `on()` sets an action, SIGHUP,
 * SIGUSR1 and SIGUSR2 go to `early(signal)`.
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
  return {
    stop,
    on: (signal, action) => void actions.set(signal, action),
    close() {
      for (const [signal, listener] of installed) Deno.removeSignalListener(signal, listener);
    },
  };
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
  return blockSignals(HANDLED_SIGNALS.map((s) => SIGNAL_NUMBERS[s]), options.verify === false ? 0 : 50);
}
