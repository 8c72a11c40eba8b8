import assert from "node:assert/strict";
import { parseArgs, requestedLogFormat } from "../src/config/cli.ts";
import { OPTIONS } from "../src/config/options.ts";
import { UsageError } from "../src/errors.ts";

const run = (argv: string[], env: Record<string, string> = {}) => {
  const invocation = parseArgs(argv, env);
  assert.equal(invocation.kind, "run");
  return (invocation as Extract<typeof invocation, { kind: "run" }>).config;
};

Deno.test("the original's flags: -p -b -l -u -d", () => {
  const config = run([
    "-p",
    "tcp://127.0.0.1:6001",
    "-b",
    "ipc:///tmp/in",
    "-l",
    "tcp://10.0.0.1:5000",
    "-u",
    "ipc:///tmp/out",
    "-d",
  ]);
  assert.equal(config.publish[0].address, "tcp://127.0.0.1:6001");
  assert.equal(config.bind[0].address, "ipc:///tmp/in");
  assert.equal(config.listen[0].mode, "connect");
  assert.equal(config.push[0].address, "ipc:///tmp/out");
  assert.equal(config.debug, true);
});

Deno.test("repeated endpoint flags give several endpoints", () => {
  const config = run(["-b", "ipc:///tmp/a", "-b", ">tcp://edge1:6001"]);
  assert.deepEqual(config.bind.map((e) => [e.mode, e.address]), [["bind", "ipc:///tmp/a"], [
    "connect",
    "tcp://edge1:6001",
  ]]);
});

Deno.test("environment variables fill what flags leave; flags win", () => {
  const env = {
    ADAPTOR_PUBLISH: "tcp://127.0.0.1:7001",
    ADAPTOR_BIND: "ipc:///tmp/e1, ipc:///tmp/e2",
    ADAPTOR_DEBUG: "true",
    ADAPTOR_SNDHWM: "5",
  };
  const fromEnv = run([], env);
  assert.equal(fromEnv.publish[0].address, "tcp://127.0.0.1:7001");
  assert.deepEqual(fromEnv.bind.map((e) => e.address), ["ipc:///tmp/e1", "ipc:///tmp/e2"]);
  assert.equal(fromEnv.debug, true);
  assert.equal(fromEnv.sndhwm, 5);
  const flagsWin = run(["-p", "tcp://127.0.0.1:8001", "--sndhwm", "7"], env);
  assert.equal(flagsWin.publish[0].address, "tcp://127.0.0.1:8001");
  assert.equal(flagsWin.sndhwm, 7);
  assert.equal(run([], { ADAPTOR_DEBUG: "0" }).debug, false);
  const reconnect = run(["--reconnect-ivl", "50"], { ADAPTOR_RECONNECT_IVL_MAX: "800" });
  assert.deepEqual([reconnect.reconnectIvl, reconnect.reconnectIvlMax], [50, 800]);
});

Deno.test("every setting has a documented ADAPTOR_ variable", () => {
  for (const { env } of OPTIONS) assert.match(env, /^ADAPTOR_[A-Z_]+$/);
  const guide = Deno.readTextFileSync(new URL("../docs/operations.md", import.meta.url));
  for (const { env } of OPTIONS) assert.ok(guide.includes(env), `docs/operations.md lacks ${env}`);
});

Deno.test("help and version", () => {
  const help = parseArgs(["-h"]);
  assert.equal(help.kind, "help");
  assert.match((help as { text: string }).text, /--publish <endpoint>/);
  assert.equal(parseArgs(["--version"]).kind, "version");
});

Deno.test("usage errors are UsageError with one line", () => {
  for (const argv of [["--nope"], ["-p"], ["--linger", "soon"], ["x"], ["-b", "tcp://h"]]) {
    assert.throws(
      () => parseArgs(argv),
      (e: unknown) => e instanceof UsageError && !e.message.includes("\n"),
    );
  }
  assert.throws(() => parseArgs([], { ADAPTOR_LINGER: "x" }), /ADAPTOR_LINGER 'x'/);
  assert.throws(() => parseArgs([], { ADAPTOR_TEST: "sure" }), /ADAPTOR_TEST 'sure'/);
  assert.throws(
    () => parseArgs([], { ADAPTOR_METRICS: "6002" }),
    /^UsageError: ADAPTOR_METRICS '6002': expected HOST:PORT/,
  );
  assert.throws(() => parseArgs([], { ADAPTOR_LOG_LEVEL: "loud" }), /^UsageError: ADAPTOR_LOG_LEVEL 'loud'/);
  assert.throws(() => parseArgs(["--metrics", "6002"]), /^UsageError: --metrics '6002'/);
});

