/**
 * Docs that cannot drift: the operator guide's metrics table names every metric family and label
 * that `/metrics` emits (and nothing it does not), its flag table is the option table's and lists
 * exactly the flags that `--help` prints, and the README's short flag list says what they say.
 */

import assert from "node:assert/strict";
import { parseArgs } from "../src/config/cli.ts";
import { GUIDE, withTable } from "../scripts/docs.ts";
import { OPTIONS, shownDefault } from "../src/config/options.ts";
import { PublisherPresence } from "../src/adaptor/presence.ts";
import { assessHealth } from "../src/ops/health.ts";
import { AdaptorMetrics } from "../src/metrics/metrics.ts";
import { freePort, ipcPath } from "../testing/net.ts";
import { AdaptorProcess, ROOT } from "../testing/process.ts";

const readme = Deno.readTextFileSync(`${ROOT}README.md`);
const guide = Deno.readTextFileSync(`${ROOT}docs/operations.md`);

/** The rows of the table in `doc` whose header row starts with `| ${first} `. */
function tableRows(first: string, doc = guide): string[][] {
  const lines = doc.split("\n");
  const start = lines.findIndex((l) => new RegExp(`^\\|\\s*${first}\\s*\\|`).test(l));
  assert.ok(start >= 0, `no table headed '${first}'`);
  const rows: string[][] = [];
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith("|")) break;
    rows.push(line.split("|").slice(1, -1).map((cell) => cell.trim()));
  }
  return rows;
}

Deno.test("the guide's metrics table names every family and label /metrics emits, and no other", async () => {
  const port = freePort();
  const adaptor = new AdaptorProcess([
    ...["-b", `ipc://${ipcPath("xsub")}`, "-p", `tcp://127.0.0.1:${freePort()}`],
    ...[
      "-l",
      `tcp://127.0.0.1:${freePort()}`,
      "-u",
      `ipc://${ipcPath("push")}`,
      "--metrics",
      `127.0.0.1:${port}`,
    ],
  ]);
  try {
    await adaptor.ready();
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const emitted = new Map<string, Set<string>>();
    const sampled = new Set<string>();
    for (const line of text.split("\n")) {
      const type = /^# TYPE (\w+) /.exec(line);
      if (type) emitted.set(type[1], emitted.get(type[1]) ?? new Set());
      const sample = /^(\w+)(?:\{([^}]*)\})? /.exec(line);
      if (sample && !line.startsWith("#")) {
        sampled.add(sample[1]);
        for (const label of (sample[2] ?? "").matchAll(/(\w+)="/g)) emitted.get(sample[1])?.add(label[1]);
      }
    }
    const documented = new Map<string, Set<string>>();
    for (const [metric] of tableRows("metric")) {
      for (const [, name, labels] of metric.matchAll(/`(\w+)(?:\{([\w,]*)\})?`/g)) {
        documented.set(name, new Set(labels ? labels.split(",") : []));
      }
    }
    for (const [name, labels] of emitted) {
      assert.ok(documented.has(name), `docs/operations.md's metrics table lacks ${name}`);
      // A family with no sample yet (auth counters without CURVE) shows no labels to compare.
      if (sampled.has(name)) {
        assert.deepEqual([...labels].sort(), [...documented.get(name)!].sort(), `labels of ${name}`);
      }
    }
    for (const name of documented.keys()) {
      assert.ok(emitted.has(name), `docs/operations.md documents ${name}, not emitted`);
    }
  } finally {
    await adaptor.stop();
  }
});

Deno.test("the guide's flag table and --help list the same flags; the README's short list agrees", () => {
  const help = parseArgs(["--help"], {});
  assert.equal(help.kind, "help");
  const helpText = help.kind === "help" ? help.text : "";
  const fromHelp = new Set([...helpText.matchAll(/^\s{2}(?:-\w, )?(--[\w-]+)/gm)].map((m) => m[1]));
  for (const flag of ["--help", "--version", "--check"]) fromHelp.delete(flag);
  const fromGuide = new Set(
    tableRows("flag").flatMap(([flag]) => [...flag.matchAll(/(--[\w-]+)/g)].map((m) => m[1])),
  );
  assert.deepEqual([...fromHelp].sort(), [...fromGuide].sort());
  // Each row of the README's short list: a flag --help knows, with the default the option table gives.
  for (const [flag, shown] of tableRows("flag", readme)) {
    const long = /--[\w-]+/.exec(flag)?.[0];
    if (!long) continue; // keygen
    assert.ok(helpText.includes(long), `README lists ${long}, --help does not`);
    const option = OPTIONS.find((o) => o.flags.includes(`${long} `) || o.flags.endsWith(long));
    if (!option) continue; // --check: a mode, not a setting
    const want = option.kind.type === "switch" ? "off" : shownDefault(option);
    assert.ok(
      shown === "" || want.startsWith(shown.replaceAll("`", "")),
      `README's default of ${long} is ${shown}, the option table's ${want}`,
    );
  }
});

Deno.test("the operator guide's flag table is the option table's (deno task docs writes it)", () => {
  const guide = Deno.readTextFileSync(GUIDE);
  assert.equal(guide, withTable(guide), "docs/operations.md's flag table is stale: run `deno task docs`");
});

Deno.test("the guide's health table names every reason /healthz can give, and no other", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "adaptor-health-doc-" });
  const presence = new PublisherPresence("XSUB ipc:///run/x", 0.02);
  try {
    const file = `${dir}/q`;
    Deno.writeTextFileSync(file, "");
    const { dev, ino } = Deno.statSync(file);
    const base = { stopping: false, channels: [{ name: "main", running: true }], socketFiles: [] };
    await new Promise((resolve) => setTimeout(resolve, 100));
    const reasons = [
      new AdaptorMetrics().health(),
      assessHealth({ ...base, stopping: true }),
      assessHealth({ ...base, failed: "the ZAP handler ended (closed)" }),
      assessHealth({ ...base, channels: [{ name: "main", running: false }] }),
      assessHealth({ ...base, socketFiles: [{ path: `${dir}/gone`, dev: dev!, ino: ino! }] }),
      assessHealth({ ...base, socketFiles: [{ path: file, dev: dev!, ino: ino! + 1 }] }),
      assessHealth({ ...base, absent: presence.absence }),
      assessHealth({
        ...base,
        reloadFailed: "the last reload of /etc/x failed (y); the server keys in use stay, SIGHUP tries again",
      }),
    ].map((h) => (h as { reason: string }).reason);
    const rows = tableRows("reason").map(([cell]) =>
      [...cell.matchAll(/`([^`]+)`/g)].map((m) =>
        new RegExp(`^${m[1].replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replaceAll("…", ".*")}$`)
      )
    );
    for (const reason of reasons) {
      assert.ok(
        rows.some((row) => row.some((re) => re.test(reason))),
        `the guide's health table lacks: ${reason}`,
      );
    }
    for (const row of rows) {
      assert.ok(reasons.some((r) => row.some((re) => re.test(r))), `the guide documents ${row}, never given`);
    }
  } finally {
    presence.close();
    Deno.removeSync(dir, { recursive: true });
  }
});
