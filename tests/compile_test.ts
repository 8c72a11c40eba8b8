/**
 * The single binary: `deno task compile`'s command, then the binary run for real. `deno
 * compile` downloads its runtime (denort) unless DENORT_BIN names one; where neither works
 * the test is reported as skipped with the reason, never as passed. Any other compile failure
 * (a syntax or type error, a missing module) fails the test.
 */

import assert from "node:assert/strict";
import { freePort, ipcPath } from "../testing/net.ts";
import { AdaptorProcess, ROOT, RUN_FLAGS, taskFlags } from "../testing/process.ts";
import { prebuiltAddons } from "../src/zmq/binding.ts";

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
  env: { RUST_BACKTRACE: "0", NO_COLOR: "1" },
}).output();
const buildLog = new TextDecoder().decode(build.stderr);
const skipReason = build.success ? undefined : denortUnavailable(buildLog);
if (skipReason) {
  console.log(`skipped: compiled binary: ${skipReason}`);
  Deno.removeSync(outputDir, { recursive: true });
}

Deno.test({
  name: `compiled binary forwards with the addon inside${skipReason ? ` (skipped: ${skipReason})` : ""}`,
  ignore: skipReason !== undefined,
  async fn() {
    try {
      assert.ok(build.success, `deno compile failed:\n${buildLog}`);
      await runBinary();
    } finally {
      // The binary is ~100 MB: not left behind in /tmp by every run.
      Deno.removeSync(outputDir, { recursive: true });
    }
  },
});

/**
 * Why `deno compile` could not obtain its runtime, read from its `log`: DENORT_BIN names no
 * file, or the download from dl.deno.land failed. Undefined for any other failure.
 */
export function denortUnavailable(log: string): string | undefined {
  const missing = /Could not find denort at '([^']*)'/.exec(log);
  if (missing) return `DENORT_BIN names no file ('${missing[1]}')`;
  if (!/error sending request for url \(https:\/\/dl\.deno\.land\/\S*denort/.test(log)) return undefined;
  const cause = log.trim().split("\n").at(-1)!.replace(/^\s*\d+:\s*/, "");
  return `deno compile cannot download its runtime (denort) here (${cause}) and DENORT_BIN is not set`;
}

/** `deno compile` with the task's flags of a one-file program `source`; its success and log. */
async function compileSource(source: string): Promise<{ success: boolean; log: string }> {
  const dir = Deno.makeTempDirSync({ prefix: "adaptor-compile-probe-" });
  try {
    Deno.writeTextFileSync(`${dir}/main.ts`, source);
    const result = await new Deno.Command(Deno.execPath(), {
      args: ["compile", ...runFlags, "--output", `${dir}/probe`, `${dir}/main.ts`],
      stdout: "piped",
      stderr: "piped",
      env: { RUST_BACKTRACE: "0", NO_COLOR: "1" },
    }).output();
    return { success: result.success, log: new TextDecoder().decode(result.stderr) };
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

Deno.test("a broken build fails the compile test: only a runtime that cannot be obtained is a skip", async () => {
  // A syntax error (a type error is the same failure, and slower to reach).
  const broken = await compileSource("const x: number = ;\n");
  assert.equal(broken.success, false);
  assert.equal(denortUnavailable(broken.log), undefined, `taken for a missing runtime:\n${broken.log}`);
  const fine = await compileSource("console.log(1);\n");
  if (!fine.success) assert.ok(denortUnavailable(fine.log), `an unexplained failure:\n${fine.log}`);
  assert.match(
    denortUnavailable("Caused by:\n    0: Could not find denort at '/none'\n    1: No such file") ?? "",
    /DENORT_BIN names no file \('\/none'\)/,
  );
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
