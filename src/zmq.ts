/**
 * libzmq through Deno FFI, on the very library that the `zeromq` npm package ships.
 *
 * Why not zeromq.js sockets: under Deno 2.9 their JS-level waits are unreliable (Deno's
 * libuv shim fires `uv_poll` once, zeromq.js expects it to keep firing; see
 * `tests/deno_quirk_test.ts`). Here every wait is a blocking libzmq call made with
 * `nonblocking: true`, so it runs on a thread of Deno's blocking pool and resolves a promise:
 * no polling timers, no CPU at rest, and the forwarding loop (`zmq_proxy_steerable`) is C.
 *
 * The addon exports libzmq's `zmq_*` symbols. We pick the prebuilt addon the way zeromq's
 * loader would (its manifest, this libc, the highest Node-API level that loads) and `dlopen` it
 * ourselves: zeromq's JavaScript never runs. Inside a `deno compile` binary the same path is in
 * the embedded file system, which `Deno.dlopen` reads from (Deno ≥ 2.3 extracts the library);
 * should that fail, zeromq's own loader loads the addon and we `dlopen` the file it opened.
 *
 * Threading rule: a socket is used by one call at a time. A socket given to an async call
 * (`recvAsync`, `proxySteerable`) is not touched from JS until that call resolves.
 */

import Module, { createRequire } from "node:module";

/** Socket types (zmq.h). */
export const ZMQ_PAIR = 0;
export const ZMQ_PUB = 1;
export const ZMQ_SUB = 2;
export const ZMQ_REQ = 3;
export const ZMQ_REP = 4;
export const ZMQ_PULL = 7;
export const ZMQ_PUSH = 8;
export const ZMQ_XPUB = 9;
export const ZMQ_XSUB = 10;

/** Socket options (zmq.h) that the adaptor uses. */
export const ZMQ_SUBSCRIBE = 6;
export const ZMQ_UNSUBSCRIBE = 7;
export const ZMQ_SNDHWM = 23;
export const ZMQ_RCVHWM = 24;
export const ZMQ_RECONNECT_IVL = 18;
export const ZMQ_RECONNECT_IVL_MAX = 21;
export const ZMQ_LINGER = 17;
export const ZMQ_RCVTIMEO = 27;
export const ZMQ_SNDTIMEO = 28;
export const ZMQ_LAST_ENDPOINT = 32;
export const ZMQ_TCP_KEEPALIVE = 34;
export const ZMQ_TCP_KEEPALIVE_IDLE = 36;
export const ZMQ_TCP_KEEPALIVE_INTVL = 37;
export const ZMQ_TCP_KEEPALIVE_CNT = 35;
export const ZMQ_IMMEDIATE = 39;
export const ZMQ_XPUB_VERBOSE = 40;
/** Draft (libzmq ≥ 4.3.3): distinct subscriptions an XPUB/PUB or XSUB holds now; read-only. */
export const ZMQ_TOPICS_COUNT = 116;
export const ZMQ_RCVMORE = 13;
export const ZMQ_MECHANISM = 43;
export const ZMQ_CURVE_SERVER = 47;
export const ZMQ_CURVE_PUBLICKEY = 48;
export const ZMQ_CURVE_SECRETKEY = 49;
export const ZMQ_CURVE_SERVERKEY = 50;
export const ZMQ_ZAP_DOMAIN = 55;
/** Draft option: refuse CURVE/PLAIN peers when no ZAP handler answers (fail closed). */
export const ZMQ_ZAP_ENFORCE_DOMAIN = 93;

/** Security mechanisms (ZMQ_MECHANISM values). */
export const ZMQ_NULL = 0;
export const ZMQ_CURVE = 2;
/** int: TCP_USER_TIMEOUT on Linux: how long sent data may stay unacknowledged (or unsent behind
 * a zero window) before the kernel drops the connection, in ms (0: the kernel's ~15 min). */
export const ZMQ_TCP_MAXRT = 80;
/** int: bytes encoded into one write to a connection (default 8192). A draft option: the
 * zeromq package builds libzmq with the draft API. */
