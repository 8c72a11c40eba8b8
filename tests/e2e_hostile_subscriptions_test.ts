/**
 * Subscriptions are bounded (issue 13, defect 3), against the adaptor as a process with a
 * gateway worker stand-in of its own (pyzmq where available: an independent libzmq). One
 * plaintext subscriber sets 200 subscriptions of 60 KB (12 MB); before --max-subscription-size
 * they reached every publisher, and each grew by ~375 MB. Now the subscriber is dropped at its
 * first one, the drop is logged naming the flag and counted as an
 * XPUB disconnect, the publisher grows by no more than 32 MiB, and a legitimate subscriber gets
 * every message.
 */

import assert from "node:assert/strict";
import { ZMQ_SUB, ZMQ_SUBSCRIBE } from "../src/zmq.ts";
import { assertForwards } from "./support/forwarding.ts";
import { freePort, ipcPath, sleep } from "./support/net.ts";
import { Peers } from "./support/peers.ts";
import { AdaptorProcess } from "./support/process.ts";
import { scrape, value } from "./support/scrape.ts";
import { rssKiB, WorkerProcess } from "./support/worker.ts";

const MiB = 1024;

Deno.test("200 × 60 KB subscriptions: the subscriber is dropped, no publisher grows by 32 MiB, others are served", async () => {
  const xsub = `ipc://${ipcPath("xsub")}`;
  const xpub = `tcp://127.0.0.1:${freePort()}`;
  const metricsPort = freePort();
  const url = `http://127.0.0.1:${metricsPort}`;
  const adaptor = new AdaptorProcess(["-b", xsub, "-p", xpub, "--metrics", `127.0.0.1:${metricsPort}`]);
  const peers = new Peers();
  let worker: WorkerProcess | undefined;
  try {
    await adaptor.ready();
    worker = new WorkerProcess(xsub, "usage");
    await worker.started;
    // A legitimate subscriber, served by the worker through the adaptor.
    const sub = peers.subscriber(xpub, ["usage."]);
    const deadline = performance.now() + 10_000;
    while (sub.messages.length === 0 && performance.now() < deadline) await sleep(20);
    assert.ok(sub.messages.length > 0, "the worker's events never arrived");
    const workerBefore = worker.rssKiB();
    const adaptorBefore = rssKiB(adaptor.pid);

    const hostile = peers.socket(ZMQ_SUB);
    for (let i = 0; i < 200; i++) hostile.setBytes(ZMQ_SUBSCRIBE, `${i}.`.padEnd(60_000, "x"));
    hostile.connect(xpub);
    // Give the 12 MB time to arrive everywhere it can (without the limit, the worker's libzmq
    // takes in all 200 within a second or two), then measure.
    const disconnects = async () =>
      value(await scrape(url), "adaptor_socket_events_total", {
        channel: "main",
        socket: "XPUB",
        event: "disconnected",
      }) ?? 0;
    const settle = performance.now() + 3000;
    while (performance.now() < settle && await disconnects() === 0) await sleep(100);
    await sleep(1000);
    const workerGrowth = worker.rssKiB() - workerBefore;
    const adaptorGrowth = rssKiB(adaptor.pid) - adaptorBefore;
    hostile.close();
    assert.ok(workerGrowth <= 32 * MiB, `the ${worker.kind} worker grew by ${workerGrowth} KiB`);
    assert.ok(adaptorGrowth <= 32 * MiB, `the adaptor grew by ${adaptorGrowth} KiB`);
    // Dropped at its first subscription: logged naming the flag, counted as an XPUB disconnect.
    assert.ok(await disconnects() >= 1, "the oversized subscriber was not dropped");
    await adaptor.waitFor(
      /WRN.*XPUB .*: a peer \S+ disconnected .*a subscription over --max-subscription-size 1024/,
    );

    // The legitimate subscriber still gets the worker's events, in order and without a gap.
    const seen = sub.messages.length;
    const more = performance.now() + 10_000;
    while (sub.messages.length < seen + 50 && performance.now() < more) await sleep(20);
    const seqs = sub.texts().map((t) => Number(t.split(".")[1]));
    assert.ok(seqs.length >= seen + 50, `only ${seqs.length - seen} events after the attack`);
    for (let i = 1; i < seqs.length; i++) {
      assert.equal(seqs[i], seqs[i - 1] + 1, `gap after event ${seqs[i - 1]}`);
    }
    await assertForwards({ publishTo: xsub, subscribeTo: xpub });
  } finally {
    await peers.close();
    await worker?.stop();
    const { status } = await adaptor.stop();
    assert.equal(status.code, 0, adaptor.lines.join("\n"));
  }
});

Deno.test("--max-subscription-size: a subscription of exactly the limit passes, one byte more drops the subscriber", async () => {
  const xsub = `ipc://${ipcPath("xsub")}`;
  const xpub = `tcp://127.0.0.1:${freePort()}`;
  const adaptor = new AdaptorProcess(["-b", xsub, "-p", xpub, "--max-subscription-size", "100"]);
  const peers = new Peers();
  try {
    await adaptor.ready();
    const upstream = peers.upstream(xsub);
    // libzmq ≥ 4.3 sends a subscription as a ZMTP 3.1 SUBSCRIBE command: its name (1 + 9
    // bytes) and the topic, so 90 bytes of topic make a frame of 100. (ZMTP 3.0 peers send a
    // flag byte and the topic.)
    const atLimit = "a".repeat(90);
    const over = "b".repeat(91);
    const ok = peers.subscriber(xpub, [atLimit]);
    await upstream.expect(atLimit);
    const offender = peers.socket(ZMQ_SUB);
    offender.setBytes(ZMQ_SUBSCRIBE, over);
    offender.connect(xpub);
    await adaptor.waitFor(/WRN.*XPUB .*: a peer \S+ disconnected .*--max-subscription-size 100\b/);
    await sleep(300);
    assert.ok(!upstream.topics.has(over), "the oversized subscription reached the publishers");
    assert.ok(upstream.topics.has(atLimit));
    assert.equal(ok.messages.length, 0);
    await assertForwards({ publishTo: xsub, subscribeTo: xpub });
  } finally {
    await peers.close();
    const { status } = await adaptor.stop();
    assert.equal(status.code, 0, adaptor.lines.join("\n"));
  }
});
