/**
 * Signals and start-up, against the adaptor as a process:
 *
 * - a SIGHUP storm (3 senders, 3 s) stops nothing: every message published meanwhile arrives;
 * - a signal aimed (tgkill) at each pool thread that waits in libzmq (the proxy, the monitors,
 *   the ZAP handler) interrupts nothing: forwarding, CURVE admission and a scrape still work;
 * - SIGHUP logs the totals; SIGUSR1 and SIGUSR2 are ignored: none kills it or leaves files behind;
 * - a SIGTERM at any moment of start-up (once the handler is installed) stops it cleanly;
 * - a debug tap that cannot bind fails the start at once, with one line naming it;
 * - two adaptors started at the same moment on one ipc path: exactly one runs.
 */

import assert from "node:assert/strict";
import { lockPathOf } from "../src/ipc/ipc_guard.ts";
import { keygen } from "../src/security/cert.ts";
import { exists, freePort, ipcPath, sleep, until } from "../testing/net.ts";
import { Peers, syncUp } from "../testing/peers.ts";
import { AdaptorProcess, runAdaptor } from "../testing/process.ts";
import { scrape } from "../testing/scrape.ts";
import { signalBit, tgkill, threadsOf, waitingPoolThreads } from "../testing/threads.ts";

const SIGHUP = 1;
const SIGUSR1 = 10;
const SIGUSR2 = 12;

/** Sends `signal` to `pid` as fast as a shell can, from `senders` processes, for `seconds`. */
async function storm(pid: number, signal: string, senders: number, seconds: number): Promise<void> {
  const script = `end=$((SECONDS+${seconds})); n=0; while [ $SECONDS -lt $end ] && [ $n -lt 200000 ]; do ` +
    `kill -${signal} ${pid} 2>/dev/null || break; n=$((n+1)); done`;
  await Promise.all(
    Array.from({ length: senders }, () => new Deno.Command("bash", { args: ["-c", script] }).output()),
  );
}

Deno.test("a SIGHUP storm from 3 senders for 3 s stops nothing: every message published meanwhile arrives", async () => {
  const bind = ipcPath("xsub");
  const port = freePort();
  const adaptor = new AdaptorProcess(["-b", `ipc://${bind}`, "-p", `tcp://127.0.0.1:${port}`]);
  const peers = new Peers();
  try {
    await adaptor.ready();
    const sub = peers.subscriber(`tcp://127.0.0.1:${port}`, ["storm."]);
    const pub = peers.publisher(`ipc://${bind}`);
    await syncUp([pub], [sub]);
    const count = 3000;
    const deadline = performance.now() + 20_000;
    const publishing = (async () => {
      for (let i = 0; i < count && performance.now() < deadline; i++) {
        while (!pub.socket.trySend(`storm.${i}`) && performance.now() < deadline) await sleep(1);
        if (i % 100 === 99) await sleep(10); // spread over the storm's 3 s
      }
    })();
    await storm(adaptor.pid, "HUP", 3, 3);
    await publishing;
    await sub.expect(count);
    assert.deepEqual(sub.texts(), Array.from({ length: count }, (_, i) => `storm.${i}`));
    assert.ok(
      !adaptor.lines.some((l) => /failure|ended unexpectedly/.test(l)),
      adaptor.lines.slice(-5).join("\n"),
    );
  } finally {
    await peers.close();
    const { status } = await adaptor.stop();
    assert.equal(status.code, 0, adaptor.lines.filter((l) => !l.includes("SIGHUP")).join("\n"));
  }
  assert.ok(!exists(bind) && !exists(lockPathOf(bind)), "socket or lock file left behind");
});

