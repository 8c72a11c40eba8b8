/**
 * "Up, but nobody can reach it": no publisher connected to the XSUB for --publisher-grace
 * seconds is warned about once, with the usual cause, and /healthz (503) and the
 * adaptor_publishers_absent gauge say so until a publisher connects (adaptor_healthy stays 1:
 * one alert per cause); when the last one leaves, the clock starts again.
 */

import assert from "node:assert/strict";
import { freePort, ipcPath, until } from "../testing/net.ts";
import { Peers } from "../testing/peers.ts";
import { AdaptorProcess } from "../testing/process.ts";
import { scrape } from "../testing/scrape.ts";

Deno.test("no publisher for --publisher-grace: one warning, /healthz 503 and the gauge, until one connects", async () => {
  const bind = ipcPath("xsub");
  const metricsPort = freePort();
  const url = `http://127.0.0.1:${metricsPort}`;
  const adaptor = new AdaptorProcess([
    ...["-b", `ipc://${bind}`, "-p", `tcp://127.0.0.1:${freePort()}`],
    ...["--metrics", `127.0.0.1:${metricsPort}`, "--publisher-grace", "1"],
  ]);
  const health = async () => {
    const response = await fetch(`${url}/healthz`);
    return { status: response.status, text: (await response.text()).trim() };
  };
  const absent = async () => (await scrape(url)).get("adaptor_publishers_absent");
  let peers: Peers | undefined;
  try {
    await adaptor.ready();
    assert.deepEqual(await health(), { status: 200, text: "ok" });
    const warning = await adaptor.waitFor(
      /no publisher connected to the XSUB .* for 1 s \(since start\)/,
      5000,
    );
    assert.match(warning, /\[WRN\].*--ipc-group www-data \(Debian\/Ubuntu\)/);
    const unhealthy = await health();
    assert.equal(unhealthy.status, 503);
    assert.match(unhealthy.text, /^no publisher connected to the XSUB ipc:\/\/.* for 1 s \(since start\)$/);
    assert.equal(await absent(), 1);
    // One gauge per cause: the adaptor itself is healthy, its publishers are absent.
    assert.equal((await scrape(url)).get("adaptor_healthy"), 1);

    peers = new Peers();
    peers.publisher(`ipc://${bind}`);
    await adaptor.waitFor(/a publisher connected to the XSUB .* again/, 5000);
    assert.deepEqual(await health(), { status: 200, text: "ok" });
    assert.equal(await absent(), 0);

    await peers.close();
    peers = undefined;
    await adaptor.waitFor(/for 1 s \(since the last one left\)/, 5000);
    await until(() => adaptor.lines.some((l) => l.includes("since the last one left")), "second warning");
    assert.equal((await health()).status, 503);
    assert.equal(adaptor.lines.filter((l) => l.includes("no publisher connected")).length, 2);
  } finally {
    await peers?.close();
    const { status } = await adaptor.stop();
    assert.equal(status.code, 0, adaptor.lines.join("\n"));
  }
});

Deno.test("--publisher-grace 0 never warns; a bad value is a usage error", async () => {
  const adaptor = new AdaptorProcess([
    ...["-b", `ipc://${ipcPath("xsub")}`, "-p", `tcp://127.0.0.1:${freePort()}`, "--publisher-grace", "0"],
  ]);
  await adaptor.ready();
  await new Promise((resolve) => setTimeout(resolve, 1200));
  const { status } = await adaptor.stop();
  assert.equal(status.code, 0);
  assert.ok(!adaptor.lines.some((l) => l.includes("no publisher connected")));
  const bad = new AdaptorProcess(["--publisher-grace", "soon"]);
  assert.equal((await bad.exit()).code, 2);
  assert.match(bad.lines.at(-1)!, /--publisher-grace/);
});
