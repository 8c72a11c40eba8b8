/**
 * The single binary: `deno task compile`'s command, then the binary run for real. `deno
 * compile` downloads its runtime (denort) unless DENORT_BIN names one; where neither works
 * the test is reported as skipped with the reason, never as passed.
 */

import assert from "node:assert/strict";
import { freePort, ipcPath } from "./support/net.ts";
import { AdaptorProcess, ROOT, RUN_FLAGS, taskFlags } from "./support/process.ts";
import { prebuiltAddons } from "../src/zmq.ts";

const outputDir = Deno.makeTempDirSync({ prefix: "adaptor-compile-" });
const output = `${outputDir}/adaptor`;
// deno.json's compile task, its --output value aside: the flags the binary is built with.
const compileWords = taskFlags("compile");
const at = compileWords.indexOf("--output");
const compileFlags = compileWords.filter((_, i) => i !== at && i !== at + 1);
// The task's --exclude values (files of the zeromq package that the binary does not need), and
// the flags left without them: those the binary runs with.
const excluded = compileWords.filter((_, i) => compileWords[i - 1] === "--exclude");
const runFlags = compileFlags.filter((word, i) =>
  word !== "--exclude" && compileFlags[i - 1] !== "--exclude"
);
const args = ["compile", ...compileFlags, "--output", output, `${ROOT}src/main.ts`];

const build = await new Deno.Command(Deno.execPath(), {
  args,
  cwd: ROOT,
  stdout: "piped",
  stderr: "piped",
  env: { RUST_BACKTRACE: "0" },
}).output();
const buildLog = new TextDecoder().decode(build.stderr);
const skipReason = build.success ? undefined : (
  /dl\.deno\.land|denort|error sending request/.test(buildLog)
    ? "deno compile cannot download its runtime (denort) here and DENORT_BIN is not set"
    : `deno compile failed: ${buildLog.trim().split("\n").slice(-3).join(" | ")}`
);
if (skipReason) {
  console.log(`skipped: compiled binary: ${skipReason}`);
  Deno.removeSync(outputDir, { recursive: true });
}

Deno.test({
  name: `compiled binary forwards with the addon inside${skipReason ? ` (skipped: ${skipReason})` : ""}`,
  ignore: skipReason !== undefined,
  async fn() {
    try {
      await runBinary();
    } finally {
      // The binary is ~100 MB: not left behind in /tmp by every run.
      Deno.removeSync(outputDir, { recursive: true });
    }
  },
});

async function runBinary() {
  const version = await new Deno.Command(output, { args: ["--version"], stdout: "piped" }).output();
  assert.match(new TextDecoder().decode(version.stdout), /ZeroMQ 4\.\d+\.\d+/);
  const binary = new AdaptorProcess(
    ["-t", "-b", `ipc://${ipcPath("bin")}`, "-p", `tcp://127.0.0.1:${freePort()}`],
    { command: [output] },
  );
  try {
    await binary.ready(10_000);
    const sent = await binary.waitFor(/ \.\.\. sending:PUB-/, 5000);
    await binary.waitFor(new RegExp(`> got: ${sent.slice(sent.indexOf("PUB-"))}`), 5000);
  } finally {
    const { status } = await binary.stop();
    assert.equal(status.code, 0);
  }
}

Deno.test("deno task compile builds with the permissions and V8 flags of deno task start", () => {
  assert.ok(at >= 0, "the compile task names its --output");
  // How npm packages are resolved from node_modules/ concerns a run from source only: the binary
  // embeds its modules.
  assert.deepEqual(runFlags, RUN_FLAGS.filter((flag) => flag !== "--node-modules-dir=manual"));
});

Deno.test("deno task compile leaves out only addon builds that are never loaded, and each exists", () => {
  // deno compile ignores an --exclude that matches nothing: after a zeromq upgrade the paths
  // (which name its version) would go stale silently and the binary grow back by ~20 MB.
  assert.ok(excluded.length > 0, "the compile task excludes nothing");
  const loadable = prebuiltAddons();
  for (const path of excluded) {
    assert.ok(Deno.statSync(`${ROOT}${path}`).isDirectory, `${path} is not a directory`);
    assert.match(path, /^node_modules\/\.deno\/zeromq@[^/]+\/node_modules\/zeromq\/build\//);
    const dir = `${Deno.realPathSync(`${ROOT}${path}`)}/`;
    for (const addon of loadable) assert.ok(!addon.startsWith(dir), `${path} holds ${addon}`);
  }
});
