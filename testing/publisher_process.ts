/**
 * A gateway worker stand-in as a process of its own, for crash tests (kill -9 needs a
 * process): a PUB connects to `Deno.args[0]` and publishes 3-frame messages
 * `[<name>.<seq>, body-<seq>-xxx… (3 kB), <seq mod 256>]` at about 4000 a second until killed.
 * Messages of 3 kB straddle libzmq's 8 kB write batches, so a SIGKILL almost surely leaves half
 * a message on the wire. Like the test publishers it waits rather than drop
 * (ZMQ_XPUB_NODROP), so a gap in `seq` downstream is a loss. Prints "publishing" once connected.
 */

import { ZMQ_LINGER, ZMQ_PUB, ZMQ_SNDHWM } from "../src/zmq/constants.ts";
import { Context } from "../src/zmq/socket.ts";

const ZMQ_XPUB_NODROP = 69;
const [endpoint, name] = Deno.args;
const ctx = new Context();
const pub = ctx.socket(ZMQ_PUB);
pub.setInt(ZMQ_LINGER, 0);
pub.setInt(ZMQ_XPUB_NODROP, 1);
pub.setInt(ZMQ_SNDHWM, 1000);
pub.connect(endpoint);
console.log("publishing");

const encoder = new TextEncoder();
const padding = "x".repeat(3000);
let seq = 0;
for (;;) {
  for (let i = 0; i < 20; i++) {
    const message = [
      encoder.encode(`${name}.${seq}`),
      encoder.encode(`body-${seq}-${padding}`),
      new Uint8Array([seq % 256]),
    ];
    if (!pub.trySend(message)) break;
    seq++;
  }
  await new Promise((resolve) => setTimeout(resolve, 5));
}
