/**
 * CURVE on the aggregation hop, on loopback (the same across network namespaces: see
 * e2e_fleet_test.ts): the aggregator's XSUB is a CURVE client of each edge (`--curve-servers`),
 * the edge a CURVE server with an allow-list holding the aggregator's public certificate.
 *
 * - every message published at the edge reaches the aggregator's subscriber;
 * - an aggregator with a wrong server key gets nothing, and the edge logs the denial;
 * - a connecting endpoint without a certificate in DIR: one line naming both files, exit 2;
 * - a remote publisher (a CURVE server) feeding `-l` over CURVE reaches the PULL workers;
 * - a bound tcp XSUB is a CURVE server: a plaintext publisher gets nothing in, a CURVE one does;
 * - SIGHUP rereads DIR: a rotated server key reconnects that endpoint.
 */

import assert from "node:assert/strict";
import { keygen, type KeygenResult } from "../src/security/cert.ts";
import { ZMQ_LINGER, ZMQ_PUB, ZMQ_PULL, ZMQ_RCVHWM, ZMQ_SNDHWM } from "../src/zmq/constants.ts";
import { health, scrapeUntil, value } from "../testing/scrape.ts";
import { freePort, ipcPath, sleep, until } from "../testing/net.ts";
import { type CurveClient, Peers, syncUp } from "../testing/peers.ts";
import { AdaptorProcess, runAdaptor } from "../testing/process.ts";

const secretOf = (pair: KeygenResult) =>
  /secret-key = "(.{40})"/.exec(Deno.readTextFileSync(pair.secretPath))![1];

/** A temp dir of key pairs, a clients directory and a servers directory. */
class Fleet {
  readonly dir = Deno.makeTempDirSync({ prefix: "adaptor-e2e-curve-client-" });
  readonly clients = `${this.dir}/clients`;
  readonly servers = `${this.dir}/servers`;

  constructor() {
    Deno.mkdirSync(this.clients);
    Deno.mkdirSync(this.servers);
  }

  pair(name: string): KeygenResult {
    return keygen(`${this.dir}/${name}`);
  }

  /** Puts `pair`'s public certificate into the servers directory as `name` (HOST:PORT or HOST). */
  knowServer(pair: KeygenResult, name: string): void {
    Deno.copyFileSync(pair.publicPath, `${this.servers}/${name}`);
  }

  admit(pair: KeygenResult): void {
    Deno.copyFileSync(pair.publicPath, `${this.clients}/${pair.publicPath.split("/").pop()}`);
  }

  /** CURVE options for a test peer with `pair`'s keys against `server`. */
  client(pair: KeygenResult, server: KeygenResult): CurveClient {
    return { serverKey: server.publicKey, publicKey: pair.publicKey, secretKey: secretOf(pair) };
  }

  dispose(): void {
    Deno.removeSync(this.dir, { recursive: true });
  }
}

/** An edge (CURVE server, allow-list) and an aggregator that connects to it as a CURVE client. */
async function edgeAndAggregator(fleet: Fleet, options: { knowEdgeAs?: KeygenResult } = {}) {
  const edgeKeys = fleet.pair("edge"), aggKeys = fleet.pair("aggregator");
  fleet.admit(aggKeys);
  const edgeBind = ipcPath("edge");
  const edgePort = freePort(), aggPort = freePort();
  fleet.knowServer(options.knowEdgeAs ?? edgeKeys, `127.0.0.1:${edgePort}`);
  const edge = new AdaptorProcess([
    ...["-b", `ipc://${edgeBind}`, "-p", `tcp://127.0.0.1:${edgePort}`],
    ...["--curve-cert", edgeKeys.secretPath, "--curve-clients", fleet.clients],
    ...["--block-after-denials", "0"], // refused aggregators retry from this host
  ]);
  await edge.ready();
  const aggregator = new AdaptorProcess([
    ...["-b", `>tcp://127.0.0.1:${edgePort}`, "-p", `tcp://127.0.0.1:${aggPort}`],
    ...["--curve-cert", aggKeys.secretPath, "--curve-servers", fleet.servers],
  ]);
  await aggregator.ready();
  return { edge, aggregator, edgeBind, edgePort, aggPort, edgeKeys, aggKeys };
}

