/**
 * The connection budget and the listen backlog, from the descriptor limit; and the accept filter
 * on a real listening socket: new connections wait, those it has keep working, and they are taken
 * again once it is lifted.
 */

import assert from "node:assert/strict";
import { connectionBudget, DESCRIPTOR_RESERVE, listenBacklog } from "../src/adaptor/connection_cap.ts";
import { setAcceptFilter } from "../src/os/sockets.ts";
import { ZMQ_LINGER, ZMQ_PAIR } from "../src/zmq/constants.ts";
import { Context } from "../src/zmq/socket.ts";
import { monitorSocket, type SocketEvent } from "../src/zmq/monitor.ts";
import { until } from "../testing/net.ts";

Deno.test("connectionBudget and listenBacklog follow the descriptor limit", () => {
  assert.equal(connectionBudget(500, 2, { limit: 256, open: 40 }), 500, "--max-connections wins");
  assert.equal(connectionBudget(0, 1, { limit: 256, open: 40 }), 256 - 40 - DESCRIPTOR_RESERVE);
  assert.equal(
    connectionBudget(0, 2, { limit: 65536, open: 40 }),
    Math.floor((65536 - 40 - DESCRIPTOR_RESERVE) / 2),
  );
  assert.equal(connectionBudget(0, 1, { limit: 100, open: 40 }), 1, "at least one");
  assert.equal(connectionBudget(0, 1, {}), Infinity, "no limit known");
  assert.equal(listenBacklog({ limit: 65536, open: 40 }), 1024);
  assert.equal(listenBacklog({ limit: 256, open: 24 }), 14);
  assert.equal(listenBacklog({ limit: 64, open: 40 }), 8);
});

Deno.test("setAcceptFilter on a libzmq listener: new connections wait, the one it has goes on", async () => {
  const ctx = new Context();
  const server = ctx.socket(ZMQ_PAIR);
  server.setInt(ZMQ_LINGER, 0);
  const events: SocketEvent[] = [];
  monitorSocket(ctx, server, (e) => events.push(e));
  server.bind("tcp://127.0.0.1:*");
  const port = Number(server.getString(32).split(":").at(-1));
  try {
    await until(() => events.some((e) => e.name === "listening"), "listening");
    const listener = events.find((e) => e.name === "listening")!.value;
    const first = await Deno.connect({ hostname: "127.0.0.1", port });
    await until(() => events.filter((e) => e.name === "accepted").length === 1, "the first accept");
    assert.equal(setAcceptFilter(listener, true), true);
    let second: Deno.Conn | undefined;
    const connecting = Deno.connect({ hostname: "127.0.0.1", port }).then((c) => second = c);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(second, undefined, "a connection got through the filter");
    assert.equal(events.filter((e) => e.name === "accepted").length, 1);
    await first.write(new Uint8Array([0xff])); // the connection it has still works (ZMTP greeting byte)
    assert.equal(setAcceptFilter(listener, false), true);
    await connecting; // the SYN is retried (after ~1 s) and now accepted
    await until(() => events.filter((e) => e.name === "accepted").length === 2, "the second accept", 5000);
    first.close();
    second!.close();
  } finally {
    await ctx.terminate();
  }
});
