import assert from "node:assert/strict";
import { StartupError } from "../src/errors.ts";
import {
  checkIpcPath,
  describeSocketFile,
  ownSocketFile,
  removeOwnedFile,
  type SocketFileState,
  watchSocketFiles,
} from "../src/ipc.ts";
import { Context, ZMQ_LINGER, ZMQ_XSUB } from "../src/zmq.ts";
import { exists, ipcPath, sleep, until } from "./support/net.ts";

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

Deno.test("watchSocketFiles reports a removal, then a replacement, once each", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "adaptor-watch-" });
  const path = `${dir}/q`;
  const listener = Deno.listen({ transport: "unix", path });
  const changes: SocketFileState[] = [];
  const watch = watchSocketFiles([ownSocketFile(path)!], (_file, state) => changes.push(state), 20);
  try {
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
    watch.stop();
    Deno.removeSync(dir, { recursive: true });
  }
});

/** Waits until the clock has moved on by 2 ms: Deno reports birth times to the millisecond. */
function nextMillisecond(): void {
  const until = performance.now() + 2;
  while (performance.now() < until) {
    // spin: the tests around it are synchronous
  }
}