Deno.test("a signal aimed at each thread waiting in libzmq interrupts nothing: forwarding, CURVE admission, scrapes", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "adaptor-e2e-sig-" });
  const bind = ipcPath("xsub");
  const port = freePort();
  const metricsPort = freePort();
  const server = keygen(`${dir}/server`);
  Deno.mkdirSync(`${dir}/clients`);
  const curveOf = (name: string) => {
    const pair = keygen(`${dir}/${name}`);
    Deno.copyFileSync(pair.publicPath, `${dir}/clients/${name}`);
    const secretKey = /secret-key = "(.{40})"/.exec(Deno.readTextFileSync(pair.secretPath))![1];
    return { serverKey: server.publicKey, publicKey: pair.publicKey, secretKey };
  };
  const early = curveOf("early");
  const late = curveOf("late");
  const adaptor = new AdaptorProcess([
    ...["-b", `ipc://${bind}`, "-p", `tcp://127.0.0.1:${port}`, "--metrics", `127.0.0.1:${metricsPort}`],
    ...["--curve-cert", server.secretPath, "--curve-clients", `${dir}/clients`],
  ]);
  const peers = new Peers();
  try {
    await adaptor.ready();
    const first = peers.subscriber(`tcp://127.0.0.1:${port}`, ["a."], { curve: early });
    const pub = peers.publisher(`ipc://${bind}`);
    await syncUp([pub], [first]);
    // The proxy, the XSUB's and XPUB's monitors and the ZAP handler each wait on a pool thread.
    let waiting = waitingPoolThreads(adaptor.pid);
    await until(() => (waiting = waitingPoolThreads(adaptor.pid)).length >= 4, "4 threads waiting in libzmq");
    const shielded = signalBit(SIGHUP) | signalBit(SIGUSR1) | signalBit(SIGUSR2) | signalBit(2) |
      signalBit(15);
    for (const thread of waiting) {
      assert.equal(
        thread.blocked & shielded,
        shielded,
        `thread ${thread.tid} does not block the handled signals`,
      );
      for (const signal of [SIGHUP, SIGUSR1, SIGUSR2]) tgkill(adaptor.pid, thread.tid, signal);
    }
    // The signals reached those threads and wait there, blocked; nothing woke up.
    const after = threadsOf(adaptor.pid).filter((t) => waiting.some((w) => w.tid === t.tid));
    assert.ok(
      after.every((t) => (t.pending & signalBit(SIGHUP)) !== 0n),
      "a signal was not delivered to its thread",
    );
    await sleep(200);
    const count = 500;
    await pub.sendAll(count, (i) => `a.${i}`);
    await first.expect(count);
    // A CURVE client admitted after the signals (the ZAP handler still answers).
    const second = peers.subscriber(`tcp://127.0.0.1:${port}`, ["b."], { curve: late });
    await syncUp([pub], [second]);
    await pub.sendAll(count, (i) => `b.${i}`);
    await second.expect(count);
    assert.equal(first.messages.length, count);
    assert.equal(second.messages.length, count);
    // A scrape is answered, with the exact counters.
    const series = await scrape(`http://127.0.0.1:${metricsPort}`);
    const forwarded = series.get(`adaptor_messages_forwarded_total{channel="main"}`)!;
    assert.ok(forwarded >= 2 * count, `forwarded ${forwarded}`);
    assert.equal(series.get("adaptor_healthy"), 1);
    assert.ok(!adaptor.lines.some((l) => /failure|ended unexpectedly|restarted/.test(l)));
  } finally {
    await peers.close();
    const { status } = await adaptor.stop();
    Deno.removeSync(dir, { recursive: true });
    assert.equal(status.code, 0, adaptor.lines.join("\n"));
  }
});

Deno.test("SIGHUP logs the totals, SIGUSR1 and SIGUSR2 are ignored: none stops the adaptor or leaves files", async () => {
  const bind = ipcPath("xsub");
  const adaptor = new AdaptorProcess(["-b", `ipc://${bind}`, "-p", `tcp://127.0.0.1:${freePort()}`]);
  await adaptor.ready();
  adaptor.kill("SIGUSR1");
  adaptor.kill("SIGUSR2");
  adaptor.kill("SIGHUP");
  await adaptor.waitFor(/main channel totals: 0 frames/);
  assert.ok(exists(bind), "the adaptor must still serve");
  const { status } = await adaptor.stop();
  assert.equal(status.code, 0, adaptor.lines.join("\n"));
  assert.ok(!exists(bind) && !exists(lockPathOf(bind)));
});

/** Whether process `pid` has a handler for `signal` (SigCgt). */
function catches(pid: number, signal: number): boolean {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    return (BigInt(`0x${/^SigCgt:\s*([0-9a-f]+)/m.exec(status)![1]}`) & signalBit(signal)) !== 0n;
  } catch {
    return false;
  }
}