Deno.test("aggregator as a CURVE client of an edge: every message arrives; the start says whose key it uses", async () => {
  const fleet = new Fleet();
  const { edge, aggregator, edgeBind, aggPort, aggKeys, edgePort } = await edgeAndAggregator(fleet);
  const peers = new Peers();
  try {
    assert.ok(
      aggregator.lines.some((l) =>
        l.includes(`CURVE client of tcp://127.0.0.1:${edgePort}: server key from ${fleet.servers}/127.0.0.1:`)
      ),
      aggregator.lines.join("\n"),
    );
    const tracker = fleet.pair("tracker");
    const sub = peers.subscriber(`tcp://127.0.0.1:${aggPort}`, ["e."], {
      curve: fleet.client(tracker, aggKeys),
    });
    const pub = peers.publisher(`ipc://${edgeBind}`);
    await syncUp([pub], [sub], 20_000);
    await pub.sendAll(1000, (i) => `e.${i}`);
    await sub.expect(1000);
    assert.deepEqual(sub.texts(), Array.from({ length: 1000 }, (_, i) => `e.${i}`));
    assert.ok(
      edge.lines.some((l) => /Allowed XPUB client .*allowed by .*aggregator/.test(l)),
      edge.lines.join("\n"),
    );
  } finally {
    await peers.close();
    for (const a of [aggregator, edge]) assert.equal((await a.stop()).status.code, 0, a.lines.join("\n"));
    fleet.dispose();
  }
});

Deno.test("an aggregator with a wrong server key gets nothing, and the edge logs the denial", async () => {
  const fleet = new Fleet();
  const impostor = fleet.pair("impostor");
  const { edge, aggregator, edgeBind, aggPort, aggKeys } = await edgeAndAggregator(fleet, {
    knowEdgeAs: impostor,
  });
  const peers = new Peers();
  try {
    const sub = peers.subscriber(`tcp://127.0.0.1:${aggPort}`, [""], {
      curve: fleet.client(fleet.pair("tracker"), aggKeys),
    });
    const pub = peers.publisher(`ipc://${edgeBind}`);
    await edge.waitFor(/Denied XPUB connection from .*cryptographic error/, 10_000);
    for (let i = 0; i < 50; i++) {
      pub.socket.trySend(`x.${i}`);
      await sleep(10);
    }
    await sleep(300);
    assert.equal(sub.messages.length, 0);
  } finally {
    await peers.close();
    for (const a of [aggregator, edge]) await a.stop();
    fleet.dispose();
  }
});

Deno.test("--curve-servers: a connecting endpoint without a certificate is a usage error naming both files", async () => {
  const fleet = new Fleet();
  try {
    const own = fleet.pair("aggregator");
    const port = freePort();
    const result = await runAdaptor([
      ...["-b", `>tcp://edge9.example:${port}`, "-p", `tcp://127.0.0.1:${freePort()}`],
      ...["--curve-cert", own.secretPath, "--curve-servers", fleet.servers],
    ]);
    assert.equal(result.code, 2, result.stderr.join("\n"));
    assert.equal(result.stderr.length, 1, result.stderr.join("\n"));
    assert.equal(
      result.stderr[0],
      `adaptor: error: --curve-servers '${fleet.servers}': no certificate for -b/--bind '>tcp://edge9.example:${port}' ` +
        `(looked for ${fleet.servers}/edge9.example:${port} and ${fleet.servers}/edge9.example) (see adaptor --help)`,
    );
    const without = await runAdaptor(["--curve-servers", fleet.servers]);
    assert.equal(without.code, 2);
    assert.match(without.stderr.at(-1)!, /--curve-servers .*needs --curve-cert/);
  } finally {
    fleet.dispose();
  }
});

Deno.test("a remote publisher feeds -l over CURVE: the inbound SUB is its CURVE client", async () => {
  const fleet = new Fleet();
  const remote = fleet.pair("remote"), own = fleet.pair("node");
  const port = freePort();
  fleet.knowServer(remote, "127.0.0.1"); // HOST alone: any port of that host
  const pushPath = ipcPath("push");
  const adaptor = new AdaptorProcess([
    ...["-b", `ipc://${ipcPath("xsub")}`, "-p", `tcp://127.0.0.1:${freePort()}`],
    ...["-l", `>tcp://127.0.0.1:${port}`, "-u", `ipc://${pushPath}`],
    ...["--curve-cert", own.secretPath, "--curve-servers", fleet.servers],
  ]);
  const peers = new Peers();
  try {
    await adaptor.ready();
    const pub = peers.socket(ZMQ_PUB);
    pub.setInt(ZMQ_SNDHWM, 100_000);
    pub.curveServer(secretOf(remote));
    pub.bind(`tcp://127.0.0.1:${port}`);
    const pull = peers.puller(`ipc://${pushPath}`);
    await until(() => {
      pub.trySend("probe");
      return pull.messages.length > 0;
    }, "the first message through the CURVE inbound channel");
    await sleep(50);
    const before = pull.messages.length;
    for (let i = 0; i < 200; i++) pub.trySend(`in.${i}`);
    await pull.expect(before + 200);
    assert.equal(pull.texts().filter((t) => t.startsWith("in.")).length, 200);
  } finally {
    await peers.close();
    assert.equal((await adaptor.stop()).status.code, 0, adaptor.lines.join("\n"));
    fleet.dispose();
  }
});

