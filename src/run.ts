/**
 * Running the adaptor as a process: argv/env → Config → Adaptor → wait for a stop signal or a
 * failure → stop → exit code. `main.ts` installs the signal listeners first and hands them in.
 *
 * Exit codes: 0 after a clean stop, 2 for usage errors, 1 for runtime errors (a failed start, a
 * part of the adaptor that ended by itself, an unhandled error anywhere, a stop that overran).
 */

import { type AdaptorHandle, describeTotals, startAdaptor } from "./adaptor/adaptor.ts";
import { runCheck } from "./check.ts";
import { type Invocation, parseArgs, requestedLogFormat } from "./config/cli.ts";
import type { Config } from "./config/config.ts";
import { exitCodeOf, oneLine } from "./errors.ts";
import { installRejectionGuard, type RejectionGuard } from "./ops/guard.ts";
import { raiseFileLimit } from "./os/descriptors.ts";
import { checkLimits } from "./os/limits.ts";
import { fatalLine, literal, log, setupLogging, writeStderr } from "./ops/log.ts";
import { stderrIsJournal } from "./ops/journal.ts";
import type { AdaptorMetrics } from "./metrics/metrics.ts";
import type { MetricsServer } from "./metrics/metrics_server.ts";
import { ServiceNotifier, ServiceStatus } from "./ops/notify.ts";
import { type InheritedListener, inheritedListeners } from "./ops/socket_activation.ts";
import { keygen } from "./security/cert.ts";
import { ignoredSignalsHold, shieldWaits, type SignalListeners } from "./os/signals.ts";
import { ADAPTOR_VERSION, PROGRAM } from "./version.ts";
import { addonBuild, zmqVersion } from "./zmq/binding.ts";
import { holdWaitsUntil } from "./zmq/socket.ts";

/**
 * A stop that takes longer than this is cut short: SIGINT/SIGTERM end the adaptor within 2 s,
 * and the exit of a process that holds gigabytes (a flood of topics) takes a further ~0.1 s.
 * The stop itself is bounded below that (proxies 0.5 s, --linger ≤ 1.5 s); this is the backstop
 * should anything still run. Cut short once the linger is over, only libzmq's freeing of its
 * state was left: exit as if it had finished. Otherwise something could not finish: exit 1.
 */
export const STOP_DEADLINE_MS = 1750;

/** Deno starts listening for SIGUSR1 500 ms after start; checked again once that is long past. */
const RUNTIME_SIGNAL_GRACE_MS = 1500;

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
  const argv = args[0] === "--" ? args.slice(1) : args;
  const journal = stderrIsJournal(env.JOURNAL_STREAM);
  try {
    return await main(argv, env, signals, journal);
  } catch (error) {
    const code = exitCodeOf(error);
    const tap = oneLine(error).startsWith("tap: ") ? " tap" : "";
    const hint = code === 2 ? ` (see ${PROGRAM}${tap} --help)` : "";
    const output = { format: requestedLogFormat(argv, env), journal };
    // Not console.error: it throws when stderr is full, which would turn exit 2 into 1.
    writeStderr(fatalLine(PROGRAM, `${oneLine(error)}${hint}`, code, output));
    return code;
  }
}

/** Runs what `argv` asks for (the adaptor, `--check`, a subcommand); returns the exit code. */
export async function main(
  argv: readonly string[],
  env: Record<string, string>,
  signals: SignalListeners,
  journal = false,
): Promise<number> {
  const invocation = parseArgs(argv, env);
  if (invocation.kind !== "run" && invocation.kind !== "check") return await command(invocation, signals);
  const { config } = invocation;
  setupLogging({ level: config.logLevel, format: config.logFormat, journal });
  if (invocation.kind === "check") return await runCheck(config, { format: config.logFormat, journal });
  return await serve(config, env, signals);
}

