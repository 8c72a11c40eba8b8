import assert from "node:assert/strict";
import { LISTEN_WITH_RECEIVER_TEST, makeConfig } from "../src/config/config.ts";
import { parseEndpoint, parseListenAddress, peerOf } from "../src/config/endpoint.ts";
import { DEFAULTS } from "../src/config/options.ts";
import { UsageError } from "../src/errors.ts";

Deno.test("defaults are the C original's endpoints; the inbound channel is off", () => {
  const config = makeConfig();
  assert.deepEqual(config.bind.map((e) => e.address), [DEFAULTS.bind]);
  assert.deepEqual(config.publish.map((e) => e.address), [DEFAULTS.publish]);
  assert.equal(config.listen.length, 0);
  assert.equal(config.push.length, 0);
  assert.equal(config.debug, false);
  assert.equal(config.bind[0].ipcPath, "/tmp/nginx_queue_listen");
});

Deno.test("every transport form parses; prefixes pick bind or connect", () => {
  assert.deepEqual(parseEndpoint("tcp://eth0:6001", "publish"), {
    address: "tcp://eth0:6001",
    transport: "tcp",
    mode: "bind",
  });
  assert.equal(parseEndpoint("tcp://[::1]:6001", "publish").address, "tcp://[::1]:6001");
  assert.equal(parseEndpoint("tcp://*:*", "publish").address, "tcp://*:*");
  assert.equal(parseEndpoint("ipc://@nginx_queue_listen", "bind").ipcPath, undefined);
  assert.equal(parseEndpoint("ipc:///tmp/q", "bind").ipcPath, "/tmp/q");
  assert.equal(parseEndpoint("inproc://x", "bind").transport, "inproc");
  assert.equal(parseEndpoint(">tcp://node1:6001", "bind").mode, "connect");
  assert.equal(parseEndpoint("@tcp://127.0.0.1:5000", "listen").mode, "bind");
  assert.equal(parseEndpoint("tcp://127.0.0.1:5000", "listen").mode, "connect", "-l connects by default");
});

