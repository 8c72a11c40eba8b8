/**
 * journald priorities against a real systemd-journald: one started in a mount namespace of its
 * own (a tmpfs on /run, so the host's journal is not touched), the adaptor's stderr connected to
 * its stdout stream by systemd-cat, JOURNAL_STREAM set to that stream's device:inode as systemd
 * sets it for a service. journald must store the warnings as PRIORITY=4 and the fatal line as 2
 * (so `journalctl -p warning` finds them) and, in JSON, keep MESSAGE a JSON object.
 */

import assert from "node:assert/strict";
import { freePort } from "../testing/net.ts";
import { ROOT, RUN_FLAGS } from "../testing/process.ts";

const JOURNALD = "/lib/systemd/systemd-journald";

function available(): boolean {
  try {
    Deno.statSync(JOURNALD);
    const ok = (cmd: string) =>
      new Deno.Command("sh", { args: ["-c", `command -v ${cmd}`] }).outputSync().success;
    return ok("unshare") && ok("systemd-cat") && ok("journalctl") &&
      /^Uid:\s+0\s/m.test(Deno.readTextFileSync("/proc/self/status"));
  } catch {
    return false;
  }
}

Deno.test({
  name: "a real journald stores each line's priority; -p warning finds the warnings; JSON stays JSON",
  ignore: !available(),
  async fn() {
    const adaptor = [Deno.execPath(), "run", ...RUN_FLAGS, `${ROOT}src/main.ts`].map((w) => `'${w}'`).join(
      " ",
    );
    // As systemd does for a service: JOURNAL_STREAM names the stream stderr is connected to.
    const run = (tag: string, args: string) =>
      `systemd-cat -t ${tag} --level-prefix=true sh -c ` +
      `'JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) exec "$@"' sh ${adaptor} ${args} || true`;
    const port = freePort();
    const script = [
      "set -e",
      "mount -t tmpfs tmpfs /run",
      "mkdir -p /run/systemd/journal /run/log/journal",
      `${JOURNALD} & pid=$!`,
      "trap 'kill $pid' EXIT",
      "for i in $(seq 100); do [ -S /run/systemd/journal/stdout ] && break; sleep 0.05; done",
      "dir=$(mktemp -d)",
      // --check starts nothing but warns as a start does (a plaintext XPUB on every interface).
      run("adaptor-text", `--check -b ipc://$dir/q -p tcp://0.0.0.0:${port}`),
      run("adaptor-json", `--check --log-format json -b ipc://$dir/q -p tcp://0.0.0.0:${port}`),
      run("adaptor-fatal", "--log-format json -p udp://x:1"),
      "rmdir $dir",
      "journalctl -D /run/log/journal --no-pager -o json",
      "echo '-- warning'",
      "journalctl -D /run/log/journal --no-pager -o cat -p warning -t adaptor-text -t adaptor-json -t adaptor-fatal",
    ].join("\n");
    const output = await new Deno.Command("unshare", {
      args: ["-m", "--propagation", "private", "sh", "-c", script],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(output.stdout);
    assert.ok(output.success, new TextDecoder().decode(output.stderr));
    const [json, warnings] = text.split("\n-- warning\n");
    const entries = json.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l))
      .filter((e) => String(e.SYSLOG_IDENTIFIER).startsWith("adaptor-"));
    const of = (tag: string, priority: string) =>
      entries.filter((e) => e.SYSLOG_IDENTIFIER === tag && e.PRIORITY === priority).map((e) =>
        String(e.MESSAGE)
      );
    assert.ok(of("adaptor-text", "4").some((m) => m.includes("[WRN]") && m.includes("plaintext")), json);
    assert.ok(of("adaptor-text", "6").some((m) => m.includes("would succeed")), json);
    for (const message of of("adaptor-json", "4")) assert.equal(JSON.parse(message).level, "warning");
    assert.ok(of("adaptor-json", "4").length >= 1, json);
    const [fatal] = of("adaptor-fatal", "2");
    assert.equal(JSON.parse(fatal).level, "fatal");
    assert.ok(!entries.some((e) => /^<\d>/.test(String(e.MESSAGE))), "a prefix was left in a message");
    // -p warning: warnings and the fatal line, nothing of level info.
    const shown = warnings.split("\n").filter((l) => l !== "");
    assert.ok(shown.length >= 3, warnings);
    assert.ok(!shown.some((l) => l.includes("[INF]") || l.includes('"level":"info"')), warnings);
  },
});