export const ZMQ_OUT_BATCH_SIZE = 102;
/** int: listen backlog of bound tcp/ipc endpoints (pending connections the kernel queues). */
export const ZMQ_BACKLOG = 19;
/** int64: largest inbound frame in bytes; a peer that sends a larger one is disconnected. -1: no limit. */
export const ZMQ_MAXMSGSIZE = 22;
/** int: how long a new connection may take to finish the ZMTP handshake, in ms (0: forever). */
export const ZMQ_HANDSHAKE_IVL = 66;
/** int: interval between ZMTP PINGs on each connection, in ms (0: no heartbeat). */
export const ZMQ_HEARTBEAT_IVL = 75;
/** int: the time-to-live sent in our PINGs: the peer drops us if it hears nothing that long (ms). */
export const ZMQ_HEARTBEAT_TTL = 76;
/** int: how long after a PING with no traffic back the connection is dropped, in ms. */
export const ZMQ_HEARTBEAT_TIMEOUT = 77;

/** Context options. */
export const ZMQ_IO_THREADS = 1;
export const ZMQ_MAX_SOCKETS = 2;

/** Send/recv flags. */
export const ZMQ_DONTWAIT = 1;
export const ZMQ_SNDMORE = 2;

/** errno values libzmq reports that we act on. */
export const EAGAIN = 11;
export const EINTR = 4;
export const ETERM = 156384765;

/** Monitor events (zmq.h, v1 monitor protocol). */
export const EVENT_NAMES: Readonly<Record<number, string>> = {
  0x0001: "connected",
  0x0002: "connect_delayed",
  0x0004: "connect_retried",
  0x0008: "listening",
  0x0010: "bind_failed",
  0x0020: "accepted",
  0x0040: "accept_failed",
  0x0080: "closed",
  0x0100: "close_failed",
  0x0200: "disconnected",
  0x0400: "monitor_stopped",
  0x0800: "handshake_failed_no_detail",
  0x1000: "handshake_succeeded",
  0x2000: "handshake_failed_protocol",
  0x4000: "handshake_failed_auth",
};
export const ZMQ_EVENT_ALL = 0xffff;
export const ZMQ_EVENT_BIND_FAILED = 0x0010;

/** Protocol errors reported by `handshake_failed_protocol` events (zmq.h). */
export const PROTOCOL_ERRORS: Readonly<Record<number, string>> = {
  0x10000000: "ZMTP protocol error",
  0x10000001: "unexpected command",
  0x10000002: "invalid command sequence",
  0x10000003: "key exchange failed",
  0x10000011: "malformed command",
  0x10000012: "malformed MESSAGE command",
  0x10000013: "malformed HELLO command",
  0x10000014: "malformed INITIATE command",
  0x10000015: "malformed ERROR command",
  0x10000016: "malformed READY command",
  0x10000017: "malformed WELCOME command",
  0x10000018: "invalid metadata",
  0x11000001: "cryptographic error (the client may use a wrong server key)",
  0x11000002: "security mechanism mismatch (the client may not use CURVE)",
  0x20000000: "ZAP error",
  0x20000001: "malformed ZAP reply",
  0x20000002: "bad ZAP request id",
  0x20000003: "bad ZAP version",
  0x20000004: "invalid ZAP status code",
  0x20000005: "malformed ZAP metadata",
  0x30000000: "WebSocket protocol error",
};

