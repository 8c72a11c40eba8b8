/**
 * A real Prometheus (Debian's `prometheus`) against a live adaptor: scraping every second with
 * the shipped rules loaded, it reads back through its HTTP API exactly the frames that were
 * forwarded, and `AdaptorHandshakeFailures` goes to firing on the first failed handshake (its
 * counter was scraped at 0 before). Reported skipped, with the reason, without `prometheus`.
 */

import assert from "node:assert/strict";
import { freePort, ipcPath } from "../testing/net.ts";
import { Peers, syncUp } from "../testing/peers.ts";
import { AdaptorProcess } from "../testing/process.ts";
import { missing, PrometheusServer, RULES, testUnless } from "../testing/prometheus.ts";
import { greeting, writeIgnoringClose } from "../testing/zmtp.ts";

const SENT = 2500;

testUnless(
  missing("prometheus"),
  "Prometheus scrapes the adaptor: forwarded frames read back exactly; an alert fires on a real handshake failure",
  async () => {
    const xpubPort = freePort();
    const metrics = `127.0.0.1:${freePort()}`;
    const xsub = `ipc://${ipcPath("xsub")}`;
    const adaptor = new AdaptorProcess([
      "-b",
      xsub,
      "-p",
      `tcp://127.0.0.1:${xpubPort}`,
      "--metrics",
      metrics,
    ]);
    const prometheus = new PrometheusServer(metrics, { ruleFiles: [RULES], scrapeSeconds: 1 });
    const peers = new Peers();
    let prometheusLog = "";
    try {
      await Promise.all([adaptor.ready(), prometheus.ready()]);
      const sub = peers.subscriber(`tcp://127.0.0.1:${xpubPort}`);
      const pub = peers.publisher(xsub);
      await syncUp([pub], [sub]);
      await pub.sendAll(SENT, (i) => `event ${i}`);
      await sub.expect(SENT);
      const expected = SENT + sub.sync.messages;

      const forwarded = await prometheus.until(async () => {
        const [series] = await prometheus.query(
          'adaptor_messages_forwarded_total{job="adaptor",channel="main"}',
        );
        return series?.value === expected ? series : undefined;
      }, `adaptor_messages_forwarded_total = ${expected} in Prometheus`);
      assert.equal(forwarded.value, expected);
      assert.equal(forwarded.metric.instance, metrics);

      // The failure's counter is in Prometheus at 0 before the first failure happens.
      const failures = 'adaptor_socket_events_total{socket="XPUB",event="handshake_failed_protocol"}';
      await prometheus.until(
        async () => (await prometheus.query(failures))[0]?.value === 0 || undefined,
        "0 failures",
      );
      // A peer speaking another mechanism (PLAIN) to the plaintext XPUB: a protocol error.
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: xpubPort });
      const plain = greeting();
      plain.set(new TextEncoder().encode("PLAIN"), 12);
      await writeIgnoringClose(conn, plain);
      type Alert = { labels: Record<string, string>; state: string };
      const alert = await prometheus.until(async () => {
        const { alerts } = await prometheus.api<{ alerts: Alert[] }>("/api/v1/alerts");
        return alerts.find((a) => a.labels.alertname === "AdaptorHandshakeFailures" && a.state === "firing");
      }, "AdaptorHandshakeFailures firing");
      conn.close();
      assert.equal(alert.labels.socket, "XPUB");
      assert.equal(alert.labels.severity, "warning");
      // The rules loaded as shipped, and only what the adaptor caused fired.
      const { groups } = await prometheus.api<{ groups: { rules: { name: string }[] }[] }>("/api/v1/rules");
      assert.ok(groups[0].rules.length >= 14, `${groups[0].rules.length} rules loaded`);
    } finally {
      await peers.close();
      prometheusLog = await prometheus.stop();
      const { status } = await adaptor.stop();
      assert.equal(status.code, 0, adaptor.lines.join("\n"));
    }
    assert.doesNotMatch(prometheusLog, /level=error/, prometheusLog);
  },
);
