/**
 * The engine in-process, over inproc: exact STATISTICS (which count frames), TERMINATE, and a
 * stop that is not held up by a proxy blocked inside a send.
 * This is also the shortest example of driving `Forwarder` from code.
 */

import assert from "node:assert/strict";
import { Forwarder } from "../src/adaptor/proxy.ts";
import {
  ZMQ_LINGER,
  ZMQ_PUB,
  ZMQ_PULL,
  ZMQ_PUSH,
  ZMQ_RCVHWM,
  ZMQ_SNDHWM,
  ZMQ_SUB,
  ZMQ_SUBSCRIBE,
  ZMQ_XPUB,
  ZMQ_XSUB,
} from "../src/zmq/constants.ts";
import { Context } from "../src/zmq/socket.ts";
import { sleep, until } from "../testing/net.ts";
import { lingerless } from "../testing/peers.ts";

/** XSUB → XPUB forwarder over inproc with a PUB and a SUB (subscribed to everything) around it. */
function xsubXpubRig(name: string, options: { unlimitedHwm?: boolean } = {}) {
  const ctx = new Context();
  const open = (type: number) => {
    const s = ctx.socket(type);
    s.setInt(ZMQ_LINGER, 0);
    if (options.unlimitedHwm) {
      s.setInt(ZMQ_SNDHWM, 0);
      s.setInt(ZMQ_RCVHWM, 0);
    }
    return s;
  };
  const xsub = open(ZMQ_XSUB), xpub = open(ZMQ_XPUB), pub = open(ZMQ_PUB), sub = open(ZMQ_SUB);
  xsub.bind(`inproc://${name}-in`);
  xpub.bind(`inproc://${name}-out`);
  const forwarder = Forwarder.start(ctx, xsub, xpub);
  sub.setBytes(ZMQ_SUBSCRIBE, "");
  sub.connect(`inproc://${name}-out`);
  pub.connect(`inproc://${name}-in`);
  const close = async () => {
    await forwarder.stop();
    await forwarder.close();
    for (const s of [xsub, xpub, pub, sub]) s.close();
    await ctx.terminate();
  };
  return { forwarder, pub, sub, close };
}

Deno.test("Forwarder moves every message and counts them exactly; stop ends it", async () => {
  const { forwarder, pub, sub, close } = xsubXpubRig("engine", { unlimitedHwm: true });
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
    await close();
  }
});

Deno.test("STATISTICS counts frames, not messages: a 3-part message counts 3 (libzmq 4.3.5)", async () => {
  const { forwarder, pub, sub, close } = xsubXpubRig("frames");
  try {
    // Counted from the proxy's start: every warm-up that got through, then the data.
    let warmUps = 0, data = 0;
    const take = () => {
      for (let m; (m = sub.tryReceive());) m.length === 3 ? data++ : warmUps++;
    };
    await until(() => {
      pub.trySend("warm-up"); // 7 bytes
      take();
      return warmUps > 0;
    }, "subscription to reach the publisher");
    for (let i = 0; i < 10; i++) pub.trySend([new Uint8Array(3), new Uint8Array(5), new Uint8Array(7)]);
    await until(() => {
      take();
      return data >= 10;
    }, `${data} of 10`);
    const stats = await forwarder.statistics();
    assert.equal(data, 10, "10 messages of 3 frames arrived");
    assert.equal(stats.frontend.messagesIn, BigInt(warmUps + 30), "each frame counted");
    assert.equal(stats.backend.messagesOut, BigInt(warmUps + 30));
    assert.equal(stats.frontend.bytesIn, BigInt(warmUps * 7 + 150), "payload bytes of all frames");
  } finally {
    await close();
  }
});

/** A SUB → PUSH forwarder over inproc whose PULL peer never reads; `queued` messages wait at the SUB. */
function blockedInbound(queued: number) {
  const ctx = new Context();
  const open = lingerless(ctx);
  const frontend = open(ZMQ_SUB), push = open(ZMQ_PUSH), pub = open(ZMQ_PUB), pull = open(ZMQ_PULL);
  frontend.setBytes(ZMQ_SUBSCRIBE, "");
  push.setInt(ZMQ_SNDHWM, 1);
  pull.setInt(ZMQ_RCVHWM, 1);
  pub.bind("inproc://blocked-in");
  frontend.connect("inproc://blocked-in"); // inproc: the subscription is at the PUB at once
  push.bind("inproc://blocked-out");
  pull.connect("inproc://blocked-out");
  for (let i = 0; i < queued; i++) pub.trySend(`m${i}`);
  const close = () => {
    for (const s of [frontend, push, pub, pull]) s.close();
    return ctx.terminate();
  };
  return { ctx, frontend, push, pull, close };
}