const symbols = {
  zmq_version: { parameters: ["buffer", "buffer", "buffer"], result: "void" },
  zmq_errno: { parameters: [], result: "i32" },
  zmq_strerror: { parameters: ["i32"], result: "pointer" },
  zmq_ctx_new: { parameters: [], result: "pointer" },
  zmq_ctx_set: { parameters: ["pointer", "i32", "i32"], result: "i32" },
  zmq_ctx_shutdown: { parameters: ["pointer"], result: "i32" },
  // Terminating waits for every socket's linger: never on the JS thread.
  zmq_ctx_term: { parameters: ["pointer"], result: "i32", nonblocking: true },
  zmq_socket: { parameters: ["pointer", "i32"], result: "pointer" },
  zmq_close: { parameters: ["pointer"], result: "i32" },
  zmq_bind: { parameters: ["pointer", "buffer"], result: "i32" },
  zmq_unbind: { parameters: ["pointer", "buffer"], result: "i32" },
  zmq_disconnect: { parameters: ["pointer", "buffer"], result: "i32" },
  zmq_connect: { parameters: ["pointer", "buffer"], result: "i32" },
  zmq_setsockopt: { parameters: ["pointer", "i32", "buffer", "usize"], result: "i32" },
  zmq_getsockopt: { parameters: ["pointer", "i32", "buffer", "buffer"], result: "i32" },
  zmq_send: { parameters: ["pointer", "buffer", "usize", "i32"], result: "i32" },
  zmq_recv: { parameters: ["pointer", "buffer", "usize", "i32"], result: "i32" },
  zmq_send_async: {
    name: "zmq_send",
    parameters: ["pointer", "buffer", "usize", "i32"],
    result: "i32",
    nonblocking: true,
  },
  zmq_msg_init: { parameters: ["buffer"], result: "i32" },
  zmq_msg_close: { parameters: ["buffer"], result: "i32" },
  zmq_msg_data: { parameters: ["buffer"], result: "pointer" },
  zmq_msg_size: { parameters: ["buffer"], result: "usize" },
  zmq_msg_more: { parameters: ["buffer"], result: "i32" },
  zmq_msg_recv: { parameters: ["buffer", "pointer", "i32"], result: "i32" },
  zmq_msg_recv_async: {
    name: "zmq_msg_recv",
    parameters: ["buffer", "pointer", "i32"],
    result: "i32",
    nonblocking: true,
  },
  zmq_socket_monitor: { parameters: ["pointer", "buffer", "i32"], result: "i32" },
  // Draft API (present in zeromq's prebuilt addon): v2 events carry the peer's address.
  zmq_socket_monitor_versioned: {
    parameters: ["pointer", "buffer", "u64", "i32", "i32"],
    result: "i32",
    optional: true,
  },
  zmq_has: { parameters: ["buffer"], result: "i32" },
  zmq_curve_keypair: { parameters: ["buffer", "buffer"], result: "i32" },
  zmq_curve_public: { parameters: ["buffer", "buffer"], result: "i32" },
  zmq_z85_encode: { parameters: ["buffer", "buffer", "usize"], result: "pointer" },
  zmq_z85_decode: { parameters: ["buffer", "buffer"], result: "pointer" },
  zmq_proxy_steerable: {
    parameters: ["pointer", "pointer", "pointer", "pointer"],
    result: "i32",
    nonblocking: true,
  },
} as const satisfies Deno.ForeignLibraryInterface;

type Lib = Deno.DynamicLibrary<typeof symbols>["symbols"];

/** A libzmq error: `code` is libzmq's errno, `message` its strerror text. */
export class ZmqError extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
    this.name = "ZmqError";
  }
}

let lib: Lib | undefined;
let libPath: string | undefined;

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

/** The path of the libzmq-carrying addon this process loaded (for diagnostics and tests). */
export function addonPath(): string {
  load();
  return libPath!;
}

/**
 * Which of the zeromq package's prebuilt addons runs here, e.g. "glibc-127-Release": the first of
 * its manifest's builds for this platform and C library that loads (see `prebuiltAddons`).
 */
export function addonBuild(): string {
  return addonPath().split("/").at(-2) ?? "unknown";
}

/**
 * The zeromq package's prebuilt addons that suit this platform, best first, as its loader
 * (cmake-ts) ranks them: the package's `build/manifest.json` lists each build's os, arch, libc
 * and Node-API level; the highest level goes first. Empty when the package's files cannot be read.
 */
export function prebuiltAddons(): string[] {
  let buildDir: string;
  let manifest: Record<string, string>;
  try {
    // resolve() finds the package's main file (lib/index.js) without running it.
    const main = createRequire(import.meta.url).resolve("zeromq");
    buildDir = `${main.slice(0, main.lastIndexOf("/lib/"))}/build`;
    manifest = JSON.parse(Deno.readTextFileSync(`${buildDir}/manifest.json`));
  } catch {
    return [];
  }
  const here = { os: NODE_OS[Deno.build.os], arch: NODE_ARCH[Deno.build.arch], libc: libcFamily() };
  const builds: { abi: number; path: string }[] = [];
  for (const [key, path] of Object.entries(manifest)) {
    let build: { os?: string; arch?: string; libc?: string; abi?: number };
    try {
      build = JSON.parse(key);
    } catch {
      continue;
    }
    if (build.os !== here.os || build.arch !== here.arch || build.libc !== here.libc) continue;
    builds.push({ abi: build.abi ?? 0, path: `${buildDir}/${path}` });
  }
  return builds.sort((a, b) => b.abi - a.abi).map((b) => b.path);
}

// Deno's names for the platform, in Node's words (the manifest's).
const NODE_OS: Partial<Record<string, string>> = { linux: "linux", darwin: "darwin", windows: "win32" };
const NODE_ARCH: Partial<Record<string, string>> = { x86_64: "x64", aarch64: "arm64" };

