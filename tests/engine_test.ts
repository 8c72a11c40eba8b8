/**
 * The engine in-process, over inproc: exact STATISTICS, TERMINATE.
 * This is also the shortest example of driving `Forwarder` from code.
 */

import assert from "node:assert/strict";
import { Forwarder } from "../src/engine.ts";
import {
  Context,
  ZMQ_LINGER,
  ZMQ_PUB,
  ZMQ_RCVHWM,
  ZMQ_SNDHWM,
  ZMQ_SUB,
  ZMQ_SUBSCRIBE,
  ZMQ_XPUB,
  ZMQ_XSUB,
} from "../src/zmq.ts";
import { until } from "./support/net.ts";

Deno.test("Forwarder moves every message and counts them exactly; stop ends it", async () => {
  const ctx = new Context();
  const open = (type: number) => {
    const s = ctx.socket(type);
    s.setInt(ZMQ_LINGER, 0);
    s.setInt(ZMQ_SNDHWM, 0);
    s.setInt(ZMQ_RCVHWM, 0);
    return s;
  };
  const xsub = open(ZMQ_XSUB), xpub = open(ZMQ_XPUB), pub = open(ZMQ_PUB), sub = open(ZMQ_SUB);
  xsub.bind("inproc://engine-in");
  xpub.bind("inproc://engine-out");
  const forwarder = Forwarder.start(ctx, xsub, xpub);
  sub.setBytes(ZMQ_SUBSCRIBE, "");
  sub.connect("inproc://engine-out");
  pub.connect("inproc://engine-in");
  try {
    // Wait until the subscription has travelled XPUB → XSUB → PUB.
    let got = 0;
    await until(() => {
      pub.trySend("warm-up");
      while (sub.tryReceive()) got++;
      return got > 0;
    }, "subscription to reach the publisher");
    // Let warm-ups still in flight arrive, so that the baseline below counts them all.
    await new Promise((r) => setTimeout(r, 100));
    while (sub.tryReceive()) got++;
    const base = (await forwarder.statistics()).frontend.messagesIn;

    const N = 20_000;
    const payload = new Uint8Array(100);
    for (let i = 0; i < N; i++) pub.trySend(payload);
    let received = 0;
    await until(() => {
      while (sub.tryReceive()) received++;
      return received >= N;
    }, `${received} of ${N}`);
    const stats = await forwarder.statistics();
    assert.equal(stats.frontend.messagesIn - base, BigInt(N));
    assert.equal(stats.backend.messagesOut - base, BigInt(N));
    assert.equal(stats.frontend.bytesIn >= BigInt(N * 100), true);
    assert.equal(stats.backend.messagesIn, 1n, "one subscription message went upstream");

    assert.equal(await forwarder.stop(), true);
    assert.equal(await forwarder.done, 0);
    assert.equal(forwarder.running, false);
    await assert.rejects(forwarder.statistics(), /not running/);
  } finally {
    await forwarder.stop();
    await forwarder.close();
    for (const s of [xsub, xpub, pub, sub]) s.close();
    await ctx.terminate();
  }
});
