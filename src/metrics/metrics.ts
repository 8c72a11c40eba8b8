/**
 * The adaptor's Prometheus metrics and their text exposition format (version 0.0.4).
 *
 * Nothing here runs per message. Forwarding counters are the proxies' own STATISTICS, asked
 * when Prometheus scrapes (the C loop answers between two bursts); peer gauges and event
 * counters follow the socket monitors' events (a handful per connection); process figures
 * are read at scrape time.
 *
 * Hand-written rather than prom-client: the format is a few lines of text, our counters
 * already live in libzmq (a client library's registry would only copy them), and prom-client
 * is made for Node (its default collectors lean on Node internals); no dependency is simpler.
 */

import process from "node:process";
import type { AdaptorHandle, AdaptorHooks, ChannelName, ProxyStatistics } from "../adaptor/adaptor.ts";
import { type Role, ROLES } from "../config/endpoint.ts";
import { ConnectedPeers } from "../zmq/connected_peers.ts";
import { curveServerRoles } from "../security/curve.ts";
import type { Health } from "../ops/health.ts";
import type { SocketEvent } from "../zmq/monitor.ts";
import { fileLimit, openDescriptors } from "../os/descriptors.ts";
import { ADAPTOR_VERSION } from "../version.ts";
import { addonBuild, zmqVersion } from "../zmq/binding.ts";

/** The Content-Type of the text exposition format. */
export const EXPOSITION_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** How long a scrape waits for a proxy's STATISTICS before it shows the last answer. */
export const STATISTICS_TIMEOUT_MS = 1000;

export type MetricType = "counter" | "gauge";

/** One value of a metric, with its labels. */
export interface Sample {
  readonly labels?: Readonly<Record<string, string>>;
  readonly value: number | bigint;
}

/** A metric: name, help text, type and samples. Counters' names end in `_total`. */
export interface MetricFamily {
  readonly name: string;
  readonly help: string;
  readonly type: MetricType;
  readonly samples: readonly Sample[];
}

/** `families` in Prometheus' text format, each with its HELP and TYPE lines. */
export function renderExposition(families: readonly MetricFamily[]): string {
  let text = "";
  for (const family of families) {
    text += `# HELP ${family.name} ${family.help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}\n`;
    text += `# TYPE ${family.name} ${family.type}\n`;
    for (const sample of family.samples) {
      text += `${family.name}${renderLabels(sample.labels)} ${renderValue(sample.value)}\n`;
    }
  }
  return text;
}

function renderLabels(labels: Readonly<Record<string, string>> | undefined): string {
  if (!labels) return "";
  const pairs = Object.entries(labels).map(([name, value]) =>
    `${name}="${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`
  );
  return pairs.length === 0 ? "" : `{${pairs.join(",")}}`;
}