Deno.test("a bound tcp XSUB is a CURVE server with --curve-cert: plaintext publishers get nothing in", async () => {
  const fleet = new Fleet();
  const server = fleet.pair("node"), worker = fleet.pair("worker");
  fleet.admit(worker);
  const xsubPort = freePort(), xpubPort = freePort();
  const gateway = ipcPath("xsub");
  const adaptor = new AdaptorProcess([
    ...["-b", `tcp://127.0.0.1:${xsubPort}`, "-b", `ipc://${gateway}`],
    ...[
      "-p",
      `tcp://127.0.0.1:${xpubPort}`,
      "--curve-cert",
      server.secretPath,
      "--curve-clients",
      fleet.clients,
      ...["--block-after-denials", "0"],
    ],
  ]);
  const peers = new Peers();
  try {
    await adaptor.ready();
    assert.ok(adaptor.lines.some((l) => l.includes("CURVE on XSUB and XPUB")), adaptor.lines.join("\n"));
    assert.ok(!adaptor.lines.some((l) => /XSUB tcp:.*plaintext and unauthenticated/.test(l)));
    const sub = peers.subscriber(`tcp://127.0.0.1:${xpubPort}`, [""], {
      curve: fleet.client(worker, server),
    });
    const curvePub = peers.publisher(`tcp://127.0.0.1:${xsubPort}`, false, {
      curve: fleet.client(worker, server),
    });
    const plainPub = peers.socket(ZMQ_PUB);
    plainPub.setInt(ZMQ_LINGER, 0);
    plainPub.connect(`tcp://127.0.0.1:${xsubPort}`);
    await syncUp([curvePub], [sub]);
    for (let i = 0; i < 100; i++) {
      plainPub.trySend(`plain.${i}`);
      await curvePub.send(`curve.${i}`);
    }
    await sub.expect(100);
    await sleep(200);
    assert.deepEqual(sub.texts(), Array.from({ length: 100 }, (_, i) => `curve.${i}`));
    // The gateway's ipc endpoint of the same XSUB stays plaintext (no ZAP asked about it).
    const ipcSub = peers.subscriber(`tcp://127.0.0.1:${xpubPort}`, ["ipc."], {
      curve: fleet.client(worker, server),
    });
    const workerPub = peers.publisher(`ipc://${gateway}`);
    await syncUp([workerPub], [ipcSub]);
    await workerPub.sendAll(50, (i) => `ipc.${i}`);
    await ipcSub.expect(50);
    assert.equal(ipcSub.messages.length, 50);
  } finally {
    await peers.close();
    assert.equal((await adaptor.stop()).status.code, 0, adaptor.lines.join("\n"));
    fleet.dispose();
  }
});

Deno.test("SIGHUP rereads --curve-servers: a rotated edge key reconnects the aggregator, messages flow again", async () => {
  const fleet = new Fleet();
  const { edge, aggregator, edgeBind, aggPort, aggKeys, edgePort } = await edgeAndAggregator(fleet);
  const peers = new Peers();
  let second: AdaptorProcess | undefined;
  try {
    const sub = peers.subscriber(`tcp://127.0.0.1:${aggPort}`, ["r."], {
      curve: fleet.client(fleet.pair("tracker"), aggKeys),
    });
    // The edge is restarted with a new key pair: the aggregator's known key is now wrong.
    assert.equal((await edge.stop()).status.code, 0);
    const rotated = fleet.pair("edge-rotated");
    second = new AdaptorProcess([
      ...["-b", `ipc://${edgeBind}`, "-p", `tcp://127.0.0.1:${edgePort}`],
      ...["--curve-cert", rotated.secretPath, "--curve-clients", fleet.clients],
      ...["--block-after-denials", "0"],
    ]);
    await second.ready();
    await second.waitFor(/Denied XPUB connection from .*cryptographic error/, 10_000);
    fleet.knowServer(rotated, `127.0.0.1:${edgePort}`);
    aggregator.kill("SIGHUP");
    await aggregator.waitFor(/new server key from .*127\.0\.0\.1:/);
    await aggregator.waitFor(/Reread .*: 1 endpoint reconnected/);
    const pub = peers.publisher(`ipc://${edgeBind}`);
    await syncUp([pub], [sub], 20_000);
    await pub.sendAll(300, (i) => `r.${i}`);
    await sub.expect(300);
    assert.equal(sub.messages.length, 300);
  } finally {
    await peers.close();
    for (const a of [aggregator, second, edge]) if (a) await a.stop();
    fleet.dispose();
  }
});

