import assert from "node:assert/strict";
import { cannotWriteDirectory, groupId, setUmask, trimMalloc } from "../src/libc.ts";
import { freePort, sleep } from "./support/net.ts";
import { Peers } from "./support/peers.ts";
import { ZMQ_RCVHWM, ZMQ_SUB, ZMQ_SUBSCRIBE } from "../src/zmq.ts";

const anonKiB = () => Number(/RssAnon:\s+(\d+)/.exec(Deno.readTextFileSync("/proc/self/status"))![1]);

Deno.test("cannotWriteDirectory: a writable directory passes, a missing one says why", () => {
  const dir = Deno.makeTempDirSync();
  try {
    assert.equal(cannotWriteDirectory(dir), undefined);
    assert.equal(cannotWriteDirectory(`${dir}/missing`), "no such file or directory");
  } finally {
    Deno.removeSync(dir);
  }
});

// Whether glibc keeps freed pages depends on the allocation pattern (in the adaptor, after a
// burst, it kept 41 of 46 MiB until trimmed: docs/reliability.md); so this checks the outcome.
Deno.test("after trimMalloc, a queue libzmq freed no longer counts in RSS", async () => {
  const peers = new Peers();
  const port = freePort();
  const pub = peers.publisher(`tcp://127.0.0.1:${port}`, true);
  // A subscriber that never reads: libzmq's I/O thread queues everything for it.
  const sub = peers.socket(ZMQ_SUB);
  sub.setInt(ZMQ_RCVHWM, 0);
  sub.setBytes(ZMQ_SUBSCRIBE, "");
  sub.connect(`tcp://127.0.0.1:${port}`);
  await sleep(200);
  const message = new Uint8Array(200).fill(113); // one buffer: no garbage on the JS heap
  for (let sent = 0; sent < 150_000;) {
    if (pub.socket.trySend(message)) sent++;
    else await sleep(1);
  }
  await sleep(500);
  const queued = anonKiB();
  sub.close();
  await sleep(500);
  const freed = anonKiB();
  assert.ok(await trimMalloc(), "glibc's malloc_trim is available here");
  const trimmed = anonKiB();
  await peers.close();
  assert.ok(trimmed <= freed + 1024, `RSS grew on trimming: ${freed} -> ${trimmed} KiB`);
  assert.ok(queued - trimmed > 25_000, `only ${queued - trimmed} KiB of a ~35 MiB queue went back`);
});

Deno.test("groupId resolves groups through the C library (NSS), null for none; setUmask returns the old mask", () => {
  assert.equal(groupId("root"), 0);
  const line = Deno.readTextFileSync("/etc/group").split("\n").find((l) => l.startsWith("www-data:"));
  if (line) assert.equal(groupId("www-data"), Number(line.split(":")[2]));
  assert.equal(groupId("no-such-group-here"), null);
  const before = setUmask(0o077)!;
  try {
    assert.equal(setUmask(0o027), 0o077);
  } finally {
    setUmask(before);
  }
});
