/**
 * Running the adaptor as a process: argv/env → Config → Adaptor → wait for a stop signal or a
 * failure → stop → exit code. `main.ts` installs the signal listeners first and hands them in.
 *
 * Exit codes: 0 after a clean stop, 2 for usage errors, 1 for runtime errors (a failed start, a
 * part of the adaptor that ended by itself, an unhandled error anywhere, a stop that overran).
 */

import { describeTotals, startAdaptor } from "./adaptor.ts";
import { parseArgs } from "./cli.ts";
import { exitCodeOf, oneLine } from "./errors.ts";
import { installRejectionGuard } from "./guard.ts";
import { raiseFileLimit } from "./libc.ts";
import { literal, log, setupLogging, writeStderr } from "./log.ts";
import { keygen } from "./cert.ts";
import { shieldWaits, type SignalListeners } from "./signals.ts";
import { ADAPTOR_VERSION, PROGRAM } from "./version.ts";
import { addonBuild, holdWaitsUntil, zmqVersion } from "./zmq.ts";

/**
 * A stop that takes longer than this is cut short: SIGINT/SIGTERM end the adaptor within 2 s,
 * and the exit of a process that holds gigabytes (a flood of topics) takes a further ~0.1 s.
 * The stop itself is bounded below that (proxies 0.5 s, --linger ≤ 1.5 s); this is the backstop
 * should anything still run. Cut short once the linger is over, only libzmq's freeing of its
 * state was left: exit as if it had finished. Otherwise something could not finish: exit 1.
 */
export const STOP_DEADLINE_MS = 1750;

/**
 * `main` for the process: `deno task start -- -t` passes the "--" through (it means nothing to
 * the adaptor), and an error that ends `main` is printed as one line, `adaptor: error: …`, with
 * no stack trace. Returns the exit code.
 */
export async function run(
  args: readonly string[],
  env: Record<string, string>,
  signals: SignalListeners,
): Promise<number> {
  try {
    return await main(args[0] === "--" ? args.slice(1) : args, env, signals);
  } catch (error) {
    const code = exitCodeOf(error);
    const hint = code === 2 ? ` (see ${PROGRAM} --help)` : "";
    // Not console.error: it throws when stderr is full, which would turn exit 2 into 1.
    writeStderr(`${PROGRAM}: error: ${oneLine(error)}${hint}\n`);
    return code;
  }
}

/** Runs the adaptor until a stop signal or a failure; returns the process exit code. */
export async function main(
  argv: readonly string[],
  env: Record<string, string>,
  signals: SignalListeners,
): Promise<number> {
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
  // An unhandled rejection or uncaught error anywhere: one line and a clean stop (exit 1).
  const guard = installRejectionGuard();
  const files = raiseFileLimit();
  if (files?.raised) {
    log().info("Raised the open-files limit from {before} to {after}", {
      before: files.before.soft,
      after: files.after.soft,
    });
  }
  if (config.test) log().info("RUNNING IN TEST MODE & DEBUG MODE for XPUB -> XSUB");
  if (config.receiverTest) log().info("RUNNING IN TEST MODE & DEBUG MODE for SUB -> PUSH");
  if (config.debug && !config.test && !config.receiverTest) log().info("RUNNING IN DEBUGGING MODE");

  // SIGHUP rereads --curve-clients (`systemctl reload`); it never kills the adaptor.
  signals.on(
    "SIGHUP",
    () => log().info("SIGHUP during start-up: the clients directory is being read anyway"),
  );
  signals.on("SIGUSR1", () => log().info("SIGUSR1 during start-up: no totals yet"));
  signals.on("SIGUSR2", () => log().info("SIGUSR2 ignored (SIGHUP reloads, SIGINT/SIGTERM stop)"));
  // Again now that the program is loaded (loading it used the pool): libzmq's waits start once it
  // is done, while the sockets are opened and bound meanwhile.
  holdWaitsUntil(
    shieldWaits().then((exposed) => {
      if (exposed) log().info(literal(`${exposed} pool thread(s) could not be made to block signals`));
    }),
  );
  // The metrics port is bound first: a busy one fails the start before any ZeroMQ socket exists.
  // Loaded only when asked for: a start without --metrics compiles less.
  const exporter = config.metrics ? await loadMetrics() : undefined;
  const metrics = exporter ? new exporter.AdaptorMetrics() : undefined;
  const server = exporter ? exporter.serveMetrics(config.metrics!, metrics!) : undefined;
  const adaptor = await startAdaptor(config, metrics?.hooks).catch(async (error) => {
    await server?.stop();
    throw error;
  });
  metrics?.attach(adaptor);
  // One reload at a time; SIGHUPs that come meanwhile make one more (a storm is a few reloads).
  let reloading: Promise<void> | undefined;
  let again = false;
  const reloadOnce = async () => {
    const clients = adaptor.reloadClients();
    const servers = await adaptor.reloadServers().catch((error) => {
      log().warn(literal(`SIGHUP: reconnecting failed: ${oneLine(error)}`));
      return [];
    });
    if (!clients && !servers) {
      log().info("SIGHUP: nothing to reload (no --curve-clients), nor --curve-servers");
    }
  };
  signals.on("SIGHUP", () => {
    if (reloading) return void (again = true);
    reloading = (async () => {
      do {
        again = false;
        await reloadOnce();
      } while (again);
    })().finally(() => reloading = undefined);
  });
  signals.on("SIGUSR1", async () => {
    const stats = await adaptor.statistics({ timeoutMs: 300 });
    for (const [name, s] of Object.entries(stats)) log().info(literal(describeTotals(name as never, s)));
  });
  log().info("{program} {version} ready (pid {pid})", {
    program: PROGRAM,
    version: ADAPTOR_VERSION,
    pid: Deno.pid,
  });
  // A stop signal that came during start-up wins here at once.
  const reason = await Promise.race([
    signals.stop.then((signal) => ({ failed: false, text: `${signal} received, stopping` })),
    adaptor.failure.then((why) => ({ failed: true, text: `failure: ${why}` })),
    guard.failure.then((why) => ({ failed: true, text: `failure: ${why}` })),
  ]);
  if (reason.failed) log().error(literal(reason.text));
  else log().info(literal(reason.text));
  const deadline = setTimeout(() => {
    adaptor.releaseFiles();
    if (adaptor.lingerOver()) {
      log().warn(literal(
        `stopping took longer than ${STOP_DEADLINE_MS} ms: every socket is closed and --linger is over, ` +
          "libzmq is only freeing its state (millions of topics take seconds): exiting now",
      ));
      Deno.exit(reason.failed ? 1 : 0);
    }
    log().error(literal(`stopping took longer than ${STOP_DEADLINE_MS} ms: exiting now`));
    Deno.exit(1);
  }, STOP_DEADLINE_MS);
  await Promise.all([server?.stop(), adaptor.stop()]);
  clearTimeout(deadline);
  log().info("stopped");
  return reason.failed ? 1 : 0;
}

/** The metrics registry and its HTTP server, for `--metrics` only. */
async function loadMetrics() {
  const [{ AdaptorMetrics }, { serveMetrics }] = await Promise.all([
    import("./metrics.ts"),
    import("./metrics_server.ts"),
  ]);
  return { AdaptorMetrics, serveMetrics };
}
