/**
 * Lifecycle: a second instance on a live ipc path is refused while the first keeps
 * forwarding; a stale socket file from a killed process is bound over; SIGTERM under full load
 * and SIGINT both exit 0 promptly and remove the socket files the adaptor created.
 */

import assert from "node:assert/strict";
import { assertForwards as assertForwardsTo } from "../testing/forwarding.ts";
import { exists, freePort, ipcPath, sleep } from "../testing/net.ts";
import { Peers, syncUp } from "../testing/peers.ts";
import { AdaptorProcess, runAdaptor } from "../testing/process.ts";

const assertForwards = (bind: string, port: number) =>
  assertForwardsTo({ publishTo: `ipc://${bind}`, subscribeTo: `tcp://127.0.0.1:${port}` });

Deno.test("a second instance on a live ipc path is refused; the first keeps forwarding", async () => {
  const bind = ipcPath("xsub");
  const port = freePort();
  const first = new AdaptorProcess(["-b", `ipc://${bind}`, "-p", `tcp://127.0.0.1:${port}`]);
  try {
    await first.ready();
    const second = await runAdaptor(["-b", `ipc://${bind}`, "-p", `tcp://127.0.0.1:${freePort()}`]);
    assert.equal(second.code, 1);
    assert.equal(second.stderr.filter((l) => l.startsWith("adaptor: error")).length, 1);
    assert.match(second.stderr.at(-1)!, /another process is serving .*refusing/);
    assert.ok(exists(bind), "the first instance's socket file must survive");
    await assertForwards(bind, port);
  } finally {
    const { status } = await first.stop();
    assert.equal(status.code, 0);
  }
});

Deno.test("a stale socket file left by a killed adaptor is bound over", async () => {
  const bind = ipcPath("xsub");
  const port = freePort();
  const killed = new AdaptorProcess(["-b", `ipc://${bind}`, "-p", `tcp://127.0.0.1:${port}`]);
  await killed.ready();
  await killed.stop("SIGKILL");
  assert.ok(exists(bind), "SIGKILL leaves the socket file behind");
  assert.ok(exists(`${bind}.lock`), "and its lock file, whose lock the kernel dropped");

  const restarted = new AdaptorProcess(["-b", `ipc://${bind}`, "-p", `tcp://127.0.0.1:${port}`]);
  try {
    await restarted.ready();
    assert.ok(restarted.lines.some((l) => l.includes(`Replacing stale socket file ${bind}`)));
    await assertForwards(bind, port);
  } finally {
    await restarted.stop();
  }
  assert.ok(!exists(bind) && !exists(`${bind}.lock`), "a clean stop removes the socket and lock files");
});

Deno.test("SIGTERM under full load: exit 0 within 2 s, socket files removed", async () => {
  const bind = ipcPath("xsub");
  const push = ipcPath("push");
  const port = freePort();
  const adaptor = new AdaptorProcess([
    "-b",
    `ipc://${bind}`,
    "-p",
    `tcp://127.0.0.1:${port}`,
    "-l",
    `tcp://127.0.0.1:${freePort()}`,
    "-u",
    `ipc://${push}`,
  ]);
  const peers = new Peers();
  let flooding = true;
  try {
    await adaptor.ready();
    const subs = [peers.subscriber(`tcp://127.0.0.1:${port}`), peers.subscriber(`tcp://127.0.0.1:${port}`)];
    const pubs = [peers.publisher(`ipc://${bind}`), peers.publisher(`ipc://${bind}`)];
    await syncUp(pubs, subs);
    const payload = new Uint8Array(200).fill(65);
    const floods = pubs.map(async (pub) => {
      while (flooding) {
        for (let i = 0; i < 2000; i++) pub.socket.trySend(payload);
        await sleep(0);
      }
    });
    await sleep(1000);
    const before = subs[0].messages.length;
    assert.ok(before > 1000, `load did not flow (${before} messages)`);
    const { status, ms } = await adaptor.stop("SIGTERM");
    flooding = false;
    await Promise.all(floods);
    assert.equal(status.code, 0, adaptor.lines.join("\n"));
    assert.ok(ms < 2000, `took ${ms.toFixed(0)} ms to exit`);
    assert.ok(!exists(bind), "XSUB socket file left behind");
    assert.ok(!exists(push), "PUSH socket file left behind");
  } finally {
    flooding = false;
    adaptor.kill("SIGKILL");
    await peers.close();
  }
});

Deno.test("SIGINT stops cleanly with exit 0", async () => {
  const bind = ipcPath("xsub");
  const adaptor = new AdaptorProcess(["-b", `ipc://${bind}`, "-p", `tcp://127.0.0.1:${freePort()}`]);
  await adaptor.ready();
  const { status, ms } = await adaptor.stop("SIGINT");
  assert.equal(status.code, 0);
  assert.ok(ms < 2000);
  assert.ok(adaptor.lines.some((l) => l.includes("SIGINT received, stopping")));
  assert.ok(adaptor.lines.at(-1)!.includes("stopped"));
  assert.ok(!exists(bind));
});
