/**
 * The HTTP side of `--metrics`: `GET /metrics` (Prometheus text format) and `GET /healthz`
 * (200 `ok`, or 503 and the reason).
 *
 * It binds before the adaptor opens any ZeroMQ socket, so a busy or bad address fails the
 * start with nothing else to undo; until the adaptor is attached, `/healthz` says `starting`.
 * A scrape costs the forwarding nothing per message: see `metrics.ts`.
 *
 * The port is often reachable from the network, so no peer may hold its descriptors for long
 * or make the process fail. `Deno.serve` could do neither: it never closes idle or
 * slow connections, and at the descriptor limit its accept loop's EMFILE ended the process as
 * an uncaught rejection. This server is a small HTTP/1.1 server over `Deno.listen`:
 *
 * - at most `maxConnections` connections at once (default 32); one beyond is closed at once
 *   (counted, and logged at most once a minute with the count);
 * - one request per connection (`connection: close`): a request head (at most 8 KiB) must
 *   arrive within `headerTimeoutMs` (5 s) of the accept, and the response be taken by the
 *   client within `responseTimeoutMs` (10 s), else the connection is closed. Idle, slowloris
 *   and half-open connections thus hold a descriptor for 5 s at most;
 * - an accept error (EMFILE: out of descriptors) is logged (throttled) and retried after a
 *   back-off of 100 ms doubling to 2 s; a listener that breaks is opened again on the same
 *   address. Nothing here rejects unhandled.
 */

import { joinHostPort, type ListenAddress } from "../config/endpoint.ts";
import { StartupError } from "../errors.ts";
import { literal, log } from "../ops/log.ts";
import { oneLine } from "../errors.ts";
import { type AdaptorMetrics, EXPOSITION_CONTENT_TYPE } from "./metrics.ts";
import { sanitize } from "../ops/sanitize.ts";
import { LogThrottle } from "../ops/throttle.ts";

/** A running metrics server. */
export interface MetricsServer {
  /** The address it listens on (the real port when 0 was asked). */
  readonly address: ListenAddress;
  /** Base URL, e.g. `http://127.0.0.1:6002`. */
  readonly url: string;
  /** Connections refused because `maxConnections` were open, and accept errors, since start. */
  readonly refused: { readonly atCap: number; readonly acceptErrors: number };
  /** Connections open right now. */
  readonly open: number;
  /** Stops listening and closes open connections; waits at most `timeoutMs`. Idempotent. */
  stop(timeoutMs?: number): Promise<void>;
}

/** The server's limits; the defaults suit a Prometheus scraping every few seconds. */
export interface HttpLimits {
  /** Connections served at once; more are closed on accept. */
  readonly maxConnections: number;
  /** From the accept to the end of the request head. */
  readonly headerTimeoutMs: number;
  /** For the client to take the whole response. */
  readonly responseTimeoutMs: number;
  /** Largest request head (request line and headers). */
  readonly maxHeaderBytes: number;
}

export const DEFAULT_HTTP_LIMITS: HttpLimits = {
  maxConnections: 32,
  headerTimeoutMs: 5_000,
  responseTimeoutMs: 10_000,
  maxHeaderBytes: 8192,
};

const BACKOFF_FIRST_MS = 100;
const BACKOFF_MAX_MS = 2_000;
const encoder = new TextEncoder();

/**
 * Serves `metrics` on `address`. Throws `StartupError` (one line naming `--metrics`) when the
 * address cannot be bound: port in use, no such local address, host name not found.
 */
export function serveMetrics(
  address: ListenAddress,
  metrics: AdaptorMetrics,
  limits: Partial<HttpLimits> = {},
): MetricsServer {
  const given = joinHostPort(address.hostname, address.port);
  let listener: Deno.TcpListener;
  try {
    listener = Deno.listen({ hostname: address.hostname, port: address.port });
  } catch (error) {
    throw new StartupError(`--metrics '${given}': cannot listen: ${osMessage(error)}`);
  }
  return new HttpServer(listener, metrics, { ...DEFAULT_HTTP_LIMITS, ...limits });
}

/** The server: an accept loop that never ends by itself, and the connections it serves. */
class HttpServer implements MetricsServer {
  readonly address: ListenAddress;
  readonly url: string;
  readonly refused = { atCap: 0, acceptErrors: 0 };
  readonly #limits: HttpLimits;
  readonly #metrics: AdaptorMetrics;
  readonly #connections = new Set<Connection>();
  readonly #logger = log("metrics");
  readonly #throttle: LogThrottle;
  readonly #accepting: Promise<void>;
  #listener: Deno.TcpListener;
  #stopping = false;
  #wake: (() => void) | undefined;
  #stopped: Promise<void> | undefined;

