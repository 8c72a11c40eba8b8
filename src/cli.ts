/**
 * Command line and environment → one validated `Config` (or help, or version).
 *
 * Flags win over environment variables; each flag has one variable (table `ENV`), endpoint
 * variables take a comma-separated list. Knows nothing of ZeroMQ: printing the version is
 * left to the caller, which knows the library.
 */

import { Command, CommanderError, Option } from "commander";
import { type Config, type ConfigInput, DEFAULTS, makeConfig, MAX_LINGER_MS } from "./config.ts";
import { UsageError } from "./errors.ts";
import { PROGRAM } from "./version.ts";

/** What the command line asks for. */
export type Invocation =
  | { readonly kind: "run"; readonly config: Config }
  | { readonly kind: "help"; readonly text: string }
  | { readonly kind: "version" }
  | { readonly kind: "keygen"; readonly path: string };

type Key = keyof ConfigInput;
type Kind = "list" | "flag" | "number" | "text";

/** Every setting: its option key, environment variable and value kind. */
export const ENV: Readonly<Record<Key, { env: string; kind: Kind }>> = {
  bind: { env: "ADAPTOR_BIND", kind: "list" },
  publish: { env: "ADAPTOR_PUBLISH", kind: "list" },
  listen: { env: "ADAPTOR_LISTEN", kind: "list" },
  push: { env: "ADAPTOR_PUSH", kind: "list" },
  debug: { env: "ADAPTOR_DEBUG", kind: "flag" },
  test: { env: "ADAPTOR_TEST", kind: "flag" },
  receiverTest: { env: "ADAPTOR_RECEIVER_TEST", kind: "flag" },
  sndhwm: { env: "ADAPTOR_SNDHWM", kind: "number" },
  rcvhwm: { env: "ADAPTOR_RCVHWM", kind: "number" },
  tcpKeepalive: { env: "ADAPTOR_TCP_KEEPALIVE", kind: "number" },
  reconnectIvl: { env: "ADAPTOR_RECONNECT_IVL", kind: "number" },
  reconnectIvlMax: { env: "ADAPTOR_RECONNECT_IVL_MAX", kind: "number" },
  linger: { env: "ADAPTOR_LINGER", kind: "number" },
  maxMessageSize: { env: "ADAPTOR_MAX_MESSAGE_SIZE", kind: "number" },
  maxSubscriptionSize: { env: "ADAPTOR_MAX_SUBSCRIPTION_SIZE", kind: "number" },
  handshakeTimeout: { env: "ADAPTOR_HANDSHAKE_TIMEOUT", kind: "number" },
  heartbeatInterval: { env: "ADAPTOR_HEARTBEAT_INTERVAL", kind: "number" },
  heartbeatTimeout: { env: "ADAPTOR_HEARTBEAT_TIMEOUT", kind: "number" },
  tcpUserTimeout: { env: "ADAPTOR_TCP_USER_TIMEOUT", kind: "number" },
  outBatchSize: { env: "ADAPTOR_OUT_BATCH_SIZE", kind: "number" },
  ioThreads: { env: "ADAPTOR_IO_THREADS", kind: "number" },
  maxConnections: { env: "ADAPTOR_MAX_CONNECTIONS", kind: "number" },
  blockAfterDenials: { env: "ADAPTOR_BLOCK_AFTER_DENIALS", kind: "number" },
  publisherGrace: { env: "ADAPTOR_PUBLISHER_GRACE", kind: "number" },
  subscriberWait: { env: "ADAPTOR_SUBSCRIBER_WAIT", kind: "number" },
  logLevel: { env: "ADAPTOR_LOG_LEVEL", kind: "text" },
  logFormat: { env: "ADAPTOR_LOG_FORMAT", kind: "text" },
  subscriptions: { env: "ADAPTOR_SUBSCRIPTIONS", kind: "text" },
  curveCert: { env: "ADAPTOR_CURVE_CERT", kind: "text" },
  curveClients: { env: "ADAPTOR_CURVE_CLIENTS", kind: "text" },
  curveServers: { env: "ADAPTOR_CURVE_SERVERS", kind: "text" },
  ipcMode: { env: "ADAPTOR_IPC_MODE", kind: "text" },
  ipcGroup: { env: "ADAPTOR_IPC_GROUP", kind: "text" },
  metrics: { env: "ADAPTOR_METRICS", kind: "text" },
};

const collect = (value: string, previous: string[] = []) => [...previous, value];

