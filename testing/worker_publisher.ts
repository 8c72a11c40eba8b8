/**
 * The gateway worker stand-in of `worker_publisher.py` on the adaptor's own libzmq, for hosts
 * without pyzmq: a PUB connects to `Deno.args[0]` and publishes `<name>.<seq>` every 10 ms.
 * Prints "publishing" once connected; runs until stdin closes.
 */

import { ZMQ_LINGER, ZMQ_PUB } from "../src/zmq/constants.ts";
import { Context } from "../src/zmq/socket.ts";

const [endpoint, name] = Deno.args;
const ctx = new Context();
const pub = ctx.socket(ZMQ_PUB);
pub.setInt(ZMQ_LINGER, 0);
pub.connect(endpoint);
console.log("publishing");
let stop = false;
(async () => {
  for await (const _ of Deno.stdin.readable) {
    // wait for EOF
  }
  stop = true;
})();
let seq = 0;
while (!stop) {
  pub.trySend(`${name}.${seq++}`);
  await new Promise((resolve) => setTimeout(resolve, 10));
}
pub.close();
await ctx.terminate();
