/**
 * The HTTP side of `--metrics`: `GET /metrics` (Prometheus text format) and `GET /healthz`
 * (200 `ok`, or 503 and the reason), served by `Deno.serve`.
 *
 * It binds before the adaptor opens any ZeroMQ socket, so a busy or bad address fails the
 * start with nothing else to undo; until the adaptor is attached, `/healthz` says `starting`.
 * A scrape costs the forwarding nothing per message: see `metrics.ts`.
 */

import type { ListenAddress } from "./config.ts";
import { StartupError } from "./errors.ts";
import { log } from "./log.ts";
import { type AdaptorMetrics, EXPOSITION_CONTENT_TYPE } from "./metrics.ts";

/** A running metrics server. */
export interface MetricsServer {
  /** The address it listens on (the real port when 0 was asked). */
  readonly address: ListenAddress;
  /** Base URL, e.g. `http://127.0.0.1:6002`. */
  readonly url: string;
  /** Stops listening and closes open connections; waits at most `timeoutMs`. Idempotent. */
  stop(timeoutMs?: number): Promise<void>;
}

/**
 * Serves `metrics` on `address`. Throws `StartupError` (one line naming `--metrics`) when the
 * address cannot be bound: port in use, no such local address, host name not found.
 */
export function serveMetrics(address: ListenAddress, metrics: AdaptorMetrics): MetricsServer {
  const given = hostPort(address.hostname, address.port);
  const abort = new AbortController();
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({
      hostname: address.hostname,
      port: address.port,
      signal: abort.signal,
      onListen: () => {}, // Deno would print "Listening on …" to stdout
      onError: (error) => {
        log("metrics").warn("request failed: {error}", { error: String(error) });
        return new Response("internal error\n", { status: 500 });
      },
    }, (request) => handle(request, metrics));
  } catch (error) {
    const why = (error as Error).message.replace(/\s*\(os error \d+\)$/, "");
    throw new StartupError(`--metrics '${given}': cannot listen: ${why}`);
  }
  const bound = { hostname: server.addr.hostname, port: server.addr.port };
  const url = `http://${hostPort(bound.hostname, bound.port)}`;
  log("metrics").info("Serving metrics at {url}/metrics and health at {url}/healthz", { url });

  let stopped: Promise<void> | undefined;
  return {
    address: bound,
    url,
    stop(timeoutMs = 1000) {
      stopped ??= (async () => {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const timeout = new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), timeoutMs));
        const graceful = server.shutdown().then(() => true, () => true);
        const done = await Promise.race([graceful, timeout]);
        clearTimeout(timer);
        if (!done) {
          try {
            abort.abort(); // a request still running (a scrape waiting on a blocked proxy)
          } catch {
            // already closed meanwhile
          }
        }
      })();
      return stopped;
    },
  };
}

async function handle(request: Request, metrics: AdaptorMetrics): Promise<Response> {
  if (request.method !== "GET" && request.method !== "HEAD") {
    return new Response("method not allowed\n", { status: 405, headers: { allow: "GET, HEAD" } });
  }
  const path = new URL(request.url).pathname;
  if (path === "/metrics") {
    return new Response(await metrics.render(), { headers: { "content-type": EXPOSITION_CONTENT_TYPE } });
  }
  if (path === "/healthz") {
    const health = metrics.health();
    return new Response(health.ok ? "ok\n" : `${health.reason}\n`, {
      status: health.ok ? 200 : 503,
      headers: { "content-type": "text/plain; charset=utf-8" },
    });
  }
  return new Response("not found; try /metrics or /healthz\n", { status: 404 });
}

function hostPort(hostname: string, port: number): string {
  return hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
}
