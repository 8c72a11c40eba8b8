import assert from "node:assert/strict";
import { log, setupLogging } from "../src/ops/log.ts";
import { PeerEventLog } from "../src/adaptor/peer_events.ts";

const limits = {
  maxMessageSize: 65536,
  handshakeTimeout: 5000,
  heartbeatInterval: 10000,
  tcpUserTimeout: 30000,
};

function capture(): string[] {
  const lines: string[] = [];
  setupLogging({ level: "debug", format: "text", write: (line) => lines.push(line.trimEnd()) });
  return lines;
}

const event = (name: string, value = 0, remote = "tcp://10.0.0.7:51234") => ({
  name,
  endpoint: "tcp://127.0.0.1:6001",
  value,
  remote,
});

Deno.test("PeerEventLog: an XPUB disconnect names --max-subscription-size, other sockets --max-message-size", () => {
  const lines = capture();
  const events = new PeerEventLog({
    limits: { ...limits, maxSubscriptionSize: 1024 },
    logger: log("socket"),
  });
  events.report("XPUB", event("disconnected", 50));
  events.report("XSUB", { ...event("disconnected", 51), endpoint: "ipc:///tmp/q", remote: "" });
  events.close();
  assert.equal(lines.length, 2, lines.join("\n"));
  assert.match(lines[0], /XPUB .* disconnected .*e\.g\. a subscription over --max-subscription-size 1024\)/);
  assert.match(
    lines[1],
    /XSUB ipc:\/\/\/tmp\/q: a peer disconnected .*e\.g\. a frame over --max-message-size 65536\)/,
  );
});

Deno.test("PeerEventLog: warnings without -d, one per failed handshake, throttled with a summary", () => {
  const lines = capture();
  const events = new PeerEventLog({ limits, logger: log("socket") });
  for (let i = 0; i < 20; i++) {
    events.report("XPUB", event("accepted", 10 + i));
    events.report("XPUB", event("handshake_failed_no_detail", 104));
    events.report("XPUB", event("disconnected", 10 + i)); // the same connection: not reported again
  }
  assert.equal(lines.length, 5, lines.join("\n"));
  assert.ok(lines.every((l) => l.includes("[WRN]") && l.includes("failed the ZeroMQ handshake")));
  assert.match(lines[0], /--handshake-timeout 5000 ms/);
  events.report("XPUB", event("disconnected", 40)); // a peer that had completed its handshake
  assert.equal(lines.length, 6);
  assert.match(
    lines[5],
    /XPUB tcp:\/\/127\.0\.0\.1:6001: a peer tcp:\/\/10\.0\.0\.7:51234 disconnected .*stopped responding.*--max-message-size 65536/,
  );
  events.close();
  assert.equal(lines.length, 7);
  assert.match(lines[6], /15 more 'handshake' warnings in 10 s/);
  events.report("XPUB", event("disconnected", 41));
  assert.equal(lines.length, 7, "nothing is logged once closed (the adaptor is stopping)");
});

Deno.test("PeerEventLog: protocol errors are named; CURVE sockets leave handshakes to the auth log", () => {
  const lines = capture();
  const events = new PeerEventLog({ limits, logger: log("socket") });
  events.report("XSUB", event("handshake_failed_protocol", 0x10000001, ""));
  events.report("XSUB", event("accept_failed", 24, ""));
  events.report("XSUB", event("handshake_succeeded", 0, ""));
  assert.match(
    lines[0],
    /XSUB tcp:\/\/127\.0\.0\.1:6001: a connection failed .*protocol error: unexpected command/,
  );
  assert.match(lines[1], /cannot accept a connection: Too many open files/);
  assert.equal(lines.length, 2);
  events.report("XPUB", event("handshake_failed_no_detail", 32), { handshakeLogged: true });
  events.report("XPUB", event("disconnected", 12));
  assert.equal(lines.length, 2, "a handshake the auth log tells is not told again, nor its disconnect");
  events.close();
});