function renderValue(value: number | bigint): string {
  if (typeof value === "bigint") return value.toString();
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

/** The roles whose peers are a channel's publishers (upstream) and subscribers (downstream). */
export const CHANNEL_SIDES: Readonly<Record<ChannelName, { publishers: Role; subscribers: Role }>> = {
  main: { publishers: "bind", subscribers: "publish" },
  inbound: { publishers: "listen", subscribers: "push" },
};

/**
 * The monitor events a socket reports, by how its endpoints are used: each series exists at 0
 * from the start, so that `increase()` sees a first event (a series born at 1 shows none).
 */
export const SOCKET_EVENTS = {
  bind: ["listening", "accepted", "accept_failed", "closed", "close_failed"],
  connect: ["connected", "connect_delayed", "connect_retried"],
  both: [
    "disconnected",
    "handshake_succeeded",
    "handshake_failed_no_detail",
    "handshake_failed_protocol",
    "handshake_failed_auth",
  ],
} as const;

/**
 * Collects an adaptor's metrics. Create it before the adaptor, pass `hooks` to
 * `startAdaptor` (so that no connection is missed), then `attach` the handle.
 */
export class AdaptorMetrics {
  /** Pass to `startAdaptor`: counts socket events and tracks connected peers. */
  readonly hooks: AdaptorHooks;
  readonly #statisticsTimeoutMs: number;
  /** Each role's connected peers, by file descriptor (libzmq's value for these events). */
  readonly #peers = new Map<Role, ConnectedPeers>();
  readonly #events = new Map<string, { labels: Record<string, string>; count: number }>();
  readonly #lastStatistics: Partial<Record<ChannelName, ProxyStatistics>> = {};
  readonly #unanswered = new Map<ChannelName, number>();
  readonly #restarts = new Map<ChannelName, number>();
  #handle: AdaptorHandle | undefined;
  /** Authentication decisions by socket (XPUB, SUB) and decision. */
  readonly #auth = new Map<string, { allowed: number; denied: number }>();
  #http: (() => { readonly atCap: number; readonly acceptErrors: number }) | undefined;

  constructor(options: { statisticsTimeoutMs?: number } = {}) {
    this.#statisticsTimeoutMs = options.statisticsTimeoutMs ?? STATISTICS_TIMEOUT_MS;
    this.hooks = {
      onSocketEvent: (channel, role, event) => this.#onSocketEvent(channel, role, event),
      onProxyRestart: (channel) => void this.#restarts.set(channel, (this.#restarts.get(channel) ?? 0) + 1),
      onAuth: (event) => {
        const socket = ROLES[event.role].socket;
        let counts = this.#auth.get(socket);
        if (!counts) this.#auth.set(socket, counts = { allowed: 0, denied: 0 });
        if (event.allowed) counts.allowed++;
        else counts.denied++;
      },
    };
  }

  /** The metrics server's refusal counters (`metrics_server.ts` attaches itself). */
  attachHttp(refused: () => { readonly atCap: number; readonly acceptErrors: number }): void {
    this.#http = refused;
  }

  /**
   * The running adaptor whose counters and health to report. Creates, at 0, every event
   * counter of its sockets and the auth counters of its CURVE server sockets.
   */
  attach(handle: AdaptorHandle): void {
    this.#handle = handle;
    for (const channel of handle.channels) {
      for (const role of Object.values(CHANNEL_SIDES[channel])) {
        const endpoints = handle.config[role];
        const events = [
          ...(endpoints.some((e) => e.mode === "bind") ? SOCKET_EVENTS.bind : []),
          ...(endpoints.some((e) => e.mode === "connect") ? SOCKET_EVENTS.connect : []),
          ...SOCKET_EVENTS.both,
        ];
        for (const event of events) this.#eventCounter(channel, role, event);
      }
    }
    for (const role of curveServerRoles(handle.config)) {
      if (!handle.channels.some((c) => Object.values(CHANNEL_SIDES[c]).includes(role))) continue;
      const socket = ROLES[role].socket;
      if (!this.#auth.has(socket)) this.#auth.set(socket, { allowed: 0, denied: 0 });
    }
  }

  /** The adaptor's health, as /healthz tells it; not ok while no adaptor is attached yet. */
  health(): Health {
    return this.#handle ? this.#handle.health() : { ok: false, reason: "starting" };
  }

  /**
   * The adaptor's own health: `health()` but for the publishers' absence, which has its own
   * gauge (one alert per cause). Absence is the last thing assessed, so a health whose reason
   * is the absence has nothing else wrong.
   */
  #healthyItself(): boolean {
    const health = this.health();
    if (health.ok) return true;
    const absence = this.#handle?.publisherAbsence;
    return absence !== undefined && health.reason === absence;
  }

  /** Peers connected to `role`'s socket now. */
  peers(role: Role): number {
    return this.#peers.get(role)?.size ?? 0;
  }

  /** The counter of `event` on `role`'s socket, created at 0. */
  #eventCounter(channel: ChannelName, role: Role, event: string): { count: number } {
    const socket = ROLES[role].socket;
    const key = `${channel}|${socket}|${event}`;
    let counter = this.#events.get(key);
    if (!counter) this.#events.set(key, counter = { labels: { channel, socket, event }, count: 0 });
    return counter;
  }

  #onSocketEvent(channel: ChannelName, role: Role, event: SocketEvent): void {
    this.#eventCounter(channel, role, event.name).count++;
    let peers = this.#peers.get(role);
    if (!peers) this.#peers.set(role, peers = new ConnectedPeers());
    peers.report(event);
  }

  /** Every metric, with the proxies' counters asked now. */
  async collect(): Promise<MetricFamily[]> {
    const handle = this.#handle;
    const channels = handle?.channels ?? [];
    await this.#askProxies(handle, channels);
    return [
      ...this.#identity(),
      ...this.#forwarding(channels),
      ...this.#state(handle, channels),
      ...this.#peerFamilies(handle, channels),
      ...this.#eventFamilies(),
      ...this.#httpFamilies(),
      ...processFamilies(),
    ];
  }

  /** Asks each proxy for its counters; one that does not answer in time keeps its last ones. */
  async #askProxies(handle: AdaptorHandle | undefined, channels: readonly ChannelName[]): Promise<void> {
    const fresh = handle ? await handle.statistics({ timeoutMs: this.#statisticsTimeoutMs }) : {};
    for (const channel of channels) {
      const stats = fresh[channel];
      if (stats) this.#lastStatistics[channel] = stats;
      else this.#unanswered.set(channel, (this.#unanswered.get(channel) ?? 0) + 1);
    }
  }

  /** What runs, and whether it is healthy. */
  #identity(): MetricFamily[] {
    return [
      {
        name: "adaptor_build_info",
        help: "Versions of the adaptor, of the libzmq it runs on (and which prebuilt addon) and of Deno; " +
          "the value is 1.",
        type: "gauge",
        samples: [{
          labels: {
            version: ADAPTOR_VERSION,
            zeromq_version: zmqVersion(),
            zeromq_build: addonBuild(),
            deno_version: Deno.version.deno,
          },
          value: 1,
        }],
      },
      {
        name: "adaptor_healthy",
        help: "1 while every proxy, monitor and the ZAP handler runs and every bound ipc socket file is " +
          "in place; as /healthz, but for the publishers' absence, which is adaptor_publishers_absent " +
          "(/healthz reports both).",
        type: "gauge",
        samples: [{ value: this.#healthyItself() ? 1 : 0 }],
      },
    ];
  }

  /** The proxies' counters, as they last answered. */
  #forwarding(channels: readonly ChannelName[]): MetricFamily[] {
    const perChannel = (value: (stats: ProxyStatistics) => bigint): Sample[] =>
      channels.flatMap((channel) => {
        const stats = this.#lastStatistics[channel];
        return stats ? [{ labels: { channel }, value: value(stats) }] : [];
      });
    return [
      {
        name: "adaptor_messages_forwarded_total",
        help: "ZeroMQ frames forwarded downstream by the channel's proxy (main: XSUB to XPUB, " +
          "inbound: SUB to PUSH). libzmq counts frames: a multipart message counts once per part.",
        type: "counter",
        samples: perChannel((s) => s.backend.messagesOut),
      },
      {
        name: "adaptor_bytes_forwarded_total",
        help: "Payload bytes of the frames forwarded downstream by the channel's proxy.",
        type: "counter",
        samples: perChannel((s) => s.backend.bytesOut),
      },
      {
        name: "adaptor_upstream_messages_total",
        help: "Frames passed back upstream by the channel's proxy: on main, the subscriptions and " +
          "unsubscriptions that travel from the XPUB to the gateway's publishers.",
        type: "counter",
        samples: perChannel((s) => s.frontend.messagesOut),
      },
      {
        name: "adaptor_statistics_unanswered_total",
        help: `Scrapes at which the channel's proxy did not answer STATISTICS within ` +
          `${this.#statisticsTimeoutMs} ms (inbound: blocked sending to a full PUSH; main: busy in libzmq ` +
          "removing the topics of a subscriber that held millions; or stopped); " +
          "the forwarding counters then show its last answer.",
        type: "counter",
        samples: channels.map((channel) => ({
          labels: { channel },
          value: this.#unanswered.get(channel) ?? 0,
        })),
      },
    ];
  }

  /** Conditions an operator alerts on. */
  #state(handle: AdaptorHandle | undefined, channels: readonly ChannelName[]): MetricFamily[] {
    return [
      {
        name: "adaptor_publishers_absent",
        help: "1 while no publisher has been connected to the XSUB for --publisher-grace seconds " +
          "(the gateway's workers cannot reach the adaptor, or nginx is down); /healthz says so too.",
        type: "gauge",
        samples: [{ value: handle?.publisherAbsence ? 1 : 0 }],
      },
      {
        name: "adaptor_connection_cap_reached_total",
        help: "Times a bound tcp socket reached --max-connections and stopped listening (new " +
          "connections refused until nine tenths of the cap).",
        type: "counter",
        samples: (handle?.connectionCaps() ?? []).map((c) => ({
          labels: { socket: c.socket },
          value: c.reached,
        })),
      },
      {
        name: "adaptor_proxy_restarts_total",
        help: "Times the channel's proxy was interrupted by a signal (EINTR) and started again on " +
          "the same sockets; frames it moved after its last scrape are then missing from the counters.",
        type: "counter",
        samples: channels.map((channel) => ({
          labels: { channel },
          value: this.#restarts.get(channel) ?? 0,
        })),
      },
    ];
  }

  /** Who is connected, and what they subscribed to. */
  #peerFamilies(handle: AdaptorHandle | undefined, channels: readonly ChannelName[]): MetricFamily[] {
    const peers = (side: "publishers" | "subscribers"): Sample[] =>
      channels.map((channel) => ({
        labels: { channel },
        value: this.peers(CHANNEL_SIDES[channel][side]),
      }));
    return [
      {
        name: "adaptor_publishers",
        help: "Peers connected to the channel's upstream socket now (main: gateway workers on the " +
          "XSUB; inbound: remote publishers of the SUB).",
        type: "gauge",
        samples: peers("publishers"),
      },
      {
        name: "adaptor_subscribers",
        help: "Peers connected to the channel's downstream socket now (main: tracking services on " +
          "the XPUB; inbound: PULL workers of the PUSH).",
        type: "gauge",
        samples: peers("subscribers"),
      },
      {
        name: "adaptor_topics",
        help: "Distinct topics the channel's XSUB has subscribed the gateway's workers to now: with " +
          "--subscriptions forward, the tracking services' live subscriptions, which every worker " +
          "keeps; with local, 1 (everything).",
        type: "gauge",
        samples: Object.entries(handle?.topics() ?? {}).map(([channel, topics]) => ({
          labels: { channel },
          value: topics,
        })),
      },
    ];
  }

  /** Socket events and CURVE decisions, each counter there from the start. */
  #eventFamilies(): MetricFamily[] {
    return [
      {
        name: "adaptor_socket_events_total",
        help: "Socket monitor events by channel, socket and event (listening, accepted, connected, " +
          "disconnected, handshake_failed_*, ...); every event a socket reports exists from the start.",
        type: "counter",
        samples: [...this.#events.values()].map(({ labels, count }) => ({ labels, value: count })),
      },
      {
        name: "adaptor_auth_allowed_total",
        help: "CURVE clients admitted, by socket (every decision, whatever the log shows); " +
          "0 from the start for each CURVE server socket.",
        type: "counter",
        samples: [...this.#auth].map(([socket, counts]) => ({ labels: { socket }, value: counts.allowed })),
      },
      {
        name: "adaptor_auth_denied_total",
        help: "CURVE connections refused (unknown key, wrong server key, plaintext), by socket; every one.",
        type: "counter",
        samples: [...this.#auth].map(([socket, counts]) => ({ labels: { socket }, value: counts.denied })),
      },
    ];
  }

  #httpFamilies(): MetricFamily[] {
    if (!this.#http) return [];
    const refused = this.#http();
    return [{
      name: "adaptor_metrics_connections_refused_total",
      help:
        "Connections to --metrics closed unserved: at the connection cap, or accept failed (out of descriptors).",
      type: "counter",
      samples: [
        { labels: { reason: "cap" }, value: refused.atCap },
        { labels: { reason: "accept_error" }, value: refused.acceptErrors },
      ],
    }];
  }

  /** `collect()` in the text exposition format. */
  async render(): Promise<string> {
    return renderExposition(await this.collect());
  }
}

/**
 * The standard `process_*` metrics, as Prometheus' process collector names them: CPU seconds of
 * all threads (the proxies' included, from getrusage), resident memory, start time, and open
 * and allowed descriptors (/proc/self/fd and the soft RLIMIT_NOFILE, through libc: Deno's own
 * file API refuses /proc/self without --allow-all). The last two are left out where libc
 * cannot be asked.
 */
export function processFamilies(): MetricFamily[] {
  const cpu = process.cpuUsage();
  const open = openDescriptors();
  const limit = fileLimit()?.soft;
  const descriptors: MetricFamily[] = [
    ...(open === undefined ? [] : [{
      name: "process_open_fds",
      help: "Number of open file descriptors.",
      type: "gauge" as const,
      samples: [{ value: open }],
    }]),
    ...(limit === undefined ? [] : [{
      name: "process_max_fds",
      help: "Maximum number of open file descriptors (the soft RLIMIT_NOFILE).",
      type: "gauge" as const,
      samples: [{ value: limit }],
    }]),
  ];
  return [
    {
      name: "process_cpu_seconds_total",
      help: "User and system CPU time of the process, all threads, in seconds.",
      type: "counter",
      samples: [{ value: (cpu.user + cpu.system) / 1e6 }],
    },
    {
      name: "process_resident_memory_bytes",
      help: "Resident memory of the process, in bytes.",
      type: "gauge",
      samples: [{ value: Deno.memoryUsage().rss }],
    },
    {
      name: "process_start_time_seconds",
      help: "When the process started, in seconds since the Unix epoch.",
      type: "gauge",
      samples: [{ value: Math.round(performance.timeOrigin) / 1000 }],
    },
    ...descriptors,
  ];
}
