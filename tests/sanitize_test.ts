/**
 * The shared sanitizer of text from outside (src/ops/sanitize.ts) and the per-key log throttle
 * with its timed, exact summaries (src/ops/throttle.ts).
 */

import assert from "node:assert/strict";
import { escapeCharacter, sanitize, SANITIZE_MAX_LENGTH } from "../src/ops/sanitize.ts";
import { LogThrottle, OVERFLOW_KEY } from "../src/ops/throttle.ts";
import { until } from "../testing/net.ts";

Deno.test("sanitize: every control, separator, bidi and lone surrogate escaped; printable text kept", () => {
  assert.equal(sanitize("plain ASCII, café, 日本, emoji 🙂"), "plain ASCII, café, 日本, emoji 🙂");
  assert.equal(sanitize("a\nb\rc\td"), "a\\nb\\rc\\td");
  assert.equal(sanitize("\x1b[2J\x1b]0;t\x07\x00\x7f"), "\\x1b[2J\\x1b]0;t\\x07\\x00\\x7f");
  assert.equal(sanitize("\u0085\u009b31m"), "\\x85\\x9b31m");
  assert.equal(sanitize("x\u2028y\u2029z"), "x\\u2028y\\u2029z");
  assert.equal(
    sanitize("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c\ufeff"),
    "\\u202a\\u202b\\u202c\\u202d\\u202e\\u2066\\u2067\\u2068\\u2069\\u200e\\u200f\\u061c\\ufeff",
  );
  assert.equal(sanitize("lone \ud800 and \udc00 surrogates"), "lone \\ud800 and \\udc00 surrogates");
  assert.equal(escapeCharacter("\x1b"), "\\x1b");
  // Every code point below U+00A0 that is not printable ASCII is escaped.
  for (let code = 0; code < 0xa0; code++) {
    const char = String.fromCharCode(code);
    const printable = code >= 0x20 && code < 0x7f;
    assert.equal(sanitize(char) === char, printable, `U+${code.toString(16)}`);
  }
});

Deno.test("sanitize: long text cut before escaping, with the count; surrogate pairs not split", () => {
  const line = "y".repeat(3_000_000);
  const cut = sanitize(line);
  assert.equal(
    cut,
    "y".repeat(SANITIZE_MAX_LENGTH) + `… (${3_000_000 - SANITIZE_MAX_LENGTH} more characters)`,
  );
  assert.equal(sanitize("abcdef", 3), "abc… (3 more characters)");
  // The 3rd code unit is the first half of 🙂: the cut comes before it.
  assert.equal(sanitize("ab🙂cd", 3), "ab… (4 more characters)");
  assert.equal(sanitize("\x1b".repeat(10), 2), "\\x1b\\x1b… (8 more characters)");
});

Deno.test("LogThrottle: perWindow lines per key, then one summary with the exact count when the window ends", async () => {
  const lines: string[] = [];
  const throttle = new LogThrottle({ write: (l) => lines.push(l), windowMs: 200, perWindow: 2 });
  try {
    for (let i = 0; i < 1000; i++) throttle.report("a", `a ${i}`, { summary: "a-summary" });
    throttle.report("b", "b 0");
    assert.deepEqual(lines, ["a 0", "a 1", "b 0"]);
    await until(() => lines.length === 4, "the summary of a");
    assert.equal(lines[3], "a-summary (998 more like it in the last 0.2 s)");
    // b had nothing suppressed: no summary; a new window starts afresh.
    await until(() => throttle.size === 0, "both windows over");
    throttle.report("a", "a again");
    assert.deepEqual(lines.slice(4), ["a again"]);
  } finally {
    throttle.close();
  }
});

Deno.test("LogThrottle: past maxKeys, new keys share one overflow window; close() writes what is pending", () => {
  const lines: string[] = [];
  const throttle = new LogThrottle({ write: (l) => lines.push(l), maxKeys: 2, perWindow: 1 });
  for (let key = 0; key < 50; key++) {
    throttle.report(`k${key}`, `line ${key}`, { overflow: `overflow from ${key}` });
  }
  assert.deepEqual(lines, ["line 0", "line 1", "overflow from 2"]);
  assert.equal(throttle.size, 3);
  throttle.close();
  assert.deepEqual(lines.slice(3), ["overflow from 2 (47 more like it in the last 60 s)"]);
  throttle.report("k0", "after close");
  assert.equal(lines.length, 4);
  assert.equal(throttle.size, 0);
  assert.equal(typeof OVERFLOW_KEY, "string");
});
