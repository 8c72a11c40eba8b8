/**
 * The peers connected to one socket, by file descriptor, as its monitor events tell: libzmq's
 * value of `accepted` and `connected` is the connection's descriptor, and `disconnected` names
 * it again when it ends. The publisher watch, the connection cap and the metrics count with it.
 */

import type { SocketEvent } from "./monitor.ts";

/** The events that open a connection to a peer. */
const OPENS: ReadonlySet<string> = new Set(["accepted", "connected"]);

export class ConnectedPeers {
  readonly #fds = new Set<number>();
  readonly #opens: ReadonlySet<string>;

  /** `opens`: the events that count as a new peer (both by default; `accepted` for inbound only). */
  constructor(opens: ReadonlySet<string> = OPENS) {
    this.#opens = opens;
  }

  /** Peers connected now. */
  get size(): number {
    return this.#fds.size;
  }

  /** Takes one event; returns 1 when it added a peer, -1 when it removed one, else 0. */
  report(event: SocketEvent): 1 | -1 | 0 {
    if (this.#opens.has(event.name)) return this.#fds.has(event.value) ? 0 : (this.#fds.add(event.value), 1);
    if (event.name === "disconnected" && this.#fds.delete(event.value)) return -1;
    return 0;
  }
}
