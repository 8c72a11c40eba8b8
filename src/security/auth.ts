/**
 * CURVE authentication, as CZMQ's `zauth` does it: the ZAP handler that judges each client, and
 * the record of every decision (counted, logged, handed to a hook).
 *
 * The ZAP handler (ZeroMQ RFC 27) is a REP socket bound on
 * `inproc://zeromq.zap.01` in the adaptor's own context. libzmq asks it about every client that
 * completes a CURVE handshake on a socket with a ZAP domain; it admits the client only if its
 * public key is in a certificate in the clients directory (`--curve-clients`).
 *
 * Why a blocking receive: the loop waits in `zmq_msg_recv` on a thread of Deno's blocking pool
 * (src/zmq/socket.ts), not in zeromq.js, whose waits can hang for good under Deno once a wake-up
 * carries no message; a ZAP handler that stopped answering would lock every later client out.
 *
 * Lifecycle: `ZapHandler.start()` (before any socket binds, so no client is ever asked about
 * too early) → `reload()` (SIGHUP) → `stop()`. `stop()` wakes the loop with a private token
 * over an inproc REQ; a context shutdown ends it as well.
 *
 * Decisions come from two sources: the ZAP handler's verdicts (clients that completed the CURVE handshake, with
 * their key), and failed handshakes seen by the socket monitor (plaintext clients, clients using
 * a wrong server key), which never reach ZAP. Counts are exact; the log is rate-limited,
 * because a misconfigured client retries every 100 ms forever, and an attacker may try as fast
 * as it can.
 *
 * The log is throttled per socket, decision, reason and peer *host*, never per client key: a
 * client that makes a fresh random key for each attempt would otherwise get a line each time. The first 5 decisions of a minute are
 * logged in full (with their keys: a few examples for the operator); the rest are counted, and
 * when the minute ends one summary line gives their exact number. Beyond 1000 hosts in a minute
 * (a botnet, an IPv6 range) the rest share one overflow line per window. `LogThrottle` (src/ops/throttle.ts) does the work; LogTape's
 * `getThrottlingFilter` was not used because it writes a window's summary only when the next
 * record of the same key arrives (or on dispose), so an attack's last count would never be told.
 */

import type { Role } from "../config/endpoint.ts";
import { type ClientKeys, readClientKeys } from "./certstore.ts";
import { literal, log } from "../ops/log.ts";
import type { SocketEvent } from "../zmq/monitor.ts";
import { sanitize } from "../ops/sanitize.ts";
import { LogThrottle } from "../ops/throttle.ts";
import { errorFor } from "../zmq/binding.ts";
import { ZMQ_LINGER, ZMQ_REP, ZMQ_REQ } from "../zmq/constants.ts";
import { PROTOCOL_ERRORS } from "../zmq/monitor.ts";
import { type Context, type Frames, type Socket } from "../zmq/socket.ts";
import { z85Encode } from "../zmq/z85.ts";

/** Where libzmq looks for the ZAP handler of a context. */
export const ZAP_ENDPOINT = "inproc://zeromq.zap.01";

/** One authentication decision. */
export interface AuthEvent {
  readonly allowed: boolean;
  /** The peer: an IP address (ZAP) or `tcp://IP:PORT` (a failed handshake). */
  readonly address: string;
  /** Why: "allowed by FILE", "unknown client key", "cryptographic error (…)", … */
  readonly reason: string;
  /** The ZAP domain the server socket set (the adaptor sets the role: "publish", "listen"). */
  readonly domain: string;
  /** The client's long-term public key (Z85), once it presented one. */
  readonly clientKey?: string;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Decides one ZAP request against `allowed` (Z85 key → what admits it) and returns the reply
 * frames and the decision. Pure: the handler's loop, and tests, call it.
 */
export function decideZap(
  request: Frames,
  allowed: ReadonlyMap<string, string>,
): { reply: Frames; event: AuthEvent } {
  const text = (i: number) => (request[i] ? decoder.decode(request[i]) : "");
  const requestId = request[1] ?? new Uint8Array();
  const [domain, address, mechanism] = [text(2), text(3), text(5)];
  const answer = (status: "200" | "400" | "500", reason: string, userId = "", clientKey?: string) => ({
    reply: [
      encoder.encode("1.0"),
      requestId,
      encoder.encode(status),
      encoder.encode(reason),
      encoder.encode(userId),
      new Uint8Array(),
    ],
    event: { allowed: status === "200", address, reason, domain, ...(clientKey ? { clientKey } : {}) },
  });
  if (request.length < 6 || text(0) !== "1.0") return answer("500", "malformed ZAP request");
  if (mechanism !== "CURVE") return answer("400", `mechanism ${mechanism || "(none)"} is not allowed`);
  const credential = request[6];
  if (!credential || credential.length !== 32) return answer("400", "malformed CURVE credential");
  const key = z85Encode(credential);
  const admittedBy = allowed.get(key);
  if (admittedBy === undefined) return answer("400", "unknown client key", "", key);
  // The user id becomes the messages' User-Id property: the certificate that admitted them.
  return answer("200", `allowed by ${admittedBy}`, admittedBy, key);
}

/** Options of a ZAP handler. */
export interface ZapOptions {
  /** The clients directory, and its keys as already read (and checked) at start-up. */
  readonly clients: ClientKeys;
  /** Keys admitted whatever the directory says (the adaptor's own debug taps), with a label. */
  readonly trusted?: ReadonlyMap<string, string>;
  /** Every decision, in order. */
  readonly onDecision?: (event: AuthEvent) => void;
}

/** A running ZAP handler. */
export class ZapHandler {
  /**
   * Resolves when the loop has ended and its sockets are closed: "stopped" (`stop()`),
   * "shutdown" (the context was shut down) or "failed: …". While it runs, every CURVE client
   * is judged; once it has ended, every new one is refused (the sockets enforce the domain).
   */
  readonly done: Promise<string>;
  #rep: Socket;
  #stopper: Socket;
  #token = crypto.getRandomValues(new Uint8Array(16));
  #stopping = false;
  #clients: ClientKeys;
  #allowed = new Map<string, string>();
  #trusted: ReadonlyMap<string, string>;