Deno.test("statistics() calls made while one is in flight share it", async () => {
  const { ctx, frontend, push, close } = blockedInbound(0);
  const forwarder = Forwarder.start(ctx, frontend, push);
  try {
    const first = forwarder.statistics();
    assert.equal(forwarder.statistics(), first, "one request for both callers");
    await first;
    assert.notEqual(forwarder.statistics(), first, "a later call asks again");
  } finally {
    await forwarder.stop();
    await forwarder.close();
    await close();
  }
});

Deno.test("a proxy blocked sending to a full PUSH answers no STATISTICS, and stop() still returns", async () => {
  // 100 messages wait at the SUB when the proxy starts: its first burst sends until the
  // PUSH → PULL pipe (2 messages) is full, then blocks inside zmq_send.
  const { ctx, frontend, push, close } = blockedInbound(100);
  const forwarder = Forwarder.start(ctx, frontend, push);
  try {
    await sleep(100); // the pool thread starts the proxy, which blocks in its first burst
    let answered = false;
    const pending = forwarder.statistics().then(() => answered = true, () => {});
    await sleep(300);
    assert.equal(answered, false, "the proxy is blocked in a send and cannot answer");
    // TERMINATE queues behind the unanswered request, so it cannot end the proxy: stop() says
    // so (at once: a request unanswered for 300 ms means a blocked proxy) instead of hanging…
    const stopped = await Promise.race([forwarder.stop(), sleep(2000).then(() => "still waiting")]);
    assert.equal(stopped, false, "stop() must give up");
    // …and the context shutdown that follows (as in the adaptor's release) ends the proxy.
    ctx.shutdown();
    assert.equal(await forwarder.done, -1);
    await pending;
    assert.equal(answered, false);
  } finally {
    ctx.shutdown();
    await forwarder.close();
    await close();
  }
});

Deno.test("a held Forwarder (startWhen) passes subscriptions upstream at once, forwards nothing until it starts, and counts both", async () => {
  const ctx = new Context();
  const open = lingerless(ctx);
  const xsub = open(ZMQ_XSUB), xpub = open(ZMQ_XPUB), worker = open(ZMQ_XPUB), sub = open(ZMQ_SUB);
  xsub.bind("inproc://held-in");
  xpub.bind("inproc://held-out");
  const start = Promise.withResolvers<void>();
  const forwarder = Forwarder.start(ctx, xsub, xpub, { startWhen: start.promise });
  try {
    worker.connect("inproc://held-in"); // a gateway worker's place: it sees the subscriptions
    sub.setBytes(ZMQ_SUBSCRIBE, "ev.");
    sub.connect("inproc://held-out");
    let subscription: string | undefined;
    await until(
      () => {
        const frames = worker.tryReceive();
        if (frames) subscription = new TextDecoder().decode(frames[0]);
        return subscription !== undefined;
      },
      "the subscription at the worker while held",
      2000,
    );
    assert.equal(subscription, "\x01ev.");
    // An event now waits in the XSUB: nothing is forwarded while held.
    worker.trySend("ev.1");
    await sleep(100);
    assert.equal(sub.tryReceive(), undefined, "forwarded while held");
    const held = await forwarder.statistics();
    assert.deepEqual(
      [held.backend.messagesIn, held.frontend.messagesOut],
      [1n, 1n],
      "the subscription is counted",
    );
    assert.equal(held.frontend.messagesIn, 0n);
    start.resolve();
    let frames: Uint8Array[] | undefined;
    await until(() => (frames = sub.tryReceive()) !== undefined, "the waiting event, once started", 2000);
    assert.equal(new TextDecoder().decode(frames![0]), "ev.1");
    const after = await forwarder.statistics();
    assert.deepEqual([after.frontend.messagesIn, after.backend.messagesOut, after.backend.messagesIn], [
      1n,
      1n,
      1n,
    ]);
  } finally {
    await forwarder.stop();
    await forwarder.close();
    for (const s of [xsub, xpub, worker, sub]) s.close();
    await ctx.terminate();
  }
});

