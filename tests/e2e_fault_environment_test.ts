/**
 * The machine misbehaving under a running adaptor: its ipc directory removed, or made
 * unwritable, and its log destination full. Forwarding goes on, and the adaptor says what is
 * wrong (in the log, when the log can be written at all).
 */

import assert from "node:assert/strict";
import { assertForwards } from "./support/forwarding.ts";
import { freePort } from "./support/net.ts";
import { Peers, syncUp } from "./support/peers.ts";
import { AdaptorProcess, ROOT, RUN_FLAGS, runAdaptor } from "./support/process.ts";

/** A fresh directory for an ipc socket file. */
const ipcDir = () => Deno.makeTempDirSync({ prefix: "adaptor-ipc-" });

/** A running adaptor with a publisher and a subscriber already connected and synced. */
async function withConnectedPeers(
  bind: string,
  body: (
    adaptor: AdaptorProcess,
    sendAndCheck: (n: number) => Promise<void>,
    publish: string,
  ) => Promise<void>,
): Promise<AdaptorProcess> {
  const publish = `tcp://127.0.0.1:${freePort()}`;
  const adaptor = new AdaptorProcess(["-b", bind, "-p", publish]);
  const peers = new Peers();
  try {
    await adaptor.ready();
    const sub = peers.subscriber(publish, ["kept."]);
    const pub = peers.publisher(bind);
    await syncUp([pub], [sub]);
    let sent = 0;
    const sendAndCheck = async (n: number) => {
      await pub.sendAll(n, () => `kept.${sent++}`);
      await sub.expect(sent);
      assert.equal(sub.messages.length, sent);
    };
    await body(adaptor, sendAndCheck, publish);
  } finally {
    await peers.close();
    const { status } = await adaptor.stop();
    assert.equal(status.code, 0, adaptor.lines.join("\n"));
  }
  return adaptor;
}

Deno.test("ipc directory removed while running: connected publishers keep forwarding, the adaptor says so", async () => {
  const dir = ipcDir();
  const path = `${dir}/q`;
  const adaptor = await withConnectedPeers(`ipc://${path}`, async (adaptor, sendAndCheck) => {
    await sendAndCheck(100);
    Deno.removeSync(dir, { recursive: true });
    await adaptor.waitFor(
      new RegExp(`WRN.*socket file ${path} is gone \\(its directory ${dir} was removed\\)`),
    );
    await sendAndCheck(500);
  });
  assert.ok(!adaptor.lines.some((l) => l.includes("cannot remove")), "a file already gone is no problem");
});

/** Makes `dir` unwritable for this process (root too, where chattr works); undefined if it cannot. */
function makeUnwritable(dir: string): (() => void) | undefined {
  const run = (...args: string[]) => {
    try {
      return new Deno.Command(args[0], { args: args.slice(1), stderr: "null", stdout: "null" }).outputSync()
        .success;
    } catch {
      return false;
    }
  };
  if (Deno.uid() !== 0) {
    Deno.chmodSync(dir, 0o555);
    return () => Deno.chmodSync(dir, 0o755);
  }
  // Root ignores mode bits; an immutable directory stops even root (ext2/3/4, xfs, btrfs).
  if (!run("chattr", "+i", dir)) return undefined;
  return () => void run("chattr", "-i", dir);
}

const probeDir = ipcDir();
const probe = makeUnwritable(probeDir);
probe?.();
Deno.removeSync(probeDir);

Deno.test({
  name: "ipc directory made unwritable while running: forwarding goes on, the adaptor says so" +
    (probe ? "" : " (skipped: cannot make a directory unwritable here: root without chattr)"),
  ignore: !probe,
  fn: async () => {
    const dir = ipcDir();
    const path = `${dir}/q`;
    let restore: (() => void) | undefined;
    try {
      const adaptor = await withConnectedPeers(`ipc://${path}`, async (adaptor, sendAndCheck, publish) => {
        await sendAndCheck(100);
        restore = makeUnwritable(dir);
        await adaptor.waitFor(new RegExp(`WRN.*directory ${dir} is no longer writable`));
        await sendAndCheck(500);
        // Connecting needs no write permission on the directory: new publishers still come in.
        await assertForwards({ publishTo: `ipc://${path}`, subscribeTo: publish });
      });
      assert.ok(
        adaptor.lines.some((l) => l.includes(`cannot remove socket file ${path}`)),
        adaptor.lines.join("\n"),
      );
      restore?.();
      restore = undefined;
      // What it left behind is stale: the next start binds over it.
      const next = new AdaptorProcess(["-b", `ipc://${path}`, "-p", `tcp://127.0.0.1:${freePort()}`]);
      await next.ready();
      assert.ok(next.lines.some((l) => l.includes(`Replacing stale socket file ${path}`)));
      assert.equal((await next.stop()).status.code, 0);
    } finally {
      restore?.();
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

/** The adaptor with its stderr on /dev/full: every log write fails with ENOSPC. */
const onFullDisk = [
  "sh",
  "-c",
  'exec "$@" 2>/dev/full',
  "sh",
  Deno.execPath(),
  "run",
  ...RUN_FLAGS,
  `${ROOT}src/main.ts`,
];

Deno.test("logs on a full disk (stderr is /dev/full): forwarding and exit codes are unaffected", async () => {
  const dir = ipcDir();
  const bind = `ipc://${dir}/q`;
  const publish = `tcp://127.0.0.1:${freePort()}`;
  // -d: a log line for every socket event and message, all of them failing.
  const adaptor = new AdaptorProcess(["-b", bind, "-p", publish, "-d"], { command: onFullDisk });
  try {
    await assertForwards({ publishTo: bind, subscribeTo: publish }, 1000);
    await assertForwards({ publishTo: bind, subscribeTo: publish }, 1000);
  } finally {
    const { status } = await adaptor.stop();
    assert.equal(status.code, 0);
    Deno.removeSync(dir, { recursive: true });
  }
  const usage = await runAdaptor(["--bogus"], { command: onFullDisk });
  assert.equal(usage.code, 2);
});
