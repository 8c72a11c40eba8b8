/**
 * `SubscriberWait`, the main proxy's start gate: at once with 0, soon after the first
 * subscription (or later after a handshake alone), after the wait when none comes, and at once on
 * close (no timer left).
 */

import assert from "node:assert/strict";
import {
  SETTLE_MS,
  settleAfterHandshake,
  SUBSCRIBED_SETTLE_MS,
  SubscriberWait,
} from "../src/adaptor/subscriber_wait.ts";

const settledWithin = async (promise: Promise<void>, ms: number) =>
  await Promise.race([promise.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);

Deno.test("SubscriberWait: 0 opens at once; a handshake of unknown round trip opens it after SETTLE_MS; other events do not", async () => {
  assert.equal(await settledWithin(new SubscriberWait(0).ready, 5), true);
  const wait = new SubscriberWait(5000, { roundTripMs: () => undefined });
  wait.report({ name: "accepted", value: 7, endpoint: "tcp://127.0.0.1:1", remote: "" });
  assert.equal(await settledWithin(wait.ready, SETTLE_MS + 50), false, "opened by an accept alone");
  const t = performance.now();
  wait.report({ name: "handshake_succeeded", value: 0, endpoint: "tcp://127.0.0.1:1", remote: "" });
  await wait.ready;
  const ms = performance.now() - t;
  assert.ok(ms >= SETTLE_MS - 5 && ms < 2000, `opened ${ms.toFixed(0)} ms after the handshake`);
  wait.close();
});

Deno.test("SubscriberWait: without a subscriber it opens after the wait; close opens it at once", async () => {
  const t = performance.now();
  await new SubscriberWait(150).ready;
  assert.ok(performance.now() - t >= 140);
  const wait = new SubscriberWait(60_000);
  wait.close(); // the test's op sanitizer fails it, should a timer be left behind
  assert.equal(await settledWithin(wait.ready, 5), true);
});

Deno.test("SubscriberWait: a subscription after the handshake shortens the settle time", async () => {
  const wait = new SubscriberWait(5000);
  wait.report({ name: "handshake_succeeded", value: 0, endpoint: "tcp://127.0.0.1:1", remote: "" });
  const t = performance.now();
  wait.subscribed();
  await wait.ready;
  const ms = performance.now() - t;
  assert.ok(
    ms >= SUBSCRIBED_SETTLE_MS - 5 && ms < SETTLE_MS,
    `opened ${ms.toFixed(0)} ms after the subscription`,
  );
});

Deno.test("SubscriberWait: after a handshake it waits two of that connection's round trips, the kernel's", async () => {
  const accepted = (remote: string, fd: number, endpoint = "tcp://127.0.0.1:1") => ({
    name: "accepted",
    value: fd,
    endpoint,
    remote,
  });
  const handshake = (remote: string, endpoint = "tcp://127.0.0.1:1") => ({
    name: "handshake_succeeded",
    value: 0,
    endpoint,
    remote,
  });
  const opened = async (wait: SubscriberWait, remote: string, endpoint?: string) => {
    const t = performance.now();
    wait.report(handshake(remote, endpoint));
    await wait.ready;
    return performance.now() - t;
  };
  // A far subscriber (40 ms away): its subscriptions come up to a round trip after our handshake.
  const far = new SubscriberWait(5000, { roundTripMs: (fd) => fd === 9 ? 40 : undefined });
  far.report(accepted("tcp://10.0.0.8:5000", 8));
  far.report(accepted("tcp://10.0.0.9:5000", 9));
  const farMs = await opened(far, "tcp://10.0.0.9:5000");
  assert.ok(
    farMs >= settleAfterHandshake(40) - 5,
    `opened ${farMs.toFixed(0)} ms after a 40 ms peer's handshake`,
  );
  assert.equal(settleAfterHandshake(40), SUBSCRIBED_SETTLE_MS + 80);
  // A near one (loopback, 0.05 ms): as soon as after a subscription.
  const near = new SubscriberWait(5000, { roundTripMs: () => 0.05 });
  near.report(accepted("tcp://127.0.0.1:5000", 9));
  const nearMs = await opened(near, "tcp://127.0.0.1:5000");
  assert.ok(nearMs >= SUBSCRIBED_SETTLE_MS - 5 && nearMs < SETTLE_MS, `opened ${nearMs.toFixed(0)} ms after`);
  // Over ipc there is no round trip to speak of; a handshake whose accept was not seen: SETTLE_MS.
  const ipc = new SubscriberWait(5000, { roundTripMs: () => assert.fail("no tcp_info for ipc") });
  ipc.report(accepted("", 9, "ipc:///tmp/x"));
  const ipcMs = await opened(ipc, "", "ipc:///tmp/x");
  assert.ok(ipcMs < SETTLE_MS, `opened ${ipcMs.toFixed(0)} ms after an ipc handshake`);
  const unseen = new SubscriberWait(5000, { roundTripMs: () => 0.05 });
  unseen.report(accepted("tcp://127.0.0.1:5001", 9));
  const unseenMs = await opened(unseen, "tcp://127.0.0.1:5002");
  assert.ok(unseenMs >= SETTLE_MS - 5, `opened ${unseenMs.toFixed(0)} ms after an unknown peer's handshake`);
});
