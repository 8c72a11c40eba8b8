/**
 * Keeps the reason for `adaptor_topics`' choice of socket in view: libzmq 4.3.5 lowers an
 * XPUB's `ZMQ_TOPICS_COUNT` only for an explicit unsubscribe, not when a subscriber leaves
 * (generic_mtrie's rm by pipe never decrements its counter), while an XSUB's count follows the
 * unsubscriptions the XPUB then sends. So the gauge reads the XSUB. When a libzmq release fixes
 * the XPUB's count this test fails, and the XPUB side (which `--subscriptions local` needs) may
 * be shown too.
 */

import assert from "node:assert/strict";
import { zmqVersion } from "../src/zmq/binding.ts";
import { ZMQ_LINGER, ZMQ_SUB, ZMQ_SUBSCRIBE, ZMQ_XPUB, ZMQ_XSUB } from "../src/zmq/constants.ts";
import { Context } from "../src/zmq/socket.ts";
import { sleep } from "../testing/net.ts";

Deno.test("libzmq quirk still present: an XPUB's topic count stays up when its subscriber leaves; an XSUB's follows", async () => {
  const ctx = new Context();
  try {
    const xpub = ctx.socket(ZMQ_XPUB);
    const xsub = ctx.socket(ZMQ_XSUB);
    const sub = ctx.socket(ZMQ_SUB);
    for (const s of [xpub, xsub, sub]) s.setInt(ZMQ_LINGER, 0);
    xpub.bind("inproc://quirk-xpub");
    sub.connect("inproc://quirk-xpub");
    for (const topic of ["a.", "b.", "c."]) sub.setBytes(ZMQ_SUBSCRIBE, topic);
    // Play the proxy by hand: what the XPUB receives goes to the XSUB.
    const pass = async (want: number) => {
      let moved = 0;
      for (let i = 0; i < 100 && moved < want; i++) {
        const frames = xpub.tryReceive();
        if (frames) {
          xsub.trySend(frames);
          moved++;
        } else await sleep(10);
      }
      return moved;
    };
    assert.equal(await pass(3), 3, "the three subscriptions reached the XPUB");
    assert.deepEqual([xpub.topics(), xsub.topics()], [3, 3]);
    sub.close(); // leaves without unsubscribing, as a crashed or disconnected subscriber does
    assert.equal(await pass(3), 3, "the XPUB sent an unsubscription for each topic");
    const counts = [xpub.topics(), xsub.topics()];
    console.log(`libzmq ${zmqVersion()}: after the leave, XPUB ${counts[0]}, XSUB ${counts[1]}`);
    assert.equal(counts[1], 0, "the XSUB's count follows the unsubscriptions");
    assert.equal(
      counts[0],
      3,
      "the XPUB's count went down: libzmq fixed ZMQ_TOPICS_COUNT on a leave; the XPUB's may now be shown",
    );
  } finally {
    await ctx.terminate();
  }
});
