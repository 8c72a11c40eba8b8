import assert from "node:assert/strict";
import { preview, SentTimes } from "../src/adaptor/taps.ts";

const enc = new TextEncoder();

Deno.test("preview: printable, truncated, frame count shown", () => {
  assert.equal(preview([enc.encode("PUB-H-79844")]), "PUB-H-79844");
  assert.equal(preview([enc.encode("a\nb\x00c")]), "a.b.c");
  const long = preview([enc.encode("x".repeat(500))]);
  assert.equal(long.length, 121);
  assert.ok(long.endsWith("…"));
  assert.equal(preview([enc.encode("head"), enc.encode("body")]), "head (+1 frames)");
});

Deno.test("preview: C1 controls, U+2028/2029, bidi overrides and isolates, BOM and DEL never reach the output raw", () => {
  const hostile = "a\u0085b\u009bc\u2028d\u2029e\u202ef\u2066g\u200fh\ufeffi\x7fj\x1b[2Jk";
  assert.equal(preview([enc.encode(hostile)]), "a.b.c.d.e.f.g.h.i.j.[2Jk");
  // Invalid UTF-8 becomes U+FFFD (harmless); printable non-ASCII stays.
  assert.equal(preview([new Uint8Array([0x61, 0xff, 0x62])]), "a\ufffdb");
  assert.equal(preview([enc.encode("café ü 日本")]), "café ü 日本");
  // A 64 KiB frame: only its head is decoded, the cut is shown.
  const big = preview([enc.encode("é".repeat(32_768))]);
  assert.equal(big, "é".repeat(120) + "…");
});

Deno.test("SentTimes gives the latency of messages it recorded, once", () => {
  const sent = new SentTimes();
  sent.record("PUB-A-00001", 100);
  assert.equal(sent.take("PUB-A-00001", 103.5), 3.5);
  assert.equal(sent.take("PUB-A-00001", 104), undefined);
  assert.equal(sent.take("gateway message", 104), undefined);
});
