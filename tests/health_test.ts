/**
 * The health check on real objects: a Forwarder whose proxy stopped, ipc socket files that
 * were removed or replaced by another socket. (End to end, a removed file is checked in
 * e2e_metrics_test.ts; a proxy cannot be made to stop from outside the process.)
 */

import assert from "node:assert/strict";
import { Forwarder } from "../src/adaptor/proxy.ts";
import { assessHealth } from "../src/ops/health.ts";
import { ownSocketFile } from "../src/ipc/socket_file.ts";
import { ZMQ_LINGER, ZMQ_XPUB, ZMQ_XSUB } from "../src/zmq/constants.ts";
import { Context } from "../src/zmq/socket.ts";
import { ipcPath } from "../testing/net.ts";

Deno.test("health: ok while the proxy runs; names the channel once its proxy stopped", async () => {
  const ctx = new Context();
  const xsub = ctx.socket(ZMQ_XSUB), xpub = ctx.socket(ZMQ_XPUB);
  for (const s of [xsub, xpub]) s.setInt(ZMQ_LINGER, 0);
  xsub.bind("inproc://health-in");
  xpub.bind("inproc://health-out");
  const forwarder = Forwarder.start(ctx, xsub, xpub);
  const inputs = () => ({
    stopping: false,
    channels: [{ name: "main", running: forwarder.running }],
    socketFiles: [],
  });
  try {
    assert.deepEqual(assessHealth(inputs()), { ok: true });
    const reloadFailed =
      "the last reload of /etc/servers failed (…); the server keys in use stay, SIGHUP tries again";
    assert.deepEqual(assessHealth({ ...inputs(), reloadFailed }), { ok: false, reason: reloadFailed });
    await forwarder.stop();
    assert.deepEqual(assessHealth(inputs()), {
      ok: false,
      reason: "the main channel's proxy is not running",
    });
    assert.deepEqual(assessHealth({ ...inputs(), stopping: true }), { ok: false, reason: "stopping" });
  } finally {
    await forwarder.close();
    xsub.close();
    xpub.close();
    await ctx.terminate();
  }
});

Deno.test("health: a bound ipc socket file that was removed, or replaced by another socket", async () => {
  const path = ipcPath("health");
  const ctx = new Context();
  const socket = ctx.socket(ZMQ_XSUB);
  socket.setInt(ZMQ_LINGER, 0);
  socket.bind(`ipc://${path}`);
  const file = ownSocketFile(path)!;
  const inputs = { stopping: false, channels: [{ name: "main", running: true }], socketFiles: [file] };
  let other: Deno.UnixListener | undefined;
  try {
    assert.deepEqual(assessHealth(inputs), { ok: true });
    Deno.removeSync(path);
    assert.deepEqual(assessHealth(inputs), {
      ok: false,
      reason: `socket file ${path} was removed; peers can no longer connect`,
    });
    other = Deno.listen({ transport: "unix", path }); // someone else binds the path
    assert.deepEqual(assessHealth(inputs), {
      ok: false,
      reason: `socket file ${path} was replaced by another process's`,
    });
  } finally {
    other?.close();
    socket.close();
    await ctx.terminate();
    try {
      Deno.removeSync(path);
    } catch {
      // already gone
    }
  }
});

Deno.test("health: a part that ended by itself (a monitor, the ZAP handler) is reported first", () => {
  const failed = "the XPUB's monitor ended (failed: Bad file descriptor)";
  assert.deepEqual(
    assessHealth({ stopping: false, failed, channels: [{ name: "main", running: true }], socketFiles: [] }),
    { ok: false, reason: failed },
  );
});
