/**
 * libzmq contexts and sockets (`zmq_ctx_*`, `zmq_socket`, send/receive, options), and the
 * steerable proxy. Every wait is a blocking libzmq call made with `nonblocking: true`: it runs on
 * a thread of Deno's blocking pool and resolves a promise, so an idle socket costs no CPU.
 *
 * Threading rule: a socket is used by one call at a time. A socket given to an async call
 * (`recvAsync`, `proxySteerable`) is not touched from JS until that call resolves.
 */

import { check, cstr, lastError, zmq, ZmqError } from "./binding.ts";
import {
  EAGAIN,
  EINTR,
  ETERM,
  ZMQ_CURVE_PUBLICKEY,
  ZMQ_CURVE_SECRETKEY,
  ZMQ_CURVE_SERVER,
  ZMQ_CURVE_SERVERKEY,
  ZMQ_DONTWAIT,
  ZMQ_EVENT_ALL,
  ZMQ_IO_THREADS,
  ZMQ_PAIR,
  ZMQ_SNDMORE,
  ZMQ_TOPICS_COUNT,
  ZMQ_ZAP_ENFORCE_DOMAIN,
} from "./constants.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** While set, blocking calls wait for it before they start (see `holdWaitsUntil`). */
let waitsHeld: Promise<void> | undefined;

/**
 * Makes every blocking call on a pool thread (receive, send, the proxy) start only once `ready`
 * has settled, so that sockets can be opened and bound while the signal shield still checks
 * Deno's pool threads. Calls already running are not affected.
 */
export function holdWaitsUntil(ready: Promise<unknown>): void {
  const held: Promise<void> = ready.then(() => {}, () => {});
  waitsHeld = held;
  held.then(() => {
    if (waitsHeld === held) waitsHeld = undefined;
  });
}

/**
 * A libzmq context. It owns every socket it opens: `terminate()` closes those still open (once
 * the calls that use them have returned), so that `zmq_ctx_term` can never wait for a socket
 * nobody will close. `shutdown()` makes every blocking call on its sockets return.
 */
export class Context {
  readonly ptr: Deno.PointerValue;
  #shutDown = false;
  #terminated = false;
  #closedAt: number | undefined;
  readonly #sockets = new Set<Socket>();

  constructor(options: { ioThreads?: number } = {}) {
    this.ptr = zmq().zmq_ctx_new();
    if (!this.ptr) throw lastError();
    if (options.ioThreads !== undefined) {
      check(zmq().zmq_ctx_set(this.ptr, ZMQ_IO_THREADS, options.ioThreads));
    }
  }

  /**
   * Whether `shutdown()` (or `terminate()`) was called. A blocking call that returns -1 on a
   * context that is not shut down was interrupted (EINTR): errno cannot tell, since it belongs
   * to the pool thread the call ran on, but this can.
   */
  get isShutDown(): boolean {
    return this.#shutDown;
  }

