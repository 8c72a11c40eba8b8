/**
 * The adaptor as systemd's Type=notify service, against the adaptor as a process and a
 * notification socket of the test's own (testing/notify_listener.py, the manager's end):
 *
 * - READY=1 comes once, from the adaptor's own pid, when its XSUB (ipc) and XPUB (tcp) already
 *   accept: the listener freezes the adaptor on receipt and tries both;
 * - STATUS= follows the publishers and subscribers and says when forwarding starts;
 * - WATCHDOG=1 repeats while WATCHDOG_USEC is set for it, never when WATCHDOG_PID is another's;
 * - SIGHUP: RELOADING=1 with a MONOTONIC_USEC= of this boot's clock, then READY=1;
 * - SIGTERM: STOPPING=1, nothing after it, exit 0; a start that fails sends no READY=1;
 * - an abstract (`@name`) socket works as a path does; the address of each, and what is refused.
 */

import assert from "node:assert/strict";
import { monotonicMicros, notifyAddress, ServiceNotifier } from "../src/ops/notify.ts";
import { freePort, ipcPath, sleep, until } from "../testing/net.ts";
import { Peers, syncUp } from "../testing/peers.ts";
import { AdaptorProcess } from "../testing/process.ts";
import { ROOT } from "../testing/process.ts";

interface Datagram {
  at: number;
  pid: number;
  fields: Record<string, string>;
  probe?: { ipc: boolean; tcp: boolean };
}

/** The manager's end: a python process bound to `address`, printing each datagram as JSON. */
class NotifyListener {
  readonly datagrams: Datagram[] = [];
  readonly #child: Deno.ChildProcess;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly #pump: Promise<void>;
  readonly listening: Promise<void>;

  constructor(address: string, ipc: string, port: number) {
    const child = new Deno.Command("python3", {
      args: [`${ROOT}testing/notify_listener.py`, address, ipc, String(port)],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.#child = child;
    this.#stdin = child.stdin.getWriter();
    const started = Promise.withResolvers<void>();
    this.listening = started.promise;
    this.#pump = (async () => {
      let rest = "";
      for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
        rest += chunk;
        let at: number;
        while ((at = rest.indexOf("\n")) >= 0) {
          const line = rest.slice(0, at);
          rest = rest.slice(at + 1);
          if (line === "listening") started.resolve();
          else this.datagrams.push(JSON.parse(line));
        }
      }
      started.reject(new Error("the notify listener ended before listening"));
    })();
  }

  /** Datagrams other than the watchdog's. */
  get states(): Datagram[] {
    return this.datagrams.filter((d) => !("WATCHDOG" in d.fields));
  }

  async waitFor(what: string, check: (d: Datagram) => boolean, ms = 10_000): Promise<Datagram> {
    await until(() => this.datagrams.some(check), `${what}; got ${JSON.stringify(this.states)}`, ms);
    return this.datagrams.find(check)!;
  }

  async close(): Promise<void> {
    await this.#stdin.close().catch(() => {});
    await this.#child.status;
    await this.#pump;
  }
}

function start(
  notifySocket: string,
  env: Record<string, string> = {},
  port = freePort(),
  flags: string[] = [],
) {
  const bind = ipcPath("notify");
  const listener = new NotifyListener(notifySocket, bind, port);
  const spawn = () =>
    new AdaptorProcess(["-b", `ipc://${bind}`, "-p", `tcp://127.0.0.1:${port}`, ...flags], {
      env: { NOTIFY_SOCKET: notifySocket, ...env },
    });
  return { bind, port, listener, spawn };
}

Deno.test("Type=notify: READY=1 when bound, STATUS= of the peers, WATCHDOG=1, RELOADING=1…READY=1, STOPPING=1", async () => {
  const socket = ipcPath("notify-socket");
  const { bind, port, listener, spawn } = start(socket, { WATCHDOG_USEC: "200000" });
  await listener.listening;
  const adaptor = spawn();
  const peers = new Peers();
  try {
    const ready = await listener.waitFor("READY=1", (d) => d.fields.READY === "1");
    // Nothing but the watchdog came before it; it came from the adaptor itself.
    assert.equal(listener.states[0], ready);
    assert.equal(ready.pid, adaptor.pid);
    assert.deepEqual(ready.probe, { ipc: true, tcp: true }, "the XSUB and XPUB accept when READY=1 is sent");
    assert.match(
      ready.fields.STATUS,
      /^bound, forwarding waits for a subscriber; 0 publishers, 0 subscribers$/,
    );
    // WATCHDOG_USEC/2: several in a second.
    await until(
      () => listener.datagrams.filter((d) => d.fields.WATCHDOG === "1").length >= 3,
      "3 WATCHDOG=1",
    );

    const sub = peers.subscriber(`tcp://127.0.0.1:${port}`, ["x."]);
    const pub = peers.publisher(`ipc://${bind}`);
    await syncUp([pub], [sub]);
    await listener.waitFor(
      "STATUS= with the peers",
      (d) => d.fields.STATUS === "forwarding; 1 publisher, 1 subscriber",
    );

    const before = listener.datagrams.length;
    adaptor.kill("SIGHUP");
    const reloading = await listener.waitFor("RELOADING=1", (d) => d.fields.RELOADING === "1");
    assert.ok(listener.datagrams.indexOf(reloading) >= before);
    const monotonic = Number(reloading.fields.MONOTONIC_USEC);
    assert.ok(
      monotonic > ready.at && monotonic <= reloading.at,
      `MONOTONIC_USEC=${monotonic}: this boot's clock`,
    );
    const reloaded = await listener.waitFor(
      "READY=1 after RELOADING=1",
      (d) => d.fields.READY === "1" && listener.datagrams.indexOf(d) > listener.datagrams.indexOf(reloading),
    );
    assert.equal(reloaded.fields.STATUS, "forwarding; 1 publisher, 1 subscriber");

    const { status } = await adaptor.stop("SIGTERM");
    assert.equal(status.code, 0);
    await sleep(300); // anything sent late would be here by now
    const stopping = listener.datagrams.findIndex((d) => d.fields.STOPPING === "1");
    assert.ok(stopping > 0, JSON.stringify(listener.states));
    assert.equal(listener.datagrams[stopping].fields.STATUS, "SIGTERM received, stopping");
    assert.equal(listener.datagrams.length, stopping + 1, "nothing after STOPPING=1 (no watchdog)");
    assert.equal(listener.datagrams.filter((d) => d.fields.READY === "1").length, 2);
  } finally {
    adaptor.kill("SIGKILL");
    await adaptor.exit();
    await peers.close();
    await listener.close();
  }
});

