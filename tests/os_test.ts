import assert from "node:assert/strict";
import { groupId } from "../src/os/accounts.ts";
import { fileLimit, openDescriptors, raiseFileLimit } from "../src/os/descriptors.ts";
import { cannotWriteDirectory, setUmask } from "../src/os/files.ts";
import { libcLoader, readProcFile } from "../src/os/libc.ts";
import { lockFile, probeLock } from "../src/os/lock.ts";
import { trimMalloc } from "../src/os/memory.ts";
import { listeningEndpoint, probeUnixSocket, tcpRoundTripMs } from "../src/os/sockets.ts";
import { freePort, sleep } from "../testing/net.ts";
import { Peers } from "../testing/peers.ts";
import { ZMQ_RCVHWM, ZMQ_SUB, ZMQ_SUBSCRIBE } from "../src/zmq/constants.ts";

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

/** The "Max open files" soft and hard limits, as the kernel shows them. */
function procFileLimit(): { soft: number; hard: number } {
  const line = Deno.readTextFileSync("/proc/self/limits").split("\n").find((l) =>
    l.startsWith("Max open files")
  )!;
  const [soft, hard] = line.replace("Max open files", "").trim().split(/\s+/).map(Number);
  return { soft, hard };
}

Deno.test("raiseFileLimit: a soft RLIMIT_NOFILE below the hard one is raised to it", () => {
  const original = procFileLimit();
  assert.deepEqual(fileLimit(), original);
  // Lower this test process's soft limit (the runner's own descriptors stay far below 256).
  const libc = libcLoader({ setrlimit: { parameters: ["i32", "buffer"], result: "i32" } })()!;
  assert.equal(libc.setrlimit(7, new BigUint64Array([256n, BigInt(original.hard)])), 0);
  try {
    assert.deepEqual(procFileLimit(), { soft: 256, hard: original.hard });
    const result = raiseFileLimit()!;
    assert.deepEqual(result, {
      before: { soft: 256, hard: original.hard },
      after: { soft: original.hard, hard: original.hard },
      raised: true,
    });
    assert.deepEqual(procFileLimit(), { soft: original.hard, hard: original.hard });
    // Already at the hard limit: nothing to do.
    assert.deepEqual(raiseFileLimit(), { before: result.after, after: result.after, raised: false });
  } finally {
    libc.setrlimit(7, new BigUint64Array([BigInt(original.soft), BigInt(original.hard)]));
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

Deno.test("probeLock: absent (and not created), free (and left as it was), held; never takes it for good", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const path = `${dir}/q.lock`;
    assert.equal(probeLock(path), "absent");
    assert.deepEqual([...Deno.readDirSync(dir)], [], "probeLock created the file");
    Deno.writeTextFileSync(path, "1\n");
    assert.equal(probeLock(path), "free");
    assert.equal(Deno.readTextFileSync(path), "1\n");
    const lock = lockFile(path);
    assert.ok(lock && "release" in lock);
    assert.equal(probeLock(path), "held");
    lock.release();
    assert.equal(probeLock(path), "absent");
    // After a probe, the lock can still be taken.
    Deno.writeTextFileSync(path, "");
    assert.equal(probeLock(path), "free");
    const again = lockFile(path);
    assert.ok(again && "release" in again);
    again.release();
    Deno.symlinkSync("/etc/hostname", path);
    assert.deepEqual(probeLock(path), { why: "errno 40" }); // ELOOP: O_NOFOLLOW, as lockFile
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("readProcFile: /proc/self/status, which Deno's file API refuses without --allow-all", () => {
  assert.match(readProcFile("/proc/self/status") ?? "", /^Uid:\s+\d+/m);
  assert.equal(readProcFile("/proc/self/no-such-file"), undefined);
});

Deno.test("openDescriptors counts this process's open descriptors, as a readdir of /proc/self/fd does", () => {
  const listed = () => [...Deno.readDirSync("/proc/self/fd")].filter((e) => /^\d+$/.test(e.name)).length - 1;
  const files = Array.from({ length: 300 }, () => Deno.openSync("/dev/null"));
  try {
    assert.equal(openDescriptors(), listed());
  } finally {
    for (const file of files) file.close();
  }
  assert.equal(openDescriptors(), listed());
});

Deno.test("lockFile: the pid goes through the locked descriptor, even after the path was swapped for a symlink", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const path = `${dir}/q.lock`;
    const target = `${dir}/target`;
    Deno.writeTextFileSync(target, "untouched\n");
    const lock = lockFile(path);
    assert.ok(lock && "release" in lock);
    // What an attacker does between the open and the write: the path now names their symlink.
    Deno.renameSync(path, `${dir}/moved.lock`);
    Deno.symlinkSync(target, path);
    assert.equal(lock.write("4242\n"), undefined);
    assert.equal(Deno.readTextFileSync(target), "untouched\n");
    assert.equal(Deno.readTextFileSync(`${dir}/moved.lock`), "4242\n");
    lock.release();
    assert.ok(Deno.lstatSync(path).isSymlink, "release removes only the file it locked");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("lockFile: a second lock on a held file is refused with the holder's pid", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const path = `${dir}/q.lock`;
    const lock = lockFile(path);
    assert.ok(lock && "release" in lock);
    assert.equal(lock.write("a long stale line\n"), undefined);
    assert.equal(lock.write("123\n"), undefined);
    assert.equal(Deno.readTextFileSync(path), "123\n", "the old content is truncated");
    assert.deepEqual(lockFile(path), { kind: "held", pid: 123 });
    lock.release();
    assert.throws(() => Deno.lstatSync(path), Deno.errors.NotFound);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("probeUnixSocket: served (with the server's pid and uid), stale, absent", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const path = `${dir}/s`;
    assert.deepEqual(probeUnixSocket(path), { state: "absent" });
    const listener = Deno.listen({ transport: "unix", path });
    assert.deepEqual(probeUnixSocket(path), { state: "served", pid: Deno.pid, uid: Deno.uid() });
    const accepted = await listener.accept();
    accepted.close();
    listener.close();
    // A socket file nobody listens on (its process died): bound by a process that has exited.
    const stale = `${dir}/t`;
    const bound = new Deno.Command("python3", {
      args: ["-c", "import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])", stale],
    }).outputSync();
    assert.ok(bound.success);
    assert.deepEqual(probeUnixSocket(stale), { state: "refused" });
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

/** The descriptors that are sockets, by number. */
function socketDescriptors(): Set<number> {
  const fds = new Set<number>();
  for (const entry of Deno.readDirSync("/proc/self/fd")) {
    try {
      if (Deno.readLinkSync(`/proc/self/fd/${entry.name}`).startsWith("socket:")) fds.add(Number(entry.name));
    } catch {
      // closed meanwhile (the directory's own descriptor)
    }
  }
  return fds;
}

Deno.test("tcpRoundTripMs reads the kernel's round trip of a tcp connection; listeningEndpoint names a listener", async () => {
  const before = socketDescriptors();
  const port = freePort();
  const listener = Deno.listen({ hostname: "127.0.0.1", port });
  const client = await Deno.connect({ hostname: "127.0.0.1", port });
  const server = await listener.accept();
  const path = `/tmp/adaptor-os-test-${crypto.randomUUID().slice(0, 8)}.sock`;
  const unix = Deno.listen({ transport: "unix", path });
  try {
    const fresh = [...socketDescriptors()].filter((fd) => !before.has(fd));
    assert.equal(fresh.length, 4, `new sockets: ${fresh}`);
    const named = fresh.map((fd) => listeningEndpoint(fd));
    assert.deepEqual(
      named.filter((n) => n && "endpoint" in n).map((n) => (n as { endpoint: string }).endpoint).sort(),
      [`ipc://${path}`, `tcp://127.0.0.1:${port}`],
    );
    assert.deepEqual(named.filter((n) => n && "why" in n).map((n) => (n as { why: string }).why), [
      "not listening",
      "not listening",
    ]);
    const trips = fresh.map((fd) => tcpRoundTripMs(fd));
    // Three tcp sockets (the listener's is 0: no round trip yet), one unix socket (none).
    assert.equal(trips.filter((t) => t === undefined).length, 1, `round trips: ${trips}`);
    for (const t of trips) if (t !== undefined) assert.ok(t >= 0 && t < 1000, `round trip ${t} ms`);
    assert.ok(trips.some((t) => t !== undefined && t > 0), `a connection's round trip is measured: ${trips}`);
    assert.equal(tcpRoundTripMs(-1), undefined);
  } finally {
    client.close();
    server.close();
    listener.close();
    unix.close();
    await Deno.remove(path).catch(() => {});
  }
});
