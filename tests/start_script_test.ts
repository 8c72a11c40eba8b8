/**
 * scripts/start.sh, the way the README tells operators to run the adaptor from source: the
 * flags of `deno task start`, and one process (the script `exec`s deno: no `deno task` parent
 * beside the adaptor, and signals reach the adaptor itself).
 */

import assert from "node:assert/strict";
import { freePort, ipcPath } from "../testing/net.ts";
import { AdaptorProcess, ROOT, RUN_FLAGS } from "../testing/process.ts";

const SCRIPT = `${ROOT}scripts/start.sh`;

Deno.test("scripts/start.sh runs src/main.ts with the flags of deno task start", () => {
  const line = Deno.readTextFileSync(SCRIPT).split("\n").find((l) => l.startsWith("exec "));
  assert.ok(line, "scripts/start.sh has an exec line");
  const words = line.split(/\s+/);
  const at = words.indexOf("run");
  const end = words.indexOf('"$root/src/main.ts"');
  assert.ok(at > 0 && end > at, line);
  assert.deepEqual(words.slice(at + 1, end), [...RUN_FLAGS]);
});

Deno.test("scripts/start.sh: the adaptor is the process started, and SIGTERM stops it cleanly", async () => {
  const adaptor = new AdaptorProcess(
    ["-b", `ipc://${ipcPath("start-sh")}`, "-p", `tcp://127.0.0.1:${freePort()}`],
    { command: [SCRIPT], env: { DENO: Deno.execPath() } },
  );
  try {
    const ready = await adaptor.ready();
    assert.equal(Number(/ready \(pid (\d+)\)/.exec(ready)?.[1]), adaptor.pid, "no parent beside the adaptor");
  } finally {
    const { status } = await adaptor.stop();
    assert.equal(status.code, 0, adaptor.lines.join("\n"));
  }
});