  /** Opens a socket of `type` (ZMQ_XSUB, ZMQ_PUB, …), owned by this context. */
  socket(type: number): Socket {
    const ptr = zmq().zmq_socket(this.ptr, type);
    if (!ptr) throw lastError();
    const socket = new Socket(ptr, type, this, () => this.#sockets.delete(socket));
    this.#sockets.add(socket);
    return socket;
  }

  /**
   * When `terminate()` had closed every socket (`performance.now()`); undefined before. From
   * then on libzmq only delivers what the sockets' linger allows, and frees its state.
   */
  get socketsClosedAt(): number | undefined {
    return this.#closedAt;
  }

  /** How many of this context's sockets are still open. */
  get openSockets(): number {
    return this.#sockets.size;
  }

  /** Wakes every blocked call with ETERM; sockets must still be closed. */
  shutdown(): void {
    if (this.#shutDown) return;
    this.#shutDown = true;
    zmq().zmq_ctx_shutdown(this.ptr);
  }

  /**
   * Shuts down, waits for the calls still running on its sockets to return (the shutdown ends
   * them), closes every socket still open, and waits (off the JS thread) for linger to end.
   */
  async terminate(): Promise<void> {
    if (this.#terminated) return;
    this.#terminated = true;
    this.shutdown();
    await Promise.all([...this.#sockets].map((s) => s.idle));
    for (const socket of [...this.#sockets]) socket.close();
    this.#closedAt = performance.now();
    while ((await zmq().zmq_ctx_term(this.ptr)) === -1) {
      // EINTR (call again) or EFAULT (not a context). errno belongs to the pool thread; an
      // interrupted context still answers zmq_ctx_get here, one that is not fails with EFAULT.
      if (zmq().zmq_ctx_get(this.ptr, ZMQ_IO_THREADS) === -1) throw lastError();
    }
  }
}

/** A received message: its frames, in order. */
export type Frames = Uint8Array[];

/** One libzmq socket. Methods throw `ZmqError` on failure. */
export class Socket {
  #msg = new Uint8Array(64); // zmq_msg_t
  #closed = false;
  /** The blocking calls running on pool threads now; each leaves the set as it settles. */
  readonly #busy = new Set<Promise<unknown>>();
  readonly #onClose: () => void;

  constructor(
    readonly ptr: Deno.PointerValue,
    readonly type: number,
    /** The context that opened it. */
    readonly context: Context,
    onClose: () => void = () => {},
  ) {
    this.#onClose = onClose;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Settles once no call made through this socket is running on a pool thread. */
  get idle(): Promise<void> {
    return Promise.allSettled(this.#busy).then(() => {});
  }

  /** Waits while blocking calls are held; false when the socket is gone meanwhile. */
  async #waitsAllowed(): Promise<boolean> {
    if (waitsHeld) await this.track(waitsHeld);
    return !this.#closed && !this.context.isShutDown;
  }

  /**
   * Marks the socket busy until `call` settles (a blocking call on a pool thread). Only the
   * calls still running are held: a socket that received a million messages holds nothing more.
   */
  track<T>(call: Promise<T>): Promise<T> {
    const settled = call.then(() => {}, () => {}).finally(() => this.#busy.delete(settled));
    this.#busy.add(settled);
    return call;
  }

  bind(endpoint: string): void {
    check(zmq().zmq_bind(this.ptr, cstr(endpoint)));
  }

  unbind(endpoint: string): void {
    check(zmq().zmq_unbind(this.ptr, cstr(endpoint)));
  }

  connect(endpoint: string): void {
    check(zmq().zmq_connect(this.ptr, cstr(endpoint)));
  }

  disconnect(endpoint: string): void {
    check(zmq().zmq_disconnect(this.ptr, cstr(endpoint)));
  }

  setInt(option: number, value: number): void {
    const buf = new Int32Array([value]);
    check(zmq().zmq_setsockopt(this.ptr, option, buf, 4n));
  }

  /** Sets an int64 option (ZMQ_MAXMSGSIZE). */
  setInt64(option: number, value: number | bigint): void {
    const buf = new BigInt64Array([BigInt(value)]);
    check(zmq().zmq_setsockopt(this.ptr, option, buf, 8n));
  }

  /** Reads an int64 option (ZMQ_MAXMSGSIZE). */
  getInt64(option: number): bigint {
    const buf = new BigInt64Array(1);
    const size = new BigUint64Array([8n]);
    check(zmq().zmq_getsockopt(this.ptr, option, buf, size));
    return buf[0];
  }

  setBytes(option: number, value: Uint8Array | string): void {
    const bytes = typeof value === "string" ? encoder.encode(value) : value;
    check(zmq().zmq_setsockopt(this.ptr, option, bytes as Uint8Array<ArrayBuffer>, BigInt(bytes.length)));
  }

  getInt(option: number): number {
    const buf = new Int32Array(1);
    const size = new BigUint64Array([4n]);
    check(zmq().zmq_getsockopt(this.ptr, option, buf, size));
    return buf[0];
  }

  /**
   * `ZMQ_TOPICS_COUNT`: how many distinct subscriptions an XSUB has sent upstream (or an XPUB
   * received; but libzmq 4.3.5 does not lower an XPUB's count when a subscriber leaves without
   * unsubscribing); undefined once the socket is closed or its context shut down.
   *
   * The one option that may be read while another thread owns the socket (a running proxy):
   * libzmq 4.3.5 answers it from the subscription trie's atomic counter alone ("make sure to use
   * a multi-thread safe function to avoid race conditions with I/O threads", xpub.cpp and
   * xsub.cpp), without touching the socket's pipes or commands. Call it on the JS thread, which
   * is also the only one that closes sockets.
   */
  topics(): number | undefined {
    if (this.#closed || this.context.isShutDown) return undefined;
    const buf = new Int32Array(1);
    const size = new BigUint64Array([4n]);
    return zmq().zmq_getsockopt(this.ptr, ZMQ_TOPICS_COUNT, buf, size) === 0 ? buf[0] : undefined;
  }

  getString(option: number): string {
    const buf = new Uint8Array(1024);
    const size = new BigUint64Array([1024n]);
    check(zmq().zmq_getsockopt(this.ptr, option, buf, size));
    const n = Number(size[0]);
    return decoder.decode(buf.subarray(0, n > 0 && buf[n - 1] === 0 ? n - 1 : n));
  }

  /** Sends a message without waiting; returns false when it would block (HWM reached). */
  trySend(frames: Frames | Uint8Array | string): boolean {
    const list = normalize(frames);
    for (let i = 0; i < list.length; i++) {
      const flags = ZMQ_DONTWAIT | (i < list.length - 1 ? ZMQ_SNDMORE : 0);
      const f = list[i] as Uint8Array<ArrayBuffer>;
      if (zmq().zmq_send(this.ptr, f, BigInt(f.length), flags) === -1) {
        const err = lastError();
        if (err.code === EAGAIN && i === 0) return false;
        throw err;
      }
    }
    return true;
  }

  /**
   * Sends a message, waiting off the JS thread when the socket would block. A wait that a
   * signal interrupts (EINTR) goes on; throws `ZmqError` (ETERM) once the context is shut down.
   */
  async send(frames: Frames | Uint8Array | string): Promise<void> {
    if (waitsHeld && !(await this.#waitsAllowed())) {
      throw new ZmqError(ETERM, "send interrupted: the context was shut down");
    }
    const list = normalize(frames);
    const z = zmq();
    for (let i = 0; i < list.length; i++) {
      const flags = i < list.length - 1 ? ZMQ_SNDMORE : 0;
      const f = list[i] as Uint8Array<ArrayBuffer>;
      for (;;) {
        const rc = await this.track(z.zmq_send_async(this.ptr, f, BigInt(f.length), flags));
        if (rc !== -1) break;
        if (this.context.isShutDown) throw new ZmqError(ETERM, "send interrupted: the context was shut down");
        // errno lives on the pool thread: ask again here without waiting, where errno is ours.
        if (z.zmq_send(this.ptr, f, BigInt(f.length), flags | ZMQ_DONTWAIT) !== -1) break;
        const err = lastError();
        if (err.code !== EAGAIN && err.code !== EINTR) throw err;
      }
    }
  }

  /**
   * Receives one frame into `buffer` without waiting (one FFI call: for load generators).
   * Returns the frame's full size (larger than `buffer` when it was truncated), or -1 when
   * nothing is waiting.
   */
  tryReceiveInto(buffer: Uint8Array<ArrayBuffer>): number {
    const n = zmq().zmq_recv(this.ptr, buffer, BigInt(buffer.length), ZMQ_DONTWAIT);
    if (n === -1) {
      const err = lastError();
      if (err.code === EAGAIN) return -1;
      throw err;
    }
    return n;
  }

  /** Receives one message if one is waiting, else returns undefined. */
  tryReceive(): Frames | undefined {
    const z = zmq();
    const frames: Frames = [];
    for (;;) {
      z.zmq_msg_init(this.#msg);
      const rc = z.zmq_msg_recv(this.#msg, this.ptr, ZMQ_DONTWAIT);
      if (rc === -1) {
        z.zmq_msg_close(this.#msg);
        const err = lastError();
        if (err.code === EAGAIN && frames.length === 0) return undefined;
        throw err;
      }
      frames.push(this.#takeFrame());
      if (!z.zmq_msg_more(this.#msg)) {
        z.zmq_msg_close(this.#msg);
        return frames;
      }
      z.zmq_msg_close(this.#msg);
    }
  }

  /**
   * Receives one message, waiting off the JS thread. Resolves undefined only when the context
   * was shut down. A wait that a signal interrupts (EINTR: Deno's pool threads do not block
   * signals) simply goes on; any other failure throws `ZmqError`.
   */
  async receive(): Promise<Frames | undefined> {
    if (waitsHeld && !(await this.#waitsAllowed())) return undefined;
    const z = zmq();
    for (;;) {
      z.zmq_msg_init(this.#msg);
      const rc = await this.track(z.zmq_msg_recv_async(this.#msg, this.ptr, 0));
      if (rc !== -1) break;
      z.zmq_msg_close(this.#msg);
      if (this.context.isShutDown) return undefined;
      // -1 on a live context: interrupted, or something wrong with the socket. errno belongs to
      // the pool thread; asking again here, without waiting, tells which (and may find a message).
      try {
        const frames = this.tryReceive();
        if (frames) return frames;
      } catch (error) {
        if (error instanceof ZmqError && error.code === ETERM) return undefined;
        if (!(error instanceof ZmqError && error.code === EINTR)) throw error;
      }
    }
    const frames: Frames = [this.#takeFrame()];
    let more = z.zmq_msg_more(this.#msg);
    z.zmq_msg_close(this.#msg);
    // The rest of a multipart message is already here: libzmq delivers it atomically.
    while (more) {
      z.zmq_msg_init(this.#msg);
      check(z.zmq_msg_recv(this.#msg, this.ptr, ZMQ_DONTWAIT));
      frames.push(this.#takeFrame());
      more = z.zmq_msg_more(this.#msg);
      z.zmq_msg_close(this.#msg);
    }
    return frames;
  }

  #takeFrame(): Uint8Array {
    const z = zmq();
    const size = Number(z.zmq_msg_size(this.#msg));
    if (size === 0) return new Uint8Array(0);
    const data = z.zmq_msg_data(this.#msg)!;
    return new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(data, size).slice(0));
  }

  /**
   * Starts a monitor publishing this socket's events on `inproc://NAME` (a PAIR endpoint).
   * Returns the event format: 2 (with the peer's address) where libzmq offers it, else 1.
   */
  monitor(endpoint: string, events = ZMQ_EVENT_ALL): 1 | 2 {
    const versioned = zmq().zmq_socket_monitor_versioned;
    if (versioned) {
      check(versioned(this.ptr, cstr(endpoint), BigInt(events), 2, ZMQ_PAIR));
      return 2;
    }
    check(zmq().zmq_socket_monitor(this.ptr, cstr(endpoint), events));
    return 1;
  }

  /**
   * Makes this socket a CURVE server with `secretKey` (Z85). Call before bind/connect.
   * `enforceZap`: refuse clients when no ZAP handler answers, instead of admitting them.
   */
  curveServer(secretKey: string, enforceZap = false): void {
    this.setInt(ZMQ_CURVE_SERVER, 1);
    this.setBytes(ZMQ_CURVE_SECRETKEY, secretKey);
    if (enforceZap) this.setInt(ZMQ_ZAP_ENFORCE_DOMAIN, 1);
  }

  /** Makes this socket a CURVE client of the server whose public key is `serverKey` (all Z85). */
  curveClient(keys: { serverKey: string; publicKey: string; secretKey: string }): void {
    this.setBytes(ZMQ_CURVE_SERVERKEY, keys.serverKey);
    this.setBytes(ZMQ_CURVE_PUBLICKEY, keys.publicKey);
    this.setBytes(ZMQ_CURVE_SECRETKEY, keys.secretKey);
  }

  /** Closes the socket (idempotent). Pending messages get the socket's linger. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    zmq().zmq_close(this.ptr);
    this.#onClose();
  }
}

function normalize(frames: Frames | Uint8Array | string): Frames {
  if (typeof frames === "string") return [encoder.encode(frames)];
  if (frames instanceof Uint8Array) return [frames];
  return frames;
}

/**
 * Runs `zmq_proxy_steerable(frontend, backend, capture, control)` on a pool thread; the sockets
 * are busy until it returns. Resolves when the proxy ends: 0 after TERMINATE, -1 when the
 * context was shut down or a signal interrupted its wait (EINTR; `Context.isShutDown` tells).
 */
export function proxySteerable(
  frontend: Socket,
  backend: Socket,
  capture: Socket | null,
  control: Socket,
): Promise<number> {
  const start = () =>
    frontend.closed || frontend.context.isShutDown
      ? -1
      : zmq().zmq_proxy_steerable(frontend.ptr, backend.ptr, capture?.ptr ?? null, control.ptr);
  const call = waitsHeld ? waitsHeld.then(start) : Promise.resolve(start());
  for (const socket of [frontend, backend, capture, control]) socket?.track(call);
  return call;
}
