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

import { log } from "./log.ts";
import { UNSAFE_CHARACTER } from "./sanitize.ts";
import {
  type Context,
  type Frames,
  type Socket,
  ZMQ_LINGER,
  ZMQ_PUB,
  ZMQ_PULL,
  ZMQ_SUB,
  ZMQ_SUBSCRIBE,
} from "./zmq.ts";

/** Where a test peer goes: connect to `address`, or bind it when the adaptor connects there. */
export interface PeerEndpoint {
  readonly address: string;
  readonly mode: "bind" | "connect";
  /** CURVE client keys, when the adaptor's socket there is a CURVE server (all Z85). */
  readonly curve?: { readonly serverKey: string; readonly publicKey: string; readonly secretKey: string };
}

/** A running tap: `stop()` clears its timer; its loop ends when the context shuts down. */
export interface Tap {
  stop(): void;
  readonly done: Promise<void>;
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

function peerSocket(ctx: Context, type: number, peer: PeerEndpoint): Socket {
  const socket = ctx.socket(type);
  socket.setInt(ZMQ_LINGER, 0);
  if (type === ZMQ_SUB) socket.setBytes(ZMQ_SUBSCRIBE, "");
  if (peer.curve) socket.curveClient(peer.curve);
  if (peer.mode === "bind") socket.bind(peer.address);
  else socket.connect(peer.address);
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
function receiveLoop(socket: Socket, label: string, sent?: SentTimes): Tap {
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
    for (;;) {
      const frames = await socket.receive();
      if (!frames) break;
      const text = preview(frames);
      window.add(sent?.take(decoder.decode(frames[0])));
      if (printed < PRINT_PER_SECOND) {
        printed++;
        debugLog().info(`${label} {payload}`, { payload: text });
      }
    }
    clearInterval(timer);
    socket.close();
  })();
  return { stop: () => clearInterval(timer), done };
}

/** Subscribes to everything at the XPUB and logs it (`-d`). */
export function startDebugSubscriber(ctx: Context, xpub: PeerEndpoint, sent?: SentTimes): Tap {
  debugLog().info("Starting debug subscriber [{endpoint}]", { endpoint: xpub.address });
  return receiveLoop(peerSocket(ctx, ZMQ_SUB, xpub), "> got:", sent);
}

/** A sender of one generated message a second; closes its socket when stopped. */
function sendLoop(ctx: Context, type: number, peer: PeerEndpoint, make: () => string, sent?: SentTimes): Tap {
  const socket = peerSocket(ctx, type, peer);
  let resolve!: () => void;
  const done = new Promise<void>((r) => resolve = r);
  const timer = setInterval(() => {
    const payload = make();
    sent?.record(payload);
    try {
      socket.trySend(payload);
      debugLog().info(" ... sending:{payload}", { payload });
    } catch (error) {
      debugLog().warn("test sender stopped: {error}", { error: (error as Error).message });
      stop();
    }
  }, 1000);
  const stop = () => {
    clearInterval(timer);
    if (!socket.closed) socket.close();
    resolve();
  };
  return { stop, done };
}

const digits = () => String(Math.floor(Math.random() * 100_000)).padStart(5, "0");

/** The `-t` test publisher: `PUB-<A..J>-<5 digits>` into the XSUB once a second. */
export function startTestPublisher(ctx: Context, xsub: PeerEndpoint, sent?: SentTimes): Tap {
  debugLog().info("Starting test publisher [{endpoint}]", { endpoint: xsub.address });
  const letter = () => String.fromCharCode(65 + Math.floor(Math.random() * 10));
  return sendLoop(ctx, ZMQ_PUB, xsub, () => `PUB-${letter()}-${digits()}`, sent);
}

/** The `-r` test: `SEND-<5 digits>` into the inbound SUB, and a PULL receiver on the PUSH. */
export function startInboundTest(ctx: Context, sub: PeerEndpoint, push: PeerEndpoint): Tap[] {
  debugLog().info("Starting inbound test sender [{sender}] and receiver [{receiver}]", {
    sender: sub.address,
    receiver: push.address,
  });
  const sender = sendLoop(ctx, ZMQ_PUB, sub, () => `SEND-${digits()}`);
  const receiver = receiveLoop(peerSocket(ctx, ZMQ_PULL, push), "> receiver got:");
  return [sender, receiver];
}