/** `--help`, `--version`, `keygen`, `tap`. */
async function command(
  invocation: Exclude<Invocation, { kind: "run" | "check" }>,
  signals: SignalListeners,
): Promise<number> {
  switch (invocation.kind) {
    case "help":
      console.log(invocation.text.trimEnd());
      return 0;
    case "version":
      console.log(
        `${PROGRAM} ${ADAPTOR_VERSION} (ZeroMQ ${zmqVersion()}, addon build ${addonBuild()}, Deno ${Deno.version.deno})`,
      );
      return 0;
    case "keygen": {
      const { publicPath, secretPath, publicKey } = keygen(invocation.path);
      console.log(
        `wrote ${publicPath} (public: give it to the other side) and ${secretPath} (secret, mode 0600)`,
      );
      console.log(`public key: ${publicKey}`);
      return 0;
    }
    case "tap": {
      const { runTap } = await import("./tap.ts");
      return await runTap(invocation.request, signals);
    }
  }
}

/** The adaptor as a service: start it, run until a stop signal or a failure, stop it. */
async function serve(config: Config, env: Record<string, string>, signals: SignalListeners): Promise<number> {
  // systemd's socket unit (adaptor.socket): the listeners that outlive a restart.
  const listeners = inheritedListeners(env);
  const guard = prepareProcess(config);
  signals.on(
    "SIGHUP",
    () => log().info("SIGHUP during start-up: the clients directory is being read anyway"),
  );
  // Again now that the program is loaded (loading it used the pool): libzmq's waits start once it
  // is done, while the sockets are opened and bound meanwhile.
  holdWaitsUntil(
    shieldWaits().then((exposed) => {
      if (exposed) log().info(literal(`${exposed} pool thread(s) could not be made to block signals`));
    }),
  );
  // systemd (Type=notify): READY=1 once bound, STATUS=, RELOADING=1, STOPPING=1, WATCHDOG=1.
  const notifier = new ServiceNotifier(env, (why) => log().warn(literal(why)));
  const status = new ServiceStatus(notifier);
  // Pings from the start on: where systemd counts from the fork, a slow start is not a wedged loop.
  notifier.startWatchdog();
  const { adaptor, server } = await start(config, notifier, status, listeners);
  signals.on("SIGHUP", reloader(adaptor, notifier, status));
  // Deno subscribes to SIGUSR1 itself once it has run a while: check that it is still ignored.
  const recheck = setTimeout(() => {
    if (!ignoredSignalsHold()) log().error("SIGUSR1/SIGUSR2 had a handler again: ignored again");
  }, RUNTIME_SIGNAL_GRACE_MS);
  // Ready once every socket is bound, not once forwarding starts: what the workers publish
  // meanwhile waits in the XSUB, and a start must not hang on the tracking services.
  adaptor.forwarding.then(() => status.forwarding());
  await null; // forwarding already (no --subscriber-wait): READY=1 says so
  notifier.ready(status.text);
  status.live();
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
  clearTimeout(recheck);
  status.close();
  notifier.stopping(reason.text);
  await stopWithin(STOP_DEADLINE_MS, adaptor, server, reason.failed);
  notifier.close();
  log().info("stopped");
  return reason.failed ? 1 : 0;
}

/** What the process needs before the adaptor opens anything: the error guard, descriptors, limits. */
function prepareProcess(config: Config): RejectionGuard {
  // An unhandled rejection or uncaught error anywhere: one line and a clean stop (exit 1).
  const guard = installRejectionGuard();
  const files = raiseFileLimit();
  if (files?.raised) {
    log().info("Raised the open-files limit from {before} to {after}", {
      before: files.before.soft,
      after: files.after.soft,
    });
  }
  // Before anything is opened: a limit too low is one line, not an abort.
  for (const warning of checkLimits(config)) log().warn(literal(warning));
  if (config.test) log().info("RUNNING IN TEST MODE & DEBUG MODE for XPUB -> XSUB");
  if (config.receiverTest) log().info("RUNNING IN TEST MODE & DEBUG MODE for SUB -> PUSH");
  if (config.debug && !config.test && !config.receiverTest) log().info("RUNNING IN DEBUGGING MODE");
  return guard;
}

