/**
 * What the socket monitors report about peers, told to the operator without `-d` (with `-d`
 * the adaptor logs every event itself).
 *
 * Only what means trouble is logged, as warnings: failed handshakes, failed accepts (e.g. out
 * of file descriptors) and disconnects. libzmq 4.3 does not say why a connection ended: a
 * frame over --max-message-size, a missed heartbeat, a TCP user timeout, garbage on the wire
 * and a peer that simply closed all produce one `disconnected` event (only failures *during*
 * the handshake have their own events), so the line names the possible causes. A connection
 * that fails its handshake is reported once, not twice (libzmq follows each handshake failure
 * with a disconnect of the same connection).
 *
 * A flood (a port scan, a thousand garbage connections) must not become a flood of log lines:
 * each kind of warning of each socket is logged at most `perWindow` times per `windowMs`; the
 * rest are counted and summed up in one line when the window ends.
 */

import type { Logger } from "@logtape/logtape";
import { type AuthTracker, handshakeFailure } from "../security/auth.ts";
import type { Role } from "../config/endpoint.ts";
import { literal } from "../ops/log.ts";
import { LogThrottle } from "../ops/throttle.ts";
import type { SocketEvent } from "../zmq/monitor.ts";
import { errorFor } from "../zmq/binding.ts";
import { PROTOCOL_ERRORS } from "../zmq/monitor.ts";

/** The limits the messages refer to, so that they can name the flag to change. */
export interface PeerEventLimits {
  readonly maxMessageSize: number;
  /** The XPUB's limit (its inbound frames are subscriptions); 0 or absent: maxMessageSize. */
  readonly maxSubscriptionSize?: number;
  readonly handshakeTimeout: number;
  readonly heartbeatInterval: number;
  readonly tcpUserTimeout: number;
}

/** Options of a `PeerEventLog`. */
export interface PeerEventLogOptions {
  readonly limits: PeerEventLimits;
  readonly logger: Logger;
  /** Warnings of one kind per socket logged in full per window; default 5. */
  readonly perWindow?: number;
  /** The throttling window in ms; default 10 s. */
  readonly windowMs?: number;
}

/** Turns socket events into warnings; one per adaptor. */
export class PeerEventLog {
  readonly #options: PeerEventLogOptions;
  readonly #perWindow: number;
  readonly #windowMs: number;
  readonly #throttle: LogThrottle;
  /** Handshake failures per socket whose `disconnected` event is still to come. */
  readonly #failedHandshakes = new Map<string, number>();
  #closed = false;

