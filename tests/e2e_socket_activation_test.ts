/**
 * systemd's socket activation (scripts/adaptor.socket): the adaptor binds the XSUB on the
 * listening socket the unit passes (LISTEN_FDS), which outlives each adaptor process. While it
 * restarts, the gateway's workers connect into the socket's queue instead of being refused and
 * waiting out their reconnect interval, so their queues (SNDHWM 1000 with CZMQ 3) last out the
 * restart. testing/socket_unit.py plays systemd: it holds the socket and hands it over as
 * systemd does (descriptor 3, LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES).
 */

import assert from "node:assert/strict";
import { freePort, ipcPath, sleep, until } from "../testing/net.ts";
import { Peers, syncUp } from "../testing/peers.ts";
import { AdaptorProcess, ROOT, runAdaptor } from "../testing/process.ts";
import { Czmq3Publisher, hasPyzmq } from "../testing/czmq3.ts";
import { SocketUnit } from "../testing/socket_unit.ts";

/** The adaptor as the unit starts it: scripts/start.sh with the unit's socket. */
function activated(unit: SocketUnit, args: string[]): AdaptorProcess {
  return new AdaptorProcess(args, {
    command: unit.service([`${ROOT}scripts/start.sh`]),
    env: { DENO: Deno.execPath() },
  });
}

Deno.test({
  name:
    "socket activation: restarts by SIGKILL, SIGTERM, SIGKILL under the gateway's publisher (SNDHWM 1000, 3 000 events/s) lose nothing",
  ignore: !hasPyzmq,
  async fn() {
    // 1000 queued events last a worker 333 ms at this rate: less than its reconnect interval
    // (100-200 ms) and a bind that comes after it (another 100-200 ms), more than a restart.
    const rate = 3000;
    const unit = new SocketUnit(`ipc://${ipcPath("activated")}`);
    const args = ["-b", unit.endpoint, "-p", `tcp://127.0.0.1:${freePort()}`];
    const peers = new Peers();
    const adaptors: AdaptorProcess[] = [];
    let publisher: Czmq3Publisher | undefined;
    try {
      await unit.listening;
      adaptors.push(activated(unit, args));
      await adaptors[0].ready();
      assert.ok(
        adaptors[0].lines.some((l) =>
          l.includes(`XSUB bound on the socket systemd passed at ${unit.endpoint}`)
        ),
        adaptors[0].lines.join("\n"),
      );
      const sub = peers.subscriber(args[3], ["ev."]);
      publisher = new Czmq3Publisher(args[1], rate);
      await until(() => sub.messages.length > 0, "the first event", 10_000);
      await sleep(500);
      for (const signal of ["SIGKILL", "SIGTERM", "SIGKILL"] as const) {
        const { status } = await adaptors.at(-1)!.stop(signal);
        if (signal === "SIGTERM") assert.equal(status.code, 0, adaptors.at(-1)!.lines.join("\n"));
        adaptors.push(activated(unit, args)); // at once, as systemd's Restart= would
        await adaptors.at(-1)!.ready();
        await sleep(700);
      }
      const { published, lost } = await publisher.stopAndCount(() => sub.texts());
      publisher = undefined;
      console.log(
        `3 restarts on a passed socket at ${rate}/s: ${published} published, ${lost.length} lost`,
      );
      assert.ok(published > rate * 3, `only ${published} published`);
      // What may go: what a killed adaptor had read and not yet passed on (its socket buffers).
      assert.ok(
        lost.length <= 60,
        `${lost.length} of ${published} events lost (first: ${lost.slice(0, 5)})`,
      );
    } finally {
      publisher?.kill();
      await peers.close();
      for (const adaptor of adaptors) await adaptor.stop();
      await unit.close();
    }
  },
});

Deno.test("socket activation: a passed socket no endpoint binds is refused in one line, exit 2", async () => {
  const unit = new SocketUnit(`ipc://${ipcPath("activated-other")}`);
  try {
    await unit.listening;
    const bind = `ipc://${ipcPath("activated-mine")}`;
    const { code, stderr } = await runAdaptor(["-b", bind, "-p", `tcp://127.0.0.1:${freePort()}`], {
      command: unit.service([Deno.execPath(), "run", "-A", `${ROOT}src/main.ts`]),
    });
    assert.equal(code, 2, stderr.join("\n"));
    assert.equal(stderr.length, 1, stderr.join("\n"));
    assert.match(
      stderr[0],
      new RegExp(`systemd passed a socket listening on ${unit.endpoint} \\(descriptor 3\\)`),
    );
    assert.ok(!(await Deno.stat(bind.slice("ipc://".length)).catch(() => undefined)), "nothing was bound");
  } finally {
    await unit.close();
  }
});

