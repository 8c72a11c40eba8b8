/**
 * A CURVE handshake flood from one host, against the adaptor as a process: after
 * `--block-after-denials` (10) denials within 10 s the host's new connections are dropped by the
 * kernel (a socket filter on the XPUB's listener), so the flood stops costing handshakes, while
 * a subscriber on another host receives every event; SIGHUP (clients reread) lifts the block.
 * The latency this buys is measured by `deno task attack --scenario handshake-flood`.
 */

import assert from "node:assert/strict";
import { keygen } from "../src/security/cert.ts";
import { ZMQ_RECONNECT_IVL, ZMQ_SUB, ZMQ_SUBSCRIBE } from "../src/zmq/constants.ts";
import { curveKeypair } from "../src/zmq/z85.ts";
import { freePort, sleep } from "../testing/net.ts";
import { syncUp } from "../testing/peers.ts";
import { scrape, value } from "../testing/scrape.ts";
import { withAdaptor } from "../testing/session.ts";

Deno.test("a CURVE handshake flood from one host: blocked after 10 denials, another host's subscriber gets every event, SIGHUP lifts it", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "adaptor-e2e-handshakes-" });
  try {
    Deno.mkdirSync(`${dir}/clients`);
    const server = keygen(`${dir}/server`);
    const tracker = keygen(`${dir}/tracker`);
    Deno.copyFileSync(tracker.publicPath, `${dir}/clients/tracker`);
    const secretKey = /secret-key = "(.{40})"/.exec(Deno.readTextFileSync(tracker.secretPath))![1];
    const curve = { serverKey: server.publicKey, publicKey: tracker.publicKey, secretKey };
    const port = freePort();
    const args = [
      ...["--curve-cert", server.secretPath, "--curve-clients", `${dir}/clients`],
      ...["--metrics", `127.0.0.1:${port}`],
    ];
    await withAdaptor(args, async ({ bind, publish, adaptor, peers }) => {
      const denied = async () =>
        value(await scrape(`http://127.0.0.1:${port}`), "adaptor_auth_denied_total", { socket: "XPUB" }) ?? 0;
      const pub = peers.publisher(bind);
      const good = peers.subscriber(publish, ["usage."], { curve });
      await syncUp([pub], [good]);
      // 300 clients with random keys from 127.0.0.2 (libzmq's `tcp://SOURCE;DEST`), one attempt
      // each, 10 every 20 ms, while the events go out.
      const from = (host: string) => publish.replace("tcp://", `tcp://${host}:0;`);
      const flood = (host: string) => {
        const socket = peers.socket(ZMQ_SUB);
        socket.setInt(ZMQ_RECONNECT_IVL, -1);
        socket.curveClient({ serverKey: server.publicKey, ...curveKeypair() });
        socket.setBytes(ZMQ_SUBSCRIBE, "");
        socket.connect(from(host));
      };
      for (let round = 0; round < 30; round++) {
        for (let i = 0; i < 10; i++) flood("127.0.0.2");
        await pub.sendAll(20, (i) => `usage.${round * 20 + i}`);
        await sleep(20);
      }
      await adaptor.waitFor(
        /XPUB: 127\.0\.0\.2 was denied 10 times within 10 s: its new connections are dropped/,
      );
      await good.expect(600);
      assert.deepEqual(good.texts(), Array.from({ length: 600 }, (_, i) => `usage.${i}`));
      await sleep(500);
      const count = await denied();
      assert.ok(count >= 10 && count < 150, `${count} denials of 300 clients: the host was not blocked`);
      // Another host is not blocked: a new subscriber from 127.0.0.1 is served.
      const late = peers.subscriber(publish, ["usage."], { curve });
      await syncUp([pub], [late]);
      // SIGHUP rereads the clients and lifts the block: 127.0.0.2's waiting clients (their SYNs
      // retried) are judged again, until it is blocked again.
      const before = await denied();
      adaptor.kill("SIGHUP");
      await adaptor.waitFor(/Reloaded 1 client key/);
      flood("127.0.0.2");
      const deadline = performance.now() + 5000;
      while (await denied() === before && performance.now() < deadline) await sleep(50);
      const after = await denied();
      assert.ok(after > before, "after SIGHUP the blocked host's clients were not judged");
      assert.ok(after - before < 150, `${after - before} denials after SIGHUP: not blocked again`);
    });
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
