/**
 * Authentication outcomes: exact counts and a rate-limited log (src/security/auth.ts), failed
 * handshakes read from monitor events, and the adaptor handle's `auth`, `onAuth` and
 * `reloadClients()` with a real in-process adaptor and real CURVE peers.
 */

import assert from "node:assert/strict";
import { startAdaptor } from "../src/adaptor/adaptor.ts";
import { type AuthEvent, AuthTracker, handshakeFailure } from "../src/security/auth.ts";
import { makeConfig } from "../src/config/config.ts";
import { literal, log, setupLogging } from "../src/ops/log.ts";
import { keygen } from "../src/security/cert.ts";
import { curveKeypair } from "../src/zmq/z85.ts";
import { freePort, ipcPath, until } from "../testing/net.ts";
import { Peers, syncUp } from "../testing/peers.ts";

function captureLog(): string[] {
  const lines: string[] = [];
  setupLogging({ level: "debug", format: "text", write: (line) => lines.push(line.trimEnd()) });
  return lines;
}

Deno.test("AuthTracker: every decision counted and hooked; one line per socket, host and reason whatever the key, then an exact summary", async () => {
  const lines = captureLog();
  const hooked: (AuthEvent & { role: string })[] = [];
  const tracker = new AuthTracker((e) => hooked.push(e), { windowMs: 300 });
  const key = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID";
  const denial: AuthEvent = {
    allowed: false,
    address: "tcp://10.0.0.7:4000",
    reason: "unknown client key",
    domain: "publish",
    clientKey: key,
  };
  try {
    tracker.record(denial, "publish", "XPUB");
    // 500 more from the same host, each with a fresh key and port: one window, no more lines.
    for (let i = 0; i < 500; i++) {
      const random = curveKeypair().publicKey;
      tracker.record(
        { ...denial, address: `tcp://10.0.0.7:${5000 + i}`, clientKey: random },
        "publish",
        "XPUB",
      );
    }
    tracker.record(
      { ...denial, address: "tcp://10.0.0.8:4000", reason: "cryptographic error", clientKey: undefined },
      "publish",
      "XPUB",
    );
    tracker.record({ ...denial, reason: "cryptographic error", clientKey: undefined }, "publish", "XPUB");
    tracker.record(denial, "listen", "SUB");
    tracker.record(
      { allowed: true, address: "10.0.0.9", reason: "allowed by /c/t1", domain: "publish" },
      "publish",
      "XPUB",
    );
    assert.deepEqual(tracker.counts, { allowed: 1, denied: 504 });
    assert.equal(hooked.length, 505);
    assert.equal(hooked[0].role, "publish");
    let auth = lines.filter((l) => l.includes("adaptor·auth"));
    // 5 examples of the flood (the first and 4 random keys), then one line per other combination.
    assert.equal(auth.length, 9, auth.join("\n"));
    assert.ok(
      auth[0].endsWith(`Denied XPUB connection from tcp://10.0.0.7:4000 key ${key}: unknown client key`),
    );
    for (let i = 1; i < 5; i++) {
      const example = new RegExp(`from tcp://10\\.0\\.0\\.7:${5000 + i - 1} key .{40}: unknown client key$`);
      assert.match(auth[i], example);
    }
    assert.ok(auth[5].includes("Denied XPUB connection from tcp://10.0.0.8:4000: cryptographic error"));
    assert.ok(auth[6].includes("Denied XPUB connection from tcp://10.0.0.7:4000: cryptographic error"));
    assert.ok(auth[7].includes("Denied SUB connection from tcp://10.0.0.7:4000 key"));
    assert.ok(auth[8].includes("[INF] adaptor·auth: Allowed XPUB client from 10.0.0.9: allowed by /c/t1"));
    // When the window ends, one summary with the exact count, although nothing else came.
    await until(() => lines.filter((l) => l.includes("more like it")).length > 0, "the summary");
    auth = lines.filter((l) => l.includes("adaptor·auth"));
    assert.equal(auth.length, 10, auth.join("\n"));
    const summary =
      "Denied XPUB connection from 10.0.0.7: unknown client key (496 more like it in the last 0.3 s)";
    assert.ok(auth[9].endsWith(summary), auth[9]);
  } finally {
    tracker.close();
  }
});

Deno.test("AuthTracker: a flood from more hosts than it follows shares one line; close() tells the pending count", () => {
  const lines = captureLog();
  const tracker = new AuthTracker(undefined, { maxKeys: 3, perWindow: 1 });
  const denial = (host: number): AuthEvent => ({
    allowed: false,
    address: `tcp://10.1.0.${host}:4000`,
    reason: "unknown client key",
    domain: "publish",
  });
  for (let host = 0; host < 200; host++) tracker.record(denial(host), "publish", "XPUB");
  assert.deepEqual(tracker.counts, { allowed: 0, denied: 200 });
  tracker.close();
  const auth = lines.filter((l) => l.includes("adaptor·auth"));
  assert.equal(auth.length, 5, auth.join("\n"));
  assert.ok(auth[3].includes("Decisions about more than 3 hosts in a minute"), auth[3]);
  assert.ok(auth[3].includes("from tcp://10.1.0.3:4000"), auth[3]);
  assert.ok(auth[4].endsWith("(196 more like it in the last 60 s)"), auth[4]);
  // Closed: nothing more is logged, everything still counted.
  tracker.record(denial(1), "publish", "XPUB");
  assert.equal(lines.filter((l) => l.includes("adaptor·auth")).length, 5);
  assert.deepEqual(tracker.counts, { allowed: 0, denied: 201 });
});

