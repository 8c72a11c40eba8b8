/**
 * THE option table: every setting of the adaptor, declared once. Its flag, its environment
 * variable, its kind (with the range or the choices), its default and its help come from here;
 * the command line (`cli.ts`), the environment, `Config` and its defaults (`config.ts`), `--help`
 * and the operator guide's flag table (`deno task docs`, checked by the suite) are derived.
 *
 * To add a setting: one entry here, its field in `Config`, and where it is used.
 */

import type { Role } from "./endpoint.ts";

/** Log levels, lowest first. */
export const LOG_LEVELS = ["debug", "info", "warning", "error"] as const;
export type LogLevel = typeof LOG_LEVELS[number];

/** Log output formats. */
export const LOG_FORMATS = ["text", "json"] as const;
export type LogFormat = typeof LOG_FORMATS[number];

/** Where subscriptions are kept (`--subscriptions`): at the gateway's workers, or here. */
export const SUBSCRIPTION_MODES = ["forward", "local"] as const;
export type SubscriptionMode = typeof SUBSCRIPTION_MODES[number];

/**
 * The longest `--linger`: a stop (SIGINT/SIGTERM) ends within 2 s, and lingering is the part of
 * it spent delivering what is still queued; the rest is for the proxies and the files.
 */
export const MAX_LINGER_MS = 1500;

/** The largest --max-message-size accepted: 4 GiB. */
export const MAX_MESSAGE_SIZE_LIMIT = 2 ** 32;

/** libzmq sends the heartbeat TTL in deciseconds in 16 bits: at most 6553.5 s. */
const MAX_HEARTBEAT_MS = 6_553_500;

/** What kind of value a setting takes, and how it is checked. */
export type OptionKind =
  /** One or more endpoints of a socket role; a variable takes a comma-separated list. */
  | { readonly type: "endpoints"; readonly role: Role }
  /** On or off; a variable takes true/false, 1/0, yes/no, on/off. */
  | { readonly type: "switch" }
  | { readonly type: "integer"; readonly min: number; readonly max: number }
  | { readonly type: "choice"; readonly values: readonly string[] }
  /** A file or directory; unset when empty. */
  | { readonly type: "path" }
  /** Permission bits in octal. */
  | { readonly type: "octal" }
  /** A group name or gid. */
  | { readonly type: "group" }
  /** HOST:PORT of an HTTP listener. */
  | { readonly type: "address" };

/** One setting. */
export interface OptionSpec {
  /** Its field in `Config`. */
  readonly key: string;
  /** As commander takes it: `-b, --bind <endpoint>`. */
  readonly flags: string;
  /** Its environment variable; a flag wins over it. */
  readonly env: string;
  readonly kind: OptionKind;
  /** Its value when neither the flag nor the variable is given; absent: off. */
  readonly default?: string | number | boolean;
  /** How the default reads in `--help` and the docs, where the value alone does not say it. */
  readonly shown?: string;
  /** One line for `--help`. */
  readonly help: string;
  /** The operator guide's text, where it says more than `help`. */
  readonly doc?: string;
}

