import assert from "node:assert/strict";
import { makeConfig, parseEndpoint } from "../src/config.ts";
import { applyOptions } from "../src/socket_options.ts";
import {
  Context,
  ZMQ_HEARTBEAT_IVL,
  ZMQ_MAXMSGSIZE,
  ZMQ_OUT_BATCH_SIZE,
  ZMQ_SNDHWM,
  ZMQ_TCP_MAXRT,
  ZMQ_XPUB,
} from "../src/zmq.ts";

Deno.test("applyOptions: libzmq reports back what the Config asks, the write batch included", async () => {
  const ctx = new Context();
  const socket = ctx.socket(ZMQ_XPUB);
  try {
    const endpoints = [parseEndpoint("tcp://127.0.0.1:6001", "publish")];
    applyOptions(socket, makeConfig(), endpoints);
    assert.equal(socket.getInt(ZMQ_OUT_BATCH_SIZE), 65_536, "libzmq's own default is 8192");
    assert.equal(socket.getInt(ZMQ_SNDHWM), 10_000);
    assert.equal(socket.getInt64(ZMQ_MAXMSGSIZE), 65_536n);
    assert.equal(socket.getInt(ZMQ_HEARTBEAT_IVL), 10_000);
    assert.equal(socket.getInt(ZMQ_TCP_MAXRT), 30_000);

    applyOptions(socket, makeConfig({ outBatchSize: 8192, maxMessageSize: 0 }), endpoints);
    assert.equal(socket.getInt(ZMQ_OUT_BATCH_SIZE), 8192);
    assert.equal(socket.getInt64(ZMQ_MAXMSGSIZE), -1n, "0 means no limit");
  } finally {
    socket.close();
    await ctx.terminate();
  }
});
