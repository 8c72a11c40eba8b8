/**
 * Bad input: each gets one line on stderr naming what was wrong, the right exit code
 * (2 usage, 1 runtime), no stack trace (RUST_BACKTRACE=1 is set on these machines), and
 * nothing left bound: no socket file, no port.
 */

import assert from "node:assert/strict";
import { exists, freePort, ipcPath, portIsFree } from "../testing/net.ts";
import { runAdaptor } from "../testing/process.ts";
import { addonBuild } from "../src/zmq/binding.ts";

function assertOneCleanLine(stderr: string[], mentions: string[]): void {
  assert.equal(stderr.length, 1, `expected one line, got:\n${stderr.join("\n")}`);
  const [line] = stderr;
  assert.match(line, /^adaptor: error: /);
  assert.doesNotMatch(line, /Stack backtrace| {4}at |Uncaught/);
  for (const text of mentions) assert.ok(line.includes(text), `'${line}' should mention '${text}'`);
}

const usageCases: [string, string[], string[]][] = [
  ["unknown flag", ["--bogus"], ["--bogus"]],
  ["missing value", ["-p"], ["--publish", "argument missing"]],
  ["unsupported transport", ["-p", "udp://127.0.0.1:5000"], ["-p/--publish", "udp"]],
  ["malformed tcp address", ["-p", "tcp://127.0.0.1"], ["-p/--publish", "tcp://127.0.0.1"]],
  ["port out of range", ["-p", "tcp://127.0.0.1:70000"], ["70000"]],
  ["not a number", ["--sndhwm", "lots"], ["--sndhwm", "lots"]],
  ["bad log level", ["--log-level", "loud"], ["--log-level", "loud"]],
  ["same endpoint twice", ["-b", "ipc:///tmp/same", "-p", "ipc:///tmp/same"], ["ipc:///tmp/same"]],
  ["stray argument", ["extra"], ["extra"]],
  ["malformed --metrics", ["--metrics", "localhost"], ["--metrics", "localhost", "HOST:PORT"]],
  [
    "--subscriptions forward on an unauthenticated network XPUB",
    ["--subscriptions", "forward"],
    ["--subscriptions forward", "tcp://0.0.0.0:6001", "--curve-clients", "cancel"],
  ],
];

for (const [name, args, mentions] of usageCases) {
  Deno.test(`usage error, exit 2: ${name}`, async () => {
    const { code, stderr } = await runAdaptor(args);
    assert.equal(code, 2);
    assertOneCleanLine(stderr, mentions);
  });
}

Deno.test("usage error from the environment names the variable", async () => {
  const { code, stderr } = await runAdaptor([], { env: { ADAPTOR_DEBUG: "maybe" } });
  assert.equal(code, 2);
  assertOneCleanLine(stderr, ["ADAPTOR_DEBUG", "maybe"]);
});

Deno.test("busy tcp port: exit 1, one line, and the ipc socket already bound is removed", async () => {
  const port = freePort();
  const squatter = Deno.listen({ hostname: "127.0.0.1", port });
  const bind = ipcPath("xsub");
  try {
    const { code, stderr } = await runAdaptor(["-b", `ipc://${bind}`, "-p", `tcp://127.0.0.1:${port}`]);
    assert.equal(code, 1);
    assertOneCleanLine(stderr.filter((l) => l.startsWith("adaptor: error")), [
      `${port}`,
      "Address already in use",
    ]);
    assert.ok(!stderr.some((l) => /Stack backtrace| {4}at /.test(l)));
    assert.ok(!exists(bind), "the XSUB's socket file was left behind");
  } finally {
    squatter.close();
  }
});

Deno.test("busy --metrics port: exit 1, one line, no socket file left", async () => {
  const metricsPort = freePort();
  const squatter = Deno.listen({ hostname: "127.0.0.1", port: metricsPort });
  const bind = ipcPath("xsub");
  const port = freePort();
  try {
    const { code, stderr } = await runAdaptor([
      "-b",
      `ipc://${bind}`,
      "-p",
      `tcp://127.0.0.1:${port}`,
      "--metrics",
      `127.0.0.1:${metricsPort}`,
    ]);
    assert.equal(code, 1);
    assertOneCleanLine(stderr, [`--metrics '127.0.0.1:${metricsPort}'`, "Address already in use"]);
    assert.ok(!exists(bind), "an XSUB socket file was left behind");
  } finally {
    squatter.close();
  }
});

Deno.test("unwritable ipc directory: exit 1, one line, the tcp port is released", async () => {
  const port = freePort();
  const { code, stderr } = await runAdaptor([
    "-b",
    "ipc:///sys/fs/adaptor-q",
    "-p",
    `tcp://127.0.0.1:${port}`,
  ]);
  assert.equal(code, 1);
  assertOneCleanLine(stderr, ["-b/--bind", "/sys/fs/adaptor-q"]);
  assert.ok(portIsFree(port));
});

Deno.test("missing ipc directory: exit 1 naming the directory", async () => {
  const { code, stderr } = await runAdaptor([
    "-b",
    "ipc:///no-such-dir-here/q",
    "-p",
    `tcp://127.0.0.1:${freePort()}`,
  ]);
  assert.equal(code, 1);
  assertOneCleanLine(stderr, ["/no-such-dir-here", "does not exist"]);
});

Deno.test("unknown interface: exit 1 naming the endpoint", async () => {
  const bind = ipcPath("xsub");
  const { code, stderr } = await runAdaptor(["-b", `ipc://${bind}`, "-p", "tcp://nosuchif0:6001"]);
  assert.equal(code, 1);
  assertOneCleanLine(stderr.filter((l) => l.startsWith("adaptor: error")), [
    "nosuchif0",
    "no such interface",
  ]);
  assert.ok(!exists(bind));
});

Deno.test("an existing file that is not a socket is never replaced", async () => {
  const path = ipcPath("plain-file");
  Deno.writeTextFileSync(path, "keep me");
  try {
    const { code, stderr } = await runAdaptor(["-b", `ipc://${path}`, "-p", `tcp://127.0.0.1:${freePort()}`]);
    assert.equal(code, 1);
    assertOneCleanLine(stderr, [path, "not a socket"]);
    assert.equal(Deno.readTextFileSync(path), "keep me");
  } finally {
    Deno.removeSync(path);
  }
});

Deno.test("--help and --version print to stdout and exit 0", async () => {
  const help = await runAdaptor(["--help"]);
  assert.equal(help.code, 0);
  const text = help.stdout.join("\n");
  for (
    const flag of [
      "--bind",
      "--publish",
      "--listen",
      "--push",
      "--debug",
      "--test",
      "--sndhwm",
      "ADAPTOR_BIND",
      "--curve-cert",
      "--curve-clients",
      "--ipc-mode",
      "ADAPTOR_IPC_GROUP",
      "keygen <path>",
    ]
  ) {
    assert.ok(text.includes(flag), `help lacks ${flag}`);
  }
  assert.ok(text.includes("ipc:///tmp/nginx_queue_listen") && text.includes("tcp://0.0.0.0:6001"));
  const version = await runAdaptor(["--version"]);
  assert.equal(version.code, 0);
  assert.match(version.stdout.join("\n"), /^adaptor \d+\.\d+\.\d+ \(ZeroMQ 4\.\d+\.\d+/);
  // It names the prebuilt addon that runs (which one depends on this host's glibc): the one
  // zeromq's loader also picks in this test process.
  assert.ok(
    version.stdout.join("\n").includes(`, addon build ${addonBuild()},`),
    `--version does not name ${addonBuild()}: ${version.stdout.join("\n")}`,
  );
});
