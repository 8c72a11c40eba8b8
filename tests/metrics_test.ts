/**
 * The metrics' own logic: the text exposition format (escaping, value forms, HELP/TYPE before
 * samples) and the peer bookkeeping from socket events. Real events and real scrapes are
 * checked end to end in e2e_metrics_test.ts.
 */

import assert from "node:assert/strict";
import { AdaptorMetrics, renderExposition } from "../src/metrics/metrics.ts";
import { parseExposition } from "../testing/scrape.ts";

Deno.test("exposition: HELP and TYPE before the samples, labels escaped, bigints and specials", () => {
  const text = renderExposition([
    {
      name: "x_total",
      help: "a back\\slash and\na newline",
      type: "counter",
      samples: [
        { labels: { channel: "main" }, value: 18446744073709551615n },
        { labels: { path: 'C:\\q "x"\nz' }, value: 1.5 },
      ],
    },
    { name: "y", help: "special values", type: "gauge", samples: [{ value: NaN }, { value: -Infinity }] },
    { name: "z", help: "no samples", type: "gauge", samples: [] },
  ]);
  assert.equal(
    text,
    [
      "# HELP x_total a back\\\\slash and\\na newline",
      "# TYPE x_total counter",
      'x_total{channel="main"} 18446744073709551615',
      'x_total{path="C:\\\\q \\"x\\"\\nz"} 1.5',
      "# HELP y special values",
      "# TYPE y gauge",
      "y NaN",
      "y -Inf",
      "# HELP z no samples",
      "# TYPE z gauge",
      "",
    ].join("\n"),
  );
});

Deno.test("peers: accepted/connected add the fd, disconnected removes it; events are counted", async () => {
  const metrics = new AdaptorMetrics();
  const event = metrics.hooks.onSocketEvent!;
  const ep = "ipc:///tmp/q";
  event("main", "bind", { name: "listening", endpoint: ep, value: 9, remote: "" });
  for (const fd of [20, 21, 22]) {
    event("main", "bind", { name: "accepted", endpoint: ep, value: fd, remote: "" });
  }
  event("main", "bind", { name: "handshake_succeeded", endpoint: ep, value: 0, remote: "" });
  event("main", "bind", { name: "disconnected", endpoint: ep, value: 21, remote: "" });
  event("main", "bind", { name: "disconnected", endpoint: ep, value: 21, remote: "" }); // never counted twice
  event("inbound", "listen", { name: "connected", endpoint: "tcp://h:1", value: 30, remote: "" });
  event("inbound", "listen", { name: "connect_retried", endpoint: "tcp://h:1", value: 200, remote: "" });
  assert.equal(metrics.peers("bind"), 2);
  assert.equal(metrics.peers("listen"), 1);
  assert.equal(metrics.peers("publish"), 0);

  // Before an adaptor is attached: not healthy, no channel series, events and process figures.
  assert.deepEqual(metrics.health(), { ok: false, reason: "starting" });
  const series = parseExposition(await metrics.render());
  assert.equal(series.get('adaptor_socket_events_total{channel="main",socket="XSUB",event="accepted"}'), 3);
  assert.equal(
    series.get('adaptor_socket_events_total{channel="main",socket="XSUB",event="disconnected"}'),
    2,
  );
  assert.equal(
    series.get('adaptor_socket_events_total{channel="inbound",socket="SUB",event="connected"}'),
    1,
  );
  assert.equal(series.get("adaptor_healthy"), 0);
  assert.equal(series.get('adaptor_publishers{channel="main"}'), undefined);
  assert.ok(series.get("process_resident_memory_bytes")! > 0);
});
