/**
 * End to end: the adaptor as a subprocess, several publishers on its ipc XSUB (as nginx
 * workers), several subscribers with and without topic filters on its tcp XPUB. Every message
 * is counted; order per publisher and multipart framing are checked.
 */

import assert from "node:assert/strict";
import { AdaptorProcess } from "../testing/process.ts";
import { withAdaptor } from "../testing/session.ts";
import { freePort } from "../testing/net.ts";
import { Peers, syncUp } from "../testing/peers.ts";
import { ZMQ_SUB, ZMQ_SUBSCRIBE, ZMQ_UNSUBSCRIBE, ZMQ_XPUB } from "../src/zmq/constants.ts";

const PUBLISHERS = 4;
const PER_PUBLISHER = 2500;
const decoder = new TextDecoder();

/** Message i of publisher p: topic alternates; every 10th message has three frames. */
function message(p: number, i: number): string | Uint8Array[] {
  const topic = i % 2 === 0 ? "usage." : "other.";
  const head = `${topic}p${p}:${i}`;
  if (i % 10 !== 0) return head;
  const enc = new TextEncoder();
  return [enc.encode(head), enc.encode(`body-${p}-${i}`), new Uint8Array([0, 1, 2, i % 256])];
}

Deno.test("forwards every message from 4 publishers to 3 subscribers, filtered, in order, multipart intact", async () => {
  await withAdaptor([], async ({ bind, publish, peers }) => {
    const all = peers.subscriber(publish, [""]);
    const usage = peers.subscriber(publish, ["usage."]);
    const other = peers.subscriber(publish, ["other."]);
    const publishers = Array.from({ length: PUBLISHERS }, () => peers.publisher(bind));
    await syncUp(publishers, [all, usage, other]);

    await Promise.all(publishers.map((pub, p) => pub.sendAll(PER_PUBLISHER, (i) => message(p, i))));
    const total = PUBLISHERS * PER_PUBLISHER;
    await all.expect(total);
    await usage.expect(total / 2);
    await other.expect(total / 2);

    assert.equal(all.messages.length, total);
    assert.equal(usage.messages.length, total / 2);
    assert.equal(other.messages.length, total / 2);
    assert.ok(usage.texts().every((t) => t.startsWith("usage.")), "usage subscriber got only usage.");
    assert.ok(other.texts().every((t) => t.startsWith("other.")), "other subscriber got only other.");

    // Order per publisher, and every multipart message whole.
    const next = new Map<string, number>();
    for (const frames of all.messages) {
      const [, p, i] = /^\w+\.p(\d+):(\d+)$/.exec(decoder.decode(frames[0]))!;
      assert.equal(Number(i), next.get(p) ?? 0, `publisher ${p} out of order`);
      next.set(p, Number(i) + 1);
      if (Number(i) % 10 === 0) {
        assert.equal(frames.length, 3);
        assert.equal(decoder.decode(frames[1]), `body-${p}-${i}`);
        assert.deepEqual([...frames[2]], [0, 1, 2, Number(i) % 256]);
      } else {
        assert.equal(frames.length, 1);
      }
    }
  });
});

Deno.test("subscriptions flow upstream to the publishers, and unsubscriptions too", async () => {
  await withAdaptor(["--subscriptions", "forward"], async ({ bind, publish, peers }) => {
    // An XPUB in the gateway worker's place sees the subscriptions that reach publishers.
    const upstream = peers.socket(ZMQ_XPUB);
    upstream.connect(bind);
    const seen: string[] = [];
    const waitUpstream = async (expected: string) => {
      const deadline = performance.now() + 10_000;
      while (!seen.includes(expected) && performance.now() < deadline) {
        const frames = upstream.tryReceive();
        if (frames) seen.push(decoder.decode(frames[0]));
        else await new Promise((r) => setTimeout(r, 10));
      }
      assert.ok(seen.includes(expected), `${JSON.stringify(expected)} did not reach the publisher: ${seen}`);
    };
    // A subscriber with no receive loop, so that the test may change its subscriptions.
    const sub = peers.socket(ZMQ_SUB);
    sub.setBytes(ZMQ_SUBSCRIBE, "usage.api-42");
    sub.connect(publish);
    await waitUpstream("\x01usage.api-42");
    sub.setBytes(ZMQ_UNSUBSCRIBE, "usage.api-42");
    await waitUpstream("\x00usage.api-42");
  });
});

Deno.test("abstract ipc endpoint (ipc://@name) forwards", async () => {
  const name = `adaptor-test-${Deno.pid}-abstract`;
  const port = freePort();
  const adaptor = new AdaptorProcess(["-b", `ipc://@${name}`, "-p", `tcp://127.0.0.1:${port}`]);
  const peers = new Peers();
  try {
    await adaptor.ready();
    const sub = peers.subscriber(`tcp://127.0.0.1:${port}`);
    const pubs = [peers.publisher(`ipc://@${name}`), peers.publisher(`ipc://@${name}`)];
    await syncUp(pubs, [sub]);
    await Promise.all(pubs.map((pub, p) => pub.sendAll(500, (i) => `abstract.${p}.${i}`)));
    await sub.expect(1000);
    assert.equal(sub.messages.length, 1000);
  } finally {
    await peers.close();
    await adaptor.stop();
  }
});