/** The commander program; `onKeygen` hears the keygen subcommand's path when it is parsed. */
function program(onKeygen: (path: string) => void = () => {}): Command {
  const cmd = new Command(PROGRAM)
    .description(
      "Forwards API-gateway usage events: gateway workers PUB-connect to the XSUB (-b),\n" +
        "tracking services SUB-connect to the XPUB (-p); subscriptions flow back upstream.\n" +
        "Endpoints: tcp://HOST:PORT, ipc:///path, ipc://@abstract, inproc://name;\n" +
        "prefix @ to bind or > to connect; repeat a flag for several endpoints.",
    )
    .helpOption("-h, --help", "show this help")
    .option("-V, --version", "print the adaptor's and ZeroMQ's versions")
    .allowExcessArguments(false);
  const opt = (flags: string, text: string, key: Key, shown?: unknown) => {
    const shownDefault = shown === undefined ? "" : ` (default: ${shown})`;
    const option = new Option(flags, `${text}${shownDefault} [env ${ENV[key].env}]`);
    if (ENV[key].kind === "list") option.argParser(collect);
    cmd.addOption(option);
  };
  opt("-b, --bind <endpoint>", "XSUB endpoint for the gateway's publishers", "bind", DEFAULTS.bind);
  opt("-p, --publish <endpoint>", "XPUB endpoint for subscribers", "publish", DEFAULTS.publish);
  opt(
    "-l, --listen <endpoint>",
    "inbound SUB endpoint; enables SUB->PUSH (connects unless @)",
    "listen",
    "off",
  );
  opt("-u, --push <endpoint>", "inbound PUSH endpoint where workers PULL", "push", DEFAULTS.push);
  opt("-d, --debug", "log socket events, messages and rates", "debug");
  opt("-t, --test", "run a test publisher and subscriber (implies -d)", "test");
  opt(
    "-r, --receiver-test",
    "run a test sender and PULL receiver on the inbound channel (implies -d)",
    "receiverTest",
  );
  opt("--sndhwm <messages>", "send high-water mark per peer (0 = none)", "sndhwm", DEFAULTS.sndhwm);
  opt("--rcvhwm <messages>", "receive high-water mark per peer (0 = none)", "rcvhwm", DEFAULTS.rcvhwm);
  opt(
    "--tcp-keepalive <seconds>",
    "TCP keepalive idle time (0 = off)",
    "tcpKeepalive",
    DEFAULTS.tcpKeepalive,
  );
  opt(
    "--reconnect-ivl <ms>",
    "first reconnect delay of connecting (>) endpoints",
    "reconnectIvl",
    DEFAULTS.reconnectIvl,
  );
  opt(
    "--reconnect-ivl-max <ms>",
    "longest reconnect delay; the delay doubles up to it (0 = no back-off)",
    "reconnectIvlMax",
    DEFAULTS.reconnectIvlMax,
  );
  opt(
    "--linger <ms>",
    `how long shutdown may spend delivering queued messages (at most ${MAX_LINGER_MS}: a stop takes < 2 s)`,
    "linger",
    DEFAULTS.linger,
  );
  opt(
    "--max-message-size <bytes>",
    "largest inbound frame; a peer sending more is disconnected (0 = no limit)",
    "maxMessageSize",
    DEFAULTS.maxMessageSize,
  );
  opt(
    "--max-subscription-size <bytes>",
    "largest subscription (flag byte + topic) a subscriber may send the XPUB; more disconnects it " +
      "(0 = --max-message-size)",
    "maxSubscriptionSize",
    DEFAULTS.maxSubscriptionSize,
  );
  opt(
    "--handshake-timeout <ms>",
    "drop connections that do not finish the ZeroMQ handshake in time (0 = never)",
    "handshakeTimeout",
    DEFAULTS.handshakeTimeout,
  );
  opt(
    "--heartbeat-interval <ms>",
    "ZMTP heartbeat (PING) interval on every connection (0 = off)",
    "heartbeatInterval",
    DEFAULTS.heartbeatInterval,
  );
  opt(
    "--heartbeat-timeout <ms>",
    "drop a connection silent this long after a PING; also the TTL peers apply",
    "heartbeatTimeout",
    DEFAULTS.heartbeatTimeout,
  );
  opt(
    "--tcp-user-timeout <ms>",
    "drop a tcp connection whose sent data stays unacknowledged this long (0 = kernel's ~15 min)",
    "tcpUserTimeout",
    DEFAULTS.tcpUserTimeout,
  );
  opt(
    "--out-batch-size <bytes>",
    "bytes encoded into one write to a connection (libzmq's default: 8192)",
    "outBatchSize",
    DEFAULTS.outBatchSize,
  );
  opt("--io-threads <n>", "libzmq I/O threads", "ioThreads", DEFAULTS.ioThreads);
  opt(
    "--max-connections <n>",
    "connections each bound tcp socket may hold; at the cap it stops listening (0 = what the " +
      "descriptor limit leaves)",
    "maxConnections",
    "0",
  );
  opt(
    "--block-after-denials <n>",
    "a host denied this many times within 10 s (CURVE) has its new connections dropped by the kernel " +
      "for 60 s (0 = never)",
    "blockAfterDenials",
    DEFAULTS.blockAfterDenials,
  );
  opt(
    "--publisher-grace <seconds>",
    "warn, and fail /healthz, when no publisher has been connected to the XSUB this long (0 = never)",
    "publisherGrace",
    DEFAULTS.publisherGrace,
  );
  opt(
    "--subscriber-wait <ms>",
    "at start, forward only once a subscriber is back (or this has passed), so that what the " +
      "workers queued while the adaptor was down is not discarded (0 = at once)",
    "subscriberWait",
    DEFAULTS.subscriberWait,
  );
  opt("--log-level <level>", "debug, info, warning or error", "logLevel", DEFAULTS.logLevel);
  opt("--log-format <format>", "text or json (JSON lines)", "logFormat", DEFAULTS.logFormat);
  opt(
    "--subscriptions <mode>",
    "local: the gateway's workers subscribe to everything once and the adaptor filters; forward: " +
      "subscriptions reach the workers (on a network XPUB only with --curve-clients)",
    "subscriptions",
    DEFAULTS.subscriptions,
  );
  opt(
    "--curve-cert <file>",
    "secret CURVE certificate: XPUB, inbound SUB and a tcp XSUB become CURVE servers",
    "curveCert",
    "off",
  );
  opt(
    "--curve-clients <dir>",
    "admit only clients whose public certificate is in DIR (SIGHUP rereads it)",
    "curveClients",
    "any client that knows the server key",
  );
  opt(
    "--curve-servers <dir>",
    "connect (>) to tcp endpoints as a CURVE client of the server whose certificate is DIR/HOST:PORT or " +
      "DIR/HOST (SIGHUP rereads it)",
    "curveServers",
    "off",
  );
  opt(
    "--ipc-mode <octal>",
    "permissions of the ipc socket files the adaptor binds",
    "ipcMode",
    DEFAULTS.ipcMode,
  );
  opt(
    "--ipc-group <group>",
    "group (name or gid) of the ipc socket files the adaptor binds",
    "ipcGroup",
    "the adaptor's",
  );
  cmd.command("keygen")
    .argument("<path>", "where to write the public certificate; the secret one goes to PATH_secret")
    .description(
      "write a new CURVE certificate pair (CZMQ format) to PATH and PATH_secret, never overwriting",
    )
    .helpOption("-h, --help", "show this help")
    .action((path: string) => onKeygen(path));
  opt("--metrics <host:port>", "serve Prometheus /metrics and /healthz over HTTP", "metrics", "off");
  // With a subcommand defined, commander needs a root action to run without one.
  cmd.action(() => {});
  return cmd;
}

