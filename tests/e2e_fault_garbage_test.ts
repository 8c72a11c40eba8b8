/**
 * Garbage at every bound socket: XSUB, XPUB, inbound SUB (bound with @) and PUSH, each on
 * tcp and ipc, get random bytes, headers announcing frames of terabytes, connections that
 * never speak, and a thousand connections opened and dropped. After each case the adaptor
 * must still forward on both channels, and must have closed what it should have closed.
 */

import assert from "node:assert/strict";
import { assertForwards, assertInboundForwards } from "../testing/forwarding.ts";
import { freePort, ipcPath } from "../testing/net.ts";
import { AdaptorProcess } from "../testing/process.ts";
import {
  connectRaw,
  garbage,
  handshake,
  longFrameHeader,
  readUntilClosed,
  v1HugeFrame,
  writeIgnoringClose,
} from "../testing/zmtp.ts";

/** The peer type a real client of each bound socket would announce. */
interface Target {
  readonly endpoint: string;
  readonly peerType: string;
}

async function withEveryBoundSocket(
  body: (adaptor: AdaptorProcess, targets: Target[], check: () => Promise<void>) => Promise<void>,
): Promise<void> {
  const tcp = () => `tcp://127.0.0.1:${freePort()}`;
  const ipc = (name: string) => `ipc://${ipcPath(name)}`;
  const xsub = [ipc("xsub"), tcp()];
  const xpub = [tcp(), ipc("xpub")];
  const sub = [tcp(), ipc("sub")];
  const push = [ipc("push"), tcp()];
  const args = [
    ...xsub.flatMap((e) => ["-b", e]),
    ...xpub.flatMap((e) => ["-p", e]),
    ...sub.flatMap((e) => ["-l", `@${e}`]),
    ...push.flatMap((e) => ["-u", e]),
    "--handshake-timeout",
    "500",
  ];
  const targets: Target[] = [
    ...xsub.map((endpoint) => ({ endpoint, peerType: "PUB" })),
    ...xpub.map((endpoint) => ({ endpoint, peerType: "SUB" })),
    ...sub.map((endpoint) => ({ endpoint, peerType: "PUB" })),
    ...push.map((endpoint) => ({ endpoint, peerType: "PULL" })),
  ];
  // Forwarding is checked through the other transport of each pair, too.
  const check = async () => {
    await assertForwards({ publishTo: xsub[0], subscribeTo: xpub[0] });
    await assertForwards({ publishTo: xsub[1], subscribeTo: xpub[1] });
    await assertInboundForwards({ listen: sub[0], listenBinds: false, pull: push[0] });
    await assertInboundForwards({ listen: sub[1], listenBinds: false, pull: push[1] });
  };
  const adaptor = new AdaptorProcess(args);
  try {
    await adaptor.ready();
    await body(adaptor, targets, check);
  } finally {
    const { status } = await adaptor.stop();
    assert.equal(status.code, 0, adaptor.lines.join("\n"));
  }
}

Deno.test("garbage at every bound socket (tcp and ipc): the adaptor drops it and keeps forwarding", async (t) => {
  await withEveryBoundSocket(async (adaptor, targets, check) => {
    await check();

    await t.step("random bytes", async () => {
      for (const { endpoint } of targets) {
        for (let seed = 1; seed <= 4; seed++) {
          const conn = await connectRaw(endpoint);
          await writeIgnoringClose(conn, garbage(64 * 1024, seed * 7919));
          conn.close();
        }
      }
      await check();
    });

    await t.step("headers announcing huge frames are refused at once", async () => {
      for (const { endpoint, peerType } of targets) {
        // 1 GiB: small enough that malloc succeeds, so without a size limit libzmq would
        // allocate it and wait for the bytes, with the connection (and the memory) held.
        const size = 2n ** 30n;
        // An unversioned (ZMTP/1.0) header: byte 0 0xff, then a 64-bit length.
        const v1 = await connectRaw(endpoint);
        await writeIgnoringClose(v1, v1HugeFrame(size));
        // A correct ZMTP 3.1 handshake, then a long frame header.
        const v3 = await connectRaw(endpoint);
        await handshake(v3, peerType);
        await writeIgnoringClose(v3, longFrameHeader(size));
        for (const conn of [v1, v3]) {
          const closed = await readUntilClosed(conn, 5_000);
          assert.notEqual(closed, undefined, `${endpoint}: connection announcing a huge frame left open`);
          conn.close();
        }
      }
      await check();
    });

    await t.step("connections that never speak are closed after --handshake-timeout", async () => {
      const silent = await Promise.all(targets.map(({ endpoint }) => connectRaw(endpoint)));
      await check(); // while they hang around
      for (const [i, conn] of silent.entries()) {
        const closed = await readUntilClosed(conn, 10_000);
        assert.notEqual(closed, undefined, `${targets[i].endpoint}: silent connection never closed`);
        conn.close();
      }
      await check();
    });

    await t.step("1000 connections opened and dropped, on each socket and transport", async () => {
      for (const { endpoint } of targets) {
        for (let wave = 0; wave < 20; wave++) {
          const conns = await Promise.all(Array.from({ length: 50 }, () => connectRaw(endpoint)));
          for (const conn of conns) conn.close();
        }
      }
      await check();
    });

    // Thousands of failed connections, yet the log stays readable: warnings are throttled.
    const warnings = adaptor.lines.filter((l) => l.includes("WRN"));
    assert.ok(warnings.some((l) => /failed the ZeroMQ handshake/.test(l)), adaptor.lines.join("\n"));
    assert.ok(
      adaptor.lines.length < 400,
      `${adaptor.lines.length} log lines for garbage:\n${adaptor.lines.join("\n")}`,
    );
  });
});
