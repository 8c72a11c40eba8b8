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

import { type Libc, libc, readSmallFile } from "./libc.ts";

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

/** Linux's numbers of the signals the adaptor handles (the same on x86_64 and arm64). */
export const SIGNAL_NUMBERS: Readonly<Record<string, number>> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGUSR1: 10,
  SIGUSR2: 12,
  SIGTERM: 15,
};

const SIG_BLOCK = 0;

/** SIG_ERR, (void *) -1, as the pointer's value. */
const SIG_ERR = 0xffff_ffff_ffff_ffffn;

/**
 * Sets the disposition of `signals` to SIG_IGN for the whole process: the kernel then discards
 * them, and no handler anyone installed earlier runs. Returns false where libc cannot be opened
 * or a call failed.
 */
export function ignoreSignals(signals: readonly number[]): boolean {
  const c = libc();
  if (!c) return false;
  const ignore = Deno.UnsafePointer.create(1n); // SIG_IGN
  return signals.every((n) => {
    const previous = BigInt(Deno.UnsafePointer.value(c.signal(n, ignore)));
    return previous !== SIG_ERR && previous !== -1n;
  });
}

/** This process's signal dispositions, as /proc/self/status shows them (bit n-1 is signal n). */
export interface SignalDispositions {
  /** SigIgn: ignored by the process. */
  readonly ignored: bigint;
  /** SigCgt: caught (a handler is installed). */
  readonly caught: bigint;
  /** SigBlk of the calling thread. */
  readonly blocked: bigint;
}

/** Reads this process's signal dispositions; undefined where libc or /proc cannot be read. */
export function signalDispositions(): SignalDispositions | undefined {
  const c = libc();
  if (!c) return undefined;
  const status = readSmallFile(c, "/proc/thread-self/status");
  const field = (name: string) => {
    const hex = new RegExp(`^${name}:\\s*([0-9a-f]+)`, "m").exec(status ?? "")?.[1];
    return hex === undefined ? undefined : BigInt(`0x${hex}`);
  };
  const [ignored, caught, blocked] = [field("SigIgn"), field("SigCgt"), field("SigBlk")];
  if (ignored === undefined || caught === undefined || blocked === undefined) return undefined;
  return { ignored, caught, blocked };
}

/**
 * Blocks `signals` on the calling (JavaScript) thread and on every thread of Deno's blocking
 * pool; threads the pool starts later are started by this thread and inherit its mask.
 *
 * Why: Deno's pool threads do not block signals, so a signal with a handler (SIGHUP on
 * `systemctl reload`) may be delivered to the thread waiting in `zmq_proxy_steerable` or a
 * blocking receive, whose poll then returns EINTR and ends the wait. With the signals blocked
 * there, the kernel delivers them to a thread that does not block them (V8's workers), where
 * Deno's handler runs as before.
 *
 * The pool's existing threads are reached by calling `pthread_sigmask` on the pool: an idle
 * thread takes each call. Which thread takes which is not ours to choose (on a busy machine one
 * thread may take several while another sleeps on), so the threads are read back from
 * /proc/self/task (through libc: Deno's own file API refuses /proc/self without --allow-all)
 * and calls go out again until every pool thread blocks the signals, `rounds` times at most.
 * Returns the number of pool threads that still do not (0: all shielded); undefined with
 * `rounds` 0 (one round of calls, not read back) or where libc cannot be opened (musl: nothing
 * was blocked).
 */
export async function blockSignals(signals: readonly number[], rounds = 50): Promise<number | undefined> {
  const c = libc();
  if (!c) return undefined;
  const set = new BigUint64Array(16); // sigset_t: 1024 bits
  let bits = 0n;
  for (const n of signals) bits |= 1n << BigInt(n - 1);
  set[0] = bits; // every signal the adaptor handles is below 64
  if (c.pthread_sigmask(SIG_BLOCK, set, null) !== 0) return undefined;
  let exposed = rounds > 0 ? poolThreadsNotBlocking(c, bits) : 4;
  if (rounds === 0) {
    await Promise.all(Array.from({ length: exposed }, () => c.pthread_sigmask_pool(SIG_BLOCK, set, null)));
    return undefined; // not read back
  }
  for (let round = 0; round < rounds && exposed > 0; round++) {
    await Promise.all(
      Array.from({ length: exposed + 4 }, () => c.pthread_sigmask_pool(SIG_BLOCK, set, null)),
    );
    if (round > 0) await new Promise((resolve) => setTimeout(resolve, 2)); // let busy ones finish
    exposed = poolThreadsNotBlocking(c, bits);
  }
  return exposed;
}

/** How many of this process's blocking-pool threads do not block all of `bits` (SigBlk). */
function poolThreadsNotBlocking(c: Libc, bits: bigint): number {
  const encoder = new TextEncoder();
  const dir = c.opendir(encoder.encode("/proc/self/task\0"));
  if (!dir) return 0;
  let exposed = 0;
  try {
    for (let entry = c.readdir(dir); entry; entry = c.readdir(dir)) {
      const name = new Deno.UnsafePointerView(entry).getCString(19); // struct dirent's d_name
      if (!/^\d+$/.test(name)) continue;
      const comm = readSmallFile(c, `/proc/self/task/${name}/comm`);
      if (!comm?.startsWith("tokio-runtime")) continue; // Deno's pools; libzmq's own threads block all
      const blocked = /^SigBlk:\s*([0-9a-f]+)/m.exec(
        readSmallFile(c, `/proc/self/task/${name}/status`) ?? "",
      );
      if (blocked && (BigInt(`0x${blocked[1]}`) & bits) !== bits) exposed++;
    }
  } finally {
    c.closedir(dir);
  }
  return exposed;
}

const SIGXFSZ = 25;

/**
 * Ignores SIGXFSZ: a write past the file-size limit (`ulimit -f`) then fails with EFBIG, which
 * the writer reports, instead of killing the process with no word. Returns whether it was set.
 */
export function ignoreFileSizeSignal(): boolean {
  return ignoreSignals([SIGXFSZ]);
}