Deno.test("Type=notify: an abstract @socket works; no WATCHDOG=1 when WATCHDOG_PID is another process's", async () => {
  const socket = `@adaptor-notify-test-${Deno.pid}-${crypto.randomUUID()}`;
  const { listener, spawn } = start(socket, { WATCHDOG_USEC: "100000", WATCHDOG_PID: "1" }, undefined, [
    "--subscriber-wait",
    "0",
  ]);
  await listener.listening;
  const adaptor = spawn();
  try {
    const ready = await listener.waitFor("READY=1", (d) => d.fields.READY === "1");
    assert.deepEqual(ready.probe, { ipc: true, tcp: true });
    // No --subscriber-wait: forwarding from the start, and READY=1's STATUS= says so.
    assert.equal(ready.fields.STATUS, "forwarding; 0 publishers, 0 subscribers");
    await sleep(400);
    assert.equal(listener.datagrams.filter((d) => "WATCHDOG" in d.fields).length, 0);
    assert.equal((await adaptor.stop()).status.code, 0);
  } finally {
    adaptor.kill("SIGKILL");
    await adaptor.exit();
    await listener.close();
  }
});

Deno.test("Type=notify: a start that fails (the XPUB's port is taken) sends no READY=1", async () => {
  const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const socket = ipcPath("notify-socket");
  const { listener, spawn } = start(socket, {}, (busy.addr as Deno.NetAddr).port);
  await listener.listening;
  const adaptor = spawn();
  try {
    const status = await adaptor.exit();
    assert.equal(status.code, 1);
    await sleep(200);
    assert.deepEqual(listener.datagrams.filter((d) => d.fields.READY === "1"), []);
  } finally {
    busy.close();
    adaptor.kill("SIGKILL");
    await adaptor.exit();
    await listener.close();
  }
});

Deno.test("NOTIFY_SOCKET: a path NUL-terminated, @name abstract (a leading NUL, no terminator); anything else refused", () => {
  const path = notifyAddress("/run/systemd/notify")!;
  assert.equal(path.length, 2 + "/run/systemd/notify".length + 1);
  assert.deepEqual([...path.address.subarray(0, 2)], [1, 0]); // AF_UNIX, little-endian
  assert.equal(new TextDecoder().decode(path.address.subarray(2, path.length - 1)), "/run/systemd/notify");
  assert.equal(path.address[path.length - 1], 0);
  const abstract = notifyAddress("@adaptor/notify")!;
  assert.equal(abstract.length, 2 + "@adaptor/notify".length);
  assert.equal(abstract.address[2], 0);
  assert.equal(new TextDecoder().decode(abstract.address.subarray(3, abstract.length)), "adaptor/notify");
  // sun_path holds 108 bytes with the terminator; systemd's vsock: and relative paths are not ours.
  assert.ok(notifyAddress("/" + "x".repeat(106)));
  for (const bad of ["/" + "x".repeat(107), "", "@", "relative/notify", "vsock:2:1234"]) {
    assert.equal(notifyAddress(bad), undefined, bad);
  }
  const errors: string[] = [];
  const notifier = new ServiceNotifier(
    { NOTIFY_SOCKET: "vsock:2:1234", WATCHDOG_USEC: "1000000" },
    (e) => errors.push(e),
  );
  assert.equal(notifier.active, false);
  assert.equal(notifier.watchdogMs, undefined);
  assert.equal(notifier.send({ READY: 1 }), false);
  assert.deepEqual(errors, ["NOTIFY_SOCKET=vsock:2:1234 is not a unix socket"]);
  // Outside systemd: nothing at all.
  const none = new ServiceNotifier({});
  assert.equal(none.active, false);
  assert.equal(none.send({ READY: 1 }), false);
  // CLOCK_MONOTONIC, as systemd reads it: since boot, in microseconds.
  const uptime = Number(Deno.readTextFileSync("/proc/uptime").split(" ")[0]) * 1e6;
  assert.ok(Math.abs(Number(monotonicMicros()) - uptime) < 5e6, `${monotonicMicros()} vs uptime ${uptime}`);
});
