/**
 * `adaptor tap` against a running adaptor, both as processes: it prints what the XPUB forwards
 * for its prefixes (made safe for a terminal; multipart told), as lines or JSON lines; it exits
 * 0 after --count events and on SIGINT/SIGTERM; it exits 1 with one line when nothing answers
 * or the CURVE XPUB refuses it (key not admitted, wrong server key, plaintext), and connects with --curve-server-key or
 * --curve-servers as an admitted client.
 */

import assert from "node:assert/strict";
import { keygen } from "../src/security/cert.ts";
import { freePort, ipcPath, sleep, until } from "../testing/net.ts";
import { Peers } from "../testing/peers.ts";
import { AdaptorProcess, ROOT, RUN_FLAGS } from "../testing/process.ts";

const encoder = new TextEncoder();

/** `adaptor tap ARGS…` as a process. */
const tap = (...args: string[]) => new AdaptorProcess(["tap", ...args]);

/** Sends `message` every 20 ms until `done()` holds (a subscriber's subscription takes a moment). */
async function sendUntil(send: () => void, done: () => boolean, what: string): Promise<void> {
  const deadline = performance.now() + 10_000;
  while (!done()) {
    if (performance.now() > deadline) throw new Error(`timed out: ${what}`);
    send();
    await sleep(20);
  }
}

Deno.test("tap: prints what the XPUB forwards for its prefixes; --count, --json, SIGINT exit 0; nothing there: exit 1", async () => {
  const xsub = `ipc://${ipcPath("xsub")}`;
  const xpub = `tcp://127.0.0.1:${freePort()}`;
  const adaptor = new AdaptorProcess(["-b", xsub, "-p", xpub]);
  const peers = new Peers();
  await adaptor.ready();
  const lines = tap(xpub, "tap-");
  const counted = tap(xpub, "tap-", "--count", "3", "--json");
  const nobody = tap(`tcp://127.0.0.1:${freePort()}`, "--connect-timeout", "300");
  const notXpub = tap(xsub, "--connect-timeout", "1000"); // the adaptor's XSUB: a SUB is not its peer
  try {
    const pub = peers.publisher(xsub);
    await Promise.all([lines.waitFor(/tap: connected to /), counted.waitFor(/tap: connected to /)]);
    await sendUntil(
      () => pub.socket.trySend("tap-sync"),
      () => lines.stdoutLines.length > 0 && counted.stdoutLines.length >= 3,
      "both taps subscribed",
    );
    await pub.send("tap-\x1b[31mred\u202e");
    await pub.send([encoder.encode("tap-multi"), encoder.encode("second")]);
    await pub.send("other-not-subscribed");
    await pub.send("tap-last");
    await until(() => lines.stdoutLines.includes("tap-last"), "the last event on the tap");
    const { status } = await lines.stop("SIGINT");
    assert.equal(status.code, 0, lines.lines.join("\n"));
    const shown = lines.stdoutLines.filter((l) => l !== "tap-sync");
    assert.deepEqual(shown, ["tap-\\x1b[31mred\\u202e", "tap-multi (+1 frames)", "tap-last"]);

    assert.equal((await counted.exit()).code, 0, counted.lines.join("\n"));
    assert.equal(counted.stdoutLines.length, 3);
    for (const line of counted.stdoutLines) {
      const event = JSON.parse(line);
      assert.deepEqual(event.data, ["tap-sync"]);
      assert.equal(event.frames, 1);
      assert.equal(event.bytes, 8);
      assert.ok(Math.abs(Date.parse(event.time) - Date.now()) < 60_000, event.time);
    }

    assert.equal((await nobody.exit()).code, 1);
    assert.deepEqual(nobody.stdoutLines, []);
    assert.match(
      nobody.lines.join("\n"),
      /^adaptor: error: tap: cannot connect to tcp:\/\/127\.0\.0\.1:\d+ within 300 ms: nothing accepts connections there$/,
    );
    assert.equal((await notXpub.exit()).code, 1);
    // The XSUB closes the connection, or the handshake fails first: which, libzmq's timing decides.
    assert.match(
      notXpub.lines.at(-1)!,
      /^adaptor: error: tap: (cannot connect to ipc:.*not a PUB or XPUB\?|refused by ipc:.*not a ZeroMQ PUB\/XPUB)/,
    );
  } finally {
    for (const t of [lines, counted, nobody, notXpub]) t.kill("SIGKILL");
    await peers.close();
    const { status } = await adaptor.stop();
    assert.equal(status.code, 0, adaptor.lines.join("\n"));
  }
});

