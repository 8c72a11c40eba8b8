/**
 * The alerting rules as shipped (scripts/prometheus/adaptor.rules.yml): `promtool check rules`
 * accepts them and `promtool test rules` passes their unit tests; every alert has a severity,
 * a summary, a description and a runbook_url whose anchor is a row of the operator guide's Alerts table;
 * every alert is tested firing, every increase()/rate() alert on its first incident, and the
 * no-publisher case fires one alert only; the memory rule assumes the unit's MemoryMax=.
 * Where promtool is missing, the promtool tests report themselves skipped.
 */

import assert from "node:assert/strict";
import { ROOT } from "../testing/process.ts";
import { missing, promtool, RULES, RULES_TESTS, testUnless } from "../testing/prometheus.ts";

const rules = Deno.readTextFileSync(RULES);
const unitTests = Deno.readTextFileSync(RULES_TESTS);
const guide = Deno.readTextFileSync(`${ROOT}docs/operations.md`);

/** Each alert's block of the rules file, by name. */
const alerts = new Map(
  rules.split(/\n\s+- alert: /).slice(1).map((block) => [block.split("\n")[0].trim(), block]),
);

/** Each unit test's block of the tests file. */
const testBlocks = unitTests.split(/\n\s*- name: /).slice(1);

/** The alerts a test block expects to fire (an alertname with exp_labels after it). */
function firing(block: string): string[] {
  return block.split(/\n\s+- eval_time: /).slice(1)
    .filter((item) => /exp_labels:/.test(item))
    .map((item) => /alertname: (\w+)/.exec(item)![1]);
}

/** The alerts a test block expects silent (`exp_alerts: []`). */
function silent(block: string): string[] {
  return block.split(/\n\s+- eval_time: /).slice(1)
    .filter((item) => /exp_alerts: \[\]/.test(item))
    .map((item) => /alertname: (\w+)/.exec(item)![1]);
}

testUnless(missing("promtool"), "promtool check rules accepts the shipped rules", async () => {
  const { code, output } = await promtool("check", "rules", RULES);
  assert.equal(code, 0, output);
  assert.match(output, new RegExp(`SUCCESS: ${alerts.size} rules found`));
});

testUnless(missing("promtool"), "promtool test rules passes the rules' unit tests", async () => {
  const { code, output } = await promtool("test", "rules", RULES_TESTS);
  assert.equal(code, 0, output);
  assert.match(output, /SUCCESS/);
});

Deno.test("every alert has a severity, summary, description and a runbook row in the operator guide", () => {
  assert.ok(alerts.size >= 14, `${alerts.size} alerts`);
  for (const [name, block] of alerts) {
    assert.match(block, /\n\s+severity: (critical|warning|info)\n/, `${name}: severity`);
    assert.match(block, /\n\s+summary: "[^"]+"/, `${name}: summary`);
    assert.match(block, /\n\s+description: >-\n\s+\S/, `${name}: description`);
    const anchor = /\n\s+runbook_url: docs\/operations\.md#([\w-]+)(?:\n|$)/.exec(block)?.[1];
    assert.ok(anchor, `${name}: runbook_url docs/operations.md#…`);
    assert.ok(
      guide.includes(`<a id="${anchor}"></a>\`${name}\``),
      `${name}: docs/operations.md has no row with id ${anchor}`,
    );
  }
});

Deno.test("every alert is tested firing; increase()/rate() alerts on their first incident; no publisher fires one alert", () => {
  for (const [name, block] of alerts) {
    assert.ok(testBlocks.some((t) => firing(t).includes(name)), `${name}: no test where it fires`);
    const expr = /\n\s+expr: (?:>-\n)?([\s\S]*?)\n\s+(?:for|labels):/.exec(block)![1];
    if (/\b(increase|rate)\(/.test(expr)) {
      const first = testBlocks.filter((t) => /^["']?first incident/.test(t) && firing(t).includes(name));
      assert.ok(first.length > 0, `${name}: no 'first incident' test`);
      // The first incident: the counter's series starts at 0 and then steps once.
      for (const t of first) assert.match(t, /values: '?0 0 1/, `${name}: first incident from 0`);
    }
  }
  const noPublisher = testBlocks.filter((t) => firing(t).includes("AdaptorNoGatewayPublishers"));
  assert.ok(
    noPublisher.some((t) =>
      /adaptor_healthy\{[^\n]*\n\s+values: '?1x/.test(t) && silent(t).includes("AdaptorUnhealthy")
    ),
    "the no-publisher case: AdaptorNoGatewayPublishers fires, AdaptorUnhealthy does not",
  );
});

Deno.test("the memory alert assumes the unit's MemoryMax=", () => {
  const unit = Deno.readTextFileSync(`${ROOT}scripts/adaptor.service`);
  const memoryMax = /^MemoryMax=(\d+)([KMG]?)$/m.exec(unit)!;
  const bytes = Number(memoryMax[1]) * 1024 ** " KMG".indexOf(memoryMax[2] || " ");
  const rule = alerts.get("AdaptorMemoryHigh")!;
  assert.match(rule, new RegExp(`> 0\\.8 \\* ${bytes}\\n`));
  assert.ok(rule.includes(`MemoryMax=${memoryMax[1]}${memoryMax[2]}`), "its summary names the value");
  assert.ok(rules.includes(`MemoryMax=${memoryMax[1]}${memoryMax[2]} assumed (scripts/adaptor.service)`));
});