Deno.test("SIGHUP with the inbound proxy blocked on a full PUSH: the reload fails whole, says so, and later SIGHUPs still apply", async () => {
  const fleet = new Fleet();
  const own = fleet.pair("node"), edge = fleet.pair("edge"), remote = fleet.pair("remote");
  const trackerA = fleet.pair("tracker-a"), trackerB = fleet.pair("tracker-b");
  fleet.admit(trackerA);
  const [edgePort, remotePort, xpubPort, metricsPort] = [freePort(), freePort(), freePort(), freePort()];
  fleet.knowServer(edge, `127.0.0.1:${edgePort}`);
  fleet.knowServer(remote, `127.0.0.1:${remotePort}`);
  const pushPath = ipcPath("push");
  const url = `http://127.0.0.1:${metricsPort}`;
  const adaptor = new AdaptorProcess([
    ...["-b", `>tcp://127.0.0.1:${edgePort}`, "-p", `tcp://127.0.0.1:${xpubPort}`],
    ...["-l", `>tcp://127.0.0.1:${remotePort}`, "-u", `ipc://${pushPath}`],
    ...["--curve-cert", own.secretPath, "--curve-clients", fleet.clients, "--curve-servers", fleet.servers],
    ...["--sndhwm", "1", "--metrics", `127.0.0.1:${metricsPort}`],
  ]);
  const peers = new Peers();
  const count = (re: RegExp) => adaptor.lines.filter((l) => re.test(l)).length;
  const failed = /SIGHUP: reconnecting tcp:\/\/127\.0\.0\.1:\d+ failed: the proxy is blocked/;
  let passed = false;
  try {
    await adaptor.ready();
    // The edge (the main channel's upstream) and the remote publisher (the inbound channel's)
    // are CURVE servers; the PULL worker stopped reading after one message.
    const edgePub = peers.socket(ZMQ_PUB);
    edgePub.curveServer(secretOf(edge));
    edgePub.bind(`tcp://127.0.0.1:${edgePort}`);
    const remotePub = peers.socket(ZMQ_PUB);
    remotePub.curveServer(secretOf(remote));
    remotePub.bind(`tcp://127.0.0.1:${remotePort}`);
    const pull = peers.socket(ZMQ_PULL);
    pull.setInt(ZMQ_RCVHWM, 1);
    pull.connect(`ipc://${pushPath}`);
    // Blocked as in e2e_metrics_test.ts: the worker takes a few messages now and then, each
    // room opens a burst that blocks in a send; once a scrape finds it blocked, it reads no more.
    let filling = true;
    const payload = new Uint8Array(1024);
    const fill = (async () => {
      for (let round = 0; filling; round++) {
        for (let i = 0; i < 100; i++) remotePub.trySend(payload);
        if (round % 40 === 39) { for (let i = 0; i < 50 && pull.tryReceive(); i++); }
        await sleep(5);
      }
    })();
    await scrapeUntil(
      url,
      (s) => (value(s, "adaptor_statistics_unanswered_total", { channel: "inbound" }) ?? 0) > 0,
      "the inbound proxy blocked",
      20_000,
    ).finally(() => filling = false);
    await fill;

    // Both servers rotate their keys; the inbound channel cannot be paused to reconnect.
    fleet.knowServer(fleet.pair("edge-2"), `127.0.0.1:${edgePort}`);
    fleet.knowServer(fleet.pair("remote-2"), `127.0.0.1:${remotePort}`);
    adaptor.kill("SIGHUP");
    await adaptor.waitFor(failed, 10_000);
    assert.equal(count(/new server key from|endpoints? reconnected/), 0, adaptor.lines.join("\n"));
    assert.equal(count(/back to the old key failed/), 0, adaptor.lines.join("\n"));
    const unhealthy = await health(url);
    assert.equal(unhealthy.status, 503);
    assert.match(unhealthy.body, /reload of .* failed .*the server keys in use stay/);

    // A later SIGHUP still applies a --curve-clients change (and tries the servers again).
    fleet.admit(trackerB);
    adaptor.kill("SIGHUP");
    await adaptor.waitFor(/Reloaded 2 client keys from /, 10_000);
    const tracker = peers.subscriber(`tcp://127.0.0.1:${xpubPort}`, ["e."], {
      curve: fleet.client(trackerB, own),
    });
    await adaptor.waitFor(
      new RegExp(
        `Allowed XPUB client from 127\\.0\\.0\\.1 key ${
          trackerB.publicKey.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")
        }`,
      ),
    );
    await until(() => count(failed) >= 2, "the reload tried again, not 'no change'", 10_000);
    // The main channel's endpoint is back on the key in use: the edge's events arrive.
    await until(
      () => {
        edgePub.trySend("e.1");
        return tracker.messages.length > 0;
      },
      "an edge event through the main channel after the failed reload",
      10_000,
    );

    // The worker reads again: the next SIGHUP reconnects both endpoints, and health is ok.
    // A worker that reads takes its place: the proxy forwards what was queued, then idles.
    remotePub.close();
    pull.close();
    peers.puller(`ipc://${pushPath}`);
    let last = "";
    await scrapeUntil(
      url,
      (s) => {
        const now = ["adaptor_messages_forwarded_total", "adaptor_statistics_unanswered_total"]
          .map((name) => value(s, name, { channel: "inbound" })).join();
        const steady = now === last;
        last = now;
        return steady;
      },
      "the inbound proxy idle",
      30_000,
    );
    adaptor.kill("SIGHUP");
    await adaptor.waitFor(/Reread .*: 2 endpoints reconnected/, 10_000);
    assert.equal((await health(url)).status, 200);

    // A certificate that cannot be read is a reload that fails too, until one succeeds.
    const edgeFile = `${fleet.servers}/127.0.0.1:${edgePort}`;
    const good = Deno.readTextFileSync(edgeFile);
    Deno.writeTextFileSync(edgeFile, "not a certificate\n");
    adaptor.kill("SIGHUP");
    await adaptor.waitFor(/: the server keys in use stay/, 10_000);
    const broken = await health(url);
    assert.equal(broken.status, 503);
    assert.ok(broken.body.includes(edgeFile), broken.body);
    Deno.writeTextFileSync(edgeFile, good);
    adaptor.kill("SIGHUP");
    await until(() => count(/Reread .*: 0 endpoints reconnected/) === 1, "a reload that succeeds");
    assert.equal((await health(url)).status, 200);
    passed = true;
  } finally {
    await peers.close();
    const { status } = await adaptor.stop();
    if (passed) assert.equal(status.code, 0, adaptor.lines.join("\n"));
    fleet.dispose();
  }
});