  private constructor(ctx: Context, readonly options: ZapOptions) {
    this.#trusted = options.trusted ?? new Map();
    this.#clients = options.clients;
    this.#rebuild();
    this.#rep = ctx.socket(ZMQ_REP);
    this.#rep.setInt(ZMQ_LINGER, 0);
    this.#stopper = ctx.socket(ZMQ_REQ);
    this.#stopper.setInt(ZMQ_LINGER, 0);
    try {
      this.#rep.bind(ZAP_ENDPOINT);
      this.#stopper.connect(ZAP_ENDPOINT);
    } catch (error) {
      this.#rep.close();
      this.#stopper.close();
      throw error;
    }
    this.done = this.#loop();
  }

  /** Binds the handler in `ctx` and starts answering. Throws `ZmqError` if one is bound already. */
  static start(ctx: Context, options: ZapOptions): ZapHandler {
    return new ZapHandler(ctx, options);
  }

  /** How many client keys the directory currently admits. */
  get clientCount(): number {
    return this.#clients.keys.size;
  }

  /**
   * Reads the clients directory again: added certificates admit their clients from the next
   * connection on, removed ones no longer do (connections already made stay). Invalid files
   * are skipped with a warning; an unreadable directory admits nobody until it is readable.
   */
  reload(): ClientKeys {
    const { dir } = this.#clients;
    try {
      this.#clients = readClientKeys(dir);
      const { keys, invalid, ignored } = this.#clients;
      for (const { file, reason } of invalid) log("auth").warn(literal(`Skipping ${file}: ${reason}`));
      for (const { file, reason } of ignored) log("auth").warn(literal(`Ignoring ${file}: ${reason}`));
      log("auth").info(literal(`Reloaded ${keys.size} client key${keys.size === 1 ? "" : "s"} from ${dir}`));
    } catch (error) {
      this.#clients = { dir, keys: new Map(), invalid: [], ignored: [] };
      log("auth").error(literal(`${(error as Error).message}: every client is refused until it can be read`));
    }
    this.#rebuild();
    return this.#clients;
  }

  #rebuild(): void {
    this.#allowed = new Map([...this.#clients.keys, ...this.#trusted]);
  }

  /** Stops answering and closes the handler's sockets. Idempotent. */
  async stop(): Promise<string> {
    if (!this.#stopping) {
      this.#stopping = true;
      try {
        this.#stopper.trySend(this.#token);
      } catch {
        // the context is shutting down: that ends the loop too
      }
    }
    return await this.done;
  }

  async #loop(): Promise<string> {
    try {
      for (;;) {
        const request = await this.#rep.receive(); // goes on through signals (EINTR)
        if (!request) return "shutdown";
        if (this.#stopping && request.length === 1 && equal(request[0], this.#token)) return "stopped";
        const { reply, event } = decideZap(request, this.#allowed);
        // A reply always goes back: libzmq holds the client's handshake until it comes.
        if (!this.#rep.trySend(reply)) await this.#rep.send(reply);
        try {
          this.options.onDecision?.(event);
        } catch (error) {
          log("auth").error(literal(`auth hook failed: ${(error as Error).message}`));
        }
      }
    } catch (error) {
      // ETERM between receive and send: the context is going away.
      if (this.#stopping || this.#rep.context.isShutDown) return "shutdown";
      return `failed: ${(error as Error).message}`;
    } finally {
      this.#rep.close();
      this.#stopper.close();
    }
  }
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

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
