import assert from "node:assert/strict";
import { makeConfig } from "../src/config/config.ts";
import { StartupError } from "../src/errors.ts";
import {
  BASELINE_BYTES,
  checkLimits,
  descriptorsNeeded,
  PEER_DESCRIPTORS,
  queueBudget,
} from "../src/os/limits.ts";

const MiB = 2 ** 20;

Deno.test("checkLimits: a descriptor limit below what the configuration opens plus room for peers is refused", () => {
  const config = makeConfig({ bind: ["ipc:///tmp/limits-q"], publish: ["tcp://127.0.0.1:16001"] });
  const need = 20 + descriptorsNeeded(config) + PEER_DESCRIPTORS;
  assert.throws(
    () => checkLimits(config, { files: { soft: need - 1 }, open: 20, memory: undefined }),
    (error) => error instanceof StartupError && error.message.includes(`is ${need - 1}, below the ${need}`),
  );
  assert.deepEqual(checkLimits(config, { files: { soft: need }, open: 20, memory: undefined }), []);
  assert.deepEqual(checkLimits(config, { files: { soft: Infinity }, open: 20, memory: undefined }), []);
});

Deno.test("descriptorsNeeded grows with I/O threads, the inbound channel, --metrics and -d", () => {
  const base = makeConfig({ bind: ["ipc:///tmp/limits-q"], publish: ["tcp://127.0.0.1:16001"] });
  const more = makeConfig({
    bind: ["ipc:///tmp/limits-q"],
    publish: ["tcp://127.0.0.1:16001"],
    listen: ["tcp://127.0.0.1:16002"],
    push: ["ipc:///tmp/limits-p"],
    ioThreads: 4,
    metrics: "127.0.0.1:16003",
    debug: true,
  });
  // 3 more I/O threads, a channel, 2 endpoints and a lock, the metrics server and its connections, taps.
  assert.equal(descriptorsNeeded(more) - descriptorsNeeded(base), 3 * 2 + 8 + 2 + 1 + 33 + 12);
});

Deno.test("queueBudget and the memory warning: --rcvhwm + --sndhwm messages of --max-message-size a channel", () => {
  const main = makeConfig({ bind: ["ipc:///tmp/limits-q"], publish: ["tcp://127.0.0.1:16001"] });
  assert.equal(queueBudget(main), BASELINE_BYTES + 20_000 * 65_536);
  const both = makeConfig({
    bind: ["ipc:///tmp/limits-q"],
    publish: ["tcp://127.0.0.1:16001"],
    listen: ["tcp://127.0.0.1:16002"],
  });
  assert.equal(queueBudget(both), BASELINE_BYTES + 2 * 20_000 * 65_536);
  assert.equal(queueBudget(makeConfig({ bind: ["ipc:///tmp/limits-q"], sndhwm: 0 })), Infinity);
  const files = { soft: Infinity };
  const [warning] = checkLimits(main, { files, open: 20, memory: 1024 * MiB });
  assert.match(warning, /the queues may hold 1314 MiB .*above this process's memory limit of 1024 MiB/);
  assert.deepEqual(checkLimits(main, { files, open: 20, memory: 1536 * MiB }), []);
  assert.equal(checkLimits(both, { files, open: 20, memory: 1536 * MiB }).length, 1);
  assert.deepEqual(checkLimits(main, { files, open: 20, memory: undefined }), []);
});
