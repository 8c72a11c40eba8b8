/**
 * `SubscriberWait`, the main proxy's start gate: at once with 0, soon after the first
 * subscription (or later after a handshake alone), after the wait when none comes, and at once on
 * close (no timer left).
 */

import assert from "node:assert/strict";
import { SETTLE_MS, SUBSCRIBED_SETTLE_MS, SubscriberWait } from "../src/adaptor/subscriber_wait.ts";

const settledWithin = async (promise: Promise<void>, ms: number) =>
  await Promise.race([promise.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);

Deno.test("SubscriberWait: 0 opens at once; a handshake opens it after the settle time; other events do not", async () => {
  assert.equal(await settledWithin(new SubscriberWait(0).ready, 5), true);
  const wait = new SubscriberWait(5000);
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
