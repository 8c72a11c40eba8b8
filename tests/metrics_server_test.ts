/**
 * The metrics server's own defences, in process with real sockets: out of descriptors its
 * accept fails (EMFILE); that is one throttled log line, a counted error and a retry after a
 * back-off, never an unhandled rejection, and it serves again once descriptors are free. The
 * clients are another process (bash's /dev/tcp), so that only the server's descriptors count.
 * Also: the request line parser, and the connection cap.
 */

import assert from "node:assert/strict";
import { libcLoader } from "../src/os/libc.ts";
import { setupLogging } from "../src/ops/log.ts";
import { AdaptorMetrics } from "../src/metrics/metrics.ts";
import { parseHead, serveMetrics } from "../src/metrics/metrics_server.ts";
import { sleep, until } from "../testing/net.ts";
import { health } from "../testing/scrape.ts";

const setrlimit = libcLoader({ setrlimit: { parameters: ["i32", "buffer"], result: "i32" } });
const RLIMIT_NOFILE = 7;

function fileLimit(): { soft: number; hard: number } {
  const line = Deno.readTextFileSync("/proc/self/limits").split("\n").find((l) =>
    l.startsWith("Max open files")
  )!;
  const [soft, hard] = line.replace("Max open files", "").trim().split(/\s+/).map(Number);
  return { soft, hard };
}

function captureLog(): string[] {
  const lines: string[] = [];
  setupLogging({ level: "info", format: "text", write: (line) => lines.push(line.trimEnd()) });
  return lines;
}

/**
 * A bash process that, once it reads a line on stdin, opens `count` TCP connections to `port`
 * and holds them until killed. Started before this process's descriptors are limited (the
 * limit would be inherited, and spawning takes descriptors).
 */
function holdConnections(port: number, count: number): Deno.ChildProcess {
  const script =
    `read go; for i in $(seq ${count}); do exec {fd}<>/dev/tcp/127.0.0.1/${port} || exit 1; done; ` +
    `echo held; sleep 30`;
  return new Deno.Command("bash", { args: ["-c", script], stdin: "piped", stdout: "piped", stderr: "null" })
    .spawn();
}

function kill(child: Deno.ChildProcess): void {
  try {
    child.kill("SIGKILL");
  } catch {
    // already gone
  }
}

async function firstLine(child: Deno.ChildProcess): Promise<string> {
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  return value ?? "";
}

Deno.test("out of descriptors, the metrics server logs once, counts, backs off and serves again", async () => {
  const lines = captureLog();
  const server = serveMetrics({ hostname: "127.0.0.1", port: 0 }, new AdaptorMetrics(), {
    maxConnections: 1000,
    headerTimeoutMs: 300,
  });
  const original = fileLimit();
  const libc = setrlimit()!;
  let clients: Deno.ChildProcess | undefined = holdConnections(server.address.port, 40);
  const go = clients.stdin.getWriter();
  try {
    const open = [...Deno.readDirSync("/proc/self/fd")].length;
    // Room for 5 more descriptors: the 6th accept fails.
    const lowered = new BigUint64Array([BigInt(open + 5), BigInt(original.hard)]);
    assert.equal(libc.setrlimit(RLIMIT_NOFILE, lowered), 0);
    await go.write(new TextEncoder().encode("go\n"));
    assert.equal(await firstLine(clients), "held\n");
    await until(() => server.refused.acceptErrors >= 3, "three failed accepts");
    const acceptLines = lines.filter((l) => l.includes("cannot accept a connection"));
    assert.equal(acceptLines.length, 1, acceptLines.join("\n"));
    assert.match(
      acceptLines[0],
      /\[WRN\] adaptor·metrics: http:\/\/127\.0\.0\.1:\d+: cannot accept a connection: Too many open files; retrying in 100 ms/,
    );
    // Descriptors again: the waiting connections are accepted (and closed after 300 ms unread).
    libc.setrlimit(RLIMIT_NOFILE, new BigUint64Array([BigInt(original.soft), BigInt(original.hard)]));
    kill(clients);
    await clients.status;
    clients = undefined;
    await until(() => server.open === 0, "the held connections closed");
    let answer: { status: number; body: string } | undefined;
    for (let tries = 0; tries < 50 && answer?.status !== 503; tries++) {
      answer = await health(server.url).catch(() => undefined);
      if (!answer) await sleep(100);
    }
    assert.deepEqual(answer, { status: 503, body: "starting\n" });
  } finally {
    libc.setrlimit(RLIMIT_NOFILE, new BigUint64Array([BigInt(original.soft), BigInt(original.hard)]));
    await go.close().catch(() => {});
    if (clients) {
      kill(clients);
      await clients.status;
    }
    await server.stop();
  }
  // The suppressed accept errors are summed up when the server stops.
  assert.ok(
    lines.some((l) => /cannot accept .* \(\d+ more like it in the last 60 s\)/.test(l)),
    lines.join("\n"),
  );
});

