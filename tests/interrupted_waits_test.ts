/**
 * libzmq waits on Deno's blocking pool, interrupted by signals (EINTR), in-process and without
 * the shield `main.ts` puts up: each test aims SIGHUP (tgkill) at every pool thread of this
 * process that waits in poll(2), the way a signal can land there in a process whose pool
 * threads do not block signals. The waits must go on:
 *
 * - a proxy is restarted on the same sockets; its counters go on exactly, never backwards;
 * - a blocking receive keeps waiting and returns the next message (not "nothing");
 * - a monitor keeps reporting, also after a callback that throws;
 * - and `Context.terminate` closes a socket nobody closed instead of waiting for it forever.
 */

import assert from "node:assert/strict";
import { Forwarder } from "../src/adaptor/proxy.ts";
import { monitorSocket, type SocketEvent } from "../src/zmq/monitor.ts";
import {
  ZMQ_LINGER,
  ZMQ_PAIR,
  ZMQ_PUB,
  ZMQ_SUB,
  ZMQ_SUBSCRIBE,
  ZMQ_XPUB,
  ZMQ_XSUB,
} from "../src/zmq/constants.ts";
import { Context } from "../src/zmq/socket.ts";
import { zmq } from "../src/zmq/binding.ts";
import { sleep, until } from "../testing/net.ts";
import { lingerless } from "../testing/peers.ts";
import { tgkill, waitingPoolThreads } from "../testing/threads.ts";

const SIGHUP = 1;

/** Runs `body` with a SIGHUP listener in place (else the signal would end the test process). */
async function withSighupHandled(body: (interrupt: () => number) => Promise<void>): Promise<void> {
  let handled = 0;
  const listener = () => void handled++;
  Deno.addSignalListener("SIGHUP", listener);
  try {
    // Signals every pool thread waiting in poll; returns how many were signalled.
    await body(() => {
      const threads = waitingPoolThreads(Deno.pid);
      for (const t of threads) tgkill(Deno.pid, t.tid, SIGHUP);
      return threads.length;
    });
  } finally {
    await until(() => handled > 0, "the SIGHUP handler to run", 5000).catch(() => {});
    Deno.removeSignalListener("SIGHUP", listener);
  }
}

Deno.test("a proxy interrupted by a signal is restarted on the same sockets; its counters go on exactly", async () => {
  await withSighupHandled(async (interrupt) => {
    const ctx = new Context();
    const open = lingerless(ctx);
    const xsub = open(ZMQ_XSUB), xpub = open(ZMQ_XPUB), pub = open(ZMQ_PUB), sub = open(ZMQ_SUB);
    xsub.bind("inproc://eintr-in");
    xpub.bind("inproc://eintr-out");
    const restarts: number[] = [];
    const forwarder = Forwarder.start(ctx, xsub, xpub, { onRestart: (n) => restarts.push(n) });
    sub.setBytes(ZMQ_SUBSCRIBE, "");
    sub.connect("inproc://eintr-out");
    pub.connect("inproc://eintr-in");
    try {
      let got = 0;
      await until(() => {
        pub.trySend("warm-up");
        while (sub.tryReceive()) got++;
        return got > 0;
      }, "the subscription to reach the publisher");
      const move = async (n: number) => {
        for (let i = 0; i < n; i++) pub.trySend(`m${i}`);
        let received = 0;
        await until(() => {
          while (sub.tryReceive()) received++;
          return received >= n;
        }, `${n} messages through the proxy (${received})`);
        while (sub.tryReceive()) received++;
        return received;
      };
      assert.equal(await move(100), 100);
      const before = await forwarder.statistics();
      // Nothing moves between that answer and the signal: the counters must go on exactly.
      await until(
        () => interrupt() > 0 && restarts.length > 0,
        "the proxy to be interrupted and restarted",
        5000,
      );
      assert.ok(forwarder.running);
      assert.equal(await move(300), 300);
      const after = await forwarder.statistics();
      assert.equal(after.frontend.messagesIn - before.frontend.messagesIn, 300n);
      assert.equal(after.backend.messagesOut - before.backend.messagesOut, 300n);
      assert.ok(forwarder.restarts >= 1);
    } finally {
      assert.equal(await forwarder.stop(), true);
      assert.equal(await forwarder.done, 0);
      await ctx.terminate();
    }
  });
});

