/**
 * Debug taps and test peers (`-d`, `-t`, `-r`), as the C original had them.
 *
 * - The debug subscriber connects to the XPUB like any tracking service, logs each message
 *   (`> got: PUB-H-79844`, truncated, at most `PRINT_PER_SECOND` a second) and once a second
 *   "N messages in X ms", with the latency of the test publisher's messages it saw.
 * - The test publisher connects to the XSUB like a gateway worker and sends `PUB-<A..J>-<5
 *   digits>` once a second (` ... sending:PUB-H-79844`).
 * - The inbound test sends `SEND-<5 digits>` to the inbound SUB and PULLs them from the PUSH.
 *
 * They run only in debug or test mode, each with a one-second timer (besides them the adaptor
 * keeps two slow ones: the socket-file sweep, 5 s, and malloc_trim, 60 s). Receive loops end
 * when the context is shut down.
 */

import { StartupError } from "../errors.ts";
import { log } from "../ops/log.ts";
import { explain } from "../zmq/socket_options.ts";
import { UNSAFE_CHARACTER } from "../ops/sanitize.ts";
import { ZmqError } from "../zmq/binding.ts";
import { ZMQ_LINGER, ZMQ_PUB, ZMQ_PULL, ZMQ_SUB, ZMQ_SUBSCRIBE } from "../zmq/constants.ts";
import { type Context, type Frames, type Socket } from "../zmq/socket.ts";

/** Where a test peer goes: connect to `address`, or bind it when the adaptor connects there. */
export interface PeerEndpoint {
  readonly address: string;
  readonly mode: "bind" | "connect";
  /** CURVE client keys, when the adaptor's socket there is a CURVE server (all Z85). */
  readonly curve?: { readonly serverKey: string; readonly publicKey: string; readonly secretKey: string };
}

/**
 * A running tap: `stop()` clears its timer (and closes a sender's socket); a receiver's loop
 * ends when the context shuts down. `done` resolves when it has ended: "stopped", "shutdown",
 * or "failed: …" (the adaptor treats an end while it runs as a failure).
 */
export interface Tap {
  /** e.g. "the debug subscriber". */
  readonly name: string;
  stop(): void;
  readonly done: Promise<string>;
}

/** Messages printed in full per second; the rest are only counted. */
export const PRINT_PER_SECOND = 10;
const TRUNCATE_AT = 120;

const decoder = new TextDecoder();
const debugLog = () => log("debug");

/**
 * A message as one short printable line: every character that could garble or mislead a
 * terminal or a log viewer (C0 and C1 controls, DEL, U+2028/U+2029, bidi overrides and
 * isolates, BOM, lone surrogates: `UNSAFE_CHARACTER`) becomes ".". Only the first bytes of a
 * frame are decoded.
 */
export function preview(frames: Frames): string {
  const frame = frames[0] ?? new Uint8Array();
  // A UTF-8 character is at most 4 bytes: this many bytes hold TRUNCATE_AT characters.
  const head = frame.subarray(0, 4 * TRUNCATE_AT);
  const text = decoder.decode(head).replace(UNSAFE_CHARACTER, ".");
  const cut = text.length > TRUNCATE_AT || head.length < frame.length
    ? text.slice(0, TRUNCATE_AT) + "…"
    : text;
  return frames.length > 1 ? `${cut} (+${frames.length - 1} frames)` : cut;
}

/** Send times of the test publisher's messages, so the debug subscriber can tell latency. */
export class SentTimes {
  #times = new Map<string, number>();

  record(payload: string, at = performance.now()): void {
    this.#times.set(payload, at);
    if (this.#times.size > 1000) this.#times.delete(this.#times.keys().next().value!);
  }

  /** Milliseconds since `payload` was sent, if the test publisher sent it. */
  take(payload: string, now = performance.now()): number | undefined {
    const at = this.#times.get(payload);
    if (at === undefined) return undefined;
    this.#times.delete(payload);
    return now - at;
  }
}

/**
 * A tap's socket, bound or connected to `peer`. Throws `StartupError` naming the tap and the
 * endpoint when that fails (e.g. `-r` while 127.0.0.1:5000 is taken), with the socket closed.
 */
function peerSocket(ctx: Context, type: number, peer: PeerEndpoint, name: string): Socket {
  const socket = ctx.socket(type);
  try {
    socket.setInt(ZMQ_LINGER, 0);
    if (type === ZMQ_SUB) socket.setBytes(ZMQ_SUBSCRIBE, "");
    if (peer.curve) socket.curveClient(peer.curve);
    if (peer.mode === "bind") socket.bind(peer.address);
    else socket.connect(peer.address);
  } catch (error) {
    socket.close();
    const why = error instanceof ZmqError ? explain(error) : String(error);
    throw new StartupError(`${name} cannot ${peer.mode} ${peer.address}: ${why}`);
  }
  return socket;
}

/** Per-second message and latency figures, as the C original printed them. */
class RateWindow {
  count = 0;
  #start = performance.now();
  #latencies: number[] = [];

  add(latencyMs?: number): void {
    this.count++;
    if (latencyMs !== undefined) this.#latencies.push(latencyMs);
  }

