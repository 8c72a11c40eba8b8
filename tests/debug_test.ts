import assert from "node:assert/strict";
import { preview, SentTimes } from "../src/debug.ts";

const enc = new TextEncoder();

Deno.test("preview: printable, truncated, frame count shown", () => {
  assert.equal(preview([enc.encode("PUB-H-79844")]), "PUB-H-79844");
  assert.equal(preview([enc.encode("a\nb\x00c")]), "a.b.c");
  const long = preview([enc.encode("x".repeat(500))]);
  assert.equal(long.length, 121);
  assert.ok(long.endsWith("…"));
  assert.equal(preview([enc.encode("head"), enc.encode("body")]), "head (+1 frames)");
});

Deno.test("SentTimes gives the latency of messages it recorded, once", () => {
  const sent = new SentTimes();
  sent.record("PUB-A-00001", 100);
  assert.equal(sent.take("PUB-A-00001", 103.5), 3.5);
  assert.equal(sent.take("PUB-A-00001", 104), undefined);
  assert.equal(sent.take("gateway message", 104), undefined);
});
