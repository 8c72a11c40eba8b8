/**
 * scripts/docker-entrypoint.sh: the C original's container variables (GATEWAY_LISTEN_QUEUE,
 * ZMQ_PUBLISHER_PORT, DEBUG=true) become ADAPTOR_* settings. First against a stand-in binary
 * that prints what it was given, then against the real adaptor, which must start with those
 * settings and stop on SIGTERM through the script's exec.
 */

import assert from "node:assert/strict";
import { freePort, ipcPath } from "../testing/net.ts";
import { AdaptorProcess, ROOT, RUN_FLAGS } from "../testing/process.ts";

const ENTRYPOINT = `${ROOT}scripts/docker-entrypoint.sh`;

const scripts = Deno.makeTempDirSync({ prefix: "adaptor-entrypoint-" });
let scriptSeq = 0;

/** An executable shell script with `body`, in this file's temp dir (removed by the last test). */
function executable(body: string): string {
  const path = `${scripts}/adaptor-${++scriptSeq}`;
  Deno.writeTextFileSync(path, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return path;
}

/** Runs the entrypoint with a stand-in adaptor; returns its ADAPTOR_* variables and arguments. */
async function standIn(env: Record<string, string>, args: string[] = []) {
  const bin = executable('env | grep "^ADAPTOR_" | sort\nfor a in "$@"; do echo "arg=$a"; done');
  const output = await new Deno.Command("sh", {
    args: [ENTRYPOINT, ...args],
    env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", ADAPTOR_BIN: bin, ...env },
    clearEnv: true,
  }).output();
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  const lines = new TextDecoder().decode(output.stdout).trim().split("\n");
  return {
    vars: Object.fromEntries(
      lines.filter((l) => l.startsWith("ADAPTOR_") && !l.startsWith("ADAPTOR_BIN=")).map(
        (l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)],
      ),
    ),
    args: lines.filter((l) => l.startsWith("arg=")).map((l) => l.slice(4)),
  };
}

Deno.test("entrypoint: the original's variables map onto ADAPTOR_*; arguments pass through", async () => {
  assert.deepEqual(
    await standIn({
      GATEWAY_LISTEN_QUEUE: "ipc:///var/run/api-gateway-zmq-adaptor/q",
      ZMQ_PUBLISHER_PORT: "tcp://0.0.0.0:6001",
      DEBUG: "true",
    }, ["--log-format", "json"]),
    {
      vars: {
        ADAPTOR_BIND: "ipc:///var/run/api-gateway-zmq-adaptor/q",
        ADAPTOR_PUBLISH: "tcp://0.0.0.0:6001",
        ADAPTOR_DEBUG: "true",
      },
      args: ["--log-format", "json"],
    },
  );
  // Nothing set: the original's abstract ipc default; no -p, no -d.
  assert.deepEqual(await standIn({}), { vars: { ADAPTOR_BIND: "ipc://@nginx_queue_listen" }, args: [] });
  // A bare port number; DEBUG other than "true" is off, as in the original.
  assert.deepEqual((await standIn({ ZMQ_PUBLISHER_PORT: "7001", DEBUG: "yes" })).vars, {
    ADAPTOR_BIND: "ipc://@nginx_queue_listen",
    ADAPTOR_PUBLISH: "tcp://0.0.0.0:7001",
  });
  // ADAPTOR_* set as well wins.
  assert.deepEqual(
    (await standIn({ GATEWAY_LISTEN_QUEUE: "ipc:///a", ADAPTOR_BIND: "ipc:///b", ADAPTOR_METRICS: ":6002" }))
      .vars,
    { ADAPTOR_BIND: "ipc:///b", ADAPTOR_METRICS: ":6002" },
  );
});

Deno.test("entrypoint: the real adaptor starts with the original's variables and stops on SIGTERM", async () => {
  const queue = ipcPath("queue");
  const port = freePort();
  const bin = executable(
    `exec "${Deno.execPath()}" run ${RUN_FLAGS.join(" ")} "${ROOT}src/main.ts" "$@"`,
  );
  const adaptor = new AdaptorProcess([], {
    command: ["sh", ENTRYPOINT],
    env: {
      GATEWAY_LISTEN_QUEUE: `ipc://${queue}`,
      ZMQ_PUBLISHER_PORT: `tcp://127.0.0.1:${port}`,
      DEBUG: "true",
      ADAPTOR_BIN: bin,
    },
  });
  try {
    await adaptor.ready();
    await adaptor.waitFor(/RUNNING IN DEBUGGING MODE/);
    await adaptor.waitFor(new RegExp(`XSUB bound ipc://${queue}$`));
    await adaptor.waitFor(new RegExp(`XPUB bound tcp://127\\.0\\.0\\.1:${port}$`));
  } finally {
    const { status, ms } = await adaptor.stop("SIGTERM");
    assert.equal(status.code, 0, adaptor.lines.join("\n"));
    assert.ok(ms < 2000, `took ${ms.toFixed(0)} ms to exit`);
    Deno.removeSync(scripts, { recursive: true });
  }
});
