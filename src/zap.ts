/**
 * The ZAP handler (ZeroMQ RFC 27), as CZMQ's `zauth` runs it: a REP socket bound on
 * `inproc://zeromq.zap.01` in the adaptor's own context. libzmq asks it about every client that
 * completes a CURVE handshake on a socket with a ZAP domain; it admits the client only if its
 * public key is in a certificate in the clients directory (`--curve-clients`).
 *
 * Why a blocking receive: the loop waits in `zmq_msg_recv` on a thread of Deno's blocking pool
 * (src/zmq.ts), not in zeromq.js, whose waits can hang for good under Deno once a wake-up
 * carries no message; a ZAP handler that stopped answering would lock every later client out.
 *
 * Lifecycle: `ZapHandler.start()` (before any socket binds, so no client is ever asked about
 * too early) → `reload()` (SIGHUP) → `stop()`. `stop()` wakes the loop with a private token
 * over an inproc REQ; a context shutdown ends it as well.
 */

import { literal, log } from "./log.ts";
import { type ClientKeys, readClientKeys } from "./security.ts";
import { type Context, type Frames, type Socket, z85Encode, ZMQ_LINGER, ZMQ_REP, ZMQ_REQ } from "./zmq.ts";

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