Deno.test("a SIGTERM at any moment of start-up, once its handler is in place, stops cleanly: exit 0, nothing left", async () => {
  for (const delay of [0, 5, 15, 30, 60, 120]) {
    const bind = ipcPath("xsub");
    const adaptor = new AdaptorProcess(["-b", `ipc://${bind}`, "-p", `tcp://127.0.0.1:${freePort()}`]);
    await until(() => catches(adaptor.pid, 15), "the SIGTERM handler", 10_000);
    await sleep(delay);
    const { status } = await adaptor.stop("SIGTERM");
    assert.equal(status.code, 0, `SIGTERM ${delay} ms after the handler: ${adaptor.lines.join("\n")}`);
    assert.ok(!exists(bind) && !exists(lockPathOf(bind)), `files left behind (SIGTERM after ${delay} ms)`);
  }
});

Deno.test("a debug tap that cannot bind fails the start at once, naming the tap and its endpoint", async () => {
  const taken = Deno.listen({ hostname: "127.0.0.1", port: freePort() });
  const port = (taken.addr as Deno.NetAddr).port;
  try {
    const cases = [
      {
        args: [
          "-p",
          `tcp://127.0.0.1:${freePort()}`,
          "-r",
          "-l",
          `tcp://127.0.0.1:${port}`,
          "-u",
          `ipc://${ipcPath("push")}`,
        ],
        line: new RegExp(
          `the inbound test sender \\(-r\\) cannot bind tcp://127\\.0\\.0\\.1:${port}: Address already in use`,
        ),
      },
      {
        args: ["-d", "-p", `>tcp://127.0.0.1:${port}`],
        line: new RegExp(
          `the debug subscriber \\(-d\\) cannot bind tcp://127\\.0\\.0\\.1:${port}: Address already in use`,
        ),
      },
    ];
    for (const { args, line } of cases) {
      const bind = ipcPath("xsub");
      const started = performance.now();
      const result = await runAdaptor(
        ["-b", `ipc://${bind}`, ...args],
        {
          timeoutMs: 10_000,
        },
      );
      const ms = performance.now() - started;
      assert.equal(result.code, 1, result.stderr.join("\n"));
      const errors = result.stderr.filter((l) => l.startsWith("adaptor: error"));
      assert.equal(errors.length, 1, result.stderr.join("\n"));
      assert.match(errors[0], line);
      assert.ok(ms < 5000, `took ${ms.toFixed(0)} ms`);
      assert.ok(!exists(bind) && !exists(lockPathOf(bind)), "socket or lock file left behind");
    }
  } finally {
    taken.close();
  }
});

Deno.test("two adaptors started at the same moment on one ipc path: exactly one runs, 10 rounds", async () => {
  for (let round = 0; round < 10; round++) {
    const bind = ipcPath("xsub");
    const ports = [freePort(), freePort()];
    const both = ports.map((port) =>
      new AdaptorProcess(["-b", `ipc://${bind}`, "-p", `tcp://127.0.0.1:${port}`])
    );
    const outcomes = await Promise.all(both.map((a) =>
      Promise.race([
        a.ready().then(() => "ready" as const),
        a.status.then(() => "exited" as const),
      ]).catch(() => "exited" as const)
    ));
    try {
      assert.deepEqual([...outcomes].sort(), ["exited", "ready"], `round ${round}: ${outcomes}`);
      const loser = both[outcomes.indexOf("exited")];
      assert.equal((await loser.status).code, 1);
      await loser.exit();
      assert.ok(
        loser.lines.some((l) => /^adaptor: error: .*another process is serving .*refusing/.test(l)),
        loser.lines.join("\n"),
      );
      // The survivor still serves the path.
      const winner = outcomes.indexOf("ready");
      const peers = new Peers();
      try {
        const sub = peers.subscriber(`tcp://127.0.0.1:${ports[winner]}`);
        const pub = peers.publisher(`ipc://${bind}`);
        await syncUp([pub], [sub]);
        await pub.sendAll(50, (i) => `r${round}.${i}`);
        await sub.expect(50);
      } finally {
        await peers.close();
      }
    } finally {
      for (const a of both) await a.stop();
    }
    for (const a of both) {
      const { code } = await a.status;
      assert.ok(code === 0 || code === 1, `round ${round}: exit ${code}: ${a.lines.join("\n")}`);
    }
    assert.ok(!exists(bind) && !exists(lockPathOf(bind)), `round ${round}: files left behind`);
  }
});

Deno.test("--linger over 1500 ms is a usage error: a stop must end within 2 s", async () => {
  const result = await runAdaptor(["--linger", "60000"]);
  assert.equal(result.code, 2);
  assert.match(result.stderr.at(-1)!, /--linger '60000': expected a whole number from 0 to 1500/);
});
