/**
 * An adaptor restarted under a live gateway: what the workers published while it was down is
 * not lost. A worker's PUB keeps its pipe and the subscriptions on it across the reconnect
 * (libzmq, ZMQ_IMMEDIATE off) and queues what it publishes meanwhile, up to its high-water
 * mark; it flushes that into the new adaptor as soon as it reconnects. Before, the new adaptor
 * forwarded at once, to an XPUB whose subscribers had not reconnected yet, which discarded the
 * lot. Now the main proxy starts when the first subscriber is back (or `--subscriber-wait`
 * has passed), so those events wait in the adaptor's XSUB instead. And the stopping adaptor
 * first takes nothing more from the workers and forwards what it had (before, it lost the
 * events its XSUB had queued: 0–20 at 10 000 a second; what is left is the batch in flight in
 * the socket's buffer when the connection closes).
 */

import assert from "node:assert/strict";
import { freePort, ipcPath, sleep, until } from "../testing/net.ts";
import { Peers, syncUp } from "../testing/peers.ts";
import { AdaptorProcess, ROOT } from "../testing/process.ts";
import { Czmq3Publisher, hasPyzmq } from "../testing/czmq3.ts";

Deno.test("restart: the events a worker queued while the adaptor was down reach a subscriber that reconnects later", async () => {
  const args = ["-b", `ipc://${ipcPath("restart")}`, "-p", `tcp://127.0.0.1:${freePort()}`];
  const [bind, publish] = [args[1], args[3]];
  const peers = new Peers();
  const adaptors = [new AdaptorProcess(args)];
  try {
    await adaptors[0].ready();
    const worker = peers.publisher(bind); // reconnects every 100 ms, libzmq's default
    // A tracking service that comes back 400 ms after it lost the adaptor (a back-off, a
    // slower host): later than the worker.
    const sub = peers.subscriber(publish, ["ev."], { reconnectIvl: 400 });
    await syncUp([worker], [sub]);
    await worker.sendAll(100, (i) => `ev.before.${i}`);
    await sub.expect(100);

    const { status } = await adaptors[0].stop();
    assert.equal(status.code, 0);
    await worker.sendAll(50, (i) => `ev.down.${i}`); // queued in the worker's PUB
    adaptors.push(new AdaptorProcess(args));
    await adaptors[1].ready();
    await until(() => sub.texts().some((t) => t.startsWith("ev.down.")), "an event of the down time", 5000)
      .catch(() => {});
    await sleep(300);
    const down = sub.texts().filter((t) => t.startsWith("ev.down."));
    assert.deepEqual(down, Array.from({ length: 50 }, (_, i) => `ev.down.${i}`), `got ${down.length} of 50`);
    // And forwarding goes on as before.
    await worker.sendAll(100, (i) => `ev.after.${i}`);
    await until(
      () => sub.texts().filter((t) => t.startsWith("ev.after.")).length === 100,
      "the events after",
    );
  } finally {
    await peers.close();
    for (const adaptor of adaptors) await adaptor.stop();
  }
});

Deno.test("restart under a flood of 10 000 events a second: what the worker queued arrives (at most a socket buffer is lost)", async () => {
  const args = ["-b", `ipc://${ipcPath("restart-flood")}`, "-p", `tcp://127.0.0.1:${freePort()}`];
  const peers = new Peers();
  const adaptors = [new AdaptorProcess(args)];
  try {
    await adaptors[0].ready();
    const worker = peers.publisher(args[1]); // SNDHWM 1000, and a full queue refuses (NODROP)
    const sub = peers.subscriber(args[3], ["ev."]);
    await syncUp([worker], [sub]);
    let seq = 0;
    let running = true;
    const refused = new Set<number>(); // what the worker's high-water mark did not allow to keep
    const sending = (async () => {
      while (running) {
        for (let i = 0; i < 20; i++) {
          const n = seq++;
          if (!worker.socket.trySend(`ev.${n}`)) refused.add(n);
        }
        await sleep(1);
      }
    })();
    await sleep(500);
    const { status } = await adaptors[0].stop();
    assert.equal(status.code, 0, adaptors[0].lines.join("\n"));
    adaptors.push(new AdaptorProcess(args));
    await adaptors[1].ready();
    await sleep(1500);
    running = false;
    await sending;
    const kept = seq - refused.size;
    await until(() => sub.messages.length >= kept, `${kept} events`, 5000).catch(() => {});
    const got = new Set(sub.texts().map((t) => Number(t.split(".")[1])));
    const lost = Array.from({ length: seq }, (_, n) => n).filter((n) => !refused.has(n) && !got.has(n));
    console.log(
      `restart under a flood: ${seq} published, ${refused.size} refused by the worker's HWM, ${lost.length} lost`,
    );
    assert.ok(seq > 5000, `only ${seq} published`);
    // Before: 1492–1619 of ~20 000 lost in 4 runs of 5 (the worker's flush, before the subscriber
    // was back) plus 0–20 (the stopping adaptor's queue). Now 0, or the one batch that was in the
    // ipc socket's kernel buffer when the old adaptor closed the connection (20 in 2 runs of 9; a
    // busy machine lets more wait there: 15 once in the full suite); libzmq cannot keep that.
    assert.ok(lost.length <= seq * 0.02, `${lost.length} of ${seq} events the worker had queued were lost`);
  } finally {
    await peers.close();
    for (const adaptor of adaptors) await adaptor.stop();
  }
});

/** The adaptor as the README tells operators to run it from source. */
function asOperatorsRunIt(args: string[]): AdaptorProcess {
  return new AdaptorProcess(args, { command: [`${ROOT}scripts/start.sh`], env: { DENO: Deno.execPath() } });
}

Deno.test({
  name:
    "restart as operators run it, with the gateway's publisher (SNDHWM 1000, 2 000 events/s): nothing lost",
  ignore: !hasPyzmq,
  async fn() {
    // A worker queues 1000 events while the adaptor is away: 0.5 s at this rate. The stop, the
    // new start and the worker's reconnect (100 ms) must fit in that, or the worker drops.
    const rate = 2000;
    const args = ["-b", `ipc://${ipcPath("restart-czmq3")}`, "-p", `tcp://127.0.0.1:${freePort()}`];
    const peers = new Peers();
    const adaptors = [asOperatorsRunIt(args)];
    let publisher: Czmq3Publisher | undefined;
    try {
      await adaptors[0].ready();
      const sub = peers.subscriber(args[3], ["ev."]);
      publisher = new Czmq3Publisher(args[1], rate);
      await until(() => sub.messages.length > 0, "the first event", 10_000);
      await sleep(1000);
      const { status } = await adaptors[0].stop();
      assert.equal(status.code, 0, adaptors[0].lines.join("\n"));
      adaptors.push(asOperatorsRunIt(args)); // at once, as a supervisor would
      await adaptors[1].ready();
      await sleep(1500);
      const { published, lost } = await publisher.stopAndCount(() => sub.texts());
      publisher = undefined;
      console.log(
        `restart with SNDHWM 1000 at ${rate}/s: ${published} published, ${lost.length} lost`,
      );
      assert.ok(published > rate * 2, `only ${published} published`);
      // What may go is the batch that was in the ipc socket's buffer when the old adaptor closed it.
      assert.ok(
        lost.length <= 30,
        `${lost.length} of ${published} events lost (first: ${lost.slice(0, 5)})`,
      );
    } finally {
      publisher?.kill();
      await peers.close();
      for (const adaptor of adaptors) await adaptor.stop();
    }
  },
});