// cmake-ts's rule: Linux is musl where /etc/alpine-release exists, glibc elsewhere.
function libcFamily(): string {
  if (Deno.build.os !== "linux") return Deno.build.os === "darwin" ? "libc" : "msvc";
  try {
    Deno.statSync("/etc/alpine-release");
    return "musl";
  } catch {
    return "glibc";
  }
}

/** The addon files Node's loader opened, recorded by `watchAddonLoads`. */
const addonLoads: string[] = [];

// Records which `.node` file zeromq's loader picks (prebuild by libc and Node-API version).
function watchAddonLoads(): () => void {
  // deno-lint-ignore no-explicit-any
  const extensions = (Module as any)._extensions as Record<string, (m: unknown, f: string) => unknown>;
  const original = extensions[".node"];
  extensions[".node"] = function (this: unknown, module: unknown, filename: string) {
    addonLoads.push(filename);
    return original.call(this, module, filename);
  };
  return () => void (extensions[".node"] = original);
}

/** libzmq opened from an addon file, or why none could be. */
export type Opened = { lib: Lib; path: string } | { problem: unknown };

// The first of `paths` that dlopen accepts (a build that needs a newer glibc fails), or the last
// problem met.
function openFirst(paths: string[]): Opened {
  let problem: unknown = new Error("the zeromq native addon did not load");
  for (const path of paths) {
    try {
      return { lib: Deno.dlopen(path, symbols).symbols, path };
    } catch (error) {
      problem = error;
    }
  }
  return { problem };
}

/**
 * The second route to libzmq: zeromq's own loader loads the addon (inside a compiled binary,
 * that is what extracts it), then we open the file it loaded, which returns the same library.
 * Runs zeromq's JavaScript and Node-API module.
 */
export function openThroughZeromq(): Opened {
  const unwatch = watchAddonLoads();
  try {
    createRequire(import.meta.url)("zeromq");
  } catch (problem) {
    return { problem };
  } finally {
    unwatch();
  }
  return openFirst([...addonLoads.filter((f) => f.includes("zeromq")).reverse()]);
}

/**
 * Opens libzmq: straight from the prebuilt addon files where it can, so that only libzmq runs
 * (zeromq's JavaScript and Node-API module stay unloaded: ~1 MiB less RSS); else, e.g. inside a
 * compiled binary, whose embedded files dlopen cannot reach, through zeromq's loader.
 */
function load(): Lib {
  if (lib) return lib;
  let opened = openFirst(prebuiltAddons());
  if ("problem" in opened) opened = openThroughZeromq();
  if ("problem" in opened) throw opened.problem;
  lib = opened.lib;
  libPath = opened.path;
  return lib;
}

/** The loaded library, loading it on first use. */
export function zmq(): Lib {
  return lib ?? load();
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A NUL-terminated C string. */
export function cstr(text: string): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(text.length * 3 + 1);
  const { written } = encoder.encodeInto(text, bytes);
  return bytes.subarray(0, written + 1) as Uint8Array<ArrayBuffer>;
}

/** The current thread's last libzmq error as a `ZmqError`. */
export function lastError(): ZmqError {
  const z = zmq();
  const code = z.zmq_errno();
  return errorFor(code);
}

/** A `ZmqError` for errno `code`. */
export function errorFor(code: number): ZmqError {
  const ptr = zmq().zmq_strerror(code);
  const text = ptr ? Deno.UnsafePointerView.getCString(ptr) : `errno ${code}`;
  return new ZmqError(code, text);
}

function check(rc: number): void {
  if (rc === -1) throw lastError();
}

/** libzmq's version, e.g. "4.3.5". */
export function zmqVersion(): string {
  const [a, b, c] = [new Int32Array(1), new Int32Array(1), new Int32Array(1)];
  zmq().zmq_version(a, b, c);
  return `${a[0]}.${b[0]}.${c[0]}`;
}

/** Whether this libzmq was built with `capability` ("curve", "ipc", "draft", …). */
export function hasCapability(capability: string): boolean {
  return zmq().zmq_has(cstr(capability)) === 1;
}

/** A CURVE key pair, each key as 40 characters of Z85 text. */
export interface CurveKeyPair {
  readonly publicKey: string;
  readonly secretKey: string;
}