  constructor(listener: Deno.TcpListener, metrics: AdaptorMetrics, limits: HttpLimits) {
    this.#listener = listener;
    this.#metrics = metrics;
    this.#limits = limits;
    const addr = listener.addr as Deno.NetAddr;
    this.address = { hostname: addr.hostname, port: addr.port };
    this.url = `http://${joinHostPort(addr.hostname, addr.port)}`;
    const logger = this.#logger;
    this.#throttle = new LogThrottle({
      windowMs: 60_000,
      perWindow: 1,
      write: (line) => logger.warn(literal(line)),
    });
    logger.info("Serving metrics at {url}/metrics and health at {url}/healthz", { url: this.url });
    metrics.attachHttp(() => this.refused);
    this.#accepting = this.#acceptLoop().catch((error) => {
      logger.error(literal(`metrics server stopped accepting: ${oneLine(error)}`));
    });
  }

  get open(): number {
    return this.#connections.size;
  }

  async #acceptLoop(): Promise<void> {
    let backoff = BACKOFF_FIRST_MS;
    while (!this.#stopping) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.#listener.accept();
      } catch (error) {
        if (this.#stopping) return;
        await this.#afterAcceptError(error, backoff);
        backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
        continue;
      }
      backoff = BACKOFF_FIRST_MS;
      this.#serve(conn);
    }
  }

  /** EMFILE and the like: logged (throttled), retried after `backoff`; a broken listener is opened again. */
  async #afterAcceptError(error: unknown, backoff: number): Promise<void> {
    this.refused.acceptErrors++;
    const broken = error instanceof Deno.errors.BadResource || error instanceof Deno.errors.Interrupted;
    this.#throttle.report(
      "accept",
      `${this.url}: cannot accept a connection: ${osMessage(error)}; ${
        broken ? "listening again" : "retrying"
      } in ${backoff} ms`,
    );
    await this.#sleep(backoff);
    if (!broken || this.#stopping) return;
    try {
      this.#listener.close();
    } catch {
      // already closed
    }
    try {
      this.#listener = Deno.listen({ hostname: this.address.hostname, port: this.address.port });
    } catch (again) {
      this.#throttle.report("listen", `${this.url}: cannot listen again: ${osMessage(again)}`);
    }
  }

  /** Serves `conn`, or closes it at once at the connection cap. */
  #serve(conn: Deno.TcpConn): void {
    const lim = this.#limits;
    if (this.#connections.size >= lim.maxConnections) {
      this.refused.atCap++;
      closeQuietly(conn);
      this.#throttle.report(
        "cap",
        `${this.url}: ${lim.maxConnections} connections open, closing new ones (--metrics serves ` +
          `${lim.maxConnections} at once, each for ${
            lim.headerTimeoutMs / 1000
          } s at most before its request)`,
      );
      return;
    }
    const connection = new Connection(conn, lim);
    this.#connections.add(connection);
    connection.serve(this.#metrics).catch(() => {}).finally(() => this.#connections.delete(connection));
  }

  /** A back-off that `stop()` cuts short. */
  #sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => (this.#wake = undefined, resolve()), ms);
      this.#wake = () => (clearTimeout(timer), this.#wake = undefined, resolve());
    });
  }

  stop(timeoutMs = 1000): Promise<void> {
    this.#stopped ??= (async () => {
      this.#stopping = true;
      this.#wake?.();
      try {
        this.#listener.close();
      } catch {
        // closed by a failed re-listen
      }
      await this.#accepting;
      // Connections still reading a request head have nothing to finish: close them now;
      // a request being answered gets `timeoutMs` (a scrape waiting on a blocked proxy).
      for (const c of this.#connections) if (!c.answering) c.close();
      const deadline = performance.now() + timeoutMs;
      while (this.#connections.size > 0 && performance.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      for (const c of this.#connections) c.close();
      this.#throttle.close();
    })();
    return this.#stopped;
  }
}

/** One accepted connection: read one request head, answer it, close. */
class Connection {
  answering = false;
  #closed = false;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly conn: Deno.TcpConn, private readonly limits: HttpLimits) {}

