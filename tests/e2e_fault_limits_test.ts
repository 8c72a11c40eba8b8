/**
 * The limits that protect the adaptor from its peers: --max-message-size drops the peer that
 * sends an oversized frame (publisher or subscriber), never the adaptor, and says so without
 * -d; heartbeats drop a TCP peer that went silent after its handshake (a dead host), and its
 * subscriptions leave the publishers; peers that answer heartbeats stay connected.
 */

import assert from "node:assert/strict";
import { assertForwards } from "../testing/forwarding.ts";
import { sleep, until } from "../testing/net.ts";
import { syncUp } from "../testing/peers.ts";
import { withAdaptor } from "../testing/session.ts";
import { connectRaw, handshake, readUntilClosed, subscription } from "../testing/zmtp.ts";
import { ZMQ_SUB, ZMQ_SUBSCRIBE } from "../src/zmq/constants.ts";

const disconnectWarning = (socket: string) =>
  new RegExp(`WRN.*${socket} .*: a peer( \\S+)? disconnected .*--max-message-size 1024`);

Deno.test("--max-message-size: an oversized frame drops that publisher, not the adaptor, and is logged", async () => {
  await withAdaptor(["--max-message-size", "1024"], async ({ bind, publish, adaptor, peers }) => {
    const sub = peers.subscriber(publish);
    const good = peers.publisher(bind);
    const offender = peers.publisher(bind);
    await syncUp([good, offender], [sub]);

    await offender.send("at-limit." + "x".repeat(1024 - 9)); // exactly 1024 bytes: passes
    await offender.send("oversized" + "x".repeat(1025 - 9)); // 1025: the connection is dropped
    await adaptor.waitFor(disconnectWarning("XSUB"));
    await good.sendAll(500, (i) => `good.${i}`);
    await sub.expect(501);

    const texts = sub.texts();
    assert.equal(texts.filter((t) => t.startsWith("good.")).length, 500, "the other publisher lost messages");
    assert.equal(texts.filter((t) => t.startsWith("at-limit.")).length, 1);
    assert.equal(texts.filter((t) => t.startsWith("oversized")).length, 0, "an oversized frame got through");
    await assertForwards({ publishTo: bind, subscribeTo: publish });
  });
});

Deno.test("--max-message-size: with --max-subscription-size 0, an oversized subscription drops that subscriber; the others are served", async () => {
  await withAdaptor(
    ["--max-message-size", "1024", "--max-subscription-size", "0", "--subscriptions", "forward"],
    async ({ bind, publish, adaptor, peers }) => {
      const upstream = peers.upstream(bind);
      const hugeTopic = "t".repeat(2000);
      const offender = peers.socket(ZMQ_SUB);
      offender.setBytes(ZMQ_SUBSCRIBE, hugeTopic);
      offender.connect(publish);
      await adaptor.waitFor(disconnectWarning("XPUB"));

      const sub = peers.subscriber(publish, ["usage."]);
      const pub = peers.publisher(bind);
      await syncUp([pub], [sub]);
      await upstream.expect("usage.");
      assert.ok(!upstream.topics.has(hugeTopic), "the oversized subscription reached the publishers");
      await pub.sendAll(300, (i) => `usage.${i}`);
      await sub.expect(300);
      assert.equal(sub.messages.length, 300);
    },
  );
});

Deno.test("heartbeats drop a TCP peer that went silent; its subscription leaves the publishers", async () => {
  await withAdaptor(
    ["--heartbeat-interval", "300", "--heartbeat-timeout", "1500", "--subscriptions", "forward"],
    async ({ bind, publish, adaptor, peers }) => {
      const upstream = peers.upstream(bind);
      // A healthy subscriber: its libzmq answers every PING.
      const live = peers.subscriber(publish, ["live."]);
      const pub = peers.publisher(bind);
      await syncUp([pub], [live]);

      // A peer that completes the handshake, subscribes, then never answers again: what a
      // subscriber on a host that lost power looks like from here (no FIN, no RST).
      const silent = await connectRaw(publish);
      try {
        await handshake(silent, "SUB");
        await silent.write(subscription("dead."));
        await upstream.expect("dead.");
        // Not read: the PINGs pile up unanswered in its receive buffer.
        await upstream.expect("dead.", false);
        assert.notEqual(
          await readUntilClosed(silent, 5_000),
          undefined,
          "the silent peer was not disconnected",
        );
      } finally {
        silent.close();
      }

      // Several heartbeat timeouts later, the healthy subscriber is still connected and served.
      await sleep(3_000);
      await pub.sendAll(200, (i) => `live.${i}`);
      await live.expect(200);
      assert.equal(live.messages.length, 200);
      await until(() => upstream.topics.has("live."), "live subscription upstream");
      const xpubDisconnects = adaptor.lines.filter((l) => /WRN.*XPUB .*a peer( \S+)? disconnected/.test(l));
      assert.equal(
        xpubDisconnects.length,
        1,
        `only the silent peer should be dropped:\n${adaptor.lines.join("\n")}`,
      );
      assert.match(xpubDisconnects[0], /stopped responding/);
    },
  );
});

Deno.test("--tcp-user-timeout drops a subscriber that stopped reading under traffic (heartbeats off)", async () => {
  await withAdaptor(
    ["--heartbeat-interval", "0", "--tcp-user-timeout", "1000", "--subscriptions", "forward"],
    async ({ bind, publish, adaptor, peers }) => {
      const upstream = peers.upstream(bind);
      const stuck = await connectRaw(publish);
      try {
        await handshake(stuck, "SUB");
        await stuck.write(subscription("stuck."));
        await upstream.expect("stuck.");
        // Never read again: its receive window closes and the adaptor's data waits in the kernel,
        // where no heartbeat can help (a PING waits behind the unsent data).
        const pub = peers.publisher(bind);
        const message = "stuck." + "x".repeat(1000);
        const deadline = performance.now() + 15_000;
        while (upstream.topics.has("stuck.")) {
          assert.ok(performance.now() < deadline, "the stuck subscriber was never dropped");
          for (let i = 0; i < 100; i++) pub.socket.trySend(message);
          await sleep(5);
        }
      } finally {
        stuck.close();
      }
      await adaptor.waitFor(/WRN.*XPUB .*a peer( \S+)? disconnected/);
      await assertForwards({ publishTo: bind, subscribeTo: publish });
    },
  );
});
