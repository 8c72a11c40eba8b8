/**
 * The forwarding engine: libzmq's `zmq_proxy_steerable`, run on a thread of Deno's blocking
 * pool, steered over an inproc PAIR control socket.
 *
 * Every message is moved by C; JavaScript only asks for STATISTICS (exact frame and byte
 * counts of both sides, answered by the proxy itself) and TERMINATE. (PAUSE is not offered:
 * the libzmq in zeromq 6.8 acknowledges it but keeps forwarding; see docs/design.md.)
 * Why this and not zeromq.js's `Proxy`: same speed (measured, see docs/design.md), but only
 * this route exposes STATISTICS, which the metrics need exact at any rate.
 *
 * Lifecycle: `Forwarder.start()` → `statistics()` → `stop()` → `close()`.
 * The frontend and backend sockets belong to the proxy thread until `done` resolves.
 */

import { type Context, proxySteerable, type Socket, ZMQ_LINGER, ZMQ_PAIR } from "./zmq.ts";

/** Counters of one side of a proxy, as libzmq keeps them. */
export interface SideStatistics {
  /**
   * Frames received on this side's socket: libzmq 4.3.5 counts each part of a multipart
   * message (checked by tests/engine_test.ts). Bytes are the frames' payload bytes.
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

/**
 * A proxy answers commands between bursts, within microseconds; one that has not answered for
 * this long is blocked inside a send (a PUSH whose peers stopped reading).
 */
const BLOCKED_AFTER_MS = 100;

/** One running proxy between two sockets. */
export class Forwarder {
  /** Resolves with libzmq's result when the proxy ends: 0 after TERMINATE, -1 on ETERM. */
  readonly done: Promise<number>;
  #control: Socket;
  #proxyControl: Socket;
  #queue: Promise<unknown> = Promise.resolve();
  #pendingReply: Promise<unknown> = Promise.resolve();
  #statistics: Promise<ProxyStatistics> | undefined;
  /** When the request now in flight was sent (performance.now()), if one is. */
  #awaitingReplySince: number | undefined;
  #running = true;

  private constructor(ctx: Context, frontend: Socket, backend: Socket) {
    const address = `inproc://adaptor-control-${++controlSeq}`;
    this.#control = ctx.socket(ZMQ_PAIR);
    this.#control.setInt(ZMQ_LINGER, 0);
    this.#control.bind(address);
    this.#proxyControl = ctx.socket(ZMQ_PAIR);
    this.#proxyControl.setInt(ZMQ_LINGER, 0);
    this.#proxyControl.connect(address);
    this.done = proxySteerable(frontend, backend, null, this.#proxyControl).finally(() => {
      this.#running = false;
    });
  }

  /** Starts forwarding `frontend` → `backend` (and subscriptions back, for XSUB/XPUB). */
  static start(ctx: Context, frontend: Socket, backend: Socket): Forwarder {
    return new Forwarder(ctx, frontend, backend);
  }

  /** Whether the proxy loop is still running. */
  get running(): boolean {
    return this.#running;
  }

  /**
   * Exact counters, answered by the proxy thread between two bursts of messages. Calls made
   * while a request is in flight share it: a proxy blocked in a send (a PUSH at its HWM) keeps
   * one request waiting, not a pile of them.
   */
  statistics(): Promise<ProxyStatistics> {
    this.#statistics ??= this.#command("STATISTICS", true).then((frames) => {
      const n = frames!.map((f) => new DataView(f.buffer, f.byteOffset, 8).getBigUint64(0, true));
      return {
        frontend: { messagesIn: n[0], bytesIn: n[1], messagesOut: n[2], bytesOut: n[3] },
        backend: { messagesIn: n[4], bytesIn: n[5], messagesOut: n[6], bytesOut: n[7] },
      };
    }).finally(() => this.#statistics = undefined);
    return this.#statistics;
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
    if (this.#running) {
      this.#command("TERMINATE", false).catch(() => {}); // fails only if the proxy already ended
    }
    const waiting = this.#awaitingReplySince;
    if (waiting !== undefined && performance.now() - waiting >= BLOCKED_AFTER_MS) {
      return Promise.race([ended, Promise.resolve(false)]);
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), timeoutMs));
    const result = await Promise.race([ended, timeout]);
    clearTimeout(timer);
    return result;
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
      try {
        for (;;) {
          const receiving = this.#control.receive();
          this.#pendingReply = receiving;
          const reply = await Promise.race([receiving, this.done.then(() => undefined)]);
          if (!reply) throw new Error(`proxy ended before answering ${name}`);
          if (reply.length === 8) return reply;
        }
      } finally {
        this.#awaitingReplySince = undefined;
      }
    };
    const result = this.#queue.then(run, run);
    this.#queue = result.catch(() => {});
    return result;
  }
}
