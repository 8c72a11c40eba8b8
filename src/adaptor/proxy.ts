/**
 * The forwarding engine: libzmq's `zmq_proxy_steerable`, run on a thread of Deno's blocking
 * pool, steered over an inproc PAIR control socket.
 *
 * Every message is moved by C; JavaScript only asks for STATISTICS (exact frame and byte
 * counts of both sides, answered by the proxy itself) and TERMINATE. libzmq 4.3.5's proxy has
 * PAUSE and RESUME mixed up (fixed upstream by libzmq f8b3cc81) and acknowledges every command
 * on a PAIR control socket (fixed by 058ad60b): so a pause is TERMINATE and a new run, and the
 * acks are skipped; both can go once the addon's libzmq has those commits (docs/design.md).
 * Why this and not zeromq.js's `Proxy`: same speed (measured, see docs/design.md), but only
 * this route exposes STATISTICS, which the metrics need exact at any rate.
 *
 * Signals: a signal delivered to the pool thread the proxy runs on makes libzmq's poll return
 * EINTR, and `zmq_proxy_steerable` returns -1 as it does when the context is shut down. Nobody
 * asked it to end, so it is started again at once on the same sockets (no message is in flight
 * then: the proxy was waiting), and its counters go on from the last ones it reported. `main`
 * keeps signals off the pool's threads (`blockSignals`), so this is the second line of defence.
 *
 * Lifecycle: `Forwarder.start()` → `statistics()` → `stop()` → `close()`.
 * The frontend and backend sockets belong to the proxy thread until `done` resolves.
 */

import { ZMQ_LINGER, ZMQ_PAIR, ZMQ_XPUB, ZMQ_XSUB } from "../zmq/constants.ts";
import { type Context, proxySteerable, type Socket } from "../zmq/socket.ts";

/** Counters of one side of a proxy, as libzmq keeps them. */
export interface SideStatistics {
  /**
   * Frames received on this side's socket: libzmq 4.3.5 counts each part of a multipart
   * message (checked by tests/proxy_test.ts). Bytes are the frames' payload bytes.
   */
  readonly messagesIn: bigint;
  readonly bytesIn: bigint;
  /** Frames sent on this side's socket. */
  readonly messagesOut: bigint;
  readonly bytesOut: bigint;
}

/** Both sides of a proxy: frontend (e.g. XSUB) and backend (e.g. XPUB). */
export interface ProxyStatistics {
  readonly frontend: SideStatistics;
  readonly backend: SideStatistics;
}

let controlSeq = 0;

const ZERO: SideStatistics = { messagesIn: 0n, bytesIn: 0n, messagesOut: 0n, bytesOut: 0n };

function addSide(a: SideStatistics, b: SideStatistics): SideStatistics {
  return {
    messagesIn: a.messagesIn + b.messagesIn,
    bytesIn: a.bytesIn + b.bytesIn,
    messagesOut: a.messagesOut + b.messagesOut,
    bytesOut: a.bytesOut + b.bytesOut,
  };
}

function addStatistics(a: ProxyStatistics, b: ProxyStatistics): ProxyStatistics {
  return { frontend: addSide(a.frontend, b.frontend), backend: addSide(a.backend, b.backend) };
}

/** Options of `Forwarder.start`. */
export interface ForwarderOptions {
  /** Called each time the proxy was interrupted (EINTR) and started again; `count` so far. */
  readonly onRestart?: (count: number) => void;
  /**
   * More restarts than this within one second means something else is wrong: the proxy then
   * ends (`done` resolves -1) instead of spinning. Default 1000.
   */
  readonly maxRestartsPerSecond?: number;
  /**
   * The proxy's first run waits for this (the main channel: `SubscriberWait`). Meanwhile what
   * goes forward waits in the sockets' queues, while an XPUB's subscriptions are passed to the
   * XSUB at once (every 5 ms, on the JS thread, which owns the sockets until the first run),
   * so the publishers hear of the subscribers; `statistics()` answers at once (the
   * subscriptions passed, nothing forwarded), `pause()` runs its job at once, and `stop()` ends
   * it without a run.
   */
  readonly startWhen?: Promise<unknown>;
  /** While held: called when a message came back from the backend and was passed on. */
  readonly onHeldPass?: () => void;
}

/**
 * A proxy answers commands between bursts, within microseconds; one that has not answered for
 * this long is blocked inside a send (a PUSH whose peers stopped reading).
 */
const BLOCKED_AFTER_MS = 100;

/** While held (`startWhen`): how often what came back from the backend is passed on. */
const HELD_PUMP_MS = 5;

/** A pause that could not happen in time: the proxy is blocked inside a send. Its job did not run. */
export class ProxyBlockedError extends Error {
  override name = "ProxyBlockedError";
}

