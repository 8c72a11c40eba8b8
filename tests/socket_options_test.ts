import assert from "node:assert/strict";
import { makeConfig } from "../src/config/config.ts";
import { parseEndpoint } from "../src/config/endpoint.ts";
import { applyOptions, maxFrameSize } from "../src/zmq/socket_options.ts";
import {
  ZMQ_HEARTBEAT_IVL,
  ZMQ_MAXMSGSIZE,
  ZMQ_OUT_BATCH_SIZE,
  ZMQ_SNDHWM,
  ZMQ_SUB,
  ZMQ_TCP_MAXRT,
  ZMQ_XPUB,
  ZMQ_XSUB,
} from "../src/zmq/constants.ts";
import { Context } from "../src/zmq/socket.ts";

Deno.test("applyOptions: libzmq reports back what the Config asks, the write batch included", async () => {
  const ctx = new Context();
  const socket = ctx.socket(ZMQ_XPUB);
  try {
    const endpoints = [parseEndpoint("tcp://127.0.0.1:6001", "publish")];
    applyOptions(socket, makeConfig(), endpoints);
    assert.equal(socket.getInt(ZMQ_OUT_BATCH_SIZE), 65_536, "libzmq's own default is 8192");
    assert.equal(socket.getInt(ZMQ_SNDHWM), 10_000);
    // The XPUB's inbound frames are subscriptions: --max-subscription-size, 1 KiB.
    assert.equal(socket.getInt64(ZMQ_MAXMSGSIZE), 1024n);
    assert.equal(socket.getInt(ZMQ_HEARTBEAT_IVL), 10_000);
    assert.equal(socket.getInt(ZMQ_TCP_MAXRT), 30_000);

    applyOptions(
      socket,
      makeConfig({ outBatchSize: 8192, maxMessageSize: 0, maxSubscriptionSize: 0 }),
      endpoints,
    );
    assert.equal(socket.getInt(ZMQ_OUT_BATCH_SIZE), 8192);
    assert.equal(socket.getInt64(ZMQ_MAXMSGSIZE), -1n, "0 means no limit");
  } finally {
    socket.close();
    await ctx.terminate();
  }
});

Deno.test("--max-subscription-size applies to the XPUB alone; 0 leaves it --max-message-size", async () => {
  const ctx = new Context();
  const sockets = { xpub: ctx.socket(ZMQ_XPUB), xsub: ctx.socket(ZMQ_XSUB), sub: ctx.socket(ZMQ_SUB) };
  try {
    const config = makeConfig({ maxMessageSize: 4096, maxSubscriptionSize: 100 });
    for (const socket of Object.values(sockets)) applyOptions(socket, config, []);
    assert.equal(sockets.xpub.getInt64(ZMQ_MAXMSGSIZE), 100n);
    assert.equal(sockets.xsub.getInt64(ZMQ_MAXMSGSIZE), 4096n);
    assert.equal(sockets.sub.getInt64(ZMQ_MAXMSGSIZE), 4096n);
    applyOptions(sockets.xpub, makeConfig({ maxMessageSize: 4096, maxSubscriptionSize: 0 }), []);
    assert.equal(sockets.xpub.getInt64(ZMQ_MAXMSGSIZE), 4096n);
    assert.equal(maxFrameSize(ZMQ_XPUB, makeConfig({ maxMessageSize: 0, maxSubscriptionSize: 0 })), -1);
    assert.equal(maxFrameSize(ZMQ_XSUB, makeConfig({ maxMessageSize: 0 })), -1);
  } finally {
    for (const socket of Object.values(sockets)) socket.close();
    await ctx.terminate();
  }
});
