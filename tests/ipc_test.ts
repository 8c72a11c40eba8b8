import assert from "node:assert/strict";
import { StartupError } from "../src/errors.ts";
import { checkIpcPath } from "../src/ipc/path_check.ts";
import {
  bindProtected,
  describeSocketFile,
  ownSocketFile,
  removeOwnedFile,
  type SocketFileState,
  watchSocketFiles,
} from "../src/ipc/socket_file.ts";
import { ZMQ_LINGER, ZMQ_XSUB } from "../src/zmq/constants.ts";
import { Context } from "../src/zmq/socket.ts";
import { exists, ipcPath, sleep, until } from "../testing/net.ts";

Deno.test("checkIpcPath: absent, live, stale, not a socket, missing directory", async () => {
  const path = ipcPath("guard");
  assert.equal(await checkIpcPath(path, "-b"), "absent");

  const ctx = new Context();
  const socket = ctx.socket(ZMQ_XSUB);
  socket.setInt(ZMQ_LINGER, 0);
  socket.bind(`ipc://${path}`);
  await assert.rejects(
    checkIpcPath(path, "-b"),
    (e: unknown) => e instanceof StartupError && /another process/.test(e.message),
  );
  const owned = ownSocketFile(path)!;
  socket.close();
  await ctx.terminate();

  // libzmq 4.3.5 leaves the file on close: now it is stale.
  if (exists(path)) assert.equal(await checkIpcPath(path, "-b"), "stale");
  const wasThere = exists(path);
  assert.equal(removeOwnedFile(owned), wasThere);
  assert.ok(!exists(path));

  Deno.writeTextFileSync(path, "x");
  await assert.rejects(checkIpcPath(path, "-b"), /not a socket/);
  Deno.removeSync(path);
  await assert.rejects(checkIpcPath("/no/such/dir/q", "-b"), /directory \/no\/such\/dir does not exist/);
});

Deno.test("removeOwnedFile leaves a file that another process bound since, even on our inode number", () => {
  const path = ipcPath("owned");
  Deno.writeTextFileSync(path, "ours");
  const owned = ownSocketFile(path)!;
  Deno.removeSync(path);
  nextMillisecond();
  // ext4 and tmpfs hand a freed inode number to the next file: often this one gets ours back.
  Deno.writeTextFileSync(path, "theirs");
  try {
    const info = Deno.lstatSync(path);
    // Only without a birth time (statx) can a reused inode pass for ours.
    const indistinguishable = info.ino === owned.ino && info.birthtime === null;
    assert.equal(removeOwnedFile(owned), indistinguishable);
    if (!indistinguishable) {
      assert.ok(exists(path));
      assert.equal(describeSocketFile(owned).state, "replaced");
    }
  } finally {
    if (exists(path)) Deno.removeSync(path);
  }
});

Deno.test("describeSocketFile: ok, removed with its directory, replaced by another file", () => {
  const dir = Deno.makeTempDirSync({ prefix: "adaptor-ipc-" });
  const path = `${dir}/q`;
  try {
    Deno.writeTextFileSync(path, "stands in for a socket file");
    const owned = ownSocketFile(path)!;
    assert.equal(describeSocketFile(owned).state, "ok");
    Deno.removeSync(path);
    nextMillisecond();
    Deno.writeTextFileSync(path, "another inode");
    assert.equal(describeSocketFile(owned).state, "replaced");
    Deno.removeSync(dir, { recursive: true });
    const gone = describeSocketFile(owned);
    assert.equal(gone.state, "removed");
    assert.match(gone.text, /its directory .* was removed/);
  } finally {
    try {
      Deno.removeSync(dir, { recursive: true });
    } catch {
      // removed by the test
    }
  }
});