Deno.test("protective limits from flags and ADAPTOR_* variables", () => {
  const env = {
    ADAPTOR_MAX_MESSAGE_SIZE: "4096",
    ADAPTOR_HANDSHAKE_TIMEOUT: "1000",
    ADAPTOR_HEARTBEAT_INTERVAL: "2000",
    ADAPTOR_HEARTBEAT_TIMEOUT: "6000",
    ADAPTOR_TCP_USER_TIMEOUT: "7000",
    ADAPTOR_OUT_BATCH_SIZE: "8192",
    ADAPTOR_MAX_SUBSCRIPTION_SIZE: "256",
  };
  const fromEnv = run([], env);
  assert.deepEqual(
    [
      fromEnv.maxMessageSize,
      fromEnv.handshakeTimeout,
      fromEnv.heartbeatInterval,
      fromEnv.heartbeatTimeout,
      fromEnv.tcpUserTimeout,
      fromEnv.outBatchSize,
      fromEnv.maxSubscriptionSize,
    ],
    [4096, 1000, 2000, 6000, 7000, 8192, 256],
  );
  const flags = run(["--max-message-size", "0", "--heartbeat-interval", "0"], env);
  assert.equal(flags.maxMessageSize, 0);
  assert.equal(flags.heartbeatInterval, 0);
  assert.throws(() => parseArgs(["--max-message-size", "64k"]), /--max-message-size '64k'/);
  assert.equal(run(["--max-subscription-size", "0"], env).maxSubscriptionSize, 0);
  assert.throws(() => parseArgs(["--max-subscription-size", "1k"]), /--max-subscription-size '1k'/);
  const help = (parseArgs(["-h"]) as { text: string }).text;
  const limits = [
    "--max-message-size",
    "--max-subscription-size",
    "--handshake-timeout",
    "--heartbeat-interval",
    "--heartbeat-timeout",
    "--tcp-user-timeout",
    "--out-batch-size",
  ];
  for (const flag of limits) {
    assert.ok(help.includes(flag), `help lacks ${flag}`);
  }
});

Deno.test("a bad value from a variable is named by its variable, endpoints and combinations included", () => {
  const fails = (env: Record<string, string>, re: RegExp) => assert.throws(() => parseArgs([], env), re);
  fails({ ADAPTOR_BIND: "foo://x" }, /^UsageError: ADAPTOR_BIND 'foo:\/\/x': unsupported transport/);
  fails({ ADAPTOR_PUBLISH: "tcp://h:99999" }, /^UsageError: ADAPTOR_PUBLISH 'tcp:\/\/h:99999'/);
  fails({ ADAPTOR_SNDHWM: "-3" }, /^UsageError: ADAPTOR_SNDHWM '-3'/);
  fails({ ADAPTOR_IO_THREADS: "0" }, /^UsageError: ADAPTOR_IO_THREADS '0'/);
  fails({ ADAPTOR_IPC_MODE: "999" }, /^UsageError: ADAPTOR_IPC_MODE '999'/);
  fails({ ADAPTOR_METRICS: "nowhere" }, /^UsageError: ADAPTOR_METRICS 'nowhere'/);
  fails(
    { ADAPTOR_CURVE_CLIENTS: "/etc/x" },
    /^UsageError: ADAPTOR_CURVE_CLIENTS '\/etc\/x': needs --curve-cert/,
  );
  // The same values as flags are named by the flag.
  assert.throws(() => parseArgs(["-b", "foo://x"]), /^UsageError: -b\/--bind 'foo:\/\/x'/);
  assert.throws(() => parseArgs(["--sndhwm", "-3"]), /--sndhwm/);
});

Deno.test("the option table: one entry a setting, each with a flag, an ADAPTOR_ variable and help", () => {
  const keys = new Set(OPTIONS.map((o) => o.key));
  assert.equal(keys.size, OPTIONS.length, "a setting declared twice");
  assert.equal(new Set(OPTIONS.map((o) => o.env)).size, OPTIONS.length, "a variable used twice");
  const help = parseArgs(["-h"]);
  for (const option of OPTIONS) {
    assert.match(option.flags, /--[a-z-]+/);
    assert.ok(
      (help as { text: string }).text.replace(/\s+/g, " ").includes(`[env ${option.env}]`),
      `--help lacks ${option.env}`,
    );
  }
});

Deno.test("requestedLogFormat: the format for a usage error's line, without the full parse", () => {
  assert.equal(requestedLogFormat(["--bogus", "--log-format", "json"]), "json");
  assert.equal(requestedLogFormat(["--log-format=json", "--sndhwm", "x"]), "json");
  assert.equal(requestedLogFormat(["--sndhwm", "x"], { ADAPTOR_LOG_FORMAT: " json " }), "json");
  assert.equal(requestedLogFormat(["--log-format", "text"], { ADAPTOR_LOG_FORMAT: "json" }), "text");
  assert.equal(requestedLogFormat(["--log-format", "yaml"]), "text");
  assert.equal(requestedLogFormat(["--log-format"]), "text");
  assert.equal(requestedLogFormat([]), "text");
});

Deno.test("--check: the configuration to check, as a run would have it", () => {
  const invocation = parseArgs(["--check", "-p", "tcp://127.0.0.1:7001"], { ADAPTOR_SNDHWM: "5" });
  assert.equal(invocation.kind, "check");
  const { config } = invocation as Extract<typeof invocation, { kind: "check" }>;
  assert.equal(config.publish[0].address, "tcp://127.0.0.1:7001");
  assert.equal(config.sndhwm, 5);
  assert.equal(parseArgs(["-p", "tcp://127.0.0.1:7001"]).kind, "run");
});