Deno.test("SIGHUP that reconnects and SIGTERM within a millisecond: the reconnect and the stop's drain both happen, the totals are logged", async () => {
  const fleet = new Fleet();
  const own = fleet.pair("node"), edge = fleet.pair("edge");
  const edgePort = freePort();
  fleet.knowServer(edge, `127.0.0.1:${edgePort}`);
  const peers = new Peers();
  try {
    const edgePub = peers.socket(ZMQ_PUB);
    edgePub.curveServer(secretOf(edge));
    edgePub.bind(`tcp://127.0.0.1:${edgePort}`);
    for (let round = 0; round < 3; round++) {
      fleet.knowServer(edge, `127.0.0.1:${edgePort}`);
      const adaptor = new AdaptorProcess([
        ...["-b", `>tcp://127.0.0.1:${edgePort}`, "-p", `tcp://127.0.0.1:${freePort()}`],
        ...["--curve-cert", own.secretPath, "--curve-servers", fleet.servers, "--subscriber-wait", "0"],
      ]);
      await adaptor.ready();
      fleet.knowServer(fleet.pair(`edge-${round}`), `127.0.0.1:${edgePort}`); // a rotation to reload
      adaptor.kill("SIGHUP");
      adaptor.kill("SIGTERM");
      const status = await adaptor.exit();
      const log = adaptor.lines.join("\n");
      assert.equal(status.code, 0, log);
      assert.ok(
        adaptor.lines.some((l) => l.includes("main channel totals")),
        `no totals: the main proxy ended early\n${log}`,
      );
      assert.ok(!adaptor.lines.some((l) => /ERR|proxy ended/.test(l)), log);
    }
  } finally {
    await peers.close();
    fleet.dispose();
  }
});