/** The metrics port first (a busy one fails the start before any ZeroMQ socket exists), then the adaptor. */
async function start(
  config: Config,
  notifier: ServiceNotifier,
  status: ServiceStatus,
  listeners: readonly InheritedListener[],
): Promise<{ adaptor: AdaptorHandle; server?: MetricsServer }> {
  // Loaded only when asked for: a start without --metrics compiles less.
  const exporter = config.metrics ? await loadMetrics() : undefined;
  const metrics: AdaptorMetrics | undefined = exporter ? new exporter.AdaptorMetrics() : undefined;
  const server = exporter ? exporter.serveMetrics(config.metrics!, metrics!) : undefined;
  const adaptor = await startAdaptor(config, {
    ...metrics?.hooks,
    onSocketEvent: (channel, role, event) => {
      status.report(channel, role, event);
      metrics?.hooks.onSocketEvent?.(channel, role, event);
    },
  }, { listeners }).catch(async (error) => {
    notifier.close();
    await server?.stop();
    throw error;
  });
  metrics?.attach(adaptor);
  return { adaptor, server };
}

/**
 * SIGHUP's action: reread `--curve-clients` and `--curve-servers`, log the totals. One reload
 * at a time; SIGHUPs that come meanwhile make one more (a storm is a few reloads).
 */
function reloader(adaptor: AdaptorHandle, notifier: ServiceNotifier, status: ServiceStatus): () => void {
  let reloading: Promise<void> | undefined;
  let again = false;
  const reloadOnce = async () => {
    notifier.reloading();
    const clients = adaptor.reloadClients();
    const servers = await adaptor.reloadServers().catch((error) => {
      log().error(literal(`SIGHUP: ${oneLine(error)}`));
      return [];
    });
    if (!clients && !servers) {
      log().info("SIGHUP: nothing to reload (no --curve-clients), nor --curve-servers");
    }
    const stats = await adaptor.statistics({ timeoutMs: 300 });
    for (const [name, s] of Object.entries(stats)) log().info(literal(describeTotals(name as never, s)));
    notifier.ready(status.text);
  };
  return () => {
    if (reloading) return void (again = true);
    reloading = (async () => {
      do {
        again = false;
        await reloadOnce();
      } while (again);
    })().finally(() => reloading = undefined);
  };
}

/**
 * Stops the metrics server and the adaptor, cut short at `deadlineMs`: once the linger is over
 * only libzmq's freeing of its state was left, so the exit is as if it had finished; else 1.
 */
async function stopWithin(
  deadlineMs: number,
  adaptor: AdaptorHandle,
  server: MetricsServer | undefined,
  failed: boolean,
): Promise<void> {
  const deadline = setTimeout(() => {
    adaptor.releaseFiles();
    if (adaptor.lingerOver()) {
      log().warn(literal(
        `stopping took longer than ${deadlineMs} ms: every socket is closed and --linger is over, ` +
          "libzmq is only freeing its state (millions of topics take seconds): exiting now",
      ));
      Deno.exit(failed ? 1 : 0);
    }
    log().error(literal(`stopping took longer than ${deadlineMs} ms: exiting now`));
    Deno.exit(1);
  }, deadlineMs);
  await Promise.all([server?.stop(), adaptor.stop()]);
  clearTimeout(deadline);
}

/** The metrics registry and its HTTP server, for `--metrics` only. */
async function loadMetrics() {
  const [{ AdaptorMetrics }, { serveMetrics }] = await Promise.all([
    import("./metrics/metrics.ts"),
    import("./metrics/metrics_server.ts"),
  ]);
  return { AdaptorMetrics, serveMetrics };
}