  constructor(options: PeerEventLogOptions) {
    this.#options = options;
    this.#perWindow = options.perWindow ?? 5;
    this.#windowMs = options.windowMs ?? 10_000;
    this.#throttle = new LogThrottle({
      write: (line) => options.logger.warn(literal(line)),
      windowMs: this.#windowMs,
      perWindow: this.#perWindow,
      maxKeys: 10_000,
    });
  }

  /**
   * Reports one event of the socket called `socket` (e.g. "XSUB"). `handshakeLogged`: failed
   * handshakes of this socket are logged elsewhere (the CURVE auth log); only pair them.
   */
  report(socket: string, event: SocketEvent, options: { handshakeLogged?: boolean } = {}): void {
    if (this.#closed) return;
    const where = `${socket} ${event.endpoint || event.remote}`;
    // The peer's address, where libzmq tells it (tcp); ipc peers have none.
    const peer = /^tcp:\/\/./.test(event.remote) && event.remote !== event.endpoint ? ` ${event.remote}` : "";
    switch (event.name) {
      case "handshake_failed_no_detail":
      case "handshake_failed_protocol":
      case "handshake_failed_auth":
        this.#failedHandshakes.set(socket, (this.#failedHandshakes.get(socket) ?? 0) + 1);
        if (options.handshakeLogged) return;
        this.#warn(
          where,
          "handshake",
          `a connection${peer} failed the ZeroMQ handshake (${this.#handshakeCause(event)})`,
        );
        return;
      case "disconnected": {
        const pending = this.#failedHandshakes.get(socket) ?? 0;
        if (pending > 0) {
          this.#failedHandshakes.set(socket, pending - 1);
          return;
        }
        this.#warn(where, "disconnect", `a peer${peer} disconnected (${this.#disconnectCauses(socket)})`);
        return;
      }
      case "accept_failed":
        this.#warn(where, "accept", `cannot accept a connection: ${errorFor(event.value).message}`);
        return;
      case "close_failed":
        this.#warn(where, event.name, `close failed: ${errorFor(event.value).message}`);
        return;
    }
  }

  /** Logs the pending summaries and stops logging (the adaptor is stopping). */
  close(): void {
    this.#throttle.close();
    this.#closed = true;
  }

  #handshakeCause(event: SocketEvent): string {
    if (event.name === "handshake_failed_protocol") {
      return `protocol error: ${PROTOCOL_ERRORS[event.value] ?? `code 0x${event.value.toString(16)}`}`;
    }
    if (event.name === "handshake_failed_auth") return `authentication failed, status ${event.value}`;
    // libzmq's errno here is only meaningful when the connection itself failed: not shown.
    const timeout = this.#options.limits.handshakeTimeout;
    return timeout > 0
      ? `closed early, not ZMTP, or slower than --handshake-timeout ${timeout} ms`
      : "closed early, or not ZMTP";
  }

  #disconnectCauses(socket: string): string {
    const { maxMessageSize, maxSubscriptionSize = 0, heartbeatInterval, tcpUserTimeout } =
      this.#options.limits;
    const causes = ["it left"];
    // Missed heartbeats, or TCP_USER_TIMEOUT: both mean the peer stopped responding.
    if (heartbeatInterval > 0 || tcpUserTimeout > 0) causes.push("stopped responding");
    // The XPUB's inbound frames are subscriptions, limited by their own flag.
    const example = socket === "XPUB" && maxSubscriptionSize > 0
      ? `, e.g. a subscription over --max-subscription-size ${maxSubscriptionSize}`
      : maxMessageSize > 0
      ? `, e.g. a frame over --max-message-size ${maxMessageSize}`
      : "";
    return `${causes.join(", ")}, or broke the protocol${example}`;
  }

  /**
   * Logs `where: text` as a warning, throttled like the peer events (at most `perWindow` of
   * one `kind` per `where` per window, then a count): also for the adaptor's own troubles
   * that could repeat fast (a proxy restarted after signals, a monitor callback that throws).
   */
  warn(where: string, kind: string, text: string): void {
    if (!this.#closed) this.#warn(where, kind, text);
  }

  #warn(where: string, kind: string, text: string): void {
    const seconds = (this.#windowMs / 1000).toFixed(0);
    this.#throttle.report(`${where} ${kind}`, `${where}: ${text}`, {
      summary: (count) =>
        `${where}: ${count} more '${kind}' warnings in ${seconds} s (not logged one by one)`,
    });
  }
}

/** Where the events of one monitored socket go; see `routeSocketEvents`. */
export interface SocketEventRoute {
  /** The channel the socket belongs to ("main", "inbound"): a field of `-d`'s log lines. */
  readonly channel: string;
  /** The socket's name in messages, e.g. "XPUB". */
  readonly socket: string;
  /** The socket is a CURVE server: its failed handshakes are auth denials (the auth log). */
  readonly curveServer: boolean;
  /** The CURVE auth log and counters. */
  readonly auth: AuthTracker;
  /** The socket's role: the auth log's ZAP domain. */
  readonly role: Role;
  /** `-d`: every event is logged at info level (else only trouble, by `peerEvents`). */
  readonly debug: boolean;
  /** The addresses this socket connects to (`>`): their events are named by that address. */
  readonly dials: ReadonlySet<string>;
  readonly peerEvents: PeerEventLog;
  readonly logger: Logger;
  /** Further observers (metrics, tests). */
  readonly hook?: (event: SocketEvent) => void;
}

/**
 * The one place a socket event is routed: to the auth log (a failed handshake on a CURVE server
 * socket is a denial), to the `-d` log or the peer-event warnings, then to the hook.
 */
export function routeSocketEvents(route: SocketEventRoute): (event: SocketEvent) => void {
  const { channel, socket, curveServer, auth, role, debug, dials, peerEvents, logger, hook } = route;
  return (event) => {
    if (curveServer) {
      const denial = handshakeFailure(event, role);
      if (denial) auth.record(denial, role, socket);
    }
    if (debug) {
      // Events of an endpoint this socket dials are told by the address it dials (their
      // local address is an ephemeral port, or nothing before the connection exists).
      const dialled = dials.has(event.remote);
      const where = dialled ? event.remote : event.endpoint || event.remote;
      const peer = dialled
        ? (event.endpoint ? ` via ${event.endpoint}` : "")
        : (/:\/\/./.test(event.remote) ? ` from ${event.remote}` : "");
      logger.info("{socket} {endpoint}: {event} ({value}){peer}", {
        channel,
        socket,
        endpoint: where,
        event: event.name,
        value: event.value,
        remote: event.remote,
        peer,
      });
    } else {
      // On CURVE sockets the auth log already tells failed handshakes, as denials.
      peerEvents.report(socket, event, { handshakeLogged: curveServer });
    }
    hook?.(event);
  };
}
