/**
 * The service manager's notification protocol (sd_notify(3)), without libsystemd: one datagram
 * of `KEY=VALUE` lines to the AF_UNIX socket named by $NOTIFY_SOCKET (a path, or `@name` for
 * Linux's abstract namespace), sent through libc (Deno has no unconnected unix datagram socket
 * without --unstable-net). Where there is no $NOTIFY_SOCKET (not under systemd's Type=notify),
 * or libc cannot be opened, every call does nothing.
 *
 * - READY=1 once every socket is bound, STATUS= with the peers and whether forwarding runs.
 * - RELOADING=1 with MONOTONIC_USEC= (what Type=notify-reload matches against its signal), then
 *   READY=1, around a SIGHUP reload; STOPPING=1 when a stop begins.
 * - WATCHDOG=1 every WATCHDOG_USEC/2 from the event loop, when WATCHDOG_USEC is set for this
 *   process (WATCHDOG_PID absent or ours): a wedged loop misses them and systemd kills it.
 */

import { libcLoader } from "../os/libc.ts";

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const MSG_NOSIGNAL = 0x4000;
const MSG_DONTWAIT = 0x40;
const CLOCK_MONOTONIC = 1;
/** sizeof(struct sockaddr_un): a 2-byte family and a 108-byte path. */
const SOCKADDR_UN_SIZE = 110;