/** A new CURVE key pair from libzmq (`zmq_curve_keypair`). Throws when CURVE is not built in. */
export function curveKeypair(): CurveKeyPair {
  const publicText = new Uint8Array(41);
  const secretText = new Uint8Array(41);
  check(zmq().zmq_curve_keypair(publicText, secretText));
  return {
    publicKey: decoder.decode(publicText.subarray(0, 40)),
    secretKey: decoder.decode(secretText.subarray(0, 40)),
  };
}

/** The public key that belongs to `secretKey` (Z85 in, Z85 out; `zmq_curve_public`). */
export function curvePublic(secretKey: string): string {
  const publicText = new Uint8Array(41);
  check(zmq().zmq_curve_public(publicText, cstr(secretKey)));
  return decoder.decode(publicText.subarray(0, 40));
}

/** Z85 text of `bytes` (a multiple of 4 bytes long, e.g. a 32-byte key). */
export function z85Encode(bytes: Uint8Array): string {
  const text = new Uint8Array(Math.ceil(bytes.length * 5 / 4) + 1);
  const ptr = zmq().zmq_z85_encode(text, bytes as Uint8Array<ArrayBuffer>, BigInt(bytes.length));
  if (!ptr) throw new ZmqError(22, `cannot Z85-encode ${bytes.length} bytes (need a multiple of 4)`);
  return decoder.decode(text.subarray(0, text.length - 1));
}

/** The bytes of Z85 `text`, or undefined when it is not valid Z85 (length a multiple of 5). */
export function z85Decode(text: string): Uint8Array | undefined {
  // libzmq's decoder reads any byte: keep the text to Z85's alphabet first
  if (text.length % 5 !== 0 || /[^\x21-\x7e]|["',;\\_`|~]/.test(text)) return undefined;
  const bytes = new Uint8Array(text.length * 4 / 5);
  const ptr = zmq().zmq_z85_decode(bytes, cstr(text));
  return ptr ? bytes : undefined;
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
      // zmq_ctx_term only fails with EINTR, which means "call again"; errno is
      // thread-local and this ran on another thread, so it cannot be read here.
    }
  }
}

/** A received message: its frames, in order. */
export type Frames = Uint8Array[];

/** One libzmq socket. Methods throw `ZmqError` on failure. */
export class Socket {
  #msg = new Uint8Array(64); // zmq_msg_t
  #closed = false;
  #busy: Promise<unknown> = Promise.resolve();
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
    return this.#busy.then(() => {}, () => {});
  }

  /** Waits while blocking calls are held; false when the socket is gone meanwhile. */
  async #waitsAllowed(): Promise<boolean> {
    if (waitsHeld) await this.track(waitsHeld);
    return !this.#closed && !this.context.isShutDown;
  }

  /** Marks the socket busy until `call` settles (a blocking call on a pool thread). */
  track<T>(call: Promise<T>): Promise<T> {
    const previous = this.#busy;
    this.#busy = Promise.allSettled([previous, call]);
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

/** One decoded monitor event; `remote` is the peer's address where libzmq names it (v2). */
export interface MonitorEvent {
  readonly event: number;
  readonly name: string;
  readonly value: number;
  readonly endpoint: string;
  readonly remote: string;
}

/**
 * Decodes a monitor message: v1 is [event u16 | value u32, endpoint]; v2 is [event u64,
 * count u64, count × value u64, local address, remote address].
 */
export function decodeMonitorEvent(frames: Frames, version: 1 | 2 = 1): MonitorEvent | undefined {
  const view = (f: Uint8Array) => new DataView(f.buffer, f.byteOffset, f.byteLength);
  if (version === 2) {
    if (frames.length < 4 || frames[0].length < 8 || frames[1].length < 8) return undefined;
    const event = Number(view(frames[0]).getBigUint64(0, true));
    const count = Number(view(frames[1]).getBigUint64(0, true));
    if (frames.length < 4 + count) return undefined;
    const value = count > 0 && frames[2].length >= 8 ? Number(view(frames[2]).getBigUint64(0, true)) : 0;
    return {
      event,
      name: EVENT_NAMES[event] ?? `event_${event}`,
      value,
      endpoint: decoder.decode(frames[2 + count]),
      remote: decoder.decode(frames[3 + count]),
    };
  }
  if (frames.length < 2 || frames[0].length < 6) return undefined;
  const event = view(frames[0]).getUint16(0, true);
  const value = view(frames[0]).getUint32(2, true);
  return {
    event,
    name: EVENT_NAMES[event] ?? `event_${event}`,
    value,
    endpoint: decoder.decode(frames[1]),
    remote: "",
  };
}
