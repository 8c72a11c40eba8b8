/**
 * Log lines as operators read them: JSON lines with time, level, category, message and the
 * record's fields; text lines with values unquoted. Braces in values (a JSON payload shown
 * by -d) come through intact.
 */

import assert from "node:assert/strict";
import { fatalLine, log, setupLogging } from "../src/ops/log.ts";

function capture(format: "json" | "text", journal = false): string[] {
  const lines: string[] = [];
  setupLogging({ level: "debug", format, journal, write: (line) => lines.push(line) });
  return lines;
}

Deno.test("JSON lines: time, level, category, message, then the fields", () => {
  const lines = capture("json");
  log("socket").info("{socket} {endpoint}: {event} ({value})", {
    socket: "XSUB",
    endpoint: "ipc:///tmp/q",
    event: "accepted",
    value: 12,
  });
  log("debug").info("> got: {payload}", { payload: '{"api":"orders","status":200}' });
  log().warning("big {n}", { n: 2n ** 64n, message: "cannot replace the message" });
  assert.equal(lines.length, 3);
  assert.ok(lines.every((l) => l.endsWith("\n") && !l.slice(0, -1).includes("\n")), "one line each");
  const [event, got, big] = lines.map((l) => JSON.parse(l));
  assert.deepEqual(Object.keys(event), [
    "time",
    "level",
    "category",
    "message",
    "socket",
    "endpoint",
    "event",
    "value",
  ]);
  assert.match(event.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.equal(event.level, "info");
  assert.equal(event.category, "adaptor.socket");
  assert.equal(event.message, "XSUB ipc:///tmp/q: accepted (12)");
  assert.equal(event.value, 12);
  assert.equal(got.message, '> got: {"api":"orders","status":200}');
  assert.equal(got.payload, '{"api":"orders","status":200}');
  assert.equal(big.level, "warning");
  assert.equal(big.message, "big 18446744073709551616");
  assert.equal(big.n, "18446744073709551616");
});

Deno.test("text lines: timestamp, level, category, message with values unquoted", () => {
  const lines = capture("text");
  log("debug").info("> got: {payload}", { payload: '{"api":"orders"}' });
  assert.match(
    lines[0],
    /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} [+-]\d\d:\d\d \[INF\] adaptor·debug: > got: \{"api":"orders"\}\n$/,
  );
});

Deno.test("journal: each line starts with its level's syslog priority, text and JSON", () => {
  for (const format of ["text", "json"] as const) {
    const lines = capture(format, true);
    log().debug("d");
    log().info("i");
    log().warn("w");
    log().error("e");
    log().fatal("f");
    assert.deepEqual(lines.map((l) => l.slice(0, 3)), ["<7>", "<6>", "<4>", "<3>", "<2>"]);
    if (format === "json") { for (const line of lines) JSON.parse(line.slice(3)); }
  }
  const plain = capture("text");
  log().warn("w");
  assert.match(plain[0], /^\d{4}-/);
});

Deno.test("fatalLine: the usage error's line as text, JSON, and for the journal", () => {
  assert.equal(fatalLine("adaptor", "bad {x}", 2, { format: "text" }), "adaptor: error: bad {x}\n");
  assert.equal(fatalLine("adaptor", "bad", 1, { format: "text", journal: true }), "<2>adaptor: error: bad\n");
  const json = fatalLine("adaptor", 'bad "x"', 2, { format: "json" });
  assert.ok(json.endsWith("}\n") && !json.slice(0, -1).includes("\n"));
  const record = JSON.parse(json);
  assert.deepEqual(Object.keys(record), ["time", "level", "category", "message", "exitCode"]);
  assert.equal(record.level, "fatal");
  assert.equal(record.category, "adaptor");
  assert.equal(record.message, 'bad "x"');
  assert.equal(record.exitCode, 2);
  assert.match(fatalLine("adaptor", "bad", 1, { format: "json", journal: true }), /^<2>\{"time":/);
});

Deno.test("lines that cannot be written are counted and said in one warning once writing works again", () => {
  const lines: string[] = [];
  let failing = true;
  setupLogging({
    level: "info",
    format: "json",
    write: (line) => {
      if (failing) throw new Error("File too large (os error 27)");
      lines.push(line);
    },
  });
  log().info("lost one");
  log().info("lost two");
  failing = false;
  log().info("written");
  const records = lines.map((l) => JSON.parse(l));
  assert.deepEqual(records.map((r) => [r.level, r.message]), [
    ["warning", "2 log lines were lost: stderr could not be written (File too large (os error 27))"],
    ["info", "written"],
  ]);
  log().info("again");
  assert.equal(lines.length, 3, "said once");
});
