/**
 * The machine misbehaving under a running adaptor: its ipc directory removed, or made
 * unwritable, and its log destination full. Forwarding goes on, and the adaptor says what is
 * wrong (in the log, when the log can be written at all). And the limits of its environment: a
 * descriptor limit too low for the configuration is refused at start with one line; a file-size
 * limit makes writes fail (said in a line), never kills it.
 */

import assert from "node:assert/strict";
import { assertForwards } from "../testing/forwarding.ts";
import { exists, freePort, sleep, until } from "../testing/net.ts";
import { Peers, syncUp } from "../testing/peers.ts";
import { AdaptorProcess, ROOT, RUN_FLAGS, runAdaptor } from "../testing/process.ts";

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

/** The adaptor as `deno task start` runs it, under `prlimit` with `limits` (e.g. "--nofile=32"). */
const underLimits = (...limits: string[]) => [
  "prlimit",
  ...limits,
  "--",
  Deno.execPath(),
  "run",
  ...RUN_FLAGS,
  `${ROOT}src/main.ts`,
];

Deno.test("a descriptor limit too low for the configuration is refused at start: one line, exit 1, no file left", async () => {
  for (const nofile of [24, 32]) {
    const dir = ipcDir();
    try {
      const result = await runAdaptor(
        [
          "-b",
          `ipc://${dir}/q`,
          "-p",
          `tcp://127.0.0.1:${freePort()}`,
          "--metrics",
          `127.0.0.1:${freePort()}`,
        ],
        { command: underLimits(`--nofile=${nofile}`) },
      );
      const log = result.stderr.join("\n");
      assert.equal(result.code, 1, log);
      const errors = result.stderr.filter((l) => l.startsWith("adaptor: error:"));
      assert.equal(errors.length, 1, log);
      assert.match(
        errors[0],
        new RegExp(
          `the open-files limit \\(RLIMIT_NOFILE\\) is ${nofile}, below the \\d+ this configuration needs`,
        ),
      );
      assert.deepEqual([...Deno.readDirSync(dir)], [], "no socket or lock file may be left");
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  }
});

/** Runs the adaptor once without limits, so that the runtime's caches need no write under them. */
async function warmCaches(): Promise<void> {
  assert.equal((await runAdaptor(["--version"])).code, 0);
}

Deno.test("a file-size limit (prlimit --fsize=1): the pid that cannot be written is one warning, no SIGXFSZ", async () => {
  await warmCaches();
  const dir = ipcDir();
  const bind = `ipc://${dir}/q`;
  const publish = `tcp://127.0.0.1:${freePort()}`;
  const adaptor = new AdaptorProcess(["-b", bind, "-p", publish], { command: underLimits("--fsize=1") });
  try {
    await adaptor.ready();
    assert.match(
      await adaptor.waitFor(/\[WRN\].*cannot write the pid into lock file/),
      new RegExp(`lock file ${dir}/q\\.lock: file too large \\(the file-size limit, ulimit -f\\?\\)`),
    );
    await assertForwards({ publishTo: bind, subscribeTo: publish });
  } finally {
    const { status } = await adaptor.stop();
    assert.equal(status.code, 0, `${status.signal ?? ""}\n${adaptor.lines.join("\n")}`);
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("a log file at its size limit: lines that fail are counted and said once it was truncated; no SIGXFSZ", async () => {
  await warmCaches();
  const dir = ipcDir();
  const bind = `ipc://${dir}/q`;
  const publish = `tcp://127.0.0.1:${freePort()}`;
  const logFile = `${dir}/adaptor.log`;
  // stderr appended to a file of at most 512 bytes: the start-up lines already reach it.
  const command = ["sh", "-c", `exec "$@" 2>>${logFile}`, "sh", ...underLimits("--fsize=512")];
  const adaptor = new AdaptorProcess(["-b", bind, "-p", publish], { command });
  try {
    await until(() => exists(logFile) && Deno.statSync(logFile).size === 512, "the log file full");
    await assertForwards({ publishTo: bind, subscribeTo: publish });
    Deno.truncateSync(logFile, 0); // what logrotate's copytruncate does
    adaptor.kill("SIGHUP"); // a line to write, if the peers' leaving gave none
    await until(() => /log lines? (was|were) lost/.test(Deno.readTextFileSync(logFile)), "the loss said");
    const text = Deno.readTextFileSync(logFile);
    assert.match(
      text,
      /\[WRN\] adaptor: \d+ log lines? (was|were) lost: stderr could not be written \(File too large/,
    );
    await sleep(50);
    await assertForwards({ publishTo: bind, subscribeTo: publish });
  } finally {
    const { status } = await adaptor.stop();
    assert.equal(status.code, 0, `killed by ${status.signal}`);
    Deno.removeSync(dir, { recursive: true });
  }
});

/**
 * A memory control group of this process's hierarchy (v1 or v2) limited to `bytes`, and the
 * command that runs the adaptor inside it; undefined where none can be made here.
 */
function memoryCgroup(bytes: number): { command: string[]; remove: () => void } | undefined {
  const own = Deno.readTextFileSync("/proc/self/cgroup").split("\n");
  const v1 = own.map((l) => /^\d+:(?:[^:]*,)?memory(?:,[^:]*)?:(.*)$/.exec(l)?.[1]).find((p) => p);
  const [root, file, path] = v1 !== undefined
    ? ["/sys/fs/cgroup/memory", "memory.limit_in_bytes", v1]
    : ["/sys/fs/cgroup", "memory.max", own.find((l) => l.startsWith("0::"))?.slice(3)];
  if (path === undefined) return undefined;
  const dir = `${root}${path === "/" ? "" : path}/adaptor-test-${Deno.pid}-${bytes}`;
  try {
    Deno.mkdirSync(dir);
    Deno.writeTextFileSync(`${dir}/${file}`, String(bytes));
  } catch {
    try {
      Deno.removeSync(dir);
    } catch {
      // never made
    }
    return undefined;
  }
  const command = ["sh", "-c", `echo $$ > ${dir}/cgroup.procs && exec "$@"`, "sh", ...underLimits()];
  return { command, remove: () => Deno.removeSync(dir) };
}

const probeGroup = memoryCgroup(2 ** 30);
probeGroup?.remove();

Deno.test({
  name: "a memory limit (cgroup, MemoryMax=) below what the queues may hold is warned about at start" +
    (probeGroup ? "" : " (skipped: no memory control group can be made here)"),
  ignore: !probeGroup,
  fn: async () => {
    // The defaults' main channel: 64 MiB + (10 000 + 10 000) x 64 KiB = 1314 MiB.
    for (const [limit, warned] of [[1024, true], [1536, false]] as const) {
      const group = memoryCgroup(limit * 2 ** 20)!;
      const dir = ipcDir();
      const adaptor = new AdaptorProcess(["-b", `ipc://${dir}/q`, "-p", `tcp://127.0.0.1:${freePort()}`], {
        command: group.command,
      });
      try {
        await adaptor.ready();
        const lines = adaptor.lines.filter((l) => /\[WRN\].*the queues may hold/.test(l));
        assert.equal(lines.length, warned ? 1 : 0, adaptor.lines.join("\n"));
        if (warned) {
          assert.match(lines[0], /may hold 1314 MiB .*above this process's memory limit of 1024 MiB/);
        }
      } finally {
        assert.equal((await adaptor.stop()).status.code, 0);
        group.remove();
        Deno.removeSync(dir, { recursive: true });
      }
    }
  },
});
