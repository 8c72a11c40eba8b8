/**
 * `--log-format json` end to end: every line the adaptor writes to stderr parses as JSON with
 * time, level, category and message; socket events carry endpoint, event and value; a gateway
 * message that is itself JSON shows intact under -d. The fatal line too (a usage error once the
 * format is known, a failed start): JSON of level `fatal` with the exit code.
 */

import assert from "node:assert/strict";
import { exists, freePort, ipcPath } from "../testing/net.ts";
import { Peers, syncUp } from "../testing/peers.ts";
import { AdaptorProcess, runAdaptor } from "../testing/process.ts";

Deno.test("--log-format json: every line is a JSON object with the fields operators filter on", async () => {
  const bind = ipcPath("xsub");
  const port = freePort();
  const adaptor = new AdaptorProcess([
    "-d",
    "--log-format",
    "json",
    "-b",
    `ipc://${bind}`,
    "-p",
    `tcp://127.0.0.1:${port}`,
  ]);
  const peers = new Peers();
  const payload = '{"api":"orders","status":200,"ms":12}';
  try {
    await adaptor.ready();
    const sub = peers.subscriber(`tcp://127.0.0.1:${port}`);
    const pub = peers.publisher(`ipc://${bind}`);
    await syncUp([pub], [sub]);
    await pub.send(payload);
    await adaptor.waitFor(/> got: \{\\"api\\"/);
  } finally {
    await peers.close();
    const { status } = await adaptor.stop();
    assert.equal(status.code, 0);
  }
  const records = adaptor.lines.map((line) => JSON.parse(line));
  for (const record of records) {
    assert.match(record.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.ok(["debug", "info", "warning", "error"].includes(record.level), record.level);
    assert.match(record.category, /^adaptor(\.\w+)?$/);
    assert.equal(typeof record.message, "string");
  }
  const accepted = records.find((r) =>
    r.category === "adaptor.socket" && r.event === "accepted" && r.socket === "XSUB"
  );
  assert.ok(accepted, "the publisher's connection, as a socket event with structured fields");
  assert.equal(accepted.endpoint, `ipc://${bind}`);
  assert.equal(accepted.channel, "main");
  assert.equal(typeof accepted.value, "number");
  const got = records.find((r) => r.category === "adaptor.debug" && r.payload === payload);
  assert.ok(got, "the debug subscriber's line carries the payload");
  assert.equal(got.message, `> got: ${payload}`);
  assert.ok(records.some((r) => r.message === "stopped"));
});

/** Every line parses as JSON with the fields of every line; the last one is the fatal line. */
function assertJsonLines(stderr: string[], exitCode: number, mentions: string[]): void {
  assert.ok(stderr.length > 0);
  const records = stderr.map((line) => {
    try {
      return JSON.parse(line);
    } catch {
      assert.fail(`not JSON: ${line}`);
    }
  });
  for (const record of records) {
    assert.match(record.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.equal(typeof record.message, "string");
    assert.match(record.category, /^adaptor(\.\w+)?$/);
  }
  const last = records.at(-1);
  assert.equal(last.level, "fatal");
  assert.equal(last.exitCode, exitCode);
  for (const text of mentions) assert.ok(last.message.includes(text), `${last.message} lacks ${text}`);
}

const jsonUsageCases: [string, string[], Record<string, string>, string[]][] = [
  ["a bad value after --log-format json", ["--log-format", "json", "--sndhwm", "lots"], {}, [
    "--sndhwm",
    "lots",
  ]],
  ["--log-format=json, then an unknown flag", ["--log-format=json", "--bogus"], {}, ["--bogus"]],
  ["ADAPTOR_LOG_FORMAT=json, a bad endpoint", ["-p", "udp://x:1"], { ADAPTOR_LOG_FORMAT: "json" }, ["udp"]],
  ["a bad variable", [], { ADAPTOR_LOG_FORMAT: "json", ADAPTOR_DEBUG: "maybe" }, ["ADAPTOR_DEBUG"]],
];

for (const [name, args, env, mentions] of jsonUsageCases) {
  Deno.test(`--log-format json, usage error (exit 2) as a JSON line: ${name}`, async () => {
    const { code, stderr } = await runAdaptor(args, { env });
    assert.equal(code, 2);
    assert.equal(stderr.length, 1, stderr.join("\n"));
    assertJsonLines(stderr, 2, [...mentions, "see adaptor --help"]);
  });
}

Deno.test("--log-format json: a busy port at start ends with a JSON fatal line (exit 1)", async () => {
  const port = freePort();
  const squatter = Deno.listen({ hostname: "127.0.0.1", port });
  const bind = ipcPath("xsub");
  try {
    const args = ["--log-format", "json", "-b", `ipc://${bind}`, "-p", `tcp://127.0.0.1:${port}`];
    const { code, stderr } = await runAdaptor(args);
    assert.equal(code, 1);
    assertJsonLines(stderr, 1, [`tcp://127.0.0.1:${port}`, "Address already in use"]);
    assert.ok(!exists(bind));
  } finally {
    squatter.close();
  }
});

Deno.test("--log-format json: a bad certificate (usage error after logging is set up) is a JSON line", async () => {
  const { code, stderr } = await runAdaptor(["--log-format", "json", "--curve-cert", "/nonexistent/cert"]);
  assert.equal(code, 2);
  assertJsonLines(stderr, 2, ["--curve-cert", "/nonexistent/cert"]);
});
