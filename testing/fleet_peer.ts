/**
 * A fleet peer as a process of its own, to run inside a network namespace
 * (`ip netns exec NS deno run --allow-all fleet_peer.ts …`): the test process lives in the root
 * namespace and cannot reach the namespaces' addresses. It reports on stdout, one JSON object a
 * line, each with `t` (Date.now(): every namespace shares the clock) and `ev`.
 *
 *   pub ENDPOINT NAME RATE
 *     A gateway worker: an XPUB (a PUB that also reads the subscriptions reaching it) connects to
 *     the edge's XSUB and publishes `usage.NAME.SEQ` (SEQ = 0, 1, 2 …) at RATE a second, steadily,
 *     whatever happens downstream. Like the nginx module it sets ZMQ_XPUB_NODROP and never waits:
 *     an event its queue cannot take (SNDHWM 10000) is dropped and counted (`dropped`). An event
 *     published while no subscription to `usage.` has reached it is filtered out here (PUB/SUB:
 *     nobody wants it) and counted (`unsubscribed`). Reports `sub` on each subscribe/unsubscribe
 *     (with the next SEQ), `stats` every 500 ms, `end` on SIGTERM (then exits 0).
 *
 *   sub ENDPOINT TOPIC [--heartbeat IVL,TIMEOUT] [--connect-timeout MS]
 *       [--curve-cert SECRET_CERT --curve-server PUBLIC_CERT]
 *     A tracking service: a SUB connects to the aggregator's XPUB (reconnecting every 100 ms, as
 *     libzmq does by default; with `--heartbeat`, ZMTP heartbeats of its own: without them it
 *     cannot tell a silent partition, see docs/deployment.md) and counts every `usage.NAME.SEQ` by NAME and SEQ: `resume` when a
 *     worker's events come again after an outage (SEQ skipped: from..to lost, with the times of
 *     the events on either side; or a silence of 300 ms or more without loss), `stats` every
 *     500 ms, `end` on SIGTERM with every gap and the out-of-order/duplicate counts. With `--curve-cert` it is
 *     a CURVE client (its own pair from that secret certificate, the server's key from
 *     `--curve-server`, both in CZMQ's format as `adaptor keygen` writes them).
 */

import {
  ZMQ_HEARTBEAT_IVL,
  ZMQ_HEARTBEAT_TIMEOUT,
  ZMQ_HEARTBEAT_TTL,
  ZMQ_LINGER,
  ZMQ_RCVHWM,
  ZMQ_SNDHWM,
  ZMQ_SUB,
  ZMQ_SUBSCRIBE,
  ZMQ_XPUB,
} from "../src/zmq/constants.ts";
import { Context } from "../src/zmq/socket.ts";
import { parseCertificate, readSecretCertificate } from "../src/security/cert.ts";

const ZMQ_XPUB_NODROP = 69;
const ZMQ_CONNECT_TIMEOUT = 79;
const encoder = new TextEncoder();
const decoder = new TextDecoder();
/** A silence this long from one worker is reported (`resume`) even when nothing was lost. */
const SILENCE_MS = 300;

function report(ev: string, fields: Record<string, unknown> = {}): void {
  console.log(JSON.stringify({ t: Date.now(), ev, ...fields }));
}

function option(name: string): string | undefined {
  const at = Deno.args.indexOf(name);
  return at >= 0 ? Deno.args[at + 1] : undefined;
}

const [mode, endpoint, third, fourth] = Deno.args;
const ctx = new Context();
let stopping = false;
Deno.addSignalListener("SIGTERM", () => stopping = true);
Deno.addSignalListener("SIGINT", () => stopping = true);
const tick = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