Deno.test("a blocking receive interrupted by a signal keeps waiting and returns the next message", async () => {
  await withSighupHandled(async (interrupt) => {
    const ctx = new Context();
    const a = ctx.socket(ZMQ_PAIR), b = ctx.socket(ZMQ_PAIR);
    a.bind("inproc://eintr-pair");
    b.connect("inproc://eintr-pair");
    try {
      const receiving = b.receive();
      let settled = false;
      receiving.then(() => settled = true);
      await until(() => interrupt() > 0, "the receive to wait on a pool thread", 5000);
      await sleep(100);
      assert.equal(settled, false, "the receive ended on the signal");
      a.trySend("after the signal");
      const frames = await receiving;
      assert.equal(new TextDecoder().decode(frames![0]), "after the signal");
    } finally {
      await ctx.terminate();
    }
  });
});

Deno.test("a monitor goes on after signals and after a callback that throws; the error is reported", async () => {
  await withSighupHandled(async (interrupt) => {
    const ctx = new Context();
    const server = ctx.socket(ZMQ_PAIR);
    const events: SocketEvent[] = [];
    const errors: unknown[] = [];
    let throwOnce = true;
    const monitor = monitorSocket(ctx, server, (event) => {
      events.push(event);
      if (throwOnce) {
        throwOnce = false;
        throw new Error("a hook failed");
      }
    }, (error) => errors.push(error));
    server.bind("tcp://127.0.0.1:*");
    const address = server.getString(32); // ZMQ_LAST_ENDPOINT
    try {
      await until(() => events.some((e) => e.name === "listening"), "the listening event");
      assert.equal(errors.length, 1);
      await until(() => interrupt() > 0, "the monitor to wait on a pool thread", 5000);
      await sleep(50);
      const client = ctx.socket(ZMQ_PAIR);
      client.setInt(ZMQ_LINGER, 0);
      client.connect(address);
      await until(() => events.some((e) => e.name === "accepted"), "the accepted event after the signal");
      client.close();
      let ended = false;
      monitor.done.then(() => ended = true);
      await sleep(50);
      assert.equal(ended, false, "the monitor ended while its socket lives");
    } finally {
      await ctx.terminate();
      assert.equal(await monitor.done, "shutdown");
    }
  });
});

Deno.test("Context.terminate closes a socket nobody closed instead of waiting for it forever", async () => {
  const ctx = new Context();
  const forgotten = ctx.socket(ZMQ_PUB);
  forgotten.bind("tcp://127.0.0.1:*");
  assert.equal(ctx.openSockets, 1);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const outcome = await Promise.race([
    ctx.terminate().then(() => "terminated"),
    new Promise((resolve) => timer = setTimeout(() => resolve("hung"), 3000)),
  ]);
  clearTimeout(timer);
  assert.equal(outcome, "terminated");
  assert.equal(forgotten.closed, true);
  assert.equal(ctx.openSockets, 0);
});

Deno.test("Context.terminate calls zmq_ctx_term again only when interrupted: another failure (EFAULT) is thrown", async () => {
  const ctx = new Context();
  const real = ctx.ptr;
  // Not a context any more, as far as libzmq can tell: zmq_ctx_term fails with EFAULT each time.
  (ctx as { ptr: Deno.PointerValue }).ptr = null;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const outcome = await Promise.race([
    ctx.terminate().then(() => "terminated", (error: Error) => error.message),
    new Promise((resolve) => timer = setTimeout(() => resolve("called again and again"), 3000)),
  ]);
  clearTimeout(timer);
  assert.match(String(outcome), /Bad address/);
  await zmq().zmq_ctx_term(real); // the real one, ended here
});
