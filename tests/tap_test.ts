/**
 * `adaptor tap`'s own logic: the command line (its flags are its own, after the subcommand),
 * the checks of its options (one line naming the flag), and how an event is printed (safe for a
 * terminal, long frames cut, JSON lines). The tap against a running adaptor: e2e_tap_test.ts.
 */

import assert from "node:assert/strict";
import { keygen } from "../src/security/cert.ts";
import { parseArgs } from "../src/config/cli.ts";
import { UsageError } from "../src/errors.ts";
import { formatEvent, frameText, TAP_MAX_CHARACTERS, tapOptions } from "../src/tap.ts";

const encoder = new TextEncoder();

Deno.test("tap: the command line gives the endpoint, prefixes and the tap's own flags", () => {
  const invocation = parseArgs(
    ["tap", "tcp://node1:6001", "usage.", "audit.", "--count", "2", "--json", "--curve-cert", "me_secret"],
    { ADAPTOR_CURVE_CERT: "/etc/ignored" },
  );
  assert.equal(invocation.kind, "tap");
  if (invocation.kind !== "tap") return;
  assert.deepEqual(invocation.request, {
    endpoint: "tcp://node1:6001",
    prefixes: ["usage.", "audit."],
    count: "2",
    json: true,
    curveCert: "me_secret",
  });
  assert.throws(() => parseArgs(["tap"]), /^UsageError: tap: missing required argument 'endpoint'/);
  assert.throws(() => parseArgs(["tap", "tcp://h:1", "--nope"]), /^UsageError: tap: unknown option '--nope'/);
  // The adaptor's own flags still parse as before.
  assert.equal(parseArgs(["-b", "ipc:///tmp/q", "-p", "tcp://127.0.0.1:6001"]).kind, "run");
});

Deno.test("tap: options are checked, each bad one named in one line", () => {
  const base = { endpoint: "tcp://127.0.0.1:6001", prefixes: [] };
  assert.deepEqual(tapOptions(base), {
    endpoint: "tcp://127.0.0.1:6001",
    prefixes: [""],
    json: false,
    connectTimeoutMs: 5000,
  });
  const bad = (request: Record<string, unknown>, message: RegExp) =>
    assert.throws(
      () => tapOptions({ ...base, ...request }),
      (e) => e instanceof UsageError && message.test(e.message),
    );
  bad({ endpoint: "localhost:6001" }, /^tap: ENDPOINT 'localhost:6001': expected tcp:\/\/HOST:PORT/);
  bad({ count: "0" }, /^tap: --count '0': expected a whole number of at least 1$/);
  bad({ count: "ten" }, /^tap: --count 'ten'/);
  bad({ connectTimeout: "-1" }, /^tap: --connect-timeout '-1'/);
  bad({ curveServerKey: "short" }, /^tap: --curve-server-key 'short': expected a CURVE public key/);
  bad({ curveCert: "/x" }, /^tap: --curve-cert: needs the server's key too/);
  bad({ curveServerKey: "x", curveServers: "/d" }, /^tap: --curve-server-key and --curve-servers: give one/);
  bad(
    { endpoint: "ipc:///tmp/q", curveServers: "/d" },
    /^tap: --curve-servers: ENDPOINT 'ipc:\/\/\/tmp\/q' is not tcp/,
  );

  const dir = Deno.makeTempDirSync({ prefix: "adaptor-tap-" });
  try {
    const server = keygen(`${dir}/server`);
    bad(
      { curveServers: dir },
      /^tap: --curve-servers '.*': no certificate for tcp:\/\/127\.0\.0\.1:6001 \(looked for/,
    );
    Deno.copyFileSync(server.publicPath, `${dir}/127.0.0.1`);
    const own = keygen(`${dir}/me`);
    const options = tapOptions({ ...base, curveServers: dir, curveCert: own.secretPath });
    assert.equal(options.curve?.serverKey, server.publicKey);
    assert.equal(options.curve?.publicKey, own.publicKey);
    // A server key alone: a key pair of the tap's own (for a server without --curve-clients).
    const anonymous = tapOptions({ ...base, curveServerKey: server.publicKey });
    assert.equal(anonymous.curve?.serverKey, server.publicKey);
    assert.equal(anonymous.curve?.publicKey.length, 40);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("tap: events printed safe for a terminal; long frames cut with their size; JSON lines", () => {
  assert.equal(frameText(encoder.encode("a\x1b[2Jb\nc\u202e")), "a\\x1b[2Jb\\nc\\u202e");
  const long = encoder.encode("x".repeat(TAP_MAX_CHARACTERS + 10));
  assert.equal(frameText(long), `${"x".repeat(TAP_MAX_CHARACTERS)}… (${TAP_MAX_CHARACTERS + 10} bytes)`);
  assert.equal(frameText(new Uint8Array([0xff, 0x00, 0x41])), "\ufffd\\x00A");
  const frames = [encoder.encode("topic"), encoder.encode("body\r\n")];
  assert.equal(formatEvent(frames, false), "topic (+1 frames)");
  assert.equal(formatEvent([encoder.encode("one")], false), "one");
  const json = formatEvent(frames, true, new Date("2026-12-06T15:00:00.000Z"));
  assert.equal(
    json,
    '{"time":"2026-12-06T15:00:00.000Z","frames":2,"bytes":11,"data":["topic","body\\\\r\\\\n"]}',
  );
  assert.ok(!json.includes("\n"));
});
