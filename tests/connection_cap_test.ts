/**
 * The connection budget and the listen backlog, from the descriptor limit; and the accept filter
 * on a real listening socket: new connections wait, those it has keep working, and they are taken
 * again once it is lifted.
 */

import assert from "node:assert/strict";
import { connectionBudget, DESCRIPTOR_RESERVE, listenBacklog } from "../src/adaptor/connection_cap.ts";
import { listenerProgram, setAcceptFilter, setBlockedHosts } from "../src/os/sockets.ts";
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

Deno.test("setBlockedHosts on a libzmq listener: the blocked host's connections wait, other hosts' pass, IPv6 too", async () => {
  const ctx = new Context();
  const server = ctx.socket(ZMQ_PAIR);
  server.setInt(ZMQ_LINGER, 0);
  const events: SocketEvent[] = [];
  monitorSocket(ctx, server, (e) => events.push(e));
  server.bind("tcp://127.0.0.1:*");
  const port = Number(server.getString(32).split(":").at(-1));
  const conns: Deno.Conn[] = [];
  try {
    await until(() => events.some((e) => e.name === "listening"), "listening");
    const listener = events.find((e) => e.name === "listening")!.value;
    const accepted = () => events.filter((e) => e.name === "accepted").length;
    // Other hosts blocked (IPv4 and IPv6): 127.0.0.1 passes.
    assert.equal(setBlockedHosts(listener, ["127.0.0.2", "10.1.2.3", "::1", "fe80::1:2"]), true);
    conns.push(await Deno.connect({ hostname: "127.0.0.1", port }));
    await until(() => accepted() === 1, "the accept of an unblocked host");
    // 127.0.0.1 blocked (the cap's drop-all is off): its next connection waits.
    assert.equal(setBlockedHosts(listener, ["10.1.2.3", "::ffff:127.0.0.1"]), true);
    let second: Deno.Conn | undefined;
    const connecting = Deno.connect({ hostname: "127.0.0.1", port }).then((c) => second = c);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(second, undefined, "a blocked host's connection got through");
    await conns[0].write(new Uint8Array([0xff])); // the connection it had still works
    assert.equal(setBlockedHosts(listener, []), true);
    await connecting; // the SYN is retried and now accepted
    conns.push(second!);
    await until(() => accepted() === 2, "the accept once unblocked", 5000);
  } finally {
    for (const c of conns) c.close();
    await ctx.terminate();
  }
});

Deno.test("listenerProgram: the cap drops everything; hosts past the kernel's 4096 instructions are left out", () => {
  assert.equal(listenerProgram({ dropAll: false, hosts: [] }), undefined);
  assert.equal(listenerProgram({ dropAll: true, hosts: ["10.0.0.1"] })!.length, 8);
  const many = Array.from({ length: 3000 }, (_, i) => `10.0.${i >> 8}.${i & 255}`);
  assert.equal(listenerProgram({ dropAll: false, hosts: many })!.length / 8, 4096 - 1);
  assert.equal(listenerProgram({ dropAll: false, hosts: ["not an address"] })!.length / 8, 6);
});
