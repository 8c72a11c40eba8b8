/**
 * The ZAP handler (src/security/auth.ts) in a real context, with real CURVE peers in another context:
 * it keeps judging connections that arrive long after it started (the zeromq.js/Deno quirk
 * would leave such a handler deaf), `reload()` admits new keys, `stop()` ends it without a
 * context shutdown, and a CURVE socket with ZAP enforced then refuses everyone (fail closed).
 */

import assert from "node:assert/strict";
import { monitorSocket } from "../src/zmq/monitor.ts";
import { keygen } from "../src/security/cert.ts";
import { readClientKeys } from "../src/security/certstore.ts";
import { type AuthEvent, decideZap, handshakeFailure, ZapHandler } from "../src/security/auth.ts";
import { ZMQ_LINGER, ZMQ_XPUB, ZMQ_ZAP_DOMAIN } from "../src/zmq/constants.ts";
import { Context } from "../src/zmq/socket.ts";
import { curveKeypair, z85Decode } from "../src/zmq/z85.ts";
import { freePort, sleep, until } from "../testing/net.ts";
import { Peers, type Receiver, SYNC } from "../testing/peers.ts";

const enc = (s: string) => new TextEncoder().encode(s);

Deno.test("decideZap: 200 with the certificate as user id, 400 for unknown keys and other mechanisms, 500 for junk", () => {
  const { publicKey } = curveKeypair();
  const allowed = new Map([[publicKey, "/etc/clients/tracker"]]);
  const request = (mechanism: string, credential?: Uint8Array) => [
    enc("1.0"),
    enc("7"),
    enc("publish"),
    enc("10.0.0.7"),
    new Uint8Array(),
    enc(mechanism),
    ...(credential ? [credential] : []),
  ];
  const text = (frames: Uint8Array[]) => frames.map((f) => new TextDecoder().decode(f));

  const ok = decideZap(request("CURVE", z85Decode(publicKey)), allowed);
  assert.deepEqual(text(ok.reply), [
    "1.0",
    "7",
    "200",
    "allowed by /etc/clients/tracker",
    "/etc/clients/tracker",
    "",
  ]);
  assert.deepEqual(ok.event, {
    allowed: true,
    address: "10.0.0.7",
    reason: "allowed by /etc/clients/tracker",
    domain: "publish",
    clientKey: publicKey,
  });

  const stranger = curveKeypair().publicKey;
  const no = decideZap(request("CURVE", z85Decode(stranger)), allowed);
  assert.deepEqual(text(no.reply).slice(0, 4), ["1.0", "7", "400", "unknown client key"]);
  assert.equal(no.event.clientKey, stranger);
  assert.equal(no.event.allowed, false);

  assert.equal(text(decideZap(request("NULL"), allowed).reply)[2], "400");
  assert.equal(
    text(decideZap(request("PLAIN", enc("user")), allowed).reply)[3],
    "mechanism PLAIN is not allowed",
  );
  assert.equal(
    text(decideZap(request("CURVE", enc("short")), allowed).reply)[3],
    "malformed CURVE credential",
  );
  assert.equal(text(decideZap([enc("2.0"), enc("1")], allowed).reply)[2], "500");
});

/** Sends sync messages on `xpub` until `receiver` has one. */
async function syncWith(xpub: ReturnType<Context["socket"]>, receiver: Receiver): Promise<void> {
  const deadline = performance.now() + 10_000;
  while (receiver.syncFrom.size === 0) {
    if (performance.now() > deadline) throw new Error("subscriber never synced");
    xpub.trySend(`${SYNC}0`);
    await sleep(20);
  }
}

Deno.test("ZAP handler: judges late connections, reloads, stops on its own; enforced ZAP then refuses all", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "adaptor-zap-" });
  const clients = `${dir}/clients`;
  Deno.mkdirSync(clients);
  const server = curveKeypair();
  const early = keygen(`${dir}/early`);
  const late = keygen(`${dir}/late`);
  const stranger = keygen(`${dir}/stranger`);
  Deno.copyFileSync(early.publicPath, `${clients}/early`);
  const secretOf = (path: string) => /secret-key = "(.{40})"/.exec(Deno.readTextFileSync(path))![1];
  const keysOf = (k: typeof early) => ({
    serverKey: server.publicKey,
    publicKey: k.publicKey,
    secretKey: secretOf(k.secretPath),
  });

  const ctx = new Context();
  const decisions: AuthEvent[] = [];
  const failures: AuthEvent[] = [];
  const zap = ZapHandler.start(ctx, {
    clients: readClientKeys(clients),
    onDecision: (e) => decisions.push(e),
  });
  const xpub = ctx.socket(ZMQ_XPUB);
  xpub.setInt(ZMQ_LINGER, 0);
  xpub.curveServer(server.secretKey, true);
  xpub.setBytes(ZMQ_ZAP_DOMAIN, "publish");
  const monitor = monitorSocket(ctx, xpub, (event) => {
    const failure = handshakeFailure(event, "publish");
    if (failure) failures.push(failure);
  });
  const address = `tcp://127.0.0.1:${freePort()}`;
  xpub.bind(address);
  const peers = new Peers();
  try {
    const first = peers.subscriber(address, [""], { curve: keysOf(early) });
    await syncWith(xpub, first);
    assert.equal(decisions.filter((d) => d.allowed).length, 1);

    // The handler now sits in a receive with nothing to do; later clients must still be judged.
    await sleep(1500);
    const refused = peers.subscriber(address, [""], { curve: keysOf(stranger) });
    await until(
      () => decisions.some((d) => !d.allowed && d.clientKey === stranger.publicKey),
      "stranger denied",
    );
    assert.equal(decisions.at(-1)!.reason, "unknown client key");
    assert.equal(decisions.at(-1)!.address, "127.0.0.1");

    Deno.copyFileSync(late.publicPath, `${clients}/late`);
    assert.equal(zap.reload().keys.size, 2);
    assert.equal(zap.clientCount, 2);
    const admitted = peers.subscriber(address, [""], { curve: keysOf(late) });
    await syncWith(xpub, admitted);
    assert.ok(
      decisions.some((d) => d.allowed && d.clientKey === late.publicKey && d.reason.endsWith("/late")),
    );
    for (let i = 0; i < 100; i++) xpub.trySend(`m${i}`);
    await first.expect(100);
    await admitted.expect(100);
    assert.equal(refused.messages.length + refused.syncFrom.size, 0, "the denied connection got nothing");

    // stop() ends the handler in a live context; the socket then refuses (ZAP enforced).
    await zap.stop();
    const afterStop = peers.subscriber(address, [""], { curve: keysOf(early) });
    await until(() => failures.some((f) => /no ZAP handler answered/.test(f.reason)), "refused without ZAP");
    xpub.trySend(`${SYNC}0`);
    for (let i = 0; i < 10; i++) xpub.trySend(`after${i}`);
    await first.expect(110);
    assert.equal(afterStop.messages.length + afterStop.syncFrom.size, 0);
  } finally {
    await peers.close();
    await zap.stop();
    ctx.shutdown();
    await monitor.done;
    xpub.close();
    await ctx.terminate();
    Deno.removeSync(dir, { recursive: true });
  }
});