Deno.test("AuthTracker: escape sequences in an address or reason are escaped, not written", () => {
  const lines = captureLog();
  const tracker = new AuthTracker();
  tracker.record(
    {
      allowed: false,
      address: "tcp://10.0.0.1:1\x1b[2J",
      reason: "bad\u202ekey\n2nd line",
      domain: "publish",
    },
    "publish",
    "XPUB",
  );
  tracker.close();
  const auth = lines.filter((l) => l.includes("adaptor·auth"));
  assert.equal(auth.length, 1);
  assert.ok(auth[0].endsWith("from tcp://10.0.0.1:1\\x1b[2J: bad\\u202ekey\\n2nd line"), auth[0]);
});

Deno.test("failed handshakes from monitor events: reasons named, ZAP's own refusals and other events left out", () => {
  const event = (name: string, value: number) => ({
    name,
    value,
    endpoint: "tcp://0.0.0.0:6001",
    remote: "tcp://10.1.2.3:5555",
  });
  assert.deepEqual(handshakeFailure(event("handshake_failed_protocol", 0x11000002), "publish"), {
    allowed: false,
    address: "tcp://10.1.2.3:5555",
    reason: "security mechanism mismatch (the client may not use CURVE)",
    domain: "publish",
  });
  assert.match(
    handshakeFailure(event("handshake_failed_protocol", 0x11000001), "publish")!.reason,
    /wrong server key/,
  );
  assert.match(
    handshakeFailure(event("handshake_failed_protocol", 0x10000099), "publish")!.reason,
    /0x10000099/,
  );
  assert.match(handshakeFailure(event("handshake_failed_no_detail", 32), "listen")!.reason, /hung up/);
  assert.match(
    handshakeFailure(event("handshake_failed_no_detail", 14), "listen")!.reason,
    /no ZAP handler answered/,
  );
  assert.equal(handshakeFailure(event("handshake_failed_auth", 400), "publish"), undefined);
  assert.equal(handshakeFailure(event("accepted", 12), "publish"), undefined);
});

Deno.test("log messages keep braces (LogTape placeholders): keys and JSON usage events print verbatim", () => {
  const lines = captureLog();
  for (const text of ['{"api_key":"k1","path":"/v1/{id}"}', "a}}b{", "}{", "plain"]) {
    log().info(literal(text));
  }
  assert.deepEqual(lines.map((l) => l.replace(/^.* adaptor: /, "")), [
    '{"api_key":"k1","path":"/v1/{id}"}',
    "a}}b{",
    "}{",
    "plain",
  ]);
});

Deno.test("adaptor handle: onAuth sees each decision with its socket, auth counts them, reloadClients() rereads", async () => {
  captureLog();
  const dir = Deno.makeTempDirSync({ prefix: "adaptor-auth-" });
  Deno.mkdirSync(`${dir}/clients`);
  const server = keygen(`${dir}/server`);
  const client = keygen(`${dir}/client`);
  const secretOf = (path: string) => /secret-key = "(.{40})"/.exec(Deno.readTextFileSync(path))![1];
  const bind = ipcPath("xsub");
  const xpub = `tcp://127.0.0.1:${freePort()}`;
  const events: (AuthEvent & { role: string })[] = [];
  const adaptor = await startAdaptor(
    makeConfig({
      bind: [`ipc://${bind}`],
      publish: [xpub],
      curveCert: server.secretPath,
      curveClients: `${dir}/clients`,
    }),
    { onAuth: (e) => events.push(e) },
  );
  const peers = new Peers();
  try {
    const curve = {
      serverKey: server.publicKey,
      publicKey: client.publicKey,
      secretKey: secretOf(client.secretPath),
    };
    peers.subscriber(xpub, [""], { curve });
    await until(() => adaptor.auth.denied === 1, "first refusal counted");
    assert.deepEqual(adaptor.auth, { allowed: 0, denied: 1 });
    assert.equal(events[0].role, "publish");
    assert.equal(events[0].clientKey, client.publicKey);

    peers.subscriber(xpub, [""], { curve: { ...curve, serverKey: curveKeypair().publicKey } });
    await until(() => events.some((e) => /wrong server key/.test(e.reason)), "wrong server key refused");

    Deno.copyFileSync(client.publicPath, `${dir}/clients/client`);
    assert.equal(adaptor.reloadClients(), true);
    const admitted = peers.subscriber(xpub, [""], { curve });
    await syncUp([peers.publisher(`ipc://${bind}`)], [admitted]);
    assert.equal(adaptor.auth.allowed, 1);
    assert.ok(events.some((e) => e.allowed && e.reason === `allowed by ${dir}/clients/client`));
  } finally {
    await peers.close();
    await adaptor.stop();
    assert.equal(adaptor.reloadClients(), false, "nothing to reload once stopped");
    Deno.removeSync(dir, { recursive: true });
  }
});
