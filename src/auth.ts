/**
 * Authentication outcomes on the CURVE sockets: counted, logged, and handed to a hook.
 *
 * Two sources: the ZAP handler's verdicts (clients that completed the CURVE handshake, with
 * their key), and failed handshakes seen by the socket monitor (plaintext clients, clients using
 * a wrong server key), which never reach ZAP. Counts are exact; the log is rate-limited,
 * because a misconfigured client retries every 100 ms forever, and an attacker may try as fast
 * as it can.
 *
 * The log is throttled per socket, decision, reason and peer *host*, never per client key: a
 * client that makes a fresh random key for each attempt would otherwise get a line each time
 * (measured before: 4 100–17 000 lines in 10–30 s). The first 5 decisions of a minute are
 * logged in full (with their keys: a few examples for the operator); the rest are counted, and
 * when the minute ends one summary line gives their exact number. Beyond 1000 hosts in a minute (a botnet, an IPv6 range) the rest
 * share one overflow line per window. `LogThrottle` (src/throttle.ts) does the work; LogTape's
 * `getThrottlingFilter` was not used because it writes a window's summary only when the next
 * record of the same key arrives (or on dispose), so an attack's last count would never be told.
 */

import type { Role } from "./config.ts";
import { literal, log } from "./log.ts";
import type { SocketEvent } from "./monitor.ts";
import { sanitize } from "./sanitize.ts";
import { LogThrottle } from "./throttle.ts";
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

/** Options of an `AuthTracker`'s log throttle. */
export interface AuthLogOptions {
  /** The window of the throttle; default 60 s. */
  readonly windowMs?: number;
  /** Socket, decision, reason and host combinations tracked per window; default 1000. */
  readonly maxKeys?: number;
  /** Lines per combination logged in full per window; default 5. */
  readonly perWindow?: number;
}

/** Counts and logs decisions; calls `onAuth` for each. */
export class AuthTracker {
  #allowed = 0;
  #denied = 0;
  readonly #throttle: LogThrottle;
  readonly #maxKeys: number;

  constructor(
    private readonly onAuth?: (event: AuthEvent & { role: Role }) => void,
    options: AuthLogOptions = {},
  ) {
    const write = (line: string) => {
      if (line.startsWith("Allowed")) log("auth").info(literal(line));
      else log("auth").warn(literal(line));
    };
    this.#maxKeys = options.maxKeys ?? 1000;
    this.#throttle = new LogThrottle({
      write,
      windowMs: options.windowMs ?? 60_000,
      maxKeys: this.#maxKeys,
      perWindow: options.perWindow ?? 5,
    });
  }

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
      log("auth").error(literal(`auth hook failed: ${sanitize((error as Error).message)}`));
    }
  }

  /** Writes the pending summaries (the adaptor is stopping) and logs no more. */
  close(): void {
    this.#throttle.close();
  }

  #log(event: AuthEvent, label: string): void {
    const address = sanitize(event.address);
    const reason = sanitize(event.reason);
    const host = address.replace(/^tcp:\/\//, "").replace(/:\d+$/, "");
    const verdict = event.allowed ? "Allowed" : "Denied";
    const what = event.allowed ? `${label} client` : `${label} connection`;
    const key40 = event.clientKey ? ` key ${sanitize(event.clientKey)}` : "";
    this.#throttle.report(
      `${label}|${host}|${event.allowed}|${reason}`,
      `${verdict} ${what} from ${address}${key40}: ${reason}`,
      {
        summary: `${verdict} ${what} from ${host}: ${reason}`,
        overflow: `Decisions about more than ${this.#maxKeys} hosts in a minute: the rest are summed up ` +
          `in one line (the first: ${verdict} ${what} from ${address}: ${reason})`,
      },
    );
  }
}