Deno.test("at the connection cap, new connections are closed at once and counted; idle ones time out", async () => {
  const lines = captureLog();
  const server = serveMetrics({ hostname: "127.0.0.1", port: 0 }, new AdaptorMetrics(), {
    maxConnections: 3,
    headerTimeoutMs: 500,
  });
  const conns: Deno.Conn[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      conns.push(await Deno.connect({ hostname: "127.0.0.1", port: server.address.port }));
    }
    await until(() => server.open === 3, "three connections open");
    const extra = await Deno.connect({ hostname: "127.0.0.1", port: server.address.port });
    conns.push(extra);
    // Closed by the server without a byte.
    assert.equal(await extra.read(new Uint8Array(16)).catch(() => null), null);
    assert.equal(server.refused.atCap, 1);
    assert.equal(lines.filter((l) => l.includes("connections open, closing new ones")).length, 1);
    // The idle three are closed by the header deadline; then requests are served.
    await until(() => server.open === 0, "idle connections closed by the deadline");
    for (const conn of conns.slice(0, 3)) {
      assert.equal(await conn.read(new Uint8Array(16)).catch(() => null), null);
    }
    assert.equal((await health(server.url)).status, 503);
  } finally {
    for (const conn of conns) {
      try {
        conn.close();
      } catch {
        // closed
      }
    }
    await server.stop();
  }
});

Deno.test("parseHead: the request line of HTTP/1.x; anything else is a status", () => {
  assert.deepEqual(parseHead("GET /metrics HTTP/1.1\r\nHost: x"), { method: "GET", path: "/metrics" });
  assert.deepEqual(parseHead("HEAD /healthz?x=1 HTTP/1.0"), { method: "HEAD", path: "/healthz" });
  assert.deepEqual(parseHead("GET http://h:1/metrics HTTP/1.1"), { method: "GET", path: "/metrics" });
  assert.equal(parseHead("GET /metrics HTTP/2.0"), 505);
  assert.equal(parseHead("get /metrics HTTP/1.1"), 400);
  assert.equal(parseHead("GET  /metrics HTTP/1.1"), 400);
  assert.equal(parseHead("\x16\x03\x01 TLS hello"), 400);
  assert.equal(parseHead(""), 400);
});

/** Sends `request` raw and returns everything the server wrote before closing. */
async function rawExchange(port: number, request: string | Uint8Array): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const bytes = typeof request === "string" ? new TextEncoder().encode(request) : request;
    for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
    let text = "";
    const buffer = new Uint8Array(65536);
    for (;;) {
      const n = await conn.read(buffer).catch(() => null);
      if (n === null) return text;
      text += new TextDecoder().decode(buffer.subarray(0, n));
    }
  } finally {
    try {
      conn.close();
    } catch {
      // closed
    }
  }
}

Deno.test("HTTP answers: HEAD without a body, 405 with Allow, 404, 431, 400, 505; every one closes the connection", async () => {
  captureLog();
  const server = serveMetrics({ hostname: "127.0.0.1", port: 0 }, new AdaptorMetrics());
  const port = server.address.port;
  try {
    const head = await rawExchange(port, "HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert.match(head, /^HTTP\/1\.1 503 Service Unavailable\r\n/);
    assert.match(
      head,
      /\r\ncontent-length: 9\r\nconnection: close\r\n\r\n$/,
      "HEAD has the length, not the body",
    );
    const post = await rawExchange(port, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert.match(post, /^HTTP\/1\.1 405 Method Not Allowed\r\n/);
    assert.match(post, /\r\nallow: GET, HEAD\r\n/);
    assert.match(
      await rawExchange(port, "GET /nope HTTP/1.1\r\n\r\n"),
      /^HTTP\/1\.1 404 Not Found\r\n[^]*try \/metrics/,
    );
    const metrics = await rawExchange(port, "GET /metrics HTTP/1.0\r\n\r\n");
    assert.match(metrics, /^HTTP\/1\.1 200 OK\r\ncontent-type: text\/plain; version=0\.0\.4/);
    assert.match(metrics, /\r\n\r\n# HELP /);
    const huge = await rawExchange(port, `GET /metrics HTTP/1.1\r\nX: ${"a".repeat(9000)}\r\n\r\n`);
    assert.match(huge, /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
    assert.match(await rawExchange(port, "\x16\x03\x01\x02\x00\r\n\r\n"), /^HTTP\/1\.1 400 Bad Request\r\n/);
    assert.match(await rawExchange(port, "GET / HTTP/2.0\r\n\r\n"), /^HTTP\/1\.1 505 /);
    // A request head split over many small writes still counts (before its deadline).
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    for (const part of ["GE", "T /hea", "lthz HTTP/1.1\r", "\n\r", "\n"]) {
      await conn.write(new TextEncoder().encode(part));
      await sleep(20);
    }
    const buffer = new Uint8Array(4096);
    const n = await conn.read(buffer);
    conn.close();
    assert.match(new TextDecoder().decode(buffer.subarray(0, n ?? 0)), /^HTTP\/1\.1 503 /);
  } finally {
    await server.stop();
  }
});
