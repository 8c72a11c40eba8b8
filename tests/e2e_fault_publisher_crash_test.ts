/**
 * A publisher process killed with SIGKILL mid-stream (possibly mid-message): the adaptor
 * discards its half-sent message, the other publishers go on without a gap, and a restarted
 * publisher is served again. Publishers are real processes (testing/publisher_process.ts).
 */

import assert from "node:assert/strict";
import { assertForwards } from "../testing/forwarding.ts";
import { freePort, ipcPath, until } from "../testing/net.ts";
import { Peers, type Receiver, syncUp } from "../testing/peers.ts";
import { AdaptorProcess } from "../testing/process.ts";

const decoder = new TextDecoder();
const PADDING = "x".repeat(3000);
const SCRIPT = new URL("../testing/publisher_process.ts", import.meta.url).pathname;

/** A publisher process and how to wait for it. */
function startPublisher(endpoint: string, name: string): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", SCRIPT, endpoint, name],
    stdin: "null",
    stdout: "null",
    stderr: "inherit",
  }).spawn();
}

/** Per-publisher tallies of what one subscriber got, checked as they come. */
class Tally {
  readonly count = new Map<string, number>();
  readonly last = new Map<string, number>();
  readonly problems: string[] = [];
  #seen = 0;

  constructor(readonly receiver: Receiver) {}

  /** Reads messages not read yet; returns this for chaining. */
  update(): this {
    const { messages } = this.receiver;
    for (; this.#seen < messages.length; this.#seen++) {
      const frames = messages[this.#seen];
      const [name, seqText] = decoder.decode(frames[0]).split(".");
      const seq = Number(seqText);
      this.count.set(name, (this.count.get(name) ?? 0) + 1);
      const last = this.last.get(name);
      if (last !== undefined && seq !== last + 1) this.problems.push(`${name}: ${last} then ${seq}`);
      this.last.set(name, seq);
      if (name === "C") continue; // the in-test publisher sends one frame
      if (frames.length !== 3) this.problems.push(`${name}.${seq}: ${frames.length} frames`);
      else if (decoder.decode(frames[1]) !== `body-${seq}-${PADDING}` || frames[2][0] !== seq % 256) {
        this.problems.push(`${name}.${seq}: frames do not match`);
      }
    }
    return this;
  }

  of(name: string): number {
    return this.update().count.get(name) ?? 0;
  }
}

Deno.test("a publisher killed with SIGKILL mid-stream: the others go on, a restarted one is served", async () => {
  const bind = `ipc://${ipcPath("xsub")}`;
  const publish = `tcp://127.0.0.1:${freePort()}`;
  const adaptor = new AdaptorProcess(["-b", bind, "-p", publish]);
  const peers = new Peers();
  const children: Deno.ChildProcess[] = [];
  try {
    await adaptor.ready();
    const sub = peers.subscriber(publish);
    const inTest = peers.publisher(bind);
    await syncUp([inTest], [sub]);
    const tally = new Tally(sub);

    const a = startPublisher(bind, "A");
    const b = startPublisher(bind, "B");
    children.push(a, b);
    await until(() => tally.of("A") >= 2000 && tally.of("B") >= 2000, "both publishers flowing", 20_000);

    a.kill("SIGKILL");
    const { signal } = await a.status;
    assert.equal(signal, "SIGKILL");
    const bAtKill = tally.of("B");
    await inTest.sendAll(1000, (i) => `C.${i}`);
    await until(
      () => tally.of("C") >= 1000 && tally.of("B") >= bAtKill + 2000,
      "the others after the crash",
      20_000,
    );

    const restarted = startPublisher(bind, "A2");
    children.push(restarted);
    await until(() => tally.of("A2") >= 1000, "the restarted publisher served", 20_000);

    assert.equal(tally.of("C"), 1000);
    assert.deepEqual(tally.update().problems, [], "gaps or broken messages");
    await assertForwards({ publishTo: bind, subscribeTo: publish });
  } finally {
    for (const child of children) {
      try {
        child.kill("SIGKILL");
      } catch {
        // already gone
      }
      await child.status;
    }
    await peers.close();
    const { status } = await adaptor.stop();
    assert.equal(status.code, 0, adaptor.lines.join("\n"));
  }
});