if (mode === "pub") {
  const name = third;
  const rate = Number(fourth);
  const socket = ctx.socket(ZMQ_XPUB);
  socket.setInt(ZMQ_LINGER, 0);
  socket.setInt(ZMQ_XPUB_NODROP, 1);
  socket.setInt(ZMQ_SNDHWM, 10_000);
  socket.connect(endpoint);
  let seq = 0;
  let dropped = 0;
  let unsubscribed = 0;
  let subscribed = false;
  const start = performance.now();
  let lastStats = 0;
  report("ready", { name, rate });
  while (!stopping) {
    let frames;
    while ((frames = socket.tryReceive())) {
      const data = frames[0];
      if (data.length === 0 || data[0] > 1) continue;
      const topic = decoder.decode(data.subarray(1));
      const on = data[0] === 1;
      if ("usage.".startsWith(topic)) subscribed = on;
      report("sub", { name, topic, on, seq });
    }
    const due = Math.floor((performance.now() - start) * rate / 1000);
    while (seq < due) {
      if (!subscribed) unsubscribed++;
      else if (!socket.trySend(encoder.encode(`usage.${name}.${seq}`))) dropped++;
      seq++;
    }
    if (performance.now() - lastStats >= 500) {
      lastStats = performance.now();
      report("stats", { name, seq, dropped, unsubscribed, subscribed });
    }
    await tick(5);
  }
  report("end", { name, seq, dropped, unsubscribed, subscribed });
} else if (mode === "sub") {
  const topic = third;
  const socket = ctx.socket(ZMQ_SUB);
  socket.setInt(ZMQ_LINGER, 0);
  socket.setInt(ZMQ_RCVHWM, 0);
  const heartbeat = option("--heartbeat");
  if (heartbeat) {
    const [interval, timeout] = heartbeat.split(",").map(Number);
    socket.setInt(ZMQ_HEARTBEAT_IVL, interval);
    socket.setInt(ZMQ_HEARTBEAT_TIMEOUT, timeout);
    socket.setInt(ZMQ_HEARTBEAT_TTL, timeout);
  }
  const connectTimeout = option("--connect-timeout");
  if (connectTimeout) socket.setInt(ZMQ_CONNECT_TIMEOUT, Number(connectTimeout));
  const cert = option("--curve-cert");
  if (cert) {
    const own = readSecretCertificate(cert);
    const server = parseCertificate(Deno.readTextFileSync(option("--curve-server")!));
    socket.curveClient({ serverKey: server.publicKey, publicKey: own.publicKey, secretKey: own.secretKey });
  }
  socket.setBytes(ZMQ_SUBSCRIBE, topic);
  socket.connect(endpoint);
  interface Count {
    received: number;
    first: number;
    last: number;
    lastAt: number;
    reordered: number;
    gaps: { from: number; to: number; before: number; after: number }[];
  }
  const counts = new Map<string, Count>();
  let other = 0;
  let lastStats = 0;
  report("ready", { topic });
  const summary = () =>
    Object.fromEntries(
      [...counts].map(([name, c]) => [name, {
        received: c.received,
        first: c.first,
        last: c.last,
        reordered: c.reordered,
        gaps: c.gaps.length,
      }]),
    );
  while (!stopping) {
    let frames;
    while ((frames = socket.tryReceive())) {
      const text = decoder.decode(frames[0]);
      const match = /^usage\.(.+)\.(\d+)$/.exec(text);
      if (!match || frames.length !== 1) {
        other++;
        continue;
      }
      const [, name, digits] = match;
      const seq = Number(digits);
      const now = Date.now();
      const c = counts.get(name);
      if (!c) {
        counts.set(name, { received: 1, first: seq, last: seq, lastAt: now, reordered: 0, gaps: [] });
        report("first", { name, seq });
        continue;
      }
      if (seq <= c.last) {
        c.reordered++;
        continue;
      }
      if (seq > c.last + 1 || now - c.lastAt >= SILENCE_MS) {
        // An outage ends: events skipped (from..to, none when from > to), or a long silence.
        const resume = { from: c.last + 1, to: seq - 1, before: c.lastAt, after: now };
        if (seq > c.last + 1) c.gaps.push(resume);
        report("resume", { name, ...resume });
      }
      c.received++;
      c.last = seq;
      c.lastAt = now;
    }
    if (performance.now() - lastStats >= 500) {
      lastStats = performance.now();
      report("stats", { counts: summary(), other });
    }
    await tick(2);
  }
  report("end", {
    counts: Object.fromEntries(counts),
    other,
  });
} else {
  console.error("usage: fleet_peer.ts pub ENDPOINT NAME RATE | sub ENDPOINT TOPIC");
  Deno.exit(2);
}
ctx.shutdown();
await ctx.terminate();
Deno.exit(0);
