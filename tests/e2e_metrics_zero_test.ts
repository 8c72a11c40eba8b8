/**
 * Counters that exist before their first event: `increase(x[15m])` over a series born at 1 is
 * 0, so an alert on the first handshake failure or CURVE denial would never fire. Every event
 * each socket reports, the auth counters of each CURVE socket and the metrics server's refusal
 * reasons are scraped at 0 before anything happened, and count from there; the descriptor
 * gauges are Prometheus' process-collector ones.
 */

import assert from "node:assert/strict";
import { keygen } from "../src/security/cert.ts";
import { SOCKET_EVENTS } from "../src/metrics/metrics.ts";
import { freePort, ipcPath } from "../testing/net.ts";
import { AdaptorProcess } from "../testing/process.ts";
import { scrape, scrapeUntil, value } from "../testing/scrape.ts";
import { greeting, writeIgnoringClose } from "../testing/zmtp.ts";

Deno.test("metrics: every event, auth and refusal counter is 0 before its first event, then counts", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "adaptor-e2e-zero-" });
  Deno.mkdirSync(`${dir}/clients`);
  const server = keygen(`${dir}/server`);
  const xpubPort = freePort();
  const metricsPort = freePort();
  const url = `http://127.0.0.1:${metricsPort}`;
  const adaptor = new AdaptorProcess([
    ...["-b", `ipc://${ipcPath("xsub")}`, "-p", `tcp://127.0.0.1:${xpubPort}`],
    ...["-l", `tcp://127.0.0.1:${freePort()}`, "-u", `ipc://${ipcPath("push")}`],
    ...["--curve-cert", server.secretPath, "--curve-clients", `${dir}/clients`],
    ...["--metrics", `127.0.0.1:${metricsPort}`],
  ]);
  try {
    await adaptor.ready();
    const series = await scrape(url);
    const events = (channel: string, socket: string, event: string) =>
      value(series, "adaptor_socket_events_total", { channel, socket, event });
    const bound = [...SOCKET_EVENTS.bind, ...SOCKET_EVENTS.both];
    const connecting = [...SOCKET_EVENTS.connect, ...SOCKET_EVENTS.both];
    for (const event of bound) {
      assert.equal(events("main", "XSUB", event), event === "listening" ? 1 : 0, `XSUB ${event}`);
      assert.equal(events("main", "XPUB", event), event === "listening" ? 1 : 0, `XPUB ${event}`);
      assert.equal(events("inbound", "PUSH", event), event === "listening" ? 1 : 0, `PUSH ${event}`);
    }
    // The inbound SUB connects to a port where nobody listens: it may have retried already.
    for (const event of connecting) {
      assert.notEqual(events("inbound", "SUB", event), undefined, `SUB ${event}`);
    }
    // A bound-only socket reports no connect events: none are made up.
    assert.equal(events("main", "XPUB", "connect_retried"), undefined);
    for (const socket of ["XPUB", "SUB"]) {
      assert.equal(value(series, "adaptor_auth_allowed_total", { socket }), 0, socket);
      assert.equal(value(series, "adaptor_auth_denied_total", { socket }), 0, socket);
    }
    assert.equal(value(series, "adaptor_auth_denied_total", { socket: "XSUB" }), undefined, "ipc: no CURVE");
    for (const reason of ["cap", "accept_error"]) {
      assert.equal(value(series, "adaptor_metrics_connections_refused_total", { reason }), 0);
    }
    const open = value(series, "process_open_fds")!;
    const max = value(series, "process_max_fds")!;
    assert.ok(open > 10 && open < max, `process_open_fds ${open}, process_max_fds ${max}`);

    // A plaintext client on the CURVE XPUB: the first denial, counted from 0.
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: xpubPort });
    await writeIgnoringClose(conn, greeting()); // mechanism NULL: a plaintext client
    const after = await scrapeUntil(
      url,
      (s) => (value(s, "adaptor_auth_denied_total", { socket: "XPUB" }) ?? 0) >= 1,
      "the plaintext client's denial",
    );
    conn.close();
    assert.equal(value(after, "adaptor_auth_denied_total", { socket: "XPUB" }), 1);
    assert.equal(
      value(after, "adaptor_socket_events_total", { channel: "main", socket: "XPUB", event: "accepted" }),
      1,
    );
  } finally {
    const { status } = await adaptor.stop();
    Deno.removeSync(dir, { recursive: true });
    assert.equal(status.code, 0, adaptor.lines.join("\n"));
  }
});
