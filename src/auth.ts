/**
 * Authentication outcomes on the CURVE sockets: counted, logged, and handed to a hook.
 *
 * Two sources: the ZAP handler's verdicts (clients that completed the CURVE handshake, with
 * their key), and failed handshakes seen by the socket monitor (plaintext clients, clients using
 * a wrong server key), which never reach ZAP. Counts are exact; the log is rate-limited per
 * peer and reason, because a misconfigured client retries every 100 ms forever.
 */

import type { Role } from "./config.ts";
import { literal, log } from "./log.ts";
import type { SocketEvent } from "./monitor.ts";
import type { AuthEvent } from "./zap.ts";
import { errorFor, PROTOCOL_ERRORS } from "./zmq.ts";

/** Exact counts of decisions since start. */
export interface AuthCounts {
  readonly allowed: number;
  readonly denied: number;
}

const EFAULT = 14;
const EPIPE = 32;
const ECONNRESET = 104;

/**
 * The denial a failed-handshake monitor event stands for, or undefined for other events (and
 * for `handshake_failed_auth`, which the ZAP handler has already reported with the key).
 */
export function handshakeFailure(event: SocketEvent, domain: string): AuthEvent | undefined {
  const address = event.remote || event.endpoint;
  let reason: string;
  if (event.name === "handshake_failed_protocol") {
    reason = PROTOCOL_ERRORS[event.value] ?? `protocol error 0x${event.value.toString(16)}`;
  } else if (event.name === "handshake_failed_no_detail") {
    if (event.value === EFAULT) reason = "no ZAP handler answered (refused: fail closed)";
    else if (event.value === EPIPE || event.value === ECONNRESET) {
      reason = "the client hung up during the handshake (a plaintext client, or not CURVE)";
    } else reason = `handshake failed: ${errorFor(event.value).message}`;
  } else {
    return undefined;
  }
  return { allowed: false, address, reason, domain };
}

/** The socket an event concerns, for messages: "XPUB", "SUB". */
export type SocketLabel = string;

const QUIET_MS = 60_000;

/** Counts and logs decisions; calls `onAuth` for each. */
export class AuthTracker {
  #allowed = 0;
  #denied = 0;
  #lastLogged = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly onAuth?: (event: AuthEvent & { role: Role }) => void,
    private readonly now: () => number = () => performance.now(),
  ) {}

  get counts(): AuthCounts {
    return { allowed: this.#allowed, denied: this.#denied };
  }

  /** Records one decision about a peer of the `role` socket (`label` names it in the log). */
  record(event: AuthEvent, role: Role, label: SocketLabel, quiet = false): void {
    if (event.allowed) this.#allowed++;
    else this.#denied++;
    if (!quiet) this.#log(event, label);
    try {
      this.onAuth?.({ ...event, role });
    } catch (error) {
      log("auth").error(literal(`auth hook failed: ${(error as Error).message}`));
    }
  }

  #log(event: AuthEvent, label: string): void {
    const host = event.address.replace(/^tcp:\/\//, "").replace(/:\d+$/, "");
    const key = `${label}|${host}|${event.allowed}|${event.reason}|${event.clientKey ?? ""}`;
    const at = this.now();
    const last = this.#lastLogged.get(key);
    if (last && at - last.at < QUIET_MS) {
      last.suppressed++;
      return;
    }
    this.#lastLogged.set(key, { at, suppressed: 0 });
    if (this.#lastLogged.size > 1000) this.#lastLogged.delete(this.#lastLogged.keys().next().value!);
    const more = last && last.suppressed > 0
      ? ` (${last.suppressed} more like it since the last report)`
      : "";
    const key40 = event.clientKey ? ` key ${event.clientKey}` : "";
    if (event.allowed) {
      log("auth").info(
        literal(`Allowed ${label} client from ${event.address}${key40}: ${event.reason}${more}`),
      );
    } else {
      log("auth").warn(
        literal(`Denied ${label} connection from ${event.address}${key40}: ${event.reason}${more}`),
      );
    }
  }
}
