/**
 * No peer can remove another peer's subscription, against the adaptor as a process in its
 * default configuration. libzmq 4.3.5's XPUB passes upstream an unsubscription it has no record
 * of (its trie answers "not found" when the topic is held by others), and the XSUB drops its one
 * reference: one forged CANCEL silenced a topic at every gateway worker. With a PUB facing the
 * subscribers (`--subscriptions local`, the default) unsubscriptions go nowhere but the PUB's own
 * trie, per connection. Also: SUBSCRIBE/CANCEL flapping from one peer does not reach the workers.
 */

import assert from "node:assert/strict";
import { keygen } from "../src/security/cert.ts";
import { sleep } from "../testing/net.ts";
import { type CurveClient, type Receiver, syncUp } from "../testing/peers.ts";
import { type Session, withAdaptor } from "../testing/session.ts";
import { rssKiB } from "../testing/worker.ts";
import { command, concat, connectRaw, handshake, subscription, unsubscription } from "../testing/zmtp.ts";

/** Each forged unsubscription, as a raw ZMTP peer (NULL mechanism, READY as a SUB) sends it. */
const FORGERIES: [string, Uint8Array][] = [
  ["ZMTP 3.1 CANCEL of a topic it never subscribed", command("CANCEL", "usage.")],
  ["ZMTP 3.0 unsubscription message", unsubscription("usage.")],
  [
    "subscribe once, cancel twice",
    concat(subscription("usage."), unsubscription("usage."), unsubscription("usage.")),
  ],
  ["CANCEL of the empty topic", command("CANCEL", "")],
  ["unsubscription of the empty topic", unsubscription("")],
];

/**
 * A usage. subscriber and a subscriber of everything are served; then each forgery, on its own
 * raw connection (refused ones counted); then both, and a usage. subscriber that came after,
 * must get every event. Returns how many forgers the adaptor refused at the handshake.
 */
async function forgeAgainst({ bind, publish, peers }: Session, curve?: CurveClient): Promise<number> {
  const pub = peers.publisher(bind);
  const usage = peers.subscriber(publish, ["usage."], { curve });
  const everything = peers.subscriber(publish, [""], { curve });
  await syncUp([pub], [usage, everything]);
  const forgers: Deno.Conn[] = [];
  let refused = 0;
  try {
    for (const [, bytes] of FORGERIES) {
      const conn = await connectRaw(publish);
      forgers.push(conn);
      try {
        await handshake(conn, "SUB");
        await conn.write(bytes);
      } catch {
        refused++;
      }
    }
    await sleep(500); // what the forgers sent has reached the workers, if it reaches them
    const late = peers.subscriber(publish, ["usage."], { curve });
    await syncUp([pub], [usage, everything, late]);
    await pub.sendAll(200, (i) => i % 2 ? `other.${i}` : `usage.${i}`);
    const wait = (r: Receiver, n: number, who: string) =>
      r.expect(n, 5_000).catch(() => assert.fail(`${who}: ${r.messages.length} of ${n} after the forgeries`));
    await wait(usage, 100, "the usage. subscriber");
    await wait(everything, 200, "the subscriber of everything");
    await wait(late, 100, "a usage. subscriber that came after");
    assert.ok(usage.texts().every((t) => t.startsWith("usage.")));
  } finally {
    for (const conn of forgers) conn.close();
  }
  return refused;
}

Deno.test("forged unsubscriptions (CANCEL, 0x00, double cancel, empty topic): every legitimate subscriber keeps receiving everything", async () => {
  await withAdaptor([], async (session) => {
    assert.equal(await forgeAgainst(session), 0, "the forgers are plaintext peers the adaptor admits");
  });
});

Deno.test("--subscriptions forward with --curve-clients: forgers without a key are refused at the handshake, subscribers served", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "adaptor-e2e-cancel-" });
  try {
    Deno.mkdirSync(`${dir}/clients`);
    const server = keygen(`${dir}/server`);
    const tracker = keygen(`${dir}/tracker`);
    Deno.copyFileSync(tracker.publicPath, `${dir}/clients/tracker`);
    const secretKey = /secret-key = "(.{40})"/.exec(Deno.readTextFileSync(tracker.secretPath))![1];
    const curve = { serverKey: server.publicKey, publicKey: tracker.publicKey, secretKey };
    const args = [
      "--subscriptions",
      "forward",
      "--curve-cert",
      server.secretPath,
      "--curve-clients",
      `${dir}/clients`,
    ];
    await withAdaptor(args, async (session) => {
      assert.equal(await forgeAgainst(session, curve), FORGERIES.length);
    });
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("SUBSCRIBE/CANCEL flapping from one peer: the workers hear nothing of it, the adaptor stays small", async () => {
  await withAdaptor(
    [],
    async ({ bind, publish, adaptor, peers }) => {
      const worker = peers.upstream(bind); // an XPUB in a gateway worker's place
      const pub = peers.publisher(bind);
      const sub = peers.subscriber(publish, ["usage."]);
      await syncUp([pub], [sub]);
      await sleep(200);
      const heardBefore = worker.log.length;
      const before = rssKiB(adaptor.pid);
      const conn = await connectRaw(publish);
      try {
        await handshake(conn, "SUB");
        const pair = concat(subscription("flap."), unsubscription("flap.")); // a topic nobody else holds
        const pairs = 100_000;
        const batch = concat(...Array.from({ length: 1000 }, () => pair));
        for (let n = 0; n < pairs; n += 1000) {
          for (let at = 0; at < batch.length;) at += await conn.write(batch.subarray(at));
        }
        await sleep(1000);
        const heard = worker.log.slice(heardBefore);
        assert.equal(
          heard.length,
          0,
          `a worker heard ${heard.length} subscription frames of ${pairs * 2} flapped`,
        );
        const grown = rssKiB(adaptor.pid) - before;
        assert.ok(grown < 32 * 1024, `the adaptor grew by ${grown} KiB`);
        await pub.sendAll(100, (i) => `usage.${i}`);
        await sub.expect(100, 5_000);
      } finally {
        conn.close();
      }
    },
  );
});
