/**
 * The cap on connections to a bound tcp socket (`--max-connections`), so that the network can
 * never take the adaptor's last file descriptors.
 *
 * Why: every accepted connection holds a descriptor. libzmq's tcp listener survives EMFILE (it
 * retries, and floods the monitor with `accept_failed` meanwhile), but its ipc listener asserts
 * on it (`ipc_listener.cpp`, SIGABRT): a flood of ZeroMQ connections to the XPUB followed by a
 * gateway worker's routine reconnect over ipc killed the process. So each bound tcp socket counts
 * its connections from its monitor (`accepted` adds the descriptor, `disconnected` removes it);
 * at the cap it stops taking new ones, and at nine tenths of it takes them again.
 *
 * How it stops: not by unbinding (libzmq's sessions belong to their listener, so an unbind closes
 * every connection the endpoint has, legitimate subscribers too), but in the kernel: a one-
 * instruction socket filter on the listening socket drops new connections' SYNs (`libc.ts
 * setAcceptFilter`); the connections it has are untouched, and the peers' kernels retry their
 * SYNs until it passes them again. What is already in the listen queue is still accepted, and
 * the monitor reports a moment after the accept, so a burst can overshoot the cap: the listen
 * backlog is kept small where descriptors are few (`listenBacklog`), and the budget keeps a
 * reserve for the overshoot, the ipc peers and the metrics server (`connectionBudget`).
 */

import { setAcceptFilter } from "../os/sockets.ts";
import { literal, log } from "../ops/log.ts";
import type { SocketEvent } from "../zmq/monitor.ts";
import { ConnectedPeers } from "../zmq/connected_peers.ts";

/** Descriptors kept out of the tcp sockets' budget: a burst's overshoot, ipc peers, HTTP, libzmq. */
export const DESCRIPTOR_RESERVE = 128;

/**
 * Connections each of `sockets` bound tcp sockets may hold: `configured` when given (> 0), else
 * what the descriptor limit leaves after those open now and `DESCRIPTOR_RESERVE`, shared out.
 * At least 1. Infinity where the limit is not known (no glibc) and nothing was configured.
 */
export function connectionBudget(
  configured: number,
  sockets: number,
  descriptors: { limit?: number; open?: number },
): number {
  if (configured > 0) return configured;
  const { limit, open } = descriptors;
  if (limit === undefined || open === undefined || !Number.isFinite(limit) || sockets === 0) return Infinity;
  return Math.max(1, Math.floor((limit - open - DESCRIPTOR_RESERVE) / sockets));
}

/**
 * The listen backlog of bound tcp endpoints: libzmq's 100 overflows when a hundred peers
 * reconnect at once (each then loses a second to a SYN retransmit), so 1024 where descriptors
 * are plenty; where they are few, a sixteenth of what is free (at least 8), since everything in
 * the queue is accepted even after the cap is reached.
 */
export function listenBacklog(descriptors: { limit?: number; open?: number }): number {
  const { limit, open } = descriptors;
  if (limit === undefined || open === undefined || !Number.isFinite(limit)) return 1024;
  return Math.max(8, Math.min(1024, Math.floor((limit - open) / 16)));
}

/** One bound tcp socket's connections and whether it takes new ones. */
export class ConnectionCap {
  readonly #peers = new ConnectedPeers(new Set(["accepted"]));
  /** The descriptors of the socket's tcp listeners (the `listening` events' values). */
  readonly #listeners = new Set<number>();
  #cap = Infinity;
  readonly #socket: string;
  #listening = true;
  #closed = false;
  /** Times the cap was reached (the socket stopped taking connections). */
  reached = 0;

  /** `socket` names it in messages ("XPUB"); no cap until `setCap`. */
  constructor(socket: string) {
    this.#socket = socket;
  }

  /** The cap (Infinity: none), set once the adaptor knows its descriptors (after it opened all). */
  get cap(): number {
    return this.#cap;
  }

  setCap(cap: number): void {
    this.#cap = cap;
    this.#update();
  }

  /** Connections held now. */
  get connections(): number {
    return this.#peers.size;
  }

  /** Whether the socket takes new tcp connections (it is below the cap). */
  get listening(): boolean {
    return this.#listening;
  }

  /** One event of the socket. */
  report(event: SocketEvent): void {
    if (!/^tcp:/.test(event.endpoint)) return;
    if (event.name === "listening") this.#listeners.add(event.value);
    else if (this.#peers.report(event) === 0) return;
    this.#update();
  }

  /** Stops acting (the adaptor is stopping). */
  close(): void {
    this.#closed = true;
  }

  #update(): void {
    if (this.#closed || !Number.isFinite(this.#cap)) return;
    const count = this.#peers.size;
    const resume = Math.floor(this.#cap * 0.9);
    if (this.#listening && count >= this.#cap) {
      this.#listening = false;
      this.reached++;
      const done = [...this.#listeners].filter((fd) => setAcceptFilter(fd, true)).length;
      log().warn(literal(
        `${this.#socket} holds ${count} connections, its --max-connections ${this.#cap}: it takes no new ` +
          `tcp connection until they are ${resume} or fewer` +
          (done < this.#listeners.size ? " (the kernel refused the filter: it cannot stop them)" : ""),
      ));
    } else if (!this.#listening && count <= resume) {
      this.#listening = true;
      for (const fd of this.#listeners) setAcceptFilter(fd, false);
      log().info(literal(`${this.#socket} takes tcp connections again (${count} held)`));
    }
  }
}