Deno.test("watchSocketFiles (timer) reports a removal, then a replacement, once each", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "adaptor-watch-" });
  const path = `${dir}/q`;
  const listener = Deno.listen({ transport: "unix", path });
  const changes: SocketFileState[] = [];
  const watch = watchSocketFiles([ownSocketFile(path)!], (_file, state) => changes.push(state), {
    events: false,
    fallbackMs: 20,
  });
  try {
    assert.equal(watch.mode, "timer");
    await sleep(100);
    assert.equal(changes.length, 0, "nothing happened yet");
    listener.close(); // removes the file
    if (exists(path)) Deno.removeSync(path);
    await until(() => changes.includes("removed"), `removal reported (got ${changes})`, 2000);
    // Another file takes the path (made aside first, so it cannot reuse our inode number).
    Deno.writeTextFileSync(`${dir}/other`, "");
    Deno.renameSync(`${dir}/other`, path);
    await until(() => changes.includes("replaced"), `replacement reported (got ${changes})`, 2000);
    await sleep(100);
    assert.deepEqual(changes, ["removed", "replaced"]);
  } finally {
    await watch.stop();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("watchSocketFiles (events) reports a removal and a replacement at once, once each", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "adaptor-watch-" });
  const [removed, replaced] = [`${dir}/removed`, `${dir}/replaced`];
  const listeners = [removed, replaced].map((path) => Deno.listen({ transport: "unix", path }));
  const changes: string[] = [];
  // A sweep of an hour: whatever is reported within the test came from the kernel.
  const watch = watchSocketFiles(
    [ownSocketFile(removed)!, ownSocketFile(replaced)!],
    (file, state) => changes.push(`${file.path}: ${state}`),
    { sweepMs: 3_600_000 },
  );
  try {
    assert.equal(watch.mode, "events", "inotify should be usable on this Linux host");
    await sleep(100);
    assert.equal(changes.length, 0, "nothing happened yet");
    Deno.removeSync(removed);
    await until(() => changes.length === 1, `removal reported (got ${changes})`, 2000);
    // Another file renamed over it, as a second process would take the path.
    Deno.writeTextFileSync(`${dir}/other`, "");
    Deno.renameSync(`${dir}/other`, replaced);
    await until(() => changes.length === 2, `replacement reported (got ${changes})`, 2000);
    await sleep(100);
    assert.deepEqual(changes, [`${removed}: removed`, `${replaced}: replaced`]);
  } finally {
    await watch.stop();
    listeners.forEach((l) => l.close());
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("watchSocketFiles (events): activity beside the socket file does not wake it", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "adaptor-watch-" });
  const path = `${dir}/q`;
  const listener = Deno.listen({ transport: "unix", path });
  let checks = 0;
  const file = ownSocketFile(path)!;
  const watch = watchSocketFiles([file], () => {}, { sweepMs: 3_600_000, settleMs: 0 });
  // Count the checks through the file's stat: describeSocketFile is what a wake-up runs.
  const lstat = Deno.lstatSync;
  Deno.lstatSync = (p: string | URL) => (p === path && checks++, lstat(p));
  try {
    for (let i = 0; i < 50; i++) Deno.writeTextFileSync(`${dir}/other-${i}`, "x"); // a busy /tmp
    const peer = await Deno.connect({ transport: "unix", path }); // publishers connecting
    peer.close();
    await sleep(200);
    assert.equal(checks, 0, "the watch looked at the file although nothing happened to it");
  } finally {
    Deno.lstatSync = lstat;
    await watch.stop();
    listener.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("watchSocketFiles (events): the removal of the whole directory is reported at once, as such", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "adaptor-watch-" });
  const path = `${dir}/q`;
  const listener = Deno.listen({ transport: "unix", path });
  const texts: string[] = [];
  const watch = watchSocketFiles([ownSocketFile(path)!], (_file, _state, text) => texts.push(text), {
    sweepMs: 3_600_000,
  });
  try {
    assert.equal(watch.mode, "events");
    // As `rm -r` does it: the entry first, then the directory, microseconds apart.
    Deno.removeSync(dir, { recursive: true });
    await until(() => texts.length > 0, "removal reported", 2000);
    await sleep(200);
    assert.deepEqual(texts.length, 1, texts.join("\n"));
    assert.match(texts[0], new RegExp(`is gone \\(its directory ${dir} was removed\\)`));
  } finally {
    listener.close();
    await watch.stop();
  }
});

Deno.test("watchSocketFiles: stop() ends the kernel wait and closes its descriptors", async () => {
  const fds = () => [...Deno.readDirSync("/proc/self/fd")].length;
  const dir = Deno.makeTempDirSync({ prefix: "adaptor-watch-" });
  const listener = Deno.listen({ transport: "unix", path: `${dir}/q` });
  try {
    const before = fds();
    const watch = watchSocketFiles([ownSocketFile(`${dir}/q`)!], () => {}, { sweepMs: 3_600_000 });
    assert.equal(watch.mode, "events");
    assert.equal(fds(), before + 3, "an inotify descriptor and a pipe");
    // The blocking poll(2) must return: a stop() that hung would hang the adaptor's shutdown.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<string>((resolve) => timer = setTimeout(() => resolve("hung"), 2000));
    assert.equal(await Promise.race([watch.stop().then(() => "stopped"), late]), "stopped");
    clearTimeout(timer);
    await watch.stop(); // twice is fine
    assert.equal(fds(), before);
  } finally {
    listener.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

/** Waits until the clock has moved on by 2 ms: Deno reports birth times to the millisecond. */
/**
 * Waits until a file made now gets a later birth time than one made before the call. File
 * times come from the kernel's coarse clock, which advances a jiffy at a time (1–10 ms), so
 * 2 ms was not always enough (a clean-clone CI run met an equal birth time): 25 ms is.
 */
function nextMillisecond(): void {
  const until = performance.now() + 25;
  while (performance.now() < until) {
    // spin: the tests around it are synchronous
  }
}

Deno.test("bindProtected: a socket file swapped for a symbolic link right after the bind is refused, its target untouched", () => {
  const dir = Deno.makeTempDirSync();
  const path = `${dir}/q`;
  const target = `${dir}/root-only`;
  Deno.writeTextFileSync(target, "secret\n", { mode: 0o600 });
  let listener: Deno.Listener | undefined;
  try {
    // What another user who may write to the directory does between the bind and the chmod.
    const bindThenSwap = () => {
      listener = Deno.listen({ transport: "unix", path });
      Deno.removeSync(path);
      Deno.symlinkSync(target, path);
    };
    assert.throws(
      () => bindProtected(bindThenSwap, path, { mode: 0o666, gid: 33 }, "-b"),
      (e: unknown) => e instanceof StartupError && /replaced right after the bind/.test(e.message),
    );
    const info = Deno.statSync(target);
    assert.equal(info.mode! & 0o7777, 0o600, "the target's mode was changed");
    assert.equal(info.gid, Deno.gid(), "the target's group was changed");
  } finally {
    listener?.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("bindProtected gives the socket file its group and mode", () => {
  const dir = Deno.makeTempDirSync();
  const path = `${dir}/q`;
  let listener: Deno.Listener | undefined;
  try {
    bindProtected(
      () => listener = Deno.listen({ transport: "unix", path }),
      path,
      { mode: 0o660, gid: 33 },
      "-b",
    );
    const info = Deno.lstatSync(path);
    assert.ok(info.isSocket);
    assert.equal(info.mode! & 0o7777, 0o660);
    assert.equal(info.gid, 33);
  } finally {
    listener?.close();
    Deno.removeSync(dir, { recursive: true });
  }
});
