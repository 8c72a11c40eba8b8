/**
 * The Grafana dashboard as shipped (scripts/grafana/adaptor.dashboard.json): it parses, every
 * panel has a query, every query is valid PromQL (promtool checks them as recording rules, with
 * Grafana's variables filled in), and names only metric families a live adaptor emits (or
 * Prometheus' own `up`); the panels the operators need are there.
 */

import assert from "node:assert/strict";
import { keygen } from "../src/security/cert.ts";
import { freePort, ipcPath } from "../testing/net.ts";
import { AdaptorProcess } from "../testing/process.ts";
import { DASHBOARD, missing, promtool, testUnless } from "../testing/prometheus.ts";

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { h: number; w: number; x: number; y: number };
  targets?: { refId: string; expr: string }[];
  panels?: Panel[];
}

const dashboard = JSON.parse(Deno.readTextFileSync(DASHBOARD));
const panels: Panel[] = dashboard.panels.flatMap((p: Panel) => [p, ...(p.panels ?? [])]);

/** Every PromQL expression: panel targets and annotations; with where it is. */
const queries: { where: string; expr: string }[] = [
  ...panels.flatMap((p) => (p.targets ?? []).map((t) => ({ where: `${p.title} ${t.refId}`, expr: t.expr }))),
  ...dashboard.annotations.list.filter((a: { expr?: string }) => a.expr)
    .map((a: { name: string; expr: string }) => ({ where: `annotation ${a.name}`, expr: a.expr })),
];

/** Grafana's variables replaced by what they stand for in a query. */
function filled(expr: string): string {
  return expr.replaceAll("$__rate_interval", "1m").replaceAll("$instance", ".+");
}

const KEYWORDS = new Set(["and", "or", "unless", "bool", "offset"]);

/** The metric names a PromQL expression selects (identifiers that are not functions or keywords). */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, "")
    .replace(/\[[^\]]*\]/g, "")
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, "");
  return [...bare.matchAll(/(?<![\w:])([a-zA-Z_:][\w:]*)(?![\w:]|\s*\()/g)]
    .map((m) => m[1])
    .filter((name) => !KEYWORDS.has(name));
}

Deno.test("dashboard: parses; unique panel ids; every panel has a query; the operators' panels are there", () => {
  assert.deepEqual(
    metricNames('sum by (instance) (rate(x_total{a="b",c=~"d|e"}[1m])) / on (instance) y > 0.8 * 1e3'),
    ["x_total", "y"],
  );
  assert.equal(new Set(panels.map((p) => p.id)).size, panels.length, "panel ids");
  for (const panel of panels) {
    if (panel.type === "row") continue;
    assert.ok((panel.targets ?? []).length > 0, `${panel.title}: no query`);
    for (const target of panel.targets!) {
      assert.ok(target.expr.trim(), `${panel.title} ${target.refId}: empty`);
    }
    assert.ok(panel.gridPos.x + panel.gridPos.w <= 24, `${panel.title}: wider than the grid`);
  }
  const all = queries.map((q) => q.expr).join("\n");
  for (
    const needed of [
      "adaptor_messages_forwarded_total", // forwarding rate
      "adaptor_publishers",
      "adaptor_subscribers",
      "adaptor_topics",
      "process_start_time_seconds", // restarts
      "adaptor_proxy_restarts_total",
      "adaptor_auth_denied_total", // auth
      "handshake_failed", // handshake failures
      "process_resident_memory_bytes", // memory
      "process_open_fds", // descriptors
      "process_max_fds",
    ]
  ) assert.ok(all.includes(needed), `no panel shows ${needed}`);
});

testUnless(missing("promtool"), "dashboard: every query is valid PromQL (promtool check rules)", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "adaptor-dashboard-" });
  try {
    const rules = [
      "groups:",
      "  - name: dashboard",
      "    rules:",
      ...queries.flatMap(({ expr }, i) => [
        `      - record: dashboard:query_${i}`,
        `        expr: ${JSON.stringify(filled(expr))}`,
      ]),
      "",
    ].join("\n");
    Deno.writeTextFileSync(`${dir}/dashboard.rules.yml`, rules);
    const { code, output } = await promtool("check", "rules", `${dir}/dashboard.rules.yml`);
    assert.equal(code, 0, output);
    assert.match(output, new RegExp(`SUCCESS: ${queries.length} rules found`));
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("dashboard: every metric it names is one a live adaptor emits", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "adaptor-dashboard-" });
  const server = keygen(`${dir}/server`);
  const port = freePort();
  // Both channels and CURVE: every family the adaptor can emit has samples.
  const adaptor = new AdaptorProcess([
    ...["-b", `ipc://${ipcPath("xsub")}`, "-p", `tcp://127.0.0.1:${freePort()}`],
    ...["-l", `tcp://127.0.0.1:${freePort()}`, "-u", `ipc://${ipcPath("push")}`],
    ...["--curve-cert", server.secretPath, "--metrics", `127.0.0.1:${port}`],
  ]);
  try {
    await adaptor.ready();
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const families = new Set([...text.matchAll(/^# TYPE (\w+) /gm)].map((m) => m[1]));
    families.add("up"); // Prometheus' own, per target
    const variables = JSON.stringify(dashboard.templating.list);
    const named = [
      ...queries.flatMap(({ where, expr }) => metricNames(filled(expr)).map((name) => ({ where, name }))),
      ...[...variables.matchAll(/label_values\((\w+),/g)].map((m) => ({ where: "variable", name: m[1] })),
    ];
    assert.ok(named.length > 20, `${named.length} names found`);
    for (const { where, name } of named) assert.ok(families.has(name), `${where}: ${name} is not emitted`);
  } finally {
    const { status } = await adaptor.stop();
    Deno.removeSync(dir, { recursive: true });
    assert.equal(status.code, 0, adaptor.lines.join("\n"));
  }
});