/** Every setting of the adaptor, in the order `--help` and the docs show them. */
export const OPTIONS = [
  {
    key: "bind",
    flags: "-b, --bind <endpoint>",
    env: "ADAPTOR_BIND",
    kind: { type: "endpoints", role: "bind" },
    default: "ipc:///tmp/nginx_queue_listen",
    help: "XSUB endpoint for the gateway's publishers",
    doc: "XSUB endpoint where the gateway's workers PUB-connect (the C original's default path; " +
      "under systemd, a directory of the adaptor's own: see deployment)",
  },
  {
    key: "publish",
    flags: "-p, --publish <endpoint>",
    env: "ADAPTOR_PUBLISH",
    kind: { type: "endpoints", role: "publish" },
    default: "tcp://0.0.0.0:6001",
    help: "XPUB endpoint for subscribers",
    doc: "XPUB endpoint where tracking services SUB-connect",
  },
  {
    key: "listen",
    flags: "-l, --listen <endpoint>",
    env: "ADAPTOR_LISTEN",
    kind: { type: "endpoints", role: "listen" },
    shown: "off (tcp://127.0.0.1:5000 with -r)",
    help: "inbound SUB endpoint; enables SUB->PUSH (connects unless @)",
    doc: "inbound SUB; turns the SUB→PUSH channel on. Connects by default, as the C original did; `@` binds",
  },
  {
    key: "push",
    flags: "-u, --push <endpoint>",
    env: "ADAPTOR_PUSH",
    kind: { type: "endpoints", role: "push" },
    default: "ipc:///tmp/nginx_queue_push",
    help: "inbound PUSH endpoint where workers PULL",
    doc: "inbound PUSH where gateway workers PULL (only with `-l`/`-r`)",
  },
  {
    key: "debug",
    flags: "-d, --debug",
    env: "ADAPTOR_DEBUG",
    kind: { type: "switch" },
    default: false,
    help: "log socket events, messages and rates",
    doc: "log every socket event (listening, accepted, disconnected, handshake failed…), each message " +
      "(truncated, 10 a second at most) and once a second `N messages in X ms`",
  },
  {
    key: "test",
    flags: "-t, --test",
    env: "ADAPTOR_TEST",
    kind: { type: "switch" },
    default: false,
    help: "run a test publisher and subscriber (implies -d)",
    doc: "implies `-d`; a test publisher sends `PUB-<A..J>-<5 digits>` once a second, the debug " +
      "subscriber prints `> got: …` with latency",
  },
  {
    key: "receiverTest",
    flags: "-r, --receiver-test",
    env: "ADAPTOR_RECEIVER_TEST",
    kind: { type: "switch" },
    default: false,
    help: "run a test sender and PULL receiver on the inbound channel (implies -d)",
    doc: "implies `-d`; a test sender feeds the inbound SUB (`SEND-<5 digits>`), a PULL receiver prints " +
      "`> receiver got: …`",
  },
  {
    key: "sndhwm",
    flags: "--sndhwm <messages>",
    env: "ADAPTOR_SNDHWM",
    kind: { type: "integer", min: 0, max: 100_000_000 },
    default: 10_000,
    help: "send high-water mark per peer (0 = none)",
    doc:
      "send high-water mark per peer (0 = unlimited). XPUB drops for a subscriber that falls this far behind",
  },
  {
    key: "rcvhwm",
    flags: "--rcvhwm <messages>",
    env: "ADAPTOR_RCVHWM",
    kind: { type: "integer", min: 0, max: 100_000_000 },
    default: 10_000,
    help: "receive high-water mark per peer (0 = none)",
  },
  {
    key: "tcpKeepalive",
    flags: "--tcp-keepalive <seconds>",
    env: "ADAPTOR_TCP_KEEPALIVE",
    kind: { type: "integer", min: 0, max: 86_400 },
    default: 60,
    help: "TCP keepalive idle time (0 = off)",
  },
  {
    key: "reconnectIvl",
    flags: "--reconnect-ivl <ms>",
    env: "ADAPTOR_RECONNECT_IVL",
    kind: { type: "integer", min: 1, max: 600_000 },
    default: 100,
    help: "first reconnect delay of connecting (>) endpoints",
  },
  {
    key: "reconnectIvlMax",
    flags: "--reconnect-ivl-max <ms>",
    env: "ADAPTOR_RECONNECT_IVL_MAX",
    kind: { type: "integer", min: 0, max: 3_600_000 },
    default: 5_000,
    help: "longest reconnect delay; the delay doubles up to it (0 = no back-off)",
  },
  {
    key: "linger",
    flags: "--linger <ms>",
    env: "ADAPTOR_LINGER",
    kind: { type: "integer", min: 0, max: MAX_LINGER_MS },
    default: 500,
    help:
      `how long shutdown may spend delivering queued messages (at most ${MAX_LINGER_MS}: a stop takes < 2 s)`,
  },
  {
    key: "maxMessageSize",
    flags: "--max-message-size <bytes>",
    env: "ADAPTOR_MAX_MESSAGE_SIZE",
    kind: { type: "integer", min: 0, max: MAX_MESSAGE_SIZE_LIMIT },
    default: 65_536,
    help: "largest inbound frame; a peer sending more is disconnected (0 = no limit)",
    doc: "largest inbound frame; a peer that sends a larger one is disconnected (and a warning logged). " +
      "0 = no limit (libzmq's default, unsafe: one header can make it allocate gigabytes)",
  },
  {
    key: "maxSubscriptionSize",
    flags: "--max-subscription-size <bytes>",
    env: "ADAPTOR_MAX_SUBSCRIPTION_SIZE",
    kind: { type: "integer", min: 0, max: MAX_MESSAGE_SIZE_LIMIT },
    default: 1024,
    help: "largest subscription (flag byte + topic) a subscriber may send the XPUB; more disconnects it " +
      "(0 = --max-message-size)",
    doc: "largest subscription a subscriber may send the XPUB (its only inbound frames); a larger one " +
      "disconnects it (a warning names the flag). Every subscription is kept by the adaptor and by every " +
      "publisher. SUBSCRIBE commands are 10 bytes + topic, so topics up to 1014 bytes pass. It limits " +
      "handshake frames too: with `--curve-cert`, at least 512. 0 = `--max-message-size` applies",
  },
  {
    key: "handshakeTimeout",
    flags: "--handshake-timeout <ms>",
    env: "ADAPTOR_HANDSHAKE_TIMEOUT",
    kind: { type: "integer", min: 0, max: 3_600_000 },
    default: 5_000,
    help: "drop connections that do not finish the ZeroMQ handshake in time (0 = never)",
  },
  {
    key: "heartbeatInterval",
    flags: "--heartbeat-interval <ms>",
    env: "ADAPTOR_HEARTBEAT_INTERVAL",
    kind: { type: "integer", min: 0, max: MAX_HEARTBEAT_MS },
    default: 10_000,
    help: "ZMTP heartbeat (PING) interval on every connection (0 = off)",
    doc: "ZMTP PING on every connection, so that dead peers (power loss, partition) are dropped and their " +
      "subscriptions leave the publishers. 0 = off (libzmq's default). Peers need ZMTP 3.1 (libzmq ≥ 4.2)",
  },
  {
    key: "heartbeatTimeout",
    flags: "--heartbeat-timeout <ms>",
    env: "ADAPTOR_HEARTBEAT_TIMEOUT",
    kind: { type: "integer", min: 1, max: MAX_HEARTBEAT_MS },
    default: 30_000,
    help: "drop a connection silent this long after a PING; also the TTL peers apply",
    doc: "a connection with no traffic this long after a PING is dropped; also the TTL peers apply to the " +
      "adaptor. Longer than the interval",
  },
  {
    key: "tcpUserTimeout",
    flags: "--tcp-user-timeout <ms>",
    env: "ADAPTOR_TCP_USER_TIMEOUT",
    kind: { type: "integer", min: 0, max: 3_600_000 },
    default: 30_000,
    help: "drop a tcp connection whose sent data stays unacknowledged this long (0 = kernel's ~15 min)",
    doc: "TCP_USER_TIMEOUT: a connection whose sent data stays unacknowledged (or unsendable behind a zero " +
      "window) this long is dropped, a stuck subscriber under traffic that heartbeats cannot catch. " +
      "0 = the kernel's (~15 min)",
  },
  {
    key: "outBatchSize",
    flags: "--out-batch-size <bytes>",
    env: "ADAPTOR_OUT_BATCH_SIZE",
    kind: { type: "integer", min: 1024, max: 16_777_216 },
    default: 65_536,
    help: "bytes encoded into one write to a connection (libzmq's default: 8192)",
    doc:
      "bytes libzmq encodes into one write to a connection (`ZMQ_OUT_BATCH_SIZE`; libzmq's default 8192): " +
      "fewer `send()` calls, the fan-out gains most (see benchmarks). Costs up to this much buffer per busy " +
      "connection",
  },
  {
    key: "ioThreads",
    flags: "--io-threads <n>",
    env: "ADAPTOR_IO_THREADS",
    kind: { type: "integer", min: 1, max: 64 },
    default: 1,
    help: "libzmq I/O threads",
  },
  {
    key: "maxConnections",
    flags: "--max-connections <n>",
    env: "ADAPTOR_MAX_CONNECTIONS",
    kind: { type: "integer", min: 0, max: 10_000_000 },
    default: 0,
    shown: "0 (what the descriptor limit leaves)",
    help: "connections each bound tcp socket may hold; at the cap it stops listening (0 = what the " +
      "descriptor limit leaves)",
    doc: "connections each bound tcp socket may hold; at the cap the kernel drops new connections' SYNs " +
      "until they are nine tenths of it (those it has keep working), so that the network can never take " +
      "the descriptors the gateway's ipc connects need. 0 = the descriptor limit less those open and a " +
      "reserve of 128, shared by the bound tcp sockets",
  },
  {
    key: "blockAfterDenials",
    flags: "--block-after-denials <n>",
    env: "ADAPTOR_BLOCK_AFTER_DENIALS",
    kind: { type: "integer", min: 0, max: 1_000_000 },
    default: 10,
    help: "a host denied this many times within 10 s (CURVE) has its new connections dropped by the kernel " +
      "for 60 s (0 = never)",
    doc:
      "a host whose CURVE handshakes are denied this many times within 10 s has its new connections' SYNs " +
      "dropped by a kernel socket filter on that socket's tcp listeners for 60 s, so that a handshake flood " +
      "from one host does not slow everyone else; SIGHUP (the clients reread) lifts every block. 0 = never",
  },
  {
    key: "publisherGrace",
    flags: "--publisher-grace <seconds>",
    env: "ADAPTOR_PUBLISHER_GRACE",
    kind: { type: "integer", min: 0, max: 86_400 },
    default: 30,
    help: "warn, and fail /healthz, when no publisher has been connected to the XSUB this long (0 = never)",
    doc: "when no publisher has been connected to the XSUB this long (since start, or since the last one " +
      "left), warn once with the usual cause and report it on `/healthz` (503) and " +
      "`adaptor_publishers_absent` until one connects. 0 = never",
  },
  {
    key: "subscriberWait",
    flags: "--subscriber-wait <ms>",
    env: "ADAPTOR_SUBSCRIBER_WAIT",
    kind: { type: "integer", min: 0, max: 60_000 },
    default: 1000,
    help: "at start, forward only once a subscriber is back (or this has passed), so that what the " +
      "workers queued while the adaptor was down is not discarded (0 = at once)",
    doc:
      "at start, the main channel forwards once the first subscription has come in (and 20 ms more; with " +
      "`--subscriptions local`, 100 ms after the first subscriber's handshake), or after this long, so that " +
      "what the workers queued while the adaptor was down is not discarded. It waits in the XSUB's queue " +
      "meanwhile; subscriptions are passed upstream at once. 0 = forward at once",
  },
  {
    key: "logLevel",
    flags: "--log-level <level>",
    env: "ADAPTOR_LOG_LEVEL",
    kind: { type: "choice", values: LOG_LEVELS },
    default: "info",
    help: "debug, info, warning or error",
  },
  {
    key: "logFormat",
    flags: "--log-format <format>",
    env: "ADAPTOR_LOG_FORMAT",
    kind: { type: "choice", values: LOG_FORMATS },
    default: "text",
    help: "text or json (JSON lines)",
    doc: "`text` or `json` (JSON lines: `time`, `level`, `category`, `message` and the line's fields); " +
      "logs go to stderr",
  },
  {
    key: "subscriptions",
    flags: "--subscriptions <mode>",
    env: "ADAPTOR_SUBSCRIPTIONS",
    kind: { type: "choice", values: SUBSCRIPTION_MODES },
    default: "local",
    help: "local: the gateway's workers subscribe to everything once and the adaptor filters; forward: " +
      "subscriptions reach the workers (on a network XPUB only with --curve-clients)",
    doc:
      "`local`: the workers are subscribed to everything once and the adaptor filters at its own PUB, so " +
      "no subscriber can make the workers store topics or cancel another's subscription. `forward`: " +
      "tracking services' subscriptions reach the gateway's workers, which then send only what someone " +
      "subscribed to (the original's contract); any peer of the XPUB could then cancel a topic for all " +
      "(libzmq 4.3.5), so it is refused on a tcp XPUB off loopback without `--curve-clients` (bound) or " +
      "`--curve-servers` (connecting). See the threat model",
  },
  {
    key: "curveCert",
    flags: "--curve-cert <file>",
    env: "ADAPTOR_CURVE_CERT",
    kind: { type: "path" },
    shown: "off",
    help: "secret CURVE certificate: XPUB, inbound SUB and a tcp XSUB become CURVE servers",
    doc:
      "a secret CURVE certificate (`PATH_secret` from `adaptor keygen`, mode 0600): the XPUB, the inbound " +
      "SUB and a bound tcp XSUB become CURVE servers; with `--curve-servers`, also the adaptor's own key " +
      "pair as a CURVE client",
  },
  {
    key: "curveClients",
    flags: "--curve-clients <dir>",
    env: "ADAPTOR_CURVE_CLIENTS",
    kind: { type: "path" },
    shown: "any client that knows the server key",
    help: "admit only clients whose public certificate is in DIR (SIGHUP rereads it)",
    doc: "only clients whose public certificate is in DIR may connect (needs `--curve-cert`); SIGHUP " +
      "rereads DIR",
  },
  {
    key: "curveServers",
    flags: "--curve-servers <dir>",
    env: "ADAPTOR_CURVE_SERVERS",
    kind: { type: "path" },
    shown: "off",
    help:
      "connect (>) to tcp endpoints as a CURVE client of the server whose certificate is DIR/HOST:PORT or " +
      "DIR/HOST (SIGHUP rereads it)",
    doc: "every connecting (`>`) tcp endpoint is a CURVE client of the server whose public certificate is " +
      "`DIR/HOST:PORT`, else `DIR/HOST`, like ssh's `known_hosts`; needs `--curve-cert`. SIGHUP rereads " +
      "DIR: a changed key reconnects that endpoint",
  },
  {
    key: "ipcMode",
    flags: "--ipc-mode <octal>",
    env: "ADAPTOR_IPC_MODE",
    kind: { type: "octal" },
    default: "0660",
    help: "permissions of the ipc socket files the adaptor binds",
    doc:
      "permissions of the ipc socket files the adaptor binds (`-b`, `-u`); connecting needs write permission",
  },
  {
    key: "ipcGroup",
    flags: "--ipc-group <group>",
    env: "ADAPTOR_IPC_GROUP",
    kind: { type: "group" },
    shown: "the adaptor's",
    help: "group (name or gid) of the ipc socket files the adaptor binds",
    doc:
      "group (name or gid) of the ipc socket files the adaptor binds; the adaptor must be a member (or root)",
  },
  {
    key: "metrics",
    flags: "--metrics <host:port>",
    env: "ADAPTOR_METRICS",
    kind: { type: "address" },
    shown: "off",
    help: "serve Prometheus /metrics and /healthz over HTTP",
    doc: "serve Prometheus `/metrics` and `/healthz` over HTTP, e.g. `127.0.0.1:6002`, `[::1]:6002`, or " +
      "`:6002` for every interface",
  },
] as const satisfies readonly OptionSpec[];

/** A setting's key, as `Config` names it. */
export type OptionKey = typeof OPTIONS[number]["key"];

type WithDefault = Extract<typeof OPTIONS[number], { default: unknown }>;

/** Every setting's default, by key (those that are off by default have none). */
export const DEFAULTS = Object.fromEntries(
  OPTIONS.flatMap((o) => "default" in o ? [[o.key, o.default]] : []),
) as { readonly [O in WithDefault as O["key"]]: O["default"] };

/** The setting `key`. */
export function optionOf(key: OptionKey): OptionSpec {
  return OPTIONS.find((o) => o.key === key)!;
}

/** The long flag of a setting, e.g. `--sndhwm`. */
export function flagOf(option: OptionSpec): string {
  return /--[\w-]+/.exec(option.flags)![0];
}

/** How a setting's default reads in `--help` and the docs. */
export function shownDefault(option: OptionSpec): string {
  if (option.shown !== undefined) return option.shown;
  if (option.default === undefined || option.default === false) return "off";
  return String(option.default);
}
