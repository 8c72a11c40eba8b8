/**
 * The check every fault test ends with: does the adaptor still forward? A fresh publisher and
 * subscriber (or inbound sender and PULL receiver) move `count` messages through it, exactly.
 */

import assert from "node:assert/strict";
import { Peers, syncUp } from "./peers.ts";
import { sleep } from "./net.ts";

/** Where a fresh publisher connects (the adaptor's XSUB) and a subscriber (its XPUB). */
export interface MainChannel {
  /** e.g. `ipc:///tmp/q` or `tcp://127.0.0.1:5555` */
  readonly publishTo: string;
  /** e.g. `tcp://127.0.0.1:6001` */
  readonly subscribeTo: string;
}

let checks = 0;

/**
 * Asserts that `count` messages from a new publisher reach a new subscriber, all of them. The
 * subscriber takes only this check's topic, so other traffic through the adaptor is no matter.
 */
export async function assertForwards(channel: MainChannel, count = 200): Promise<void> {
  const peers = new Peers();
  const topic = `check-${Deno.pid}-${++checks}.`;
  try {
    const sub = peers.subscriber(channel.subscribeTo, [topic]);
    const pub = peers.publisher(channel.publishTo);
    await syncUp([pub], [sub]);
    await pub.sendAll(count, (i) => `${topic}${i}`);
    await sub.expect(count);
    assert.equal(sub.messages.length, count);
  } finally {
    await peers.close();
  }
}

/**
 * Asserts that the inbound channel still forwards: a publisher bound where the adaptor's SUB
 * connects (`listen`, bound here) or connecting to it, and a PULL at its PUSH (`pull`).
 * PUB/SUB has no way to sync without a back channel, so messages are sent until the first
 * arrives, then `count` numbered ones must all arrive.
 */
export async function assertInboundForwards(
  inbound: { listen: string; listenBinds: boolean; pull: string },
  count = 100,
): Promise<void> {
  const peers = new Peers();
  try {
    const pull = peers.puller(inbound.pull);
    const pub = peers.publisher(inbound.listen, inbound.listenBinds);
    const deadline = performance.now() + 10_000;
    while (pull.messages.length === 0) {
      if (performance.now() > deadline) throw new Error("inbound channel: nothing arrived");
      pub.socket.trySend("probe");
      await sleep(20);
    }
    await sleep(50); // let stray probes land before counting
    const before = pull.messages.length;
    await pub.sendAll(count, (i) => `inbound.${i}`);
    await pull.expect(before + count);
    const got = pull.texts().filter((t) => t.startsWith("inbound.")).length;
    assert.equal(got, count);
  } finally {
    await peers.close();
  }
}