  close(): void {
    clearTimeout(this.#timer);
    if (this.#closed) return;
    this.#closed = true;
    closeQuietly(this.conn);
  }

  /** Closes the connection `ms` from now unless it is closed first. */
  #deadline(ms: number): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.close(), ms);
  }

  async serve(metrics: AdaptorMetrics): Promise<void> {
    try {
      this.#deadline(this.limits.headerTimeoutMs);
      const head = await this.#readHead();
      if (head === undefined) return;
      this.answering = true;
      const response = typeof head === "number"
        ? plain(head, STATUS_TEXT[head])
        : await answer(head, metrics);
      if (this.#closed) return;
      this.#deadline(this.limits.responseTimeoutMs);
      await this.#writeAll(serialize(response, typeof head !== "number" && head.method === "HEAD"));
    } finally {
      this.close();
    }
  }

  /** The parsed head; a status number for a bad one; undefined if the client went away. */
  async #readHead(): Promise<Head | number | undefined> {
    const buffer = new Uint8Array(this.limits.maxHeaderBytes);
    let length = 0;
    for (;;) {
      if (length === buffer.length) return 431;
      let n: number | null;
      try {
        n = await this.conn.read(buffer.subarray(length));
      } catch {
        return undefined; // closed by the deadline, or reset
      }
      if (n === null) return undefined;
      const from = Math.max(0, length - 3);
      length += n;
      const end = indexOfHeadEnd(buffer, from, length);
      if (end >= 0) return parseHead(new TextDecoder("latin1").decode(buffer.subarray(0, end)));
    }
  }

  async #writeAll(bytes: Uint8Array): Promise<void> {
    let offset = 0;
    while (offset < bytes.length && !this.#closed) {
      try {
        offset += await this.conn.write(bytes.subarray(offset));
      } catch {
        return;
      }
    }
  }
}

interface Head {
  readonly method: string;
  readonly path: string;
}

interface Reply {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: string;
}

const STATUS_TEXT: Record<number, string> = {
  200: "OK",
  400: "Bad Request",
  404: "Not Found",
  405: "Method Not Allowed",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  503: "Service Unavailable",
  505: "HTTP Version Not Supported",
};

/** Where the blank line ending the head starts in `buffer[from, to)`, or -1. */
function indexOfHeadEnd(buffer: Uint8Array, from: number, to: number): number {
  for (let i = from; i + 3 < to; i++) {
    if (buffer[i] === 13 && buffer[i + 1] === 10 && buffer[i + 2] === 13 && buffer[i + 3] === 10) return i;
  }
  return -1;
}

/** The request line of an HTTP/1.x head; the headers are not needed. */
export function parseHead(head: string): Head | number {
  const line = head.slice(0, head.indexOf("\r\n") >>> 0);
  const match = /^([A-Z]{1,20}) (\S+) HTTP\/(\d)\.\d$/.exec(line);
  if (!match) return 400;
  if (match[3] !== "1") return 505;
  let path: string;
  try {
    path = new URL(match[2], "http://metrics.invalid").pathname;
  } catch {
    return 400;
  }
  return { method: match[1], path };
}

async function answer(head: Head, metrics: AdaptorMetrics): Promise<Reply> {
  try {
    if (head.method !== "GET" && head.method !== "HEAD") {
      return { ...plain(405, "method not allowed"), headers: { ...TEXT, allow: "GET, HEAD" } };
    }
    if (head.path === "/metrics") {
      return {
        status: 200,
        headers: { "content-type": EXPOSITION_CONTENT_TYPE },
        body: await metrics.render(),
      };
    }
    if (head.path === "/healthz") {
      const health = metrics.health();
      return plain(health.ok ? 200 : 503, health.ok ? "ok" : health.reason);
    }
    return plain(404, "not found; try /metrics or /healthz");
  } catch (error) {
    log("metrics").warn("request failed: {error}", { error: sanitize(String(error)) });
    return plain(500, "internal error");
  }
}

const TEXT = { "content-type": "text/plain; charset=utf-8" };

function plain(status: number, text: string): Reply {
  return { status, headers: TEXT, body: `${text}\n` };
}

function serialize(reply: Reply, headOnly: boolean): Uint8Array {
  const body = encoder.encode(reply.body);
  let text = `HTTP/1.1 ${reply.status} ${STATUS_TEXT[reply.status] ?? ""}\r\n`;
  for (const [name, value] of Object.entries(reply.headers)) text += `${name}: ${value}\r\n`;
  text += `content-length: ${body.length}\r\nconnection: close\r\n\r\n`;
  const head = encoder.encode(text);
  if (headOnly) return head;
  const bytes = new Uint8Array(head.length + body.length);
  bytes.set(head);
  bytes.set(body, head.length);
  return bytes;
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // already closed
  }
}

function osMessage(error: unknown): string {
  return sanitize((error as Error).message.replace(/\s*\(os error \d+\)$/, ""));
}
