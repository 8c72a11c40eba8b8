/**
 * Probe for the Deno/zeromq.js quirk (run as its own process by deno_quirk_test.ts): a
 * zeromq.js SUB *binds*, a receive is left pending, then a publisher connects and sends.
 * Deno's uv_poll fires once; the wake-up for the attached connection carries no message and
 * zeromq.js never polls again. Prints {"sent":N,"got":M} and exits, whatever is pending.
 */

import * as zmq from "zeromq";
import { ZMQ_LINGER, ZMQ_PUB } from "../src/zmq/constants.ts";
import { Context } from "../src/zmq/socket.ts";

const port = Number(Deno.args[0]);
const COUNT = 1000;
const sub = new zmq.Subscriber();
sub.subscribe();
await sub.bind(`tcp://127.0.0.1:${port}`);
let got = 0;
(async () => {
  for await (const _ of sub) got++;
})();

const ctx = new Context();
const pub = ctx.socket(ZMQ_PUB);
pub.setInt(ZMQ_LINGER, 0);
pub.connect(`tcp://127.0.0.1:${port}`);
await new Promise((r) => setTimeout(r, 500));
for (let i = 0; i < COUNT; i++) pub.trySend(`m${i}`);
await new Promise((r) => setTimeout(r, 1500));
console.log(JSON.stringify({ sent: COUNT, got }));
Deno.exit(0);
