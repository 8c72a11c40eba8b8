/**
 * The main channel's start after a restart: forwarding waits for the tracking services.
 *
 * A gateway worker's PUB keeps its pipe, and the subscriptions on it, while the adaptor is down
 * (libzmq keeps a connecting socket's pipe across reconnects, ZMQ_IMMEDIATE being off), queues
 * what it publishes meanwhile up to its high-water mark, and flushes that into the new adaptor
 * the moment it reconnects: 100–250 ms after the bind. Tracking services come back on their own
 * schedule (a back-off, a slower host, an aggregator's XSUB). A proxy running from the start
 * hands the flush to an XPUB with no subscriber yet, which discards it; a proxy that starts
 * once a subscriber is back forwards it, the flush having waited in the XSUB's queue.
 *
 * So the main channel's proxy starts when the first subscription has come in (the held proxy
 * passes subscriptions upstream and says so), plus `SUBSCRIBED_SETTLE_MS` for the rest of that
 * burst; or, where no subscription can be seen (a PUB backend, `--subscriptions local`, keeps them
 * to itself), after the first subscriber's handshake and the time its subscriptions take to
 * follow it: they leave the subscriber once it has our half of the handshake, so they arrive
 * within a round trip of ours (`settleAfterHandshake`: the kernel's round-trip time of that tcp
 * connection, twice, plus `SUBSCRIBED_SETTLE_MS`; `SETTLE_MS` when it cannot be known); or after
 * `--subscriber-wait` ms, whichever is first.
 */

import { literal, log } from "../ops/log.ts";
import type { SocketEvent } from "../zmq/monitor.ts";
import { tcpRoundTripMs } from "../os/sockets.ts";

/** After the first subscriber's handshake, when its round-trip time is unknown. */
export const SETTLE_MS = 100;

/** After the first subscription: time for the rest of its burst. */
export const SUBSCRIBED_SETTLE_MS = 20;

/** After the first subscriber's handshake over a connection with this round-trip time (ms). */
export function settleAfterHandshake(roundTripMs: number | undefined): number {
  return roundTripMs === undefined ? SETTLE_MS : SUBSCRIBED_SETTLE_MS + Math.ceil(2 * roundTripMs);
}

/** How `SubscriberWait` learns a connection's round-trip time: the kernel's, by default. */
export interface SubscriberWaitOptions {
  /** The round trip of the connection `fd` in ms; undefined when unknown. */
  readonly roundTripMs?: (fd: number) => number | undefined;
}

/** Settles `ready` once a subscriber is back (and `SETTLE_MS` more) or `waitMs` have passed. */
export class SubscriberWait {
  /** Settles when forwarding may start. */
  readonly ready: Promise<void>;
  readonly #started = performance.now();
  readonly #done = Promise.withResolvers<void>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #settled = false;
  #seen: "nothing" | "handshake" | "subscription" = "nothing";
  /** The descriptors of the connections not yet through their handshake, by peer address. */
  readonly #connections = new Map<string, { fd: number; ipc: boolean }>();
  readonly #roundTripMs: (fd: number) => number | undefined;

  /** `waitMs` 0: `ready` settles at once. */
  constructor(waitMs: number, options: SubscriberWaitOptions = {}) {
    this.#roundTripMs = options.roundTripMs ?? tcpRoundTripMs;
    this.ready = this.#done.promise;
    if (waitMs <= 0) this.#finish(undefined);
    else this.#timer = setTimeout(() => this.#finish(`no subscriber within ${waitMs} ms`), waitMs);
  }

  /** One event of the XPUB: the first handshake with a subscriber starts `settleAfterHandshake`. */
  report(event: SocketEvent): void {
    if (this.#settled || this.#seen !== "nothing") return;
    if (event.name === "accepted" || event.name === "connected") {
      if (this.#connections.size < 64) {
        this.#connections.set(event.remote, { fd: event.value, ipc: event.endpoint.startsWith("ipc://") });
      }
      return;
    }
    if (event.name !== "handshake_succeeded") return;
    const connection = this.#connections.get(event.remote);
    this.#connections.clear();
    const roundTrip = !connection ? undefined : connection.ipc ? 0 : this.#roundTripMs(connection.fd);
    this.#settleIn(settleAfterHandshake(roundTrip), "handshake");
  }

  /** A subscription came in (the held proxy passed it upstream): `SUBSCRIBED_SETTLE_MS` more. */
  subscribed(): void {
    if (this.#settled || this.#seen === "subscription") return;
    this.#settleIn(SUBSCRIBED_SETTLE_MS, "subscription");
  }

  #settleIn(ms: number, seen: "handshake" | "subscription"): void {
    this.#seen = seen;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#finish("a subscriber is back"), ms);
  }

  /** Settles `ready` now (a stop, or the adaptor's start failed): no timer is left behind. */
  close(): void {
    this.#finish(undefined);
  }

  #finish(why: string | undefined): void {
    if (this.#settled) return;
    this.#settled = true;
    clearTimeout(this.#timer);
    if (why) {
      const ms = (performance.now() - this.#started).toFixed(0);
      log().info(literal(`Forwarding starts after ${ms} ms: ${why} (--subscriber-wait)`));
    }
    this.#done.resolve();
  }
}
