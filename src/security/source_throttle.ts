/**
 * Hosts that keep failing authentication are kept out by the kernel for a while
 * (`--block-after-denials`), so that a handshake flood from one host costs the adaptor nothing.
 *
 * Why: a CURVE handshake costs the server its crypto on the I/O thread that also moves everyone's
 * messages, and a ZAP request and several monitor events on the JavaScript thread, before the
 * client's key can be refused. A host refused `limit` times within `windowMs` has the SYNs of its
 * new connections dropped on the socket's tcp listeners for `blockMs` (a socket filter with its
 * address, `libc.ts setBlockedHosts`): no accept, no handshake, no event. Its kernel retries its
 * SYNs meanwhile. Connections already made, its own included, are untouched; a legitimate client
 * behind the same address (a NAT) cannot make new connections until the block ends.
 */

import { literal, log } from "../ops/log.ts";
import type { SocketEvent } from "../zmq/monitor.ts";
import { setBlockedHosts } from "../os/sockets.ts";
import { LogThrottle } from "../ops/throttle.ts";

/** Options of a `SourceThrottle`. */
export interface SourceThrottleOptions {
  /** Denials from one host within `windowMs` that block it. */
  readonly limit: number;
  /** Default 10 s. */
  readonly windowMs?: number;
  /** How long a host stays blocked; default 60 s. */
  readonly blockMs?: number;
  /** Hosts blocked at once, at most (the filter's size is bounded too); default 1000. */
  readonly maxHosts?: number;
}

/** The host of a peer address: `tcp://10.0.0.7:5123` → `10.0.0.7`, `tcp://[::1]:5123` → `::1`. */
export function hostOf(address: string): string | undefined {
  const text = address.replace(/^tcp:\/\//, "");
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(text);
  if (bracketed) return bracketed[1];
  if (/^[\d.]+:\d+$/.test(text)) return text.slice(0, text.lastIndexOf(":"));
  return /^[\da-f.:]+$/i.test(text) && text !== "" ? text : undefined;
}

/** One socket's blocked hosts. */
export class SourceThrottle {
  readonly #socket: string;
  readonly #limit: number;
  readonly #windowMs: number;
  readonly #blockMs: number;
  readonly #maxHosts: number;
  readonly #listeners = new Set<number>();
  /** Denials per host in its current window. */
  readonly #counts = new Map<string, { since: number; n: number }>();
  /** Blocked hosts, until when (performance.now()). */
  readonly #blocked = new Map<string, number>();
  readonly #log = new LogThrottle({ write: (line) => log("auth").warn(literal(line)), perWindow: 5 });
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  /** Hosts blocked since start. */
  blocks = 0;

  /** `socket` names it in messages ("XPUB"). */
  constructor(socket: string, options: SourceThrottleOptions) {
    this.#socket = socket;
    this.#limit = options.limit;
    this.#windowMs = options.windowMs ?? 10_000;
    this.#blockMs = options.blockMs ?? 60_000;
    this.#maxHosts = options.maxHosts ?? 1000;
  }

  /** Hosts blocked now. */
  get blocked(): string[] {
    return [...this.#blocked.keys()];
  }

  /** One event of the socket: its tcp listeners' descriptors. */
  report(event: SocketEvent): void {
    if (event.name !== "listening" || !/^tcp:/.test(event.endpoint)) return;
    this.#listeners.add(event.value);
    if (this.#blocked.size > 0) setBlockedHosts(event.value, this.blocked);
  }

  /** One authentication decision about a peer at `address` (an IP, or `tcp://IP:PORT`). */
  decided(allowed: boolean, address: string): void {
    const host = hostOf(address);
    if (this.#closed || allowed || host === undefined || this.#blocked.has(host)) return;
    const now = performance.now();
    const count = this.#counts.get(host);
    if (!count || now - count.since > this.#windowMs) {
      if (!count && this.#counts.size >= 10 * this.#maxHosts) this.#prune(now);
      if (!count && this.#counts.size >= 10 * this.#maxHosts) return; // bounded: too many hosts at once
      this.#counts.set(host, { since: now, n: 1 });
    } else count.n++;
    if ((this.#counts.get(host)?.n ?? 0) >= this.#limit) this.#block(host, now);
  }

  /** Lifts every block and forgets the counts (the clients directory was read again). */
  liftAll(): void {
    this.#counts.clear();
    if (this.#blocked.size === 0) return;
    this.#blocked.clear();
    this.#apply();
  }

  /** Stops counting and blocking (the adaptor is stopping; its listeners close with it). */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#log.close();
  }

  #block(host: string, now: number): void {
    this.#counts.delete(host);
    if (this.#blocked.size >= this.#maxHosts) {
      this.#log.report("full", `${this.#socket}: ${this.#maxHosts} hosts blocked already; ${host} is not`);
      return;
    }
    this.#blocked.set(host, now + this.#blockMs);
    this.blocks++;
    this.#apply();
    this.#log.report(
      "block",
      `${this.#socket}: ${host} was denied ${this.#limit} times within ${this.#windowMs / 1000} s: ` +
        `its new connections are dropped for ${this.#blockMs / 1000} s (--block-after-denials)`,
      { summary: `${this.#socket}: hosts blocked after repeated denials (--block-after-denials)` },
    );
    this.#schedule();
  }

  #apply(): void {
    const hosts = this.blocked;
    for (const fd of this.#listeners) setBlockedHosts(fd, hosts);
  }

  /** The next expiry: lifts the blocks that ended. */
  #schedule(): void {
    if (this.#timer !== undefined || this.#closed) return;
    const next = Math.min(...this.#blocked.values());
    const timer = setTimeout(() => {
      this.#timer = undefined;
      const now = performance.now();
      let lifted = 0;
      for (const [host, until] of this.#blocked) {
        if (until > now) continue;
        this.#blocked.delete(host);
        lifted++;
      }
      if (lifted > 0) this.#apply();
      this.#prune(now);
      if (this.#blocked.size > 0) this.#schedule();
    }, Math.max(0, next - performance.now()) + 10);
    Deno.unrefTimer(timer);
    this.#timer = timer;
  }

  #prune(now: number): void {
    for (const [host, { since }] of this.#counts) if (now - since > this.#windowMs) this.#counts.delete(host);
  }
}
