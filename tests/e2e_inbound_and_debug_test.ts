/**
 * The inbound channel (SUB -l → PUSH -u) and the operator-facing modes: `-d` socket events,
 * messages and rates; `-t` test publisher and subscriber; `-r` inbound test sender/receiver.
 */

import assert from "node:assert/strict";
import { freePort, ipcPath } from "../testing/net.ts";
import { Peers, syncUp } from "../testing/peers.ts";
import { AdaptorProcess } from "../testing/process.ts";

Deno.test("inbound channel: a remote publisher's messages reach the gateway's PULL workers, none lost", async () => {
  const remote = `tcp://127.0.0.1:${freePort()}`;
  const push = ipcPath("push");
  const peers = new Peers();
  // The remote publisher is up first, as the C original expected (its SUB connects).
  const publisher = peers.publisher(remote, true);
  const adaptor = new AdaptorProcess([
    "-b",
    `ipc://${ipcPath("xsub")}`,
    "-p",
    `tcp://127.0.0.1:${freePort()}`,
    "-l",
    remote,
    "-u",
    `ipc://${push}`,
  ]);
  try {
    await adaptor.ready();
    const workers = [peers.puller(`ipc://${push}`), peers.puller(`ipc://${push}`)];
    // Sync until the SUB's subscription reached the publisher and a worker got a message.
    const deadline = performance.now() + 10_000;
    while (!workers.some((w) => w.syncFrom.size > 0) && performance.now() < deadline) {
      publisher.socket.trySend("sync|0");
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(
      workers.some((w) => w.syncFrom.size > 0),
      "inbound never flowed",
    );
    await publisher.sendAll(3000, (i) => `inbound.${i}`);
    const total = () => workers.reduce((n, w) => n + w.messages.length, 0);
    const until = performance.now() + 15_000;
    while (total() < 3000 && performance.now() < until) await new Promise((r) => setTimeout(r, 20));
    assert.equal(total(), 3000);
    const seen = new Set(workers.flatMap((w) => w.texts()));
    assert.equal(seen.size, 3000, "every message exactly once across the workers");
  } finally {
    await peers.close();
    const { status } = await adaptor.stop();
    assert.equal(status.code, 0);
  }
});

Deno.test("-d logs socket events with timestamps, each message and a rate line", async () => {
  const bind = ipcPath("xsub");
  const port = freePort();
  const adaptor = new AdaptorProcess(["-d", "-b", `ipc://${bind}`, "-p", `tcp://127.0.0.1:${port}`]);
  const peers = new Peers();
  try {
    await adaptor.ready();
    await adaptor.waitFor(/RUNNING IN DEBUGGING MODE/);
    await adaptor.waitFor(new RegExp(`XSUB ipc://${bind}: listening`));
    await adaptor.waitFor(new RegExp(`XPUB tcp://127\\.0\\.0\\.1:${port}: listening`));
    const sub = peers.subscriber(`tcp://127.0.0.1:${port}`);
    const pub = peers.publisher(`ipc://${bind}`);
    await adaptor.waitFor(new RegExp(`XSUB ipc://${bind}: accepted`));
    await syncUp([pub], [sub]);
    await pub.send("hello-from-a-gateway-worker");
    const got = await adaptor.waitFor(/> got: hello-from-a-gateway-worker/);
    assert.match(got, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} /, "lines carry timestamps");
    await adaptor.waitFor(/\d+ messages in \d+ ms/, 5000);
  } finally {
    await peers.close();
    await adaptor.stop();
  }
});

Deno.test("-t runs a test publisher whose messages the debug subscriber gets, with latency", async () => {
  const adaptor = new AdaptorProcess([
    "-t",
    "-b",
    `ipc://${ipcPath("xsub")}`,
    "-p",
    `tcp://127.0.0.1:${freePort()}`,
  ]);
  try {
    await adaptor.ready();
    const sent = await adaptor.waitFor(/ \.\.\. sending:PUB-[A-J]-\d{5}$/, 10_000);
    const payload = sent.slice(sent.indexOf("PUB-"));
    await adaptor.waitFor(new RegExp(`> got: ${payload}$`), 5000);
    await adaptor.waitFor(/\d+ messages in \d+ ms, latency min\/max\/avg [\d.]+\/[\d.]+\/[\d.]+ ms/, 5000);
  } finally {
    const { status } = await adaptor.stop();
    assert.equal(status.code, 0);
  }
});

Deno.test("-r runs an inbound test sender and a PULL receiver", async () => {
  const adaptor = new AdaptorProcess([
    "-r",
    "-b",
    `ipc://${ipcPath("xsub")}`,
    "-p",
    `tcp://127.0.0.1:${freePort()}`,
    "-l",
    `tcp://127.0.0.1:${freePort()}`,
    "-u",
    `ipc://${ipcPath("push")}`,
  ]);
  try {
    await adaptor.ready();
    await adaptor.waitFor(/RUNNING IN TEST MODE & DEBUG MODE for SUB -> PUSH/);
    // The first sends may go before the SUB's subscription arrives (PUB/SUB slow joiner).
    const deadline = performance.now() + 10_000;
    let received = false;
    while (!received && performance.now() < deadline) {
      const sent = await adaptor.waitFor(/ \.\.\. sending:SEND-\d{5}$/, 5000);
      const payload = sent.slice(sent.indexOf("SEND-"));
      received = await adaptor.waitFor(new RegExp(`> receiver got: ${payload}$`), 1500).then(
        () => true,
        () => false,
      );
      if (!received) adaptor.lines.splice(adaptor.lines.indexOf(sent), 1);
    }
    assert.ok(received, adaptor.lines.join("\n"));
  } finally {
    const { status } = await adaptor.stop();
    assert.equal(status.code, 0);
  }
});

Deno.test("inproc endpoints work as given: -t's peers share the adaptor's context", async () => {
  const adaptor = new AdaptorProcess(["-t", "-b", "inproc://gateway-in", "-p", "inproc://gateway-out"]);
  try {
    await adaptor.ready();
    const sent = await adaptor.waitFor(/ \.\.\. sending:PUB-[A-J]-\d{5}$/, 10_000);
    await adaptor.waitFor(new RegExp(`> got: ${sent.slice(sent.indexOf("PUB-"))}$`), 5000);
  } finally {
    const { status } = await adaptor.stop();
    assert.equal(status.code, 0);
  }
});
