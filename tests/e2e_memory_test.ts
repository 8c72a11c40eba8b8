/**
 * Memory under routine requests, the adaptor as a process: thousands of back-to-back scrapes
 * of `/metrics` (each asks both proxies for their counters) and `/healthz` leave its resident
 * memory about where it was, and a SIGTERM after them still stops it cleanly within the stop's
 * deadline. Longer runs (50 000 scrapes and CURVE denials, a soak) are `deno task soak`'s.
 */

import assert from "node:assert/strict";
import { freePort, ipcPath } from "../testing/net.ts";
import { AdaptorProcess } from "../testing/process.ts";
import { health } from "../testing/scrape.ts";
import { rssKiB } from "../testing/worker.ts";

const SCRAPES = 5000;
/**
 * What V8 may add by sizing its heap for a burst of requests. A request that leaves anything
 * behind grows far past this: 5000 scrapes held ~37 MiB when each left ~7 KB.
 */
const GROWTH_LIMIT_MIB = 16;

Deno.test(`memory: ${SCRAPES} scrapes leave RSS within ${GROWTH_LIMIT_MIB} MiB; SIGTERM then stops cleanly`, async () => {
  const port = freePort();
  const url = `http://127.0.0.1:${port}`;
  const adaptor = new AdaptorProcess([
    ...["-b", `ipc://${ipcPath("xsub")}`, "-p", `tcp://127.0.0.1:${freePort()}`],
    ...["-l", `@tcp://127.0.0.1:${freePort()}`, "-u", `ipc://${ipcPath("push")}`],
    ...["--metrics", `127.0.0.1:${port}`],
  ]);
  let passed = false;
  try {
    await adaptor.ready();
    const scrapeOnce = async () => {
      const response = await fetch(`${url}/metrics`);
      const text = await response.text();
      assert.equal(response.status, 200, text);
    };
    // Warm up first: the code the requests run is compiled and its pages touched once.
    for (let i = 0; i < 300; i++) await scrapeOnce();
    const before = rssKiB(adaptor.pid);
    for (let i = 0; i < SCRAPES; i++) {
      await scrapeOnce();
      if (i % 10 === 0) assert.equal((await health(url)).status, 200);
    }
    const growthMiB = (rssKiB(adaptor.pid) - before) / 1024;
    assert.ok(
      growthMiB < GROWTH_LIMIT_MIB,
      `RSS grew ${growthMiB.toFixed(1)} MiB over ${SCRAPES} scrapes (from ${(before / 1024).toFixed(1)} MiB)`,
    );
    passed = true;
  } finally {
    const { status } = await adaptor.stop();
    if (passed) {
      assert.equal(status.code, 0, adaptor.lines.join("\n"));
      assert.ok(!adaptor.lines.some((l) => l.includes("stopping took longer")), adaptor.lines.join("\n"));
    }
  }
});