/** The help text, as `-h` prints it. */
export function helpText(): string {
  return program().helpInformation();
}

/**
 * Reads `argv` (without the program name) and `env`. Throws `UsageError` with one line
 * naming the flag or variable and its value.
 */
export function parseArgs(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>> = {},
): Invocation {
  let keygenPath: string | undefined;
  const cmd = program((path) => keygenPath = path);
  let help = "";
  for (const command of [cmd, ...cmd.commands]) {
    command.exitOverride().configureOutput({
      writeOut: (text) => (help += text),
      writeErr: () => {},
      outputError: () => {},
    });
  }
  try {
    cmd.parse([...argv], { from: "user" });
  } catch (error) {
    if (error instanceof CommanderError && error.code === "commander.helpDisplayed") {
      return { kind: "help", text: help };
    }
    if (error instanceof CommanderError) {
      const inKeygen = argv.includes("keygen") ? "keygen: " : "";
      throw new UsageError(inKeygen + error.message.replace(/^error: /, ""));
    }
    throw error;
  }
  const options = cmd.opts();
  if (keygenPath !== undefined) return { kind: "keygen", path: keygenPath };
  if (options.version) return { kind: "version" };

  const input: Record<string, unknown> = {};
  const fromEnvironmentOnly: string[] = [];
  for (const [key, { env: name, kind }] of Object.entries(ENV)) {
    const fromFlag = options[key];
    const fromEnv = env[name];
    if (fromFlag !== undefined) input[key] = kind === "number" ? number(flagOf(key), fromFlag) : fromFlag;
    else if (fromEnv !== undefined && fromEnv !== "") {
      input[key] = fromEnvironment(name, kind, fromEnv);
      fromEnvironmentOnly.push(key);
    }
  }
  try {
    return { kind: "run", config: makeConfig(input as ConfigInput) };
  } catch (error) {
    // makeConfig names the flag; when the value came from the environment, name the variable.
    const key = fromEnvironmentOnly.find((k) =>
      error instanceof UsageError && error.message.startsWith(`${flagOf(k)} '`)
    );
    if (key === undefined) throw error;
    throw new UsageError(ENV[key as Key].env + (error as Error).message.slice(flagOf(key).length));
  }
}

function flagOf(key: string): string {
  return "--" + key.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase());
}

function number(name: string, text: string): number {
  if (!/^\s*\d+\s*$/.test(text)) throw new UsageError(`${name} '${text}': expected a whole number`);
  return Number(text);
}

function fromEnvironment(name: string, kind: Kind, text: string): unknown {
  switch (kind) {
    case "list":
      return text.split(",").map((s) => s.trim()).filter((s) => s !== "");
    case "number":
      return number(name, text);
    case "flag": {
      const value = text.trim().toLowerCase();
      if (["1", "true", "yes", "on"].includes(value)) return true;
      if (["0", "false", "no", "off"].includes(value)) return false;
      throw new UsageError(`${name} '${text}': expected true or false`);
    }
    case "text":
      return text.trim();
  }
}
