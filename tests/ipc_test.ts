import assert from "node:assert/strict";
import { StartupError } from "../src/errors.ts";
import { checkIpcPath, describeSocketFile, ownSocketFile, removeOwnedFile } from "../src/ipc.ts";
import { Context, ZMQ_LINGER, ZMQ_XSUB } from "../src/zmq.ts";
import { exists, ipcPath } from "./support/net.ts";

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

Deno.test("removeOwnedFile leaves a file that another process bound since", () => {
  const path = ipcPath("owned");
  Deno.writeTextFileSync(path, "ours");
  const owned = ownSocketFile(path)!;
  Deno.removeSync(path);
  Deno.writeTextFileSync(path, "theirs, a new inode");
  try {
    const stillOurs = Deno.lstatSync(path).ino === owned.ino;
    assert.equal(removeOwnedFile(owned), stillOurs);
    if (!stillOurs) assert.ok(exists(path));
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
    Deno.writeTextFileSync(path, "another inode");
    if (Deno.lstatSync(path).ino !== owned.ino) assert.equal(describeSocketFile(owned).state, "replaced");
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