  /** The line for the window just ended, or undefined when nothing came; starts a new window. */
  flush(now = performance.now()): string | undefined {
    const { count } = this;
    const elapsed = now - this.#start;
    const lat = this.#latencies;
    this.count = 0;
    this.#start = now;
    this.#latencies = [];
    if (count === 0) return undefined;
    let line = `${count} messages in ${elapsed.toFixed(0)} ms`;
    if (lat.length > 0) {
      const avg = lat.reduce((a, b) => a + b, 0) / lat.length;
      line += `, latency min/max/avg ${Math.min(...lat).toFixed(3)}/${Math.max(...lat).toFixed(3)}/` +
        `${avg.toFixed(3)} ms`;
    }
    return line;
  }
}

/** A receive loop that logs messages and a rate line each second; `label` is fixed text. */
function receiveLoop(name: string, socket: Socket, label: string, sent?: SentTimes): Tap {
  const window = new RateWindow();
  let printed = 0;
  const timer = setInterval(() => {
    const hidden = window.count - printed;
    const line = window.flush();
    if (line) {
      if (hidden > 0) debugLog().info("{rate} ({hidden} not printed)", { rate: line, hidden });
      else debugLog().info("{rate}", { rate: line });
    }
    printed = 0;
  }, 1000);
  const done = (async () => {
    try {
      for (;;) {
        const frames = await socket.receive(); // goes on through signals (EINTR)
        if (!frames) return "shutdown";
        const text = preview(frames);
        window.add(sent?.take(decoder.decode(frames[0])));
        if (printed < PRINT_PER_SECOND) {
          printed++;
          debugLog().info(`${label} {payload}`, { payload: text });
        }
      }
    } catch (error) {
      return socket.context.isShutDown ? "shutdown" : `failed: ${(error as Error).message}`;
    } finally {
      clearInterval(timer);
      socket.close();
    }
  })();
  return { name, stop: () => clearInterval(timer), done };
}

/** Subscribes to everything at the XPUB and logs it (`-d`). */
export function startDebugSubscriber(ctx: Context, xpub: PeerEndpoint, sent?: SentTimes): Tap {
  debugLog().info("Starting debug subscriber [{endpoint}]", { endpoint: xpub.address });
  const name = "the debug subscriber (-d)";
  return receiveLoop(name, peerSocket(ctx, ZMQ_SUB, xpub, name), "> got:", sent);
}

/** A sender of one generated message a second; closes its socket when stopped. */
function sendLoop(
  name: string,
  ctx: Context,
  type: number,
  peer: PeerEndpoint,
  make: () => string,
  sent?: SentTimes,
): Tap {
  const socket = peerSocket(ctx, type, peer, name);
  let resolve!: (why: string) => void;
  const done = new Promise<string>((r) => resolve = r);
  const timer = setInterval(() => {
    const payload = make();
    sent?.record(payload);
    try {
      socket.trySend(payload);
      debugLog().info(" ... sending:{payload}", { payload });
    } catch (error) {
      const why = socket.context.isShutDown ? "shutdown" : `failed: ${(error as Error).message}`;
      stop(why);
    }
  }, 1000);
  const stop = (why = "stopped") => {
    clearInterval(timer);
    if (!socket.closed) socket.close();
    resolve(why);
  };
  return { name, stop: () => stop(), done };
}

const digits = () => String(Math.floor(Math.random() * 100_000)).padStart(5, "0");

/** The `-t` test publisher: `PUB-<A..J>-<5 digits>` into the XSUB once a second. */
export function startTestPublisher(ctx: Context, xsub: PeerEndpoint, sent?: SentTimes): Tap {
  debugLog().info("Starting test publisher [{endpoint}]", { endpoint: xsub.address });
  const letter = () => String.fromCharCode(65 + Math.floor(Math.random() * 10));
  return sendLoop("the test publisher (-t)", ctx, ZMQ_PUB, xsub, () => `PUB-${letter()}-${digits()}`, sent);
}

/** The `-r` test: `SEND-<5 digits>` into the inbound SUB, and a PULL receiver on the PUSH. */
export function startInboundTest(ctx: Context, sub: PeerEndpoint, push: PeerEndpoint): Tap[] {
  debugLog().info("Starting inbound test sender [{sender}] and receiver [{receiver}]", {
    sender: sub.address,
    receiver: push.address,
  });
  const sender = sendLoop("the inbound test sender (-r)", ctx, ZMQ_PUB, sub, () => `SEND-${digits()}`);
  try {
    const name = "the inbound test receiver (-r)";
    return [sender, receiveLoop(name, peerSocket(ctx, ZMQ_PULL, push, name), "> receiver got:")];
  } catch (error) {
    sender.stop();
    throw error;
  }
}

/** Where the taps of `startTaps` go, and as whom. */
export interface TapPlan {
  /** `-d` (always, when taps start), `-t`, `-r`. */
  readonly test: boolean;
  readonly receiverTest: boolean;
  /** Where a tap for each role goes: the adaptor's endpoint there, as `peerOf` turns it round. */
  readonly peer: (role: "publish" | "bind" | "listen" | "push") => PeerEndpoint;
}

/**
 * The taps of `-d/-t/-r`: the debug subscriber on the XPUB, the test publisher on the XSUB
 * (`-t`), the inbound test sender and receiver (`-r`). Each is handed to `own` the moment it
 * runs, so that a later one that cannot bind leaves no earlier one unowned.
 */
export function startTaps(ctx: Context, plan: TapPlan, own: (tap: Tap) => void): void {
  const sent = new SentTimes();
  own(startDebugSubscriber(ctx, plan.peer("publish"), sent));
  if (plan.test) own(startTestPublisher(ctx, plan.peer("bind"), sent));
  if (plan.receiverTest) {
    for (const tap of startInboundTest(ctx, plan.peer("listen"), plan.peer("push"))) own(tap);
  }
}
