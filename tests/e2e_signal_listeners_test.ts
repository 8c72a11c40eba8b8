/**
 * No signal opens a listener. Deno (≥ 2.9.2) starts the V8 inspector on 127.0.0.1:9229 when a
 * process gets SIGUSR1 half a second after start, whatever JavaScript listens: the first test
 * pins that the runtime still does so (it fails when a runtime upgrade changes it, so that the
 * adaptor's defence is looked at again); the others show that the adaptor, given every signal it
 * survives, process-wide and to each of its threads, listens on exactly what it was configured
 * to, keeps forwarding, and has the signal dispositions it intends.
 */

import assert from "node:assert/strict";
import { freePort, ipcPath, sleep, until } from "../testing/net.ts";
import { listeningSockets } from "../testing/listeners.ts";
import { Peers, syncUp } from "../testing/peers.ts";
import { AdaptorProcess } from "../testing/process.ts";
import { signalBit, tgkill, threadsOf } from "../testing/threads.ts";

/** Past Deno's 500 ms grace, after which it listens for SIGUSR1 itself. */
const RUNTIME_GRACE_MS = 1200;

const SIGNALS = {
  HUP: 1,
  INT: 2,
  QUIT: 3,
  BUS: 7,
  USR1: 10,
  SEGV: 11,
  USR2: 12,
  PIPE: 13,
  TERM: 15,
} as const;
/** Signals whose default action is to be ignored: sent too, as anything else might be. */
const HARMLESS = { CHLD: 17, CONT: 18, URG: 23, WINCH: 28 } as const;

function dispositions(pid: number) {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const field = (name: string) => BigInt(`0x${new RegExp(`^${name}:\\s*([0-9a-f]+)`, "m").exec(status)![1]}`);
  return { caught: field("SigCgt"), ignored: field("SigIgn"), blocked: field("SigBlk") };
}

const bits = (...signals: number[]) => signals.reduce((all, n) => all | signalBit(n), 0n);
const STANDARD = (1n << 31n) - 1n; // signals 1..31; the real-time ones belong to the C library

Deno.test({
  name: "the runtime itself opens the V8 inspector on SIGUSR1 (pinned: the adaptor's defence is needed)",
  sanitizeResources: false,
  async fn() {
    // A JavaScript listener of its own, as the adaptor had: it neither stops the runtime's
    // handler nor lets an early SIGUSR1 kill the program while it starts on a busy machine.
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        'Deno.addSignalListener("SIGUSR1", () => {}); await new Promise((r) => setTimeout(r, 15000))',
      ],
      stdout: "null",
      stderr: "piped",
    }).spawn();
    try {
      await until(() => (dispositions(child.pid).caught & signalBit(SIGNALS.USR1)) !== 0n, "its listener");
      await until(
        () => {
          child.kill("SIGUSR1"); // again until the runtime, past its grace, opens the inspector
          return listeningSockets(child.pid).some((l) => l.endsWith(":9229"));
        },
        "a plain Deno program listening on 9229 after SIGUSR1",
        10_000,
        250,
      );
    } finally {
      child.kill("SIGKILL");
      await child.status;
      await child.stderr.cancel();
    }
  },
});

Deno.test("no signal opens a listener: USR1, USR2, HUP and harmless ones, to the process and to each thread", async () => {
  const bind = ipcPath("xsub");
  const port = freePort();
  const metricsPort = freePort();
  const adaptor = new AdaptorProcess([
    ...["-b", `ipc://${bind}`, "-p", `tcp://127.0.0.1:${port}`, "--metrics", `127.0.0.1:${metricsPort}`],
  ]);
  const peers = new Peers();
  try {
    await adaptor.ready();
    await sleep(RUNTIME_GRACE_MS);
    const configured = [`tcp 127.0.0.1:${metricsPort}`, `tcp 127.0.0.1:${port}`, `unix ${bind}`].sort();
    assert.deepEqual(listeningSockets(adaptor.pid), configured);
    for (let round = 0; round < 3; round++) {
      for (
        const signal of ["SIGUSR1", "SIGUSR2", "SIGHUP", "SIGWINCH", "SIGURG", "SIGCHLD", "SIGCONT"] as const
      ) {
        adaptor.kill(signal);
      }
      await sleep(150);
    }
    for (const thread of threadsOf(adaptor.pid)) {
      for (const signal of [SIGNALS.USR1, SIGNALS.USR2, SIGNALS.HUP, HARMLESS.WINCH]) {
        tgkill(adaptor.pid, thread.tid, signal);
      }
    }
    await sleep(1000); // the inspector opened ~20 ms after SIGUSR1 when it did
    assert.deepEqual(listeningSockets(adaptor.pid), configured);
    assert.ok(!adaptor.lines.some((l) => /Debugger listening|inspector/i.test(l)), adaptor.lines.join("\n"));
    // Forwarding goes on.
    const sub = peers.subscriber(`tcp://127.0.0.1:${port}`, ["s."]);
    const pub = peers.publisher(`ipc://${bind}`);
    await syncUp([pub], [sub]);
    await pub.sendAll(200, (i) => `s.${i}`);
    await sub.expect(200);
    assert.deepEqual(listeningSockets(adaptor.pid), configured);
  } finally {
    await peers.close();
    const { status } = await adaptor.stop();
    assert.equal(status.code, 0, adaptor.lines.join("\n"));
  }
});

Deno.test("the signal dispositions are what the adaptor intends, at ready and past the runtime's grace", async () => {
  const adaptor = new AdaptorProcess([
    "-b",
    `ipc://${ipcPath("xsub")}`,
    "-p",
    `tcp://127.0.0.1:${freePort()}`,
  ]);
  try {
    await adaptor.ready();
    for (const moment of ["at ready", "past the runtime's grace"]) {
      if (moment !== "at ready") await sleep(RUNTIME_GRACE_MS);
      const now = dispositions(adaptor.pid);
      // Caught: the stop and reload signals, and V8's trap handlers (SIGBUS, SIGSEGV). Nothing else.
      assert.equal(
        (now.caught & STANDARD).toString(16),
        bits(SIGNALS.HUP, SIGNALS.INT, SIGNALS.BUS, SIGNALS.SEGV, SIGNALS.TERM).toString(16),
        `SigCgt ${moment}`,
      );
      // Ignored: SIGUSR1 (the inspector), SIGUSR2, SIGPIPE (Rust's default).
      const ignored = bits(SIGNALS.USR1, SIGNALS.USR2, SIGNALS.PIPE);
      assert.equal(now.ignored & ignored, ignored, `SigIgn ${moment}: ${now.ignored.toString(16)}`);
      // Blocked on the JavaScript thread (the shield): every pool thread started from it inherits it.
      const blocked = bits(SIGNALS.HUP, SIGNALS.INT, SIGNALS.TERM, SIGNALS.USR1, SIGNALS.USR2);
      assert.equal(now.blocked & blocked, blocked, `SigBlk ${moment}: ${now.blocked.toString(16)}`);
    }
  } finally {
    const { status } = await adaptor.stop();
    assert.equal(status.code, 0, adaptor.lines.join("\n"));
  }
});
