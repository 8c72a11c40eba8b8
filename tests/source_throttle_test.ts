import assert from "node:assert/strict";
import { hostOf, SourceThrottle } from "../src/security/source_throttle.ts";

Deno.test("hostOf: the host of ZAP addresses and monitor endpoints, IPv4 and IPv6", () => {
  assert.equal(hostOf("10.0.0.7"), "10.0.0.7");
  assert.equal(hostOf("tcp://10.0.0.7:5123"), "10.0.0.7");
  assert.equal(hostOf("tcp://[::1]:5123"), "::1");
  assert.equal(hostOf("fe80::1"), "fe80::1");
  assert.equal(hostOf("::ffff:127.0.0.2"), "::ffff:127.0.0.2");
  assert.equal(hostOf("ipc:///tmp/q"), undefined);
  assert.equal(hostOf(""), undefined);
});

Deno.test("SourceThrottle: blocked at the limit of denials, allowed decisions count nothing, SIGHUP's liftAll clears", () => {
  const throttle = new SourceThrottle("XPUB", { limit: 3 });
  try {
    for (let i = 0; i < 5; i++) throttle.decided(true, "10.0.0.1");
    throttle.decided(false, "tcp://10.0.0.2:1");
    throttle.decided(false, "10.0.0.2");
    assert.deepEqual(throttle.blocked, []);
    throttle.decided(false, "10.0.0.2");
    assert.deepEqual(throttle.blocked, ["10.0.0.2"]);
    assert.equal(throttle.blocks, 1);
    throttle.liftAll();
    assert.deepEqual(throttle.blocked, []);
  } finally {
    throttle.close();
  }
});