Deno.test("a held Forwarder stops without ever running", async () => {
  const ctx = new Context();
  const open = lingerless(ctx);
  const [xsub, xpub] = [open(ZMQ_XSUB), open(ZMQ_XPUB)];
  const forwarder = Forwarder.start(ctx, xsub, xpub, { startWhen: new Promise(() => {}) });
  assert.equal(await forwarder.stop(), true);
  assert.equal(await forwarder.done, 0);
  await forwarder.close();
  xsub.close();
  xpub.close();
  await ctx.terminate();
});

/** Sends one message through `rig` and says whether it came out. */
async function forwardsOne(rig: ReturnType<typeof xsubXpubRig>, text: string): Promise<boolean> {
  for (const deadline = performance.now() + 2000; performance.now() < deadline;) {
    rig.pub.trySend(text);
    await sleep(20);
    let frames: Uint8Array[] | undefined;
    while ((frames = rig.sub.tryReceive())) if (new TextDecoder().decode(frames[0]) === text) return true;
  }
  return false;
}

Deno.test("overlapping pauses run one after the other: both jobs run, both settle, the proxy goes on", async () => {
  const rig = xsubXpubRig("pauses", { unlimitedHwm: true });
  try {
    assert.ok(await forwardsOne(rig, "before"), "forwarding before the pauses");
    const order: string[] = [];
    const settle = (p: Promise<void>, name: string) =>
      Promise.race([
        p.then(() => `${name} done`, (e) => `${name} failed: ${e.message}`),
        sleep(3000).then(() => `${name} hung`),
      ]);
    const first = rig.forwarder.pause(() => void order.push("first"));
    const second = rig.forwarder.pause(() => void order.push("second"));
    assert.deepEqual(await Promise.all([settle(first, "first"), settle(second, "second")]), [
      "first done",
      "second done",
    ]);
    assert.deepEqual(order, ["first", "second"]);
    // No TERMINATE of either pause is left over to end a later run.
    await sleep(200);
    assert.equal(rig.forwarder.running, true, "a stale TERMINATE ended the proxy");
    assert.ok(await forwardsOne(rig, "after"), "forwarding after the pauses");
    assert.equal(rig.forwarder.restarts, 0);
  } finally {
    await rig.close();
  }
});

Deno.test("a pause and at once the stop's detach (another pause): both run, then the stop ends the proxy", async () => {
  const rig = xsubXpubRig("pause-stop", { unlimitedHwm: true });
  try {
    assert.ok(await forwardsOne(rig, "before"));
    let ran = 0;
    const reconnect = rig.forwarder.pause(() => void ran++);
    const detach = rig.forwarder.pause(() => void ran++); // the stop's detach, right behind it
    const outcomes = await Promise.race([
      Promise.allSettled([reconnect, detach]).then((r) => r.map((x) => x.status)),
      sleep(3000).then(() => "hung"),
    ]);
    assert.deepEqual(outcomes, ["fulfilled", "fulfilled"]);
    assert.equal(ran, 2);
    assert.equal(rig.forwarder.running, true, "the proxy must still run until the stop");
    assert.equal(await rig.forwarder.stop(), true);
    assert.equal(await rig.forwarder.done, 0);
  } finally {
    await rig.close();
  }
});

Deno.test("a pause of a proxy blocked on a full PUSH fails within its timeout, and a later one still works", async () => {
  const { ctx, frontend, push, pull, close } = blockedInbound(100);
  const forwarder = Forwarder.start(ctx, frontend, push);
  try {
    await sleep(100); // blocked in its first burst
    let ran = false;
    const outcome = await Promise.race([
      forwarder.pause(() => ran = true, { timeoutMs: 300 }).then(() => "ran", (e: Error) => e.message),
      sleep(3000).then(() => "hung"),
    ]);
    assert.match(outcome, /blocked/);
    assert.equal(ran, false, "a job must not run late, after its pause failed");
    // The PULL reads again: the proxy is unblocked and a new pause goes through.
    for (const deadline = performance.now() + 3000; performance.now() < deadline;) {
      while (pull.tryReceive());
      if (await forwarder.pause(() => ran = true, { timeoutMs: 100 }).then(() => true, () => false)) break;
    }
    assert.equal(ran, true, "a pause once the proxy is unblocked");
    assert.equal(forwarder.running, true);
  } finally {
    ctx.shutdown();
    await forwarder.stop();
    await forwarder.close();
    await close();
  }
});