Deno.test("socket activation: sockets meant for another process (LISTEN_PID) are not taken", async () => {
  const bind = `ipc://${ipcPath("activated-pid")}`;
  const adaptor = new AdaptorProcess(["-b", bind, "-p", `tcp://127.0.0.1:${freePort()}`], {
    env: { LISTEN_PID: "1", LISTEN_FDS: "1" },
  });
  try {
    await adaptor.ready();
    assert.ok(adaptor.lines.some((l) => l.includes(`XSUB bound ${bind}`)), adaptor.lines.join("\n"));
  } finally {
    await adaptor.stop();
  }
});

Deno.test("socket activation: two sockets passed (the XSUB's and the XPUB's), each bound by its endpoint; a filter a killed adaptor left is lifted", async () => {
  const port = freePort();
  const bind = `ipc://${ipcPath("activated-two")}`;
  // The filter drops every SYN: subscribers could not connect while it stays.
  const unit = new SocketUnit(`${bind},tcp://127.0.0.1:${port}`, { dropAll: true });
  const peers = new Peers();
  let adaptor: AdaptorProcess | undefined;
  try {
    await unit.listening;
    adaptor = new AdaptorProcess(["-b", bind, "-p", `tcp://127.0.0.1:${port}`], {
      command: unit.service([Deno.execPath(), "run", "-A", `${ROOT}src/main.ts`]),
    });
    await adaptor.ready();
    for (const [socket, endpoint] of [["XSUB", bind], ["XPUB", `tcp://127.0.0.1:${port}`]]) {
      assert.ok(
        adaptor.lines.some((l) => l.includes(`${socket} bound on the socket systemd passed at ${endpoint}`)),
        adaptor.lines.join("\n"),
      );
    }
    const sub = peers.subscriber(`tcp://127.0.0.1:${port}`, ["ev."]);
    const worker = peers.publisher(bind);
    await syncUp([worker], [sub], 5000); // an event through the passed sockets
    await worker.sendAll(10, (i) => `ev.${i}`);
    await sub.expect(10);
  } finally {
    await peers.close();
    await adaptor?.stop();
    await unit.close();
  }
});

Deno.test("socket activation: a LISTEN_FDS that is not a count, or a descriptor that is no listener, is one line, exit 2", async () => {
  const args = ["-b", `ipc://${ipcPath("activated-bad")}`, "-p", `tcp://127.0.0.1:${freePort()}`];
  // LISTEN_PID must be the adaptor's own pid: the shell's, which exec keeps.
  const run = (fds: string, redirect = "") =>
    runAdaptor(args, {
      command: [
        "/bin/sh",
        "-c",
        `LISTEN_PID=$$ LISTEN_FDS='${fds}' exec "$0" run -A "$@" ${redirect}`,
        Deno.execPath(),
        `${ROOT}src/main.ts`,
      ],
    });
  for (
    const [fds, redirect, expected] of [
      ["two", "", /LISTEN_FDS: 'two' is not a count of passed sockets/],
      ["1", "3</dev/null", /LISTEN_FDS: descriptor 3 is not a socket/],
    ] as const
  ) {
    const { code, stderr } = await run(fds, redirect);
    assert.equal(code, 2, stderr.join("\n"));
    assert.equal(stderr.length, 1, stderr.join("\n"));
    assert.match(stderr[0], expected);
  }
});

Deno.test("socket activation: the passed socket's file is watched, and left in place at stop", async () => {
  const unit = new SocketUnit(`ipc://${ipcPath("activated-watch")}`);
  const path = unit.endpoint.slice("ipc://".length);
  let adaptor: AdaptorProcess | undefined;
  try {
    await unit.listening;
    adaptor = new AdaptorProcess(["-b", unit.endpoint, "-p", `tcp://127.0.0.1:${freePort()}`], {
      command: unit.service([Deno.execPath(), "run", "-A", `${ROOT}src/main.ts`]),
    });
    await adaptor.ready();
    const { status } = await adaptor.stop();
    assert.equal(status.code, 0);
    assert.ok(Deno.lstatSync(path).isSocket, "the unit's socket file is still there");
    adaptor = new AdaptorProcess(["-b", unit.endpoint, "-p", `tcp://127.0.0.1:${freePort()}`], {
      command: unit.service([Deno.execPath(), "run", "-A", `${ROOT}src/main.ts`]),
    });
    await adaptor.ready();
    Deno.removeSync(path);
    await adaptor.waitFor(/socket file .* is gone \(it was removed\).*until its socket unit is restarted/);
  } finally {
    await adaptor?.stop();
    await unit.close().catch(() => {});
  }
});
