/**
 * The adaptor's entry point: argv/env → Config → Adaptor → signals → exit code.
 *
 * Everything here is thin on purpose; each step lives in its own module and is tested there.
 * Exit codes: 0 after a clean stop, 2 for usage errors, 1 for runtime errors.
 */

import process from "node:process";
import { startAdaptor } from "./adaptor.ts";
import { parseArgs } from "./cli.ts";
import { exitCodeOf, oneLine } from "./errors.ts";
import { log, setupLogging, writeStderr } from "./log.ts";
import { AdaptorMetrics } from "./metrics.ts";
import { serveMetrics } from "./metrics_server.ts";
import { keygen } from "./security.ts";
import { ADAPTOR_VERSION, PROGRAM } from "./version.ts";
import { addonBuild, zmqVersion } from "./zmq.ts";

const SIGNALS = ["SIGINT", "SIGTERM"] as const;

/** Runs the adaptor until a signal or a failure; returns the process exit code. */
export async function main(argv: readonly string[], env: Record<string, string>): Promise<number> {
  const invocation = parseArgs(argv, env);
  if (invocation.kind === "help") {
    console.log(invocation.text.trimEnd());
    return 0;
  }
  if (invocation.kind === "version") {
    console.log(
      `${PROGRAM} ${ADAPTOR_VERSION} (ZeroMQ ${zmqVersion()}, addon build ${addonBuild()}, Deno ${Deno.version.deno})`,
    );
    return 0;
  }
  if (invocation.kind === "keygen") {
    const { publicPath, secretPath, publicKey } = keygen(invocation.path);
    console.log(
      `wrote ${publicPath} (public: give it to the other side) and ${secretPath} (secret, mode 0600)`,
    );
    console.log(`public key: ${publicKey}`);
    return 0;
  }
  const { config } = invocation;
  setupLogging({ level: config.logLevel, format: config.logFormat });
  if (config.test) log().info("RUNNING IN TEST MODE & DEBUG MODE for XPUB -> XSUB");
  if (config.receiverTest) log().info("RUNNING IN TEST MODE & DEBUG MODE for SUB -> PUSH");
  if (config.debug && !config.test && !config.receiverTest) log().info("RUNNING IN DEBUGGING MODE");

  // Listen before starting: a signal during start-up then stops the adaptor cleanly once
  // it is up, instead of killing it half-started.
  const signalled = new Promise<string>((resolve) => {
    for (const signal of SIGNALS) Deno.addSignalListener(signal, () => resolve(signal));
  });
  // SIGHUP rereads --curve-clients (`systemctl reload`); it never kills the adaptor.
  let reload = () => log().info("SIGHUP during start-up: the clients directory is being read anyway");
  Deno.addSignalListener("SIGHUP", () => reload());
  // The metrics port is bound first: a busy one fails the start before any ZeroMQ socket exists.
  const metrics = config.metrics ? new AdaptorMetrics() : undefined;
  const server = config.metrics ? serveMetrics(config.metrics, metrics!) : undefined;
  const adaptor = await startAdaptor(config, metrics?.hooks).catch(async (error) => {
    await server?.stop();
    throw error;
  });
  metrics?.attach(adaptor);
  reload = () => {
    if (!adaptor.reloadClients()) log().info("SIGHUP: nothing to reload (no --curve-clients)");
  };
  log().info("{program} {version} ready (pid {pid})", {
    program: PROGRAM,
    version: ADAPTOR_VERSION,
    pid: Deno.pid,
  });
  const reason = await Promise.race([signalled, adaptor.failure.then((why) => `failure: ${why}`)]);
  const failed = reason.startsWith("failure");
  if (failed) log().error("{reason}", { reason });
  else log().info("{signal} received, stopping", { signal: reason });
  await Promise.all([server?.stop(), adaptor.stop()]);
  log().info("stopped");
  return failed ? 1 : 0;
}

if (import.meta.main) {
  let code: number;
  try {
    // `deno task start -- -t` passes the "--" through; it means nothing to the adaptor.
    const args = Deno.args[0] === "--" ? Deno.args.slice(1) : Deno.args;
    code = await main(args, Deno.env.toObject());
  } catch (error) {
    code = exitCodeOf(error);
    const hint = code === 2 ? ` (see ${PROGRAM} --help)` : "";
    // Not console.error: it throws when stderr is full, which would turn exit 2 into 1.
    writeStderr(`${PROGRAM}: error: ${oneLine(error)}${hint}\n`);
  }
  process.exit(code);
}
