/**
 * `--subscriptions local` protects the gateway's workers from what subscribers send: the workers
 * hold one subscription (to everything) whatever the subscribers do, the adaptor filters at its
 * own PUB, and frames that are not subscriptions stay in the adaptor. The same subscriber traffic
 * with `forward` reaches every worker, which is what the mode is for. Both count the
 * live subscriptions on each side (`adaptor_topics`) while the proxy runs, as they come and go.
 */

import assert from "node:assert/strict";
import { ZMQ_XSUB } from "../src/zmq/constants.ts";
import { freePort, sleep } from "../testing/net.ts";
import { scrape, value } from "../testing/scrape.ts";
import { syncUp } from "../testing/peers.ts";
import { withAdaptor } from "../testing/session.ts";

/** 1000 subscriptions and a non-subscription frame from one raw subscriber; what reaches a worker. */
async function flood(mode: string) {
  let upstreamLog: string[] = [];
  let received = { a: 0, b: 0 };
  let strayFrames = 0;
  /** adaptor_topics at each scrape: with the flood in, then as it leaves. */
  const topics: (number | undefined)[] = [];
  const port = freePort();
  const gauge = async () => {
    const series = await scrape(`http://127.0.0.1:${port}`);
    return value(series, "adaptor_topics", { channel: "main" });
  };
  const args = ["--subscriptions", mode, "--metrics", `127.0.0.1:${port}`];
  await withAdaptor(args, async ({ bind, publish, peers }) => {
    const worker = peers.upstream(bind); // an XPUB in a worker's place: what reaches the publishers
    const pub = peers.publisher(bind);
    const subA = peers.subscriber(publish, ["a."]);
    await syncUp([pub], [subA]);
    // An XSUB, which may send what it likes upstream: 1000 subscriptions, then a stray frame.
    const noisy = peers.socket(ZMQ_XSUB);
    noisy.connect(publish);
    await sleep(200);
    for (let i = 0; i < 1000; i++) noisy.trySend(new TextEncoder().encode(`\x01topic.${i}.`));
    await sleep(300);
    noisy.trySend(new Uint8Array([2, 0x41, 0x42])); // not a subscription: passed upstream by an XPUB
    await sleep(300);
    await pub.sendAll(100, (i) => `${i % 2 ? "a" : "b"}.${i}`);
    await subA.expect(50);
    await sleep(200);
    received = {
      a: subA.texts().filter((t) => t.startsWith("a.")).length,
      b: subA.texts().filter((t) => t.startsWith("b.")).length,
    };
    upstreamLog = worker.log;
    strayFrames = worker.strays;
    topics.push(await gauge());
    noisy.close(); // its 1000 topics leave again
    for (let i = 0; i < 30 && topics.at(-1) !== (mode === "local" ? 1 : 2); i++) {
      await sleep(100);
      topics.push(await gauge());
    }
  });
  return { upstreamLog, received, strayFrames, topics: [topics[0], topics.at(-1)] };
}

Deno.test("--subscriptions local: the workers hold one subscription whatever the subscribers send; filtering still holds", async () => {
  const { upstreamLog, received, strayFrames, topics } = await flood("local");
  assert.deepEqual(received, { a: 50, b: 0 }, "the adaptor's PUB filters by topic");
  assert.deepEqual(topics, [1, 1], "adaptor_topics: the workers' one subscription, to everything");
  assert.deepEqual(upstreamLog, ["+"], `the worker saw ${upstreamLog.length} subscriptions`);
  assert.equal(strayFrames, 0, "a non-subscription frame reached the worker");
});

Deno.test("--subscriptions forward: every subscription, and a stray frame, reach the workers", async () => {
  const { upstreamLog, received, strayFrames, topics } = await flood("forward");
  assert.deepEqual(received, { a: 50, b: 0 });
  // "a.", the test subscriber's sync topic and the noisy one's 1000; then it leaves.
  assert.deepEqual(topics, [1002, 2], "adaptor_topics, with the flood in and after it left");
  assert.ok(upstreamLog.length > 1000, `the worker saw ${upstreamLog.length} subscriptions`);
  assert.equal(strayFrames, 1);
});
