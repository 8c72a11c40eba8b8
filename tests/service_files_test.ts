/**
 * scripts/adaptor.service: every ADAPTOR_* setting it makes is one the adaptor reads, and
 * together they form a valid configuration (a typo would otherwise surface only on a node);
 * systemd itself accepts the unit where systemd-analyze is installed.
 */

import assert from "node:assert/strict";
import { ENV, parseArgs } from "../src/cli.ts";
import { ROOT } from "./support/process.ts";

const UNIT = `${ROOT}scripts/adaptor.service`;

Deno.test("the systemd unit's ADAPTOR_* settings are known and make a valid configuration", () => {
  const settings = Object.fromEntries(
    Deno.readTextFileSync(UNIT).split("\n")
      .map((line) => /^Environment=(ADAPTOR_\w+)=(.*)$/.exec(line))
      .filter((m) => m !== null)
      .map((m) => [m![1], m![2]]),
  );
  const known = new Set(Object.values(ENV).map((e) => e.env));
  for (const name of Object.keys(settings)) assert.ok(known.has(name), `the adaptor does not read ${name}`);
  const invocation = parseArgs([], settings);
  assert.equal(invocation.kind, "run");
  const { config } = invocation as Extract<typeof invocation, { kind: "run" }>;
  assert.equal(config.bind[0].ipcPath, "/run/api-gateway/nginx_queue_listen");
  assert.deepEqual(config.metrics, { hostname: "0.0.0.0", port: 6002 });
  assert.equal(config.logFormat, "json");
});

Deno.test("the unit bounds the adaptor's memory and raises its descriptors (issue 13: what libzmq cannot bound)", () => {
  const lines = Deno.readTextFileSync(UNIT).split("\n");
  const setting = (name: string) => lines.find((l) => l.startsWith(`${name}=`))?.slice(name.length + 1);
  // A never-ending multipart message grows the adaptor by ~1 GiB a second: the kernel stops it.
  assert.equal(setting("MemoryMax"), "1G");
  assert.equal(setting("LimitNOFILE"), "65536");
  // ...and systemd restarts it: an OOM kill is an abnormal end, which on-failure covers.
  assert.equal(setting("Restart"), "on-failure");
});

const analyze = (() => {
  try {
    new Deno.Command("systemd-analyze", { args: ["--version"], stdout: "null", stderr: "null" }).outputSync();
    return true;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "systemd-analyze verify accepts the unit",
  ignore: !analyze, // skipped where systemd is not installed
  fn: async () => {
    // verify checks that ExecStart exists: point it at a binary that does.
    const dir = Deno.makeTempDirSync({ prefix: "adaptor-unit-" });
    try {
      const unit = `${dir}/adaptor.service`;
      Deno.writeTextFileSync(
        unit,
        Deno.readTextFileSync(UNIT).replace("ExecStart=/usr/local/bin/adaptor", "ExecStart=/bin/true"),
      );
      const output = await new Deno.Command("systemd-analyze", { args: ["verify", unit] }).output();
      const text = new TextDecoder().decode(output.stderr) + new TextDecoder().decode(output.stdout);
      assert.equal(output.code, 0, text);
      assert.equal(text.trim(), "", text);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