Deno.test("bad endpoints are usage errors naming the flag and value", () => {
  const cases: [string, RegExp][] = [
    ["localhost:6001", /expected TRANSPORT:\/\/ADDRESS/],
    ["udp://1.2.3.4:5", /unsupported transport 'udp'/],
    ["tcp://1.2.3.4", /expected tcp:\/\/HOST:PORT/],
    ["tcp://1.2.3.4:0x10", /port '0x10'/],
    ["tcp://1.2.3.4:65536", /port '65536'/],
    ["ipc://", /no path/],
    [`ipc:///${"x".repeat(120)}`, /limit is 107/],
    ["inproc://", /no name/],
  ];
  for (const [text, why] of cases) {
    assert.throws(() => parseEndpoint(text, "publish"), (e: unknown) => {
      assert.ok(e instanceof UsageError);
      assert.match(e.message, /^-p\/--publish '/);
      assert.match(e.message, why);
      return true;
    });
  }
  assert.throws(() => parseEndpoint(">tcp://*:6001", "bind"), /cannot connect to '\*'/);
  assert.throws(() => parseEndpoint(">tcp://host:*", "bind"), /fixed port/);
});

Deno.test("the same endpoint twice is refused; numbers are range-checked", () => {
  assert.throws(() => makeConfig({ bind: ["ipc:///tmp/a", "ipc:///tmp/a"] }), /used twice/);
  assert.throws(
    () => makeConfig({ bind: ["tcp://127.0.0.1:1"], publish: ["tcp://127.0.0.1:1"] }),
    /also by -b/,
  );
  assert.throws(
    () => makeConfig({ bind: ["tcp://127.0.0.1:2"], publish: [">tcp://127.0.0.1:2"] }),
    /connect to itself/,
  );
  assert.throws(() => makeConfig({ sndhwm: -1 }), /--sndhwm '-1'/);
  assert.throws(() => makeConfig({ reconnectIvl: 0 }), /--reconnect-ivl '0'/);
  assert.throws(() => makeConfig({ ioThreads: 0 }), /--io-threads/);
  assert.throws(() => makeConfig({ logFormat: "xml" as "json" }), /--log-format 'xml'/);
});

Deno.test("-t and -r imply debug; -r turns the inbound channel on with its defaults", () => {
  assert.equal(makeConfig({ test: true }).debug, true);
  const config = makeConfig({ receiverTest: true });
  assert.equal(config.debug, true);
  assert.deepEqual(config.listen.map((e) => e.address), [LISTEN_WITH_RECEIVER_TEST]);
  assert.deepEqual(config.push.map((e) => e.address), [DEFAULTS.push]);
});

Deno.test("peerOf: peers connect where the adaptor binds (any-address made loopback), bind where it connects", () => {
  const xpub = parseEndpoint("tcp://0.0.0.0:6001", "publish");
  assert.deepEqual(peerOf(xpub, "tcp://0.0.0.0:6001"), { address: "tcp://127.0.0.1:6001", mode: "connect" });
  const sub = parseEndpoint("tcp://127.0.0.1:5000", "listen");
  assert.deepEqual(peerOf(sub), { address: "tcp://127.0.0.1:5000", mode: "bind" });
});

Deno.test("protective limits: defaults, 0 turns each off, heartbeat timeout must exceed the interval", () => {
  const config = makeConfig();
  assert.equal(config.maxMessageSize, 65_536);
  assert.equal(config.maxSubscriptionSize, 1024);
  assert.equal(config.handshakeTimeout, 5_000);
  assert.equal(config.heartbeatInterval, 10_000);
  assert.equal(config.heartbeatTimeout, 30_000);
  assert.equal(config.tcpUserTimeout, 30_000);
  assert.equal(config.outBatchSize, 65_536);
  assert.equal(makeConfig({ outBatchSize: 8192 }).outBatchSize, 8192);
  assert.throws(() => makeConfig({ outBatchSize: 512 }), /--out-batch-size/);
  assert.equal(makeConfig({ tcpUserTimeout: 0 }).tcpUserTimeout, 0);
  assert.throws(() => makeConfig({ tcpUserTimeout: 3_600_001 }), /--tcp-user-timeout/);
  const off = makeConfig({
    maxMessageSize: 0,
    handshakeTimeout: 0,
    heartbeatInterval: 0,
    heartbeatTimeout: 5,
  });
  assert.deepEqual(
    [off.maxMessageSize, off.handshakeTimeout, off.heartbeatInterval, off.heartbeatTimeout],
    [0, 0, 0, 5],
  );
  assert.throws(
    () => makeConfig({ heartbeatInterval: 1000, heartbeatTimeout: 1000 }),
    (e: unknown) => e instanceof UsageError && /--heartbeat-timeout '1000': must be longer/.test(e.message),
  );
  assert.throws(() => makeConfig({ maxMessageSize: 2 ** 33 }), /--max-message-size/);
  assert.throws(() => makeConfig({ maxSubscriptionSize: -1 }), /--max-subscription-size/);
  assert.equal(makeConfig({ maxSubscriptionSize: 0 }).maxSubscriptionSize, 0);
  // A CURVE client's handshake is a frame of ~270 bytes, which the XPUB's limit applies to.
  assert.equal(makeConfig({ maxSubscriptionSize: 100 }).maxSubscriptionSize, 100);
  assert.throws(
    () => makeConfig({ maxSubscriptionSize: 300, curveCert: "/x_secret" }),
    /^UsageError: --max-subscription-size '300': at least 512 with --curve-cert/,
  );
  assert.equal(makeConfig({ maxSubscriptionSize: 512, curveCert: "/x_secret" }).maxSubscriptionSize, 512);
  assert.equal(makeConfig({ maxSubscriptionSize: 0, curveCert: "/x_secret" }).maxSubscriptionSize, 0);
  assert.throws(() => makeConfig({ heartbeatInterval: 7_000_000 }), /--heartbeat-interval/);
  assert.throws(() => makeConfig({ handshakeTimeout: -1 }), /--handshake-timeout/);
});

Deno.test("--metrics HOST:PORT: IPv4, [IPv6], host names, :PORT for all interfaces; off by default", () => {
  assert.equal(makeConfig().metrics, undefined);
  assert.deepEqual(makeConfig({ metrics: "127.0.0.1:6002" }).metrics, { hostname: "127.0.0.1", port: 6002 });
  assert.deepEqual(parseListenAddress("[::1]:6002", "--metrics"), { hostname: "::1", port: 6002 });
  assert.deepEqual(parseListenAddress("localhost:0", "--metrics"), { hostname: "localhost", port: 0 });
  assert.deepEqual(parseListenAddress(":9100", "--metrics"), { hostname: "0.0.0.0", port: 9100 });
  assert.deepEqual(parseListenAddress("*:9100", "--metrics"), { hostname: "0.0.0.0", port: 9100 });
  for (
    const bad of [
      "6002",
      "127.0.0.1",
      "127.0.0.1:",
      "http://127.0.0.1:6002",
      "host:port",
      "a*b:1",
      "::1:6002",
    ]
  ) {
    assert.throws(
      () => makeConfig({ metrics: bad }),
      (e: unknown) =>
        e instanceof UsageError && e.message.startsWith(`--metrics '${bad}': expected HOST:PORT`),
      bad,
    );
  }
  assert.throws(() => makeConfig({ metrics: "127.0.0.1:70000" }), /--metrics '127.0.0.1:70000': port 70000/);
});

Deno.test("--subscriptions: local by default; forward is refused on an XPUB the network reaches unauthenticated", () => {
  assert.equal(makeConfig().subscriptions, "local");
  const forward = (publish: string[], more: Record<string, string> = {}) =>
    makeConfig({ subscriptions: "forward", publish, ...more });
  assert.throws(
    () => forward([]),
    (e) => e instanceof UsageError && /XPUB tcp:\/\/0\.0\.0\.0:6001 .*--curve-clients/.test(e.message),
  );
  assert.throws(() => forward(["tcp://eth0:6001"]), UsageError);
  assert.throws(() => forward(["tcp://127.0.0.1:6001", "tcp://10.0.0.1:6001"]), /tcp:\/\/10\.0\.0\.1:6001/);
  assert.throws(() => forward([">tcp://collector:6001"], { curveCert: "c" }), /--curve-servers/);
  // CURVE with known keys, or only local peers: forward runs.
  const curve = { curveCert: "c", curveClients: "d" };
  assert.equal(forward(["tcp://0.0.0.0:6001"], curve).subscriptions, "forward");
  assert.equal(
    forward([">tcp://collector:6001"], { curveCert: "c", curveServers: "s" }).subscriptions,
    "forward",
  );
  for (
    const local of [
      "tcp://127.0.0.1:6001",
      "tcp://localhost:6001",
      "tcp://[::1]:6001",
      "tcp://lo:6001",
      "ipc:///tmp/x",
      "inproc://x",
    ]
  ) {
    assert.equal(forward([local]).subscriptions, "forward", local);
  }
});