const load = libcLoader({
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  sendto: { parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
  clock_gettime: { parameters: ["i32", "buffer"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
});

/** CLOCK_MONOTONIC in microseconds, as systemd reads it (performance.now() has another origin). */
export function monotonicMicros(): bigint | undefined {
  const c = load();
  if (!c) return undefined;
  const ts = new BigInt64Array(2);
  if (c.clock_gettime(CLOCK_MONOTONIC, ts) !== 0) return undefined;
  return ts[0] * 1_000_000n + ts[1] / 1000n;
}

/**
 * `struct sockaddr_un` for $NOTIFY_SOCKET and its length; undefined for what it cannot be
 * (empty, too long, or another scheme such as systemd's `vsock:`).
 */
export function notifyAddress(socket: string): { address: Uint8Array; length: number } | undefined {
  if (!socket.startsWith("/") && !socket.startsWith("@")) return undefined;
  const path = new TextEncoder().encode(socket);
  if (path.length < 2 || path.length > SOCKADDR_UN_SIZE - 2 - 1) return undefined;
  const address = new Uint8Array(SOCKADDR_UN_SIZE);
  new DataView(address.buffer).setUint16(0, AF_UNIX, true);
  address.set(path, 2);
  // Abstract: a leading NUL and exactly the name's bytes; a path: NUL-terminated.
  if (socket.startsWith("@")) {
    address[2] = 0;
    return { address, length: 2 + path.length };
  }
  return { address, length: 2 + path.length + 1 };
}

/** Talks to the service manager; a no-op outside one. */
export class ServiceNotifier {
  /** Whether a $NOTIFY_SOCKET was given and could be used. */
  readonly active: boolean;
  /** The watchdog's interval (half of WATCHDOG_USEC) in ms, when it is on for this process. */
  readonly watchdogMs: number | undefined;
  readonly #target: { address: Uint8Array; length: number } | undefined;
  readonly #fd: number;
  #watchdog: ReturnType<typeof setInterval> | undefined;
  #lastStatus: string | undefined;
  #failed = false;
  #closed = false;
  readonly #onError: (why: string) => void;

  /**
   * From the environment the process was started with (`NOTIFY_SOCKET`, `WATCHDOG_USEC`,
   * `WATCHDOG_PID`); `onError` hears once why a datagram could not be sent.
   */
  constructor(env: Record<string, string | undefined>, onError: (why: string) => void = () => {}) {
    this.#onError = onError;
    const c = load();
    this.#target = env.NOTIFY_SOCKET ? notifyAddress(env.NOTIFY_SOCKET) : undefined;
    if (env.NOTIFY_SOCKET && !this.#target) {
      onError(`NOTIFY_SOCKET=${env.NOTIFY_SOCKET} is not a unix socket`);
    }
    this.#fd = c && this.#target ? c.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0) : -1;
    this.active = this.#fd >= 0;
    const usec = Number(env.WATCHDOG_USEC);
    const forUs = env.WATCHDOG_PID === undefined || Number(env.WATCHDOG_PID) === Deno.pid;
    this.watchdogMs = this.active && forUs && Number.isInteger(usec) && usec > 0
      ? Math.max(1, Math.floor(usec / 2000))
      : undefined;
  }

  /** Sends `fields` as one datagram; false when not sent (no manager, or the send failed). */
  send(fields: Record<string, string | number | bigint>): boolean {
    const c = load();
    if (!c || !this.active || this.#closed) return false;
    const text = Object.entries(fields).map(([key, value]) => `${key}=${String(value).replace(/\n/g, " ")}`)
      .join("\n");
    const data = new TextEncoder().encode(text + "\n");
    const sent = c.sendto(
      this.#fd,
      data,
      BigInt(data.length),
      MSG_NOSIGNAL | MSG_DONTWAIT,
      this.#target!.address,
      this.#target!.length,
    );
    if (sent >= 0) return true;
    if (!this.#failed) {
      this.#failed = true;
      const errno = new Deno.UnsafePointerView(c.__errno_location()!).getInt32();
      this.#onError(`cannot notify the service manager (errno ${errno})`);
    }
    return false;
  }

  /** READY=1 (with STATUS= when given). */
  ready(status?: string): void {
    this.send(status === undefined ? { READY: 1 } : { READY: 1, STATUS: this.#remember(status) });
  }

  /** RELOADING=1 and the monotonic time it began. */
  reloading(): void {
    const now = monotonicMicros();
    this.send(now === undefined ? { RELOADING: 1 } : { RELOADING: 1, MONOTONIC_USEC: now });
  }

  /** STOPPING=1 (with STATUS= when given). */
  stopping(status?: string): void {
    this.stopWatchdog();
    this.send(status === undefined ? { STOPPING: 1 } : { STOPPING: 1, STATUS: this.#remember(status) });
  }

  /** STATUS=, sent only when it changed. */
  status(text: string): void {
    if (text === this.#lastStatus) return;
    this.send({ STATUS: this.#remember(text) });
  }

  /** WATCHDOG=1 now and every `watchdogMs` from the event loop, if the watchdog is on. */
  startWatchdog(): void {
    if (this.watchdogMs === undefined || this.#watchdog !== undefined) return;
    this.send({ WATCHDOG: 1 });
    this.#watchdog = setInterval(() => this.send({ WATCHDOG: 1 }), this.watchdogMs);
  }

  stopWatchdog(): void {
    clearInterval(this.#watchdog);
    this.#watchdog = undefined;
  }

  /** Stops the watchdog and closes the socket. */
  close(): void {
    this.stopWatchdog();
    if (this.active && !this.#closed) load()?.close(this.#fd);
    this.#closed = true;
  }

  #remember(status: string): string {
    this.#lastStatus = status;
    return status;
  }
}

/** Monitor events that open a connection to a peer, and the one that ends it; value = fd. */
const OPENS = new Set(["accepted", "connected"]);

/**
 * The STATUS= line: the main channel's publishers (XSUB) and subscribers (XPUB), counted from
 * their socket events, and whether forwarding runs or waits for a subscriber (--subscriber-wait).
 * Changes reach the manager at most every `everyMs`.
 */
export class ServiceStatus {
  readonly #publishers = new Set<number>();
  readonly #subscribers = new Set<number>();
  readonly #notifier: ServiceNotifier;
  readonly #everyMs: number;
  #forwarding = false;
  #live = false;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(notifier: ServiceNotifier, everyMs = 500) {
    this.#notifier = notifier;
    this.#everyMs = everyMs;
  }

  /** For `AdaptorHooks.onSocketEvent`. */
  report(channel: string, role: string, event: { name: string; value: number }): void {
    if (channel !== "main" || !this.#notifier.active) return;
    const peers = role === "bind" ? this.#publishers : role === "publish" ? this.#subscribers : undefined;
    if (!peers) return;
    if (OPENS.has(event.name)) peers.add(event.value);
    else if (event.name === "disconnected") peers.delete(event.value);
    else return;
    this.#schedule();
  }

  /** The main proxy forwards from now on. */
  forwarding(): void {
    this.#forwarding = true;
    this.#schedule();
  }

  /** From now on changes are sent (after READY=1, which carries the first line). */
  live(): void {
    this.#live = true;
  }

  /** e.g. "forwarding; 12 publishers, 2 subscribers". */
  get text(): string {
    const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? "" : "s"}`;
    const state = this.#forwarding ? "forwarding" : "bound, forwarding waits for a subscriber";
    return `${state}; ${plural(this.#publishers.size, "publisher")}, ${
      plural(this.#subscribers.size, "subscriber")
    }`;
  }

  close(): void {
    clearTimeout(this.#timer);
    this.#live = false;
  }

  #schedule(): void {
    if (!this.#live || this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#live) this.#notifier.status(this.text);
    }, this.#everyMs);
  }
}
