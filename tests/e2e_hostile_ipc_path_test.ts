/**
 * A local user against the adaptor's ipc path (the adaptor runs as root here): a lock file made
 * into a symbolic link, a hard link, a FIFO, a directory or a file of their own is refused at once
 * with one line, and nothing it points to is written; a socket served at the path by another
 * user is refused with that user's uid and pid named; a directory anyone may write to (/tmp) is
 * warned about.
 */

import assert from "node:assert/strict";
import { exists, freePort } from "../testing/net.ts";
import { AdaptorProcess, runAdaptor } from "../testing/process.ts";

const NOBODY = 65534;

/** A fresh directory of `mode` for the socket file, and its paths. */
function ipcDir(mode = 0o700): { dir: string; path: string; lock: string } {
  const dir = Deno.makeTempDirSync({ prefix: "adaptor-ipc-" });
  Deno.chmodSync(dir, mode);
  return { dir, path: `${dir}/q`, lock: `${dir}/q.lock` };
}

/** A root-only file with known content, as an attacker's target. */
function rootOnly(dir: string): { file: string; content: string } {
  const file = `${dir}/secret`;
  const content = "root only: must never be truncated\n";
  Deno.writeTextFileSync(file, content, { mode: 0o600 });
  return { file, content };
}

/** Starts the adaptor on `path`; it must be refused at once with one error line matching `why`. */
async function assertRefused(path: string, why: RegExp, squatted = false): Promise<void> {
  const result = await runAdaptor(["-b", `ipc://${path}`, "-p", `tcp://127.0.0.1:${freePort()}`], {
    timeoutMs: 10_000,
  });
  const log = result.stderr.join("\n");
  assert.equal(result.code, 1, `expected exit 1 (137: it hung and was killed):\n${log}`);
  const errors = result.stderr.filter((l) => l.startsWith("adaptor: error:"));
  assert.equal(errors.length, 1, log);
  assert.match(errors[0], why);
  if (!squatted) assert.ok(!exists(path), "nothing may be bound after a refusal");
}

Deno.test("lock file: a symbolic link to a root-only file is refused, the file is untouched", async () => {
  const { dir, path, lock } = ipcDir();
  try {
    const target = rootOnly(dir);
    Deno.symlinkSync(target.file, lock);
    await assertRefused(path, /lock file .*q\.lock is a symbolic link.*refusing/);
    assert.equal(Deno.readTextFileSync(target.file), target.content);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("lock file: a hard link to a root-only file is refused, the file is untouched", async () => {
  const { dir, path, lock } = ipcDir();
  try {
    const target = rootOnly(dir);
    Deno.linkSync(target.file, lock);
    await assertRefused(path, /lock file .*q\.lock has 2 links.*refusing/);
    assert.equal(Deno.readTextFileSync(target.file), target.content);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("lock file: a FIFO is refused at once (no start blocks on it)", async () => {
  const { dir, path, lock } = ipcDir();
  try {
    const made = new Deno.Command("mkfifo", { args: [lock] }).outputSync();
    assert.ok(made.success);
    await assertRefused(path, /lock file .*q\.lock is a FIFO.*refusing/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("lock file: a directory is refused", async () => {
  const { dir, path, lock } = ipcDir();
  try {
    Deno.mkdirSync(lock);
    await assertRefused(path, /lock file .*q\.lock is a directory.*refusing/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("lock file: another user's file is refused and left as it was", async () => {
  const { dir, path, lock } = ipcDir();
  try {
    Deno.writeTextFileSync(lock, "theirs\n");
    Deno.chownSync(lock, NOBODY, NOBODY);
    await assertRefused(path, new RegExp(`lock file .*q\\.lock is owned by uid ${NOBODY}.*refusing`));
    assert.equal(Deno.readTextFileSync(lock), "theirs\n");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("lock file: the pid is written into a stale lock file of our own, which a clean stop removes", async () => {
  const { dir, path, lock } = ipcDir();
  try {
    Deno.writeTextFileSync(lock, "a much longer stale content than any pid\n");
    const adaptor = new AdaptorProcess(["-b", `ipc://${path}`, "-p", `tcp://127.0.0.1:${freePort()}`]);
    try {
      await adaptor.ready();
      assert.equal(Deno.readTextFileSync(lock), `${adaptor.pid}\n`);
    } finally {
      assert.equal((await adaptor.stop()).status.code, 0, adaptor.lines.join("\n"));
    }
    assert.ok(!exists(lock) && !exists(path));
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

/** A process of user nobody that listens on a unix socket at `path` (a squatter). */
async function squat(path: string): Promise<Deno.ChildProcess> {
  const script = "import socket,sys,time\n" +
    "s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(8)\n" +
    "print('ready', flush=True); time.sleep(120)";
  const child = new Deno.Command("setpriv", {
    args: ["--reuid=nobody", "--regid=nogroup", "--clear-groups", "/usr/bin/python3", "-c", script, path],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  assert.match(value ?? "", /ready/);
  return child;
}

Deno.test("a socket another user serves at the path (in /tmp-like 1777 directory): refused, naming its uid and pid", async () => {
  const { dir, path } = ipcDir(0o1777);
  const squatter = await squat(path);
  try {
    await assertRefused(
      path,
      new RegExp(
        `another process \\(uid ${NOBODY} \\(nobody\\), pid ${squatter.pid} python3\\) is serving ${path}; ` +
          `refusing.*not this adaptor's user.*a directory of its own`,
      ),
      true,
    );
    assert.ok(exists(path), "the squatter's socket is not taken from it");
  } finally {
    squatter.kill("SIGKILL");
    await squatter.status;
    await squatter.stdout.cancel().catch(() => {});
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("a directory every user may write to is warned about at start; a directory of its own is not", async () => {
  for (const mode of [0o1777, 0o700]) {
    const { dir, path } = ipcDir(mode);
    const adaptor = new AdaptorProcess(["-b", `ipc://${path}`, "-p", `tcp://127.0.0.1:${freePort()}`]);
    try {
      await adaptor.ready();
      const warned = adaptor.lines.filter((l) => /\[WRN\].*is writable by every user/.test(l));
      if (mode === 0o700) assert.deepEqual(warned, [], adaptor.lines.join("\n"));
      else {
        assert.equal(warned.length, 1, adaptor.lines.join("\n"));
        assert.match(
          warned[0],
          new RegExp(`directory ${dir} \\(mode 1777\\) is writable by every user: .*/run/api-gateway`),
        );
      }
    } finally {
      assert.equal((await adaptor.stop()).status.code, 0, adaptor.lines.join("\n"));
      Deno.removeSync(dir, { recursive: true });
    }
  }
});