/** How long a pause may wait for the proxy to stop (`Forwarder.pause`) unless told. */
const PAUSE_TIMEOUT_MS = 1000;

/** A pause whose TERMINATE was sent or queued. */
interface PendingPause {
  readonly job: () => void;
  readonly done: PromiseWithResolvers<void>;
  readonly taken: PromiseWithResolvers<void>;
  cancelled: boolean;
}

/** Whether `promise` settles before `deadline` (a `performance.now()` time); leaves no timer. */
async function settlesWithin(promise: Promise<unknown>, deadline: number): Promise<boolean> {
  const late = Promise.withResolvers<boolean>();
  const timer = setTimeout(() => late.resolve(false), Math.max(0, deadline - performance.now()));
  try {
    return await Promise.race([promise.then(() => true, () => true), late.promise]);
  } finally {
    clearTimeout(timer);
    late.resolve(false);
  }
}

/** One running proxy between two sockets. */
export class Forwarder {
  /**
   * Resolves with libzmq's result when the proxy has ended for good: 0 after TERMINATE, -1 when
   * the context was shut down (or it kept failing). An interrupted proxy is restarted instead.
   */
  readonly done: Promise<number>;
  /** How many times the proxy was interrupted and restarted. */
  restarts = 0;
  #ctx: Context;
  #stopRequested = false;
  /** What earlier runs of the proxy had counted (as they last reported it). */
  #base: ProxyStatistics = { frontend: ZERO, backend: ZERO };
  /** The last counters this run reported. */
  #last: ProxyStatistics = { frontend: ZERO, backend: ZERO };
  /**
   * The pause whose TERMINATE was sent (or is queued): its job runs when that TERMINATE ends the
   * run; one given up on (`cancelled`) runs nothing but still takes that TERMINATE, so that it
   * can never end a later run. `taken` settles when a run ended by it, or the proxy ended.
   */
  #pause: PendingPause | undefined;
  /** Pauses wait for the one before them: one at a time. */
  #pauses: Promise<unknown> = Promise.resolve();
  #control: Socket;
  #proxyControl: Socket;
  #queue: Promise<unknown> = Promise.resolve();
  #pendingReply: Promise<unknown> = Promise.resolve();
  #statistics: Promise<ProxyStatistics> | undefined;
  /** When the request now in flight was sent (performance.now()), if one is. */
  #awaitingReplySince: number | undefined;
  #running = true;
  /** Ends the wait for a reply now in flight, if one is (the proxy ended). */
  #onEnd: (() => void) | undefined;
  /** Until the first run starts (`startWhen`). */
  #held = false;
  readonly #stopped = Promise.withResolvers<void>();

