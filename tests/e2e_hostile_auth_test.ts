/**
 * The auth log under attack (issue 13, defect 5), against the adaptor as a process: CURVE
 * clients that each use a fresh random key, as fast as one process makes them, for up to 8 s.
 * Before, denials were throttled per client key and each new key got a line (4 100–17 000
 * lines in 10–30 s); now the log has a handful of lines per socket, reason and host, and
 * `adaptor_auth_denied_total` still counts every denial: each client connects exactly once
 * (reconnection off), so the count is known.
 */

import assert from "node:assert/strict";
import { keygen } from "../src/security/cert.ts";
import { ZMQ_RECONNECT_IVL, ZMQ_SUB, ZMQ_SUBSCRIBE } from "../src/zmq/constants.ts";
import { type Socket } from "../src/zmq/socket.ts";
import { curveKeypair } from "../src/zmq/z85.ts";
import { freePort, ipcPath, sleep } from "../testing/net.ts";
import { Peers, syncUp } from "../testing/peers.ts";
import { AdaptorProcess } from "../testing/process.ts";
import { scrapeUntil, value } from "../testing/scrape.ts";

Deno.test("random-key CURVE clients for 8 s: a few dozen log lines at most, every denial counted", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "adaptor-e2e-hostile-auth-" });
  Deno.mkdirSync(`${dir}/clients`);
  const server = keygen(`${dir}/server`);
  const admitted = keygen(`${dir}/tracker`);
  Deno.copyFileSync(admitted.publicPath, `${dir}/clients/tracker`);
  const xsub = `ipc://${ipcPath("xsub")}`;
  const xpub = `tcp://127.0.0.1:${freePort()}`;
  const metricsPort = freePort();
  const url = `http://127.0.0.1:${metricsPort}`;
  const adaptor = new AdaptorProcess([
    "-b",
    xsub,
    "-p",
    xpub,
    "--curve-cert",
    server.secretPath,
    "--curve-clients",
    `${dir}/clients`,
    ...["--block-after-denials", "0"], // every client is counted here (blocking: e2e_hostile_cancel)
    "--metrics",
    `127.0.0.1:${metricsPort}`,
  ]);
  const peers = new Peers();
  let clients = 0;
  try {
    await adaptor.ready();
    const before = adaptor.lines.length;
    const deadline = performance.now() + 8000;
    let open: Socket[] = [];
    const denials = async () => {
      const s = await scrapeUntil(
        url,
        (s) => (value(s, "adaptor_auth_denied_total", { socket: "XPUB" }) ?? 0) >= clients,
        `${clients} denials counted`,
        30_000,
      );
      return s;
    };
    while (performance.now() < deadline && clients < 5000) {
      if (open.length >= 400) {
        // libzmq allows 1023 sockets a context: close these once all have been judged.
        await denials();
        for (const socket of open) socket.close();
        open = [];
      }
      for (let i = 0; i < 20; i++) {
        const keys = curveKeypair();
        const socket = peers.socket(ZMQ_SUB);
        socket.setInt(ZMQ_RECONNECT_IVL, -1); // one attempt: one denial
        socket.curveClient({ serverKey: server.publicKey, ...keys });
        socket.setBytes(ZMQ_SUBSCRIBE, "");
        socket.connect(xpub);
        open.push(socket);
        clients++;
      }
      await sleep(10);
    }
    // Every attempt counted, exactly: no fewer (each was judged), no more (none retried).
    const series = await denials();
    await sleep(500);
    const settled = await scrapeUntil(url, () => true, "a scrape");
    assert.equal(value(settled, "adaptor_auth_denied_total", { socket: "XPUB" }), clients);
    assert.equal(value(series, "adaptor_auth_allowed_total", { socket: "XPUB" }) ?? 0, 0);
    assert.ok(clients >= 200, `only ${clients} clients made`);

    const authLines = adaptor.lines.slice(before).filter((l) => l.includes("adaptor·auth"));
    assert.ok(
      authLines.length <= 36,
      `${authLines.length} auth lines for ${clients} clients:\n${authLines.join("\n")}`,
    );
    assert.ok(
      authLines.some((l) => /Denied XPUB connection from 127\.0\.0\.1 key .{40}: unknown client key/.test(l)),
    );
    const allLines = adaptor.lines.slice(before);
    assert.ok(allLines.length <= 48, `${allLines.length} lines:\n${allLines.join("\n")}`);
    for (const socket of open) socket.close();

    // The admitted tracking service is served as before.
    const secretKey = /secret-key = "(.{40})"/.exec(Deno.readTextFileSync(admitted.secretPath))![1];
    const good = peers.subscriber(xpub, ["usage."], {
      curve: { serverKey: server.publicKey, publicKey: admitted.publicKey, secretKey },
    });
    const pub = peers.publisher(xsub);
    await syncUp([pub], [good]);
    await pub.sendAll(500, (i) => `usage.${i}`);
    await good.expect(500);
    assert.equal(good.messages.length, 500);
  } finally {
    await peers.close();
    const { status } = await adaptor.stop();
    Deno.removeSync(dir, { recursive: true });
    assert.equal(status.code, 0, adaptor.lines.join("\n"));
  }
});
