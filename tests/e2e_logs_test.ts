/**
 * `--log-format json` end to end: every line the adaptor writes to stderr parses as JSON with
 * time, level, category and message; socket events carry endpoint, event and value; a gateway
 * message that is itself JSON shows intact under -d.
 */

import assert from "node:assert/strict";
import { freePort, ipcPath } from "./support/net.ts";
import { Peers, syncUp } from "./support/peers.ts";
import { AdaptorProcess } from "./support/process.ts";

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