Deno.test("tap on a CURVE XPUB: an admitted key receives (server key or servers directory); others exit 1 with the reason", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "adaptor-e2e-tap-" });
  Deno.mkdirSync(`${dir}/clients`);
  Deno.mkdirSync(`${dir}/servers`);
  const server = keygen(`${dir}/server`);
  const operator = keygen(`${dir}/operator`);
  const stranger = keygen(`${dir}/stranger`);
  Deno.copyFileSync(operator.publicPath, `${dir}/clients/operator`);
  const port = freePort();
  Deno.copyFileSync(server.publicPath, `${dir}/servers/127.0.0.1:${port}`);
  const xsub = `ipc://${ipcPath("xsub")}`;
  const xpub = `tcp://127.0.0.1:${port}`;
  const adaptor = new AdaptorProcess([
    ...["-b", xsub, "-p", xpub, "--curve-cert", server.secretPath, "--curve-clients", `${dir}/clients`],
  ]);
  const peers = new Peers();
  await adaptor.ready();
  const byKey = tap(xpub, "--curve-cert", operator.secretPath, "--curve-server-key", server.publicKey);
  const byDir = tap(
    xpub,
    "--count",
    "1",
    "--curve-cert",
    operator.secretPath,
    "--curve-servers",
    `${dir}/servers`,
  );
  const notAdmitted = tap(xpub, "--curve-cert", stranger.secretPath, "--curve-server-key", server.publicKey);
  const plaintext = tap(xpub);
  const wrongServerKey = tap(
    xpub,
    "--curve-cert",
    operator.secretPath,
    "--curve-server-key",
    stranger.publicKey,
  );
  try {
    const pub = peers.publisher(xsub);
    await Promise.all([byKey.waitFor(/tap: connected to /), byDir.waitFor(/tap: connected to /)]);
    await sendUntil(
      () => pub.socket.trySend("secret-event"),
      () => byKey.stdoutLines.length > 0 && byDir.stdoutLines.length > 0,
      "both admitted taps received",
    );
    assert.equal(byKey.stdoutLines[0], "secret-event");
    assert.equal((await byDir.exit()).code, 0, byDir.lines.join("\n"));
    assert.deepEqual(byDir.stdoutLines, ["secret-event"]);
    const { status } = await byKey.stop("SIGTERM");
    assert.equal(status.code, 0);

    assert.equal((await notAdmitted.exit()).code, 1);
    assert.match(
      notAdmitted.lines.at(-1)!,
      /^adaptor: error: tap: refused by tcp:\/\/127\.0\.0\.1:\d+: the server did not admit this client key/,
    );
    assert.equal((await plaintext.exit()).code, 1);
    assert.match(plaintext.lines.at(-1)!, /^adaptor: error: tap: refused by tcp:\/\/127\.0\.0\.1:\d+: /);
    assert.match(plaintext.lines.at(-1)!, /--curve-server-key/);
    assert.equal((await wrongServerKey.exit()).code, 1);
    assert.match(
      wrongServerKey.lines.at(-1)!,
      /^adaptor: error: tap: refused by tcp:.*a wrong --curve-server-key\?/,
    );
    for (const t of [notAdmitted, plaintext, wrongServerKey]) {
      assert.deepEqual(t.stdoutLines, []);
      assert.equal(t.lines.filter((l) => l.startsWith("adaptor: error:")).length, 1, t.lines.join("\n"));
    }
  } finally {
    for (const t of [byKey, byDir, notAdmitted, plaintext, wrongServerKey]) t.kill("SIGKILL");
    await peers.close();
    const { status } = await adaptor.stop();
    Deno.removeSync(dir, { recursive: true });
    assert.equal(status.code, 0, adaptor.lines.join("\n"));
  }
});

Deno.test("tap: one whose output nobody reads loses its own messages at the XPUB; the other subscribers get all", async () => {
  const xsub = `ipc://${ipcPath("xsub")}`;
  const xpub = `tcp://127.0.0.1:${freePort()}`;
  const adaptor = new AdaptorProcess(["-b", xsub, "-p", xpub]);
  const peers = new Peers();
  await adaptor.ready();
  // stdout piped and not read: once the pipe is full the tap stops reading its socket.
  const stuck = new Deno.Command(Deno.execPath(), {
    args: ["run", ...RUN_FLAGS, `${ROOT}src/main.ts`, "tap", xpub],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(stuck.stderr).text();
  try {
    const sub = peers.subscriber(xpub, ["event"]);
    const pub = peers.publisher(xsub);
    await sendUntil(() => pub.socket.trySend("event-sync"), () => sub.messages.length > 0, "the subscriber");
    const before = sub.messages.length;
    const SENT = 30_000; // 30 MB: more than the tap's pipe, socket buffers and both high-water marks hold
    const payload = new Uint8Array(1000).fill(0x41);
    payload.set(encoder.encode("event-"));
    await pub.sendAll(SENT, () => [payload]);
    await sub.expect(before + SENT, 60_000);
    // Now read what the tap printed: fewer than were sent (the XPUB dropped the rest for it).
    const reader = stuck.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let lines = 0;
    for (;;) {
      const chunk = await Promise.race([reader.read(), sleep(1000).then(() => undefined)]);
      if (!chunk || chunk.done) break;
      lines += chunk.value.split("\n").length - 1;
    }
    assert.ok(lines > 0 && lines < SENT, `the tap printed ${lines} of ${SENT}`);
    stuck.kill("SIGINT");
    const status = await stuck.status;
    assert.equal(status.code, 0, await stderr);
    reader.releaseLock();
    await stuck.stdout.cancel().catch(() => {});
  } finally {
    try {
      stuck.kill("SIGKILL");
    } catch {
      // gone
    }
    await peers.close();
    const { status } = await adaptor.stop();
    assert.equal(status.code, 0, adaptor.lines.join("\n"));
  }
});
