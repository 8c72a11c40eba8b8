/**
 * The process-wide guard (src/ops/guard.ts), in a real process: an unhandled rejection or an
 * uncaught error becomes one log line without a stack, the process stops through its own
 * clean-up (the socket file it bound is removed) and exits 1. Without the guard Deno prints
 * `error: Uncaught (in promise)` with a stack and exits at once (checked below too).
 */

import assert from "node:assert/strict";
import { describeReason } from "../src/ops/guard.ts";
import { exists, ipcPath } from "../testing/net.ts";
import { ROOT } from "../testing/process.ts";

async function probe(what: string, guarded = true, format = "text") {
  const path = ipcPath("guard"); // a plain file standing for a socket file
  const script = guarded ? `${ROOT}testing/guard_probe.ts` : "";
  const args = guarded ? ["run", "--allow-all", script, what, path, format] : [
    "eval",
    `Deno.writeTextFileSync(${JSON.stringify(path)}, ""); Promise.reject(new Error("x"));`,
  ];
  const output = await new Deno.Command(Deno.execPath(), { args, stdout: "piped", stderr: "piped" }).output();
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  const left = exists(path);
  if (left) Deno.removeSync(path);
  return { code: output.code, stdout: text(output.stdout), stderr: text(output.stderr), left };
}

Deno.test("an unhandled rejection: one error line, no stack, clean stop, exit 1", async () => {
  const { code, stdout, stderr, left } = await probe("rejection");
  assert.equal(code, 1, stderr);
  assert.equal(left, false, "the socket file was left behind");
  const lines = stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, stderr);
  assert.match(
    lines[0],
    /\[ERR\] adaptor: unhandled rejection: Error: Http: Error: Too many open files \(os error 24\) at fake stack \(a bug: stopping cleanly\)$/,
  );
  assert.doesNotMatch(stderr, /Uncaught|\n\s+at /);
  assert.match(stdout, /stopped: unhandled rejection: Error: Http: .*; caught 2/);
});

Deno.test("an error thrown from a timer: the same", async () => {
  const { code, stderr, left } = await probe("throw");
  assert.equal(code, 1, stderr);
  assert.equal(left, false);
  assert.match(
    stderr.trimEnd(),
    /^[^\n]*\[ERR\] adaptor: uncaught error: TypeError: boom \(a bug: stopping cleanly\)$/,
  );
});

Deno.test("--log-format json: the guard's line is a JSON line of level error", async () => {
  const { code, stderr } = await probe("throw", true, "json");
  assert.equal(code, 1, stderr);
  const lines = stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, stderr);
  const record = JSON.parse(lines[0]);
  assert.equal(record.level, "error");
  assert.equal(record.message, "uncaught error: TypeError: boom (a bug: stopping cleanly)");
});

Deno.test("without the guard (Deno's default): a stack trace, and the file left behind", async () => {
  const { code, stderr, left } = await probe("", false);
  assert.equal(code, 1);
  assert.match(stderr, /Uncaught \(in promise\) Error: x/);
  assert.equal(left, true);
});

Deno.test("describeReason: errors, strings, objects; one escaped line", () => {
  assert.equal(describeReason(new RangeError("a\n  b")), "RangeError: a b");
  assert.equal(describeReason("plain"), "plain");
  assert.equal(describeReason({ code: 7 }), '{"code":7}');
  assert.equal(describeReason(undefined), "undefined");
  assert.equal(describeReason("\x1b[2J"), "\\x1b[2J");
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  assert.equal(describeReason(cyclic), "[object Object]");
});