  private constructor(ctx: Context, frontend: Socket, backend: Socket, options: ForwarderOptions) {
    this.#ctx = ctx;
    const address = `inproc://adaptor-control-${++controlSeq}`;
    this.#control = ctx.socket(ZMQ_PAIR);
    this.#control.setInt(ZMQ_LINGER, 0);
    this.#control.bind(address);
    this.#proxyControl = ctx.socket(ZMQ_PAIR);
    this.#proxyControl.setInt(ZMQ_LINGER, 0);
    this.#proxyControl.connect(address);
    this.done = this.#run(frontend, backend, options).finally(() => {
      this.#running = false;
      this.#onEnd?.();
    });
  }

  async #run(frontend: Socket, backend: Socket, options: ForwarderOptions): Promise<number> {
    const limit = options.maxRestartsPerSecond ?? 1000;
    let windowStart = performance.now();
    let inWindow = 0;
    if (options.startWhen) {
      this.#held = true;
      // An XPUB's subscriptions go on meanwhile, so that the publishers hear of the subscribers
      // at once; what goes forward waits for the proxy. (A PUB backend passes nothing back.)
      const passBack = backend.type === ZMQ_XPUB && frontend.type === ZMQ_XSUB;
      const pump = passBack
        ? setInterval(() => {
          try {
            if (this.#passBack(backend, frontend) > 0) options.onHeldPass?.();
          } catch {
            clearInterval(pump); // the context is going away: the proxy will not start
          }
        }, HELD_PUMP_MS)
        : undefined;
      try {
        await Promise.race([options.startWhen, this.#stopped.promise]);
      } finally {
        clearInterval(pump);
      }
      if (passBack && !this.#stopRequested) this.#passBack(backend, frontend);
      this.#held = false;
      if (this.#stopRequested) return 0;
    }
    for (;;) {
      const rc = await proxySteerable(frontend, backend, null, this.#proxyControl);
      const pause = this.#pause;
      if (pause && rc === 0 && !this.#stopRequested) {
        // Ended by pause()'s TERMINATE: the sockets are the JS thread's until the next run.
        this.#pause = undefined;
        if (!pause.cancelled) {
          try {
            pause.job();
            pause.done.resolve();
          } catch (error) {
            pause.done.reject(error);
          }
        }
        pause.taken.resolve();
        this.#base = addStatistics(this.#base, this.#last);
        this.#last = { frontend: ZERO, backend: ZERO };
        continue;
      }
      if (rc === 0 || this.#stopRequested || this.#ctx.isShutDown) {
        this.#pause?.done.reject(new Error("the proxy stopped"));
        this.#pause?.taken.resolve();
        this.#pause = undefined;
        return rc;
      }
      // -1 and nobody asked it to end: a signal interrupted its wait (EINTR).
      const now = performance.now();
      if (now - windowStart > 1000) [windowStart, inWindow] = [now, 0];
      if (++inWindow > limit) return rc;
      this.#base = addStatistics(this.#base, this.#last);
      this.#last = { frontend: ZERO, backend: ZERO };
      this.restarts++;
      options.onRestart?.(this.restarts);
    }
  }

  /**
   * Moves what waits on `backend` to `frontend` without waiting (while held, on the JS thread,
   * which owns the sockets then), counted as the proxy counts it: per frame. Returns how many
   * messages it passed.
   */
  #passBack(backend: Socket, frontend: Socket): number {
    let { messagesIn, bytesIn } = this.#base.backend;
    let { messagesOut, bytesOut } = this.#base.frontend;
    let passed = 0;
    for (let n = 0; n < 10_000; n++) {
      const frames = backend.tryReceive();
      if (!frames) break;
      const bytes = BigInt(frames.reduce((sum, f) => sum + f.length, 0));
      messagesIn += BigInt(frames.length);
      bytesIn += bytes;
      if (!frontend.trySend(frames)) continue; // an XSUB sends to every publisher: it never refuses
      messagesOut += BigInt(frames.length);
      bytesOut += bytes;
      passed++;
    }
    this.#base = {
      frontend: { ...this.#base.frontend, messagesOut, bytesOut },
      backend: { ...this.#base.backend, messagesIn, bytesIn },
    };
    return passed;
  }

  /** Starts forwarding `frontend` → `backend` (and subscriptions back, for XSUB/XPUB). */
  static start(ctx: Context, frontend: Socket, backend: Socket, options: ForwarderOptions = {}): Forwarder {
    return new Forwarder(ctx, frontend, backend, options);
  }

  /** How long the request now in flight has waited for its answer (ms); undefined when none waits. */
  get unansweredForMs(): number | undefined {
    const since = this.#awaitingReplySince;
    return since === undefined ? undefined : performance.now() - since;
  }

  /** Whether the proxy loop is still running. */
  get running(): boolean {
    return this.#running;
  }

  /**
   * Exact counters, answered by the proxy thread between two bursts of messages. Calls made
   * while a request is in flight share it: a proxy blocked in a send (a PUSH at its HWM) keeps
   * one request waiting, not a pile of them. After a restart the counters go on from what the
   * earlier runs last reported (what they counted after their last report is not known).
   */
  statistics(): Promise<ProxyStatistics> {
    if (this.#held) return Promise.resolve(addStatistics(this.#base, this.#last));
    const asked = this.restarts;
    this.#statistics ??= this.#command("STATISTICS", true).then((frames) => {
      const n = frames!.map((f) => new DataView(f.buffer, f.byteOffset, 8).getBigUint64(0, true));
      const run = {
        frontend: { messagesIn: n[0], bytesIn: n[1], messagesOut: n[2], bytesOut: n[3] },
        backend: { messagesIn: n[4], bytesIn: n[5], messagesOut: n[6], bytesOut: n[7] },
      };
      // Across a restart it is unknown which run answered: keep the earlier figures then.
      if (this.restarts === asked) this.#last = run;
      return addStatistics(this.#base, this.#last);
    }).finally(() => this.#statistics = undefined);
    return this.#statistics;
  }

  /**
   * Runs `job` while the proxy is stopped, then starts it again on the same sockets: for what
   * only the thread that owns the sockets may do (reconnecting an endpoint with a new key).
   * Messages wait in libzmq's queues meanwhile (a few ms); the counters go on from the answer
   * asked just before, so frames moved between that answer and the stop (one burst at most) are
   * not counted. One pause at a time: a pause waits for the one before it.
   *
   * Bounded: a proxy blocked inside a send (a PUSH whose peers stopped reading) answers nothing,
   * so a pause that has not run its job within `timeoutMs` (its wait for earlier ones included)
   * rejects, and its job never runs later. Rejects with `job`'s error too (the proxy runs again
   * all the same), and when the proxy stops first.
   */
  pause(job: () => void, options: { timeoutMs?: number } = {}): Promise<void> {
    const deadline = performance.now() + (options.timeoutMs ?? PAUSE_TIMEOUT_MS);
    const turn = this.#pauses.then(() => this.#pauseNow(job, deadline));
    this.#pauses = turn.catch(() => {});
    return turn;
  }

  async #pauseNow(job: () => void, deadline: number): Promise<void> {
    const notRunning = () => !this.#running || this.#stopRequested;
    if (notRunning()) throw new Error("proxy is not running");
    if (this.#held) return job(); // not started yet: the sockets are ours
    // A pause given up on earlier still waits for its TERMINATE to end a run.
    if (this.#pause && !await settlesWithin(this.#pause.taken.promise, deadline)) {
      throw new ProxyBlockedError("the proxy is blocked (an earlier pause is still waiting for it)");
    }
    if (!await settlesWithin(this.statistics().catch(() => {}), deadline)) {
      throw new ProxyBlockedError("the proxy is blocked: it answered no statistics request");
    }
    if (notRunning()) throw new Error("proxy is not running");
    if (this.#held) return job();
    const pause: PendingPause = {
      job,
      done: Promise.withResolvers<void>(),
      taken: Promise.withResolvers<void>(),
      cancelled: false,
    };
    this.#pause = pause;
    this.#command("TERMINATE", false).catch(() => {
      // The proxy ended first: nothing will take this TERMINATE.
      pause.done.reject(new Error("proxy is not running"));
      pause.taken.resolve();
      if (this.#pause === pause) this.#pause = undefined;
    });
    if (!await settlesWithin(pause.done.promise.catch(() => {}), deadline)) {
      pause.cancelled = true;
      pause.done.reject(new ProxyBlockedError("the proxy is blocked: it did not stop for the pause"));
    }
    return pause.done.promise;
  }

  /**
   * Asks the proxy to end and waits up to `timeoutMs`. Returns whether it ended; if not, the
   * caller shuts the context down, which ends it with ETERM. The wait covers a TERMINATE still
   * queued behind an unanswered request (a proxy blocked in a send answers nothing); when a
   * request has already waited `BLOCKED_AFTER_MS` for its answer, the proxy is known to be
   * blocked and stop() does not wait at all.
   */
  async stop(timeoutMs = 500): Promise<boolean> {
    const ended = this.done.then(() => true);
    this.#stopRequested = true;
    this.#stopped.resolve();
    if (this.#held) return ended; // ends without a run
    if (this.#running) {
      this.#command("TERMINATE", false).catch(() => {}); // fails only if the proxy already ended
    }
    const waiting = this.#awaitingReplySince;
    if (waiting !== undefined && performance.now() - waiting >= BLOCKED_AFTER_MS) {
      return Promise.race([ended, Promise.resolve(false)]);
    }
    return await settlesWithin(ended, performance.now() + timeoutMs);
  }

  /**
   * Closes the control sockets; call after `done` resolved and, if a reply may still be awaited,
   * after the context was shut down (which ends that wait).
   */
  async close(): Promise<void> {
    await this.#pendingReply;
    this.#control.close();
    this.#proxyControl.close();
  }

  // Commands go one at a time: a reply must meet the request that asked for it.
  #command(name: string, expectReply: boolean): Promise<Uint8Array[] | undefined> {
    const run = async () => {
      if (!this.#running) throw new Error(`proxy is not running (${name})`);
      this.#control.trySend(name);
      if (!expectReply) return undefined;
      // This libzmq acknowledges other commands with an empty message, even on a PAIR;
      // skip such acks: the statistics reply is the 8-frame one.
      this.#awaitingReplySince = performance.now();
      // Not a race against `done`: each race would leave a reaction on it for as long as the
      // proxy runs. The end of the run settles this one wait instead.
      const ended = Promise.withResolvers<undefined>();
      this.#onEnd = () => ended.resolve(undefined);
      try {
        for (;;) {
          const receiving = this.#control.receive();
          this.#pendingReply = receiving;
          const reply = await Promise.race([receiving, ended.promise]);
          if (!reply) throw new Error(`proxy ended before answering ${name}`);
          if (reply.length === 8) return reply;
        }
      } finally {
        this.#awaitingReplySince = undefined;
        this.#onEnd = undefined;
        ended.resolve(undefined); // settled here or by the end of the run, never left pending
      }
    };
    const result = this.#queue.then(run, run);
    this.#queue = result.catch(() => {});
    return result;
  }
}
