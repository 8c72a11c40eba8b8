/**
 * The network may not take the adaptor's last descriptors (issue 13, defect 2). Under
 * `ulimit -n 256`: idle connections to --metrics beyond the limit, then a flood of tcp
 * connections to the XPUB beyond the limit, then a gateway worker connecting over ipc. libzmq's
 * ipc listener asserts (SIGABRT) on EMFILE; with the connection cap the XPUB stops listening
 * before the descriptors run out, so the process stays up, the existing subscriber gets every
 * message published afterwards, and /healthz answers once the flood ends.
 *
 * The same flood with the cap set above the limit (`--max-connections 100000`) shows the
 * defect: the worker's connect kills the process.
 */

import assert from "node:assert/strict";
import { freePort, ipcPath, sleep } from "../testing/net.ts";
import { Peers, syncUp } from "../testing/peers.ts";
import { healthOnceServed } from "../testing/scrape.ts";
import { AdaptorProcess, underFileLimit } from "../testing/process.ts";

const DESCRIPTORS = 256;

/**
 * A process that opens `count` tcp connections to `port` at once and holds those that were
 * made (a port that takes no more drops the SYNs, it does not refuse them) until it is killed.
 */
function flood(port: number, count: number): Deno.ChildProcess {
  // Non-blocking connects in quick waves, then 3.5 s for them to complete (SYNs are retried after 1 s and 3 s): those whose SYNs the
  // kernel dropped (a full queue, or a filter) are given up.
  const script = `
import socket, select, time
pending = []
for i in range(${count}):
    s = socket.socket()
    s.setblocking(False)
    s.connect_ex(("127.0.0.1", ${port}))
    pending.append(s)
    if i % 10 == 9:
        time.sleep(0.005)  # in waves the listen queue can take: none is lost to an overflow
poller = select.poll()
for s in pending:
    poller.register(s, select.POLLOUT)
done, deadline = {}, time.time() + 3.5
while len(done) < len(pending) and time.time() < deadline:
    for fd, ev in poller.poll(100):
        if fd not in done:
            done[fd] = ev
            poller.unregister(fd)
held = [s for s in pending if s.fileno() in done and s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0]
print(len(held), flush=True)
time.sleep(600)
`;
  return new Deno.Command("python3", { args: ["-c", script], stdout: "piped", stderr: "null" }).spawn();
}

/** Waits for `child`'s first line (the count of connections it holds). */
async function held(child: Deno.ChildProcess): Promise<number> {
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  return Number(value?.trim());
}

async function scenario(extraArgs: string[]) {
  const bind = ipcPath("xsub");
  const port = freePort();
  const metricsPort = freePort();
  const adaptor = new AdaptorProcess(
    [
      "-b",
      `ipc://${bind}`,
      "-p",
      `tcp://127.0.0.1:${port}`,
      "--metrics",
      `127.0.0.1:${metricsPort}`,
      // No handshake timeout: the flood's silent connections stay until it ends.
      "--handshake-timeout",
      "0",
      ...extraArgs,
    ],
    { command: underFileLimit(DESCRIPTORS) },
  );
  const peers = new Peers();
  const floods: Deno.ChildProcess[] = [];
  try {
    await adaptor.ready();
    const sub = peers.subscriber(`tcp://127.0.0.1:${port}`, ["ev."]);
    const first = peers.publisher(`ipc://${bind}`);
    await syncUp([first], [sub]);
    // Idle connections to --metrics beyond the limit (its own cap refuses most of them).
    floods.push(flood(metricsPort, 300));
    const metricsHeld = await held(floods[0]);
    // A flood of tcp connections to the XPUB beyond the limit, kept open.
    floods.push(flood(port, 400));
    const xpubHeld = await held(floods[1]);
    // The XPUB reached its cap, or (without one) ran out of descriptors.
    await adaptor.waitFor(/its --max-connections \d+: it takes no new|Too many open files/, 10_000)
      .catch(() => {});
    // Then a gateway worker's routine (re)connect over ipc.
    const worker = peers.publisher(`ipc://${bind}`);
    await sleep(500);
    const exited = await Promise.race([adaptor.status.then((s) => s), sleep(200).then(() => undefined)]);
    return { adaptor, peers, floods, sub, first, worker, exited, metricsHeld, xpubHeld, metricsPort };
  } catch (error) {
    for (const f of floods) f.kill("SIGKILL");
    await peers.close();
    await adaptor.stop();
    throw error;
  }
}

Deno.test("under ulimit -n 256, a tcp flood on the XPUB cannot take the descriptors a gateway worker's ipc connect needs", async () => {
  const s = await scenario([]);
  const endFloods = async () => {
    for (const f of s.floods.splice(0)) {
      f.kill("SIGKILL");
      await f.status;
    }
  };
  try {
    assert.equal(s.exited, undefined, `the adaptor died: ${s.adaptor.lines.slice(-5).join("\n")}`);
    assert.ok(
      s.adaptor.lines.some((l) =>
        /XPUB holds \d+ connections, its --max-connections \d+: it takes no new/.test(l)
      ),
      s.adaptor.lines.slice(-5).join("\n"),
    );
    assert.ok(!s.adaptor.lines.some((l) => /Too many open files/.test(l)), "the descriptors ran out");
    // The existing subscriber gets every message published afterwards, from both publishers.
    await s.first.sendAll(200, (i) => `ev.a.${i}`);
    await s.sub.expect(200);
    assert.equal(s.sub.texts().filter((t) => t.startsWith("ev.a.")).length, 200);
    const before = s.sub.messages.length;
    // The flood ends: the XPUB takes connections again, /healthz answers.
    await endFloods();
    await s.adaptor.waitFor(/XPUB takes tcp connections again/, 15_000);
    assert.equal((await healthOnceServed(`http://127.0.0.1:${s.metricsPort}`))?.status, 200);
    // And the worker that connected during the flood is served.
    await syncUp([s.first, s.worker], [s.sub]);
    await s.worker.sendAll(200, (i) => `ev.b.${i}`);
    await s.sub.expect(before + 200);
    assert.equal(s.sub.texts().filter((t) => t.startsWith("ev.b.")).length, 200);
  } finally {
    await endFloods();
    await s.peers.close();
    const { status } = await s.adaptor.stop();
    assert.equal(status.code, 0, s.adaptor.lines.slice(-10).join("\n"));
  }
});

Deno.test("the same flood with the cap above the limit shows the defect: the worker's ipc connect aborts the adaptor", async () => {
  const s = await scenario(["--max-connections", "100000"]);
  try {
    const status = s.exited ?? await Promise.race([s.adaptor.status, sleep(3000).then(() => undefined)]);
    assert.ok(status && status.signal === "SIGABRT", `expected SIGABRT, got ${JSON.stringify(status)}`);
  } finally {
    for (const f of s.floods) f.kill("SIGKILL");
    await s.peers.close();
    await s.adaptor.stop("SIGKILL");
  }
});
