/**
 * Scale-out: adaptors form a tree. Two edge adaptors (one per gateway node) and an aggregator
 * whose XSUB connects (`>`) to both edges' XPUBs. Messages flow two hops up; subscriptions made
 * at the aggregator travel two hops down to the gateway workers; an edge restarted mid-stream is
 * rejoined by the aggregator's reconnects.
 */

import assert from "node:assert/strict";
import { ZMQ_SUB, ZMQ_SUBSCRIBE, ZMQ_XPUB } from "../src/zmq/constants.ts";
import { freePort, ipcPath, sleep, until } from "../testing/net.ts";
import { Peers, syncUp } from "../testing/peers.ts";
import { AdaptorProcess } from "../testing/process.ts";

interface Tree {
  edges: { bind: string; port: number; proc: AdaptorProcess }[];
  aggregator: AdaptorProcess;
  aggregatorPort: number;
}

function startEdge(bind: string, port: number, extra: string[] = []): AdaptorProcess {
  return new AdaptorProcess(["-b", `ipc://${bind}`, "-p", `tcp://127.0.0.1:${port}`, ...extra]);
}

/** Two edges and an aggregator; `extra` flags for all three (e.g. `--subscriptions forward`). */
async function startTree(extra: string[] = []): Promise<Tree> {
  const edges = [0, 1].map(() => {
    const bind = ipcPath("edge");
    const port = freePort();
    return { bind, port, proc: startEdge(bind, port, extra) };
  });
  const aggregatorPort = freePort();
  const aggregator = new AdaptorProcess([
    ...edges.flatMap((e) => ["-b", `>tcp://127.0.0.1:${e.port}`]),
    "-p",
    `tcp://127.0.0.1:${aggregatorPort}`,
    "--reconnect-ivl",
    "50",
    "--reconnect-ivl-max",
    "200",
    ...extra,
  ]);
  await Promise.all([...edges.map((e) => e.proc.ready()), aggregator.ready()]);
  return { edges, aggregator, aggregatorPort };
}

async function stopTree(tree: Tree): Promise<void> {
  const all = [tree.aggregator, ...tree.edges.map((e) => e.proc)];
  const results = await Promise.all(all.map((p) => p.stop()));
  for (const { status } of results) assert.equal(status.code, 0);
}

Deno.test("two edges and an aggregator: every message from both edges reaches the aggregator's subscriber", async () => {
  const tree = await startTree();
  const peers = new Peers();
  try {
    assert.ok(
      tree.aggregator.lines.some((l) => l.includes(`XSUB connecting tcp://127.0.0.1:${tree.edges[0].port}`)),
    );
    const sub = peers.subscriber(`tcp://127.0.0.1:${tree.aggregatorPort}`);
    const pubs = tree.edges.flatMap((
      e,
    ) => [peers.publisher(`ipc://${e.bind}`), peers.publisher(`ipc://${e.bind}`)]);
    await syncUp(pubs, [sub]);
    await Promise.all(pubs.map((pub, p) => pub.sendAll(1000, (i) => `usage.p${p}.${i}`)));
    await sub.expect(4000);
    assert.equal(sub.messages.length, 4000);
    for (let p = 0; p < pubs.length; p++) {
      const mine = sub.texts().filter((t) => t.startsWith(`usage.p${p}.`));
      assert.deepEqual(
        mine,
        Array.from({ length: 1000 }, (_, i) => `usage.p${p}.${i}`),
        `publisher ${p} in order`,
      );
    }
  } finally {
    await peers.close();
    await stopTree(tree);
  }
});

Deno.test("a subscription made at the aggregator reaches the gateway workers two hops down", async () => {
  const tree = await startTree(["--subscriptions", "forward"]);
  const peers = new Peers();
  try {
    const workers = tree.edges.map((e) => {
      const xpub = peers.socket(ZMQ_XPUB);
      xpub.connect(`ipc://${e.bind}`);
      return xpub;
    });
    const sub = peers.socket(ZMQ_SUB);
    sub.setBytes(ZMQ_SUBSCRIBE, "usage.api-7");
    sub.connect(`tcp://127.0.0.1:${tree.aggregatorPort}`);
    for (const [i, worker] of workers.entries()) {
      const seen: string[] = [];
      await until(() => {
        let frames;
        while ((frames = worker.tryReceive())) seen.push(new TextDecoder().decode(frames[0]));
        return seen.includes("\x01usage.api-7");
      }, `subscription at edge ${i}'s worker (saw ${JSON.stringify(seen)})`);
    }
  } finally {
    await peers.close();
    await stopTree(tree);
  }
});

Deno.test("an edge restarted mid-stream is rejoined: its publishers reach the aggregator again", async () => {
  const tree = await startTree();
  const peers = new Peers();
  const edge = tree.edges[0];
  try {
    const sub = peers.subscriber(`tcp://127.0.0.1:${tree.aggregatorPort}`);
    const pub = peers.publisher(`ipc://${edge.bind}`);
    const other = peers.publisher(`ipc://${tree.edges[1].bind}`);
    await syncUp([pub, other], [sub]);
    let streaming = true;
    let seq = 0;
    const stream = (async () => {
      while (streaming) {
        pub.socket.trySend(`edge0.${seq++}`);
        other.socket.trySend(`edge1.${seq}`);
        await sleep(2);
      }
    })();
    await until(() => sub.texts().some((t) => t.startsWith("edge0.")), "edge 0 traffic before the restart");

    const { status } = await edge.proc.stop("SIGTERM");
    assert.equal(status.code, 0);
    edge.proc = startEdge(edge.bind, edge.port);
    await edge.proc.ready();
    const restartedAt = seq;
    // The aggregator's XSUB reconnects and resends its subscriptions; the worker's PUB
    // reconnects to the new socket file. Then edge 0's new messages arrive again.
    await until(
      () => sub.texts().some((t) => t.startsWith("edge0.") && Number(t.slice(6)) > restartedAt),
      "edge 0 traffic after the restart",
      15_000,
    );
    await until(
      () => sub.texts().some((t) => t.startsWith("edge1.") && Number(t.slice(6)) > restartedAt),
      "edge 1",
    );
    streaming = false;
    await stream;
  } finally {
    await peers.close();
    await stopTree(tree);
  }
});

Deno.test("-d shows a connecting endpoint's state: retried while the edge is down, connected once it is up", async () => {
  const edgePort = freePort();
  const aggregator = new AdaptorProcess([
    "-d",
    "-b",
    `>tcp://127.0.0.1:${edgePort}`,
    "-p",
    `tcp://127.0.0.1:${freePort()}`,
    "--reconnect-ivl",
    "50",
    "--reconnect-ivl-max",
    "100",
  ]);
  let edge: AdaptorProcess | undefined;
  try {
    await aggregator.ready();
    await aggregator.waitFor(new RegExp(`XSUB tcp://127\\.0\\.0\\.1:${edgePort}: connect_retried`));
    edge = startEdge(ipcPath("edge"), edgePort);
    await edge.ready();
    await aggregator.waitFor(new RegExp(`XSUB tcp://127\\.0\\.0\\.1:${edgePort}: connected`));
  } finally {
    await edge?.stop();
    await aggregator.stop();
  }
});
