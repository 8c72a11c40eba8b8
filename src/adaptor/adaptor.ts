/**
 * The adaptor: builds its channels from a `Config` and owns their whole lifecycle.
 *
 *   main     XSUB (-b) ──► XPUB (-p)    messages down, subscriptions up
 *   inbound  SUB  (-l) ──► PUSH (-u)    only when -l or -r is given
 *
 * `Adaptor.start` is the recipe, one named step a part: the ipc guard (one adaptor per socket path, locked; never take a
 * live socket file; socket files born mode 0000, then given --ipc-mode/-group; watched), the
 * context, the ZAP handler for `--curve-clients`, the channels (`channel.ts`: sockets, options,
 * monitors, proxy), the debug taps of `-d/-t/-r`, and a malloc_trim timer. Every part is put on
 * one `AsyncDisposableStack` the moment it exists; `stop()` and a failed start both unwind it in
 * reverse: taps, proxies, ZAP handler, the context (which ends every wait and closes every
 * socket it opened), then the guard (our socket files removed, locks released). So a start that
 * fails half-way leaves nothing open or bound, and `startAdaptor` either returns a running
 * handle or throws.
 *
 * Every loop that must run as long as the adaptor (proxies, monitors, ZAP handler, taps) has a
 * `done` promise; one that settles while the adaptor is not stopping is a `failure`, and
 * `/healthz` says so.
 */

import { type AuthCounts, type AuthEvent, AuthTracker, ZapHandler } from "../security/auth.ts";
import {
  type Channel,
  type ChannelDeps,
  type ChannelName,
  INBOUND,
  MAIN,
  MAIN_LOCAL,
  openChannel,
} from "./channel.ts";
import type { Config } from "../config/config.ts";
import { type Endpoint, peerOf, type Role, ROLES } from "../config/endpoint.ts";
import { MAX_LINGER_MS } from "../config/options.ts";
import {
  curveFor,
  loadSecurity,
  readServerKeys,
  reportClients,
  type SecuritySetup,
  type ServerKeys,
  warnAboutExposure,
} from "../security/curve.ts";
import { oneLine } from "../errors.ts";
import { ProxyBlockedError, type ProxyStatistics } from "./proxy.ts";
import { assessHealth, type Health } from "../ops/health.ts";
import { type GuardedPath, IpcGuard } from "../ipc/ipc_guard.ts";
import { resolveGroup } from "../ipc/socket_file.ts";
import { fileLimit, openDescriptors } from "../os/descriptors.ts";
import { startMallocTrim } from "../os/memory.ts";
import { literal, log } from "../ops/log.ts";
import { claimListeners, type InheritedListener } from "../ops/socket_activation.ts";
import type { SocketEvent } from "../zmq/monitor.ts";
import { PeerEventLog, routeSocketEvents } from "./peer_events.ts";
import { SubscriberWait } from "./subscriber_wait.ts";
import { PublisherPresence } from "./presence.ts";
import { connectionBudget, ConnectionCap, listenBacklog } from "./connection_cap.ts";
import { SourceThrottle } from "../security/source_throttle.ts";
import { describe } from "../zmq/socket_options.ts";
import { zmqVersion } from "../zmq/binding.ts";
import { Context } from "../zmq/socket.ts";
import { type CurveKeyPair, curveKeypair } from "../zmq/z85.ts";

export type { ChannelName };

/** Observers of what happens inside a running adaptor (metrics, tests). */
export interface AdaptorHooks {
  /** Every socket event of every channel socket. */
  onSocketEvent?: (channel: ChannelName, role: Role, event: SocketEvent) => void;
  /**
   * Every authentication decision on the CURVE sockets (`--curve-cert`): the ZAP handler's
   * verdicts and the handshakes that failed before it (plaintext clients, wrong server key).
   */
  onAuth?: (event: AuthEvent & { role: Role }) => void;
  /** A channel's proxy was interrupted (a signal reached its thread) and started again. */
  onProxyRestart?: (channel: ChannelName) => void;
}

/**
 * A running adaptor, as `startAdaptor` returns it.
 *
 * @example Read the counters, watch for a failure, reload on SIGHUP
 * ```ts
 * const stats = await adaptor.statistics({ timeoutMs: 1000 });
 * console.log(stats.main?.frontend.messagesIn); // frames from the gateway's publishers
 * adaptor.failure.then((why) => console.error(`adaptor failed: ${why}`));
 * Deno.addSignalListener("SIGHUP", () => adaptor.reloadClients());
 * ```
 */
export interface AdaptorHandle {
  readonly config: Config;
  /** The addresses each role actually bound or connected (wildcard ports resolved). */
  readonly endpoints: Readonly<Record<Role, readonly string[]>>;
  /** The channels this adaptor runs: always "main", "inbound" with -l/-r. */
  readonly channels: readonly ChannelName[];
  /**
   * Exact forwarding counters of each running channel, asked of the proxies in parallel. With
   * `timeoutMs`, a channel whose proxy does not answer in time (blocked sending to a full
   * PUSH) is left out rather than awaited.
   */
  statistics(options?: { timeoutMs?: number }): Promise<Partial<Record<ChannelName, ProxyStatistics>>>;
  /**
   * Live subscriptions of each channel that keeps them (main), read without disturbing the
   * proxy: the distinct topics its XSUB has subscribed every gateway worker to (with
   * `--subscriptions forward`, all the tracking services' topics; with `local`, 1).
   */
  topics(): Partial<Record<ChannelName, number>>;
  /**
   * Ok while every proxy, monitor, the ZAP handler and every tap runs and every ipc socket file
   * bound is still ours; else why not.
   */
  health(): Health;
  /** `health().ok`. */
  readonly healthy: boolean;
  /**
   * Why the gateway's publishers are missing, once no publisher has been connected to the XSUB
   * for `--publisher-grace` seconds; undefined while one is (or within the grace).
   */
  readonly publisherAbsence: string | undefined;
  /** Resolves (never rejects) if a part of the adaptor ends while it was not stopping. */
  readonly failure: Promise<string>;
  /** Resolves when the main proxy forwards (at once, or after `--subscriber-wait`'s hold). */
  readonly forwarding: Promise<void>;
  /** Each bound tcp socket's connection cap (`--max-connections`): held, cap, times reached. */
  connectionCaps(): {
    socket: string;
    connections: number;
    cap: number;
    reached: number;
    listening: boolean;
  }[];
  /** Exact counts of CURVE connections allowed and denied since start (0/0 without CURVE). */
  readonly auth: AuthCounts;
  /**
   * Rereads the `--curve-clients` directory (SIGHUP): new certificates admit their clients from
   * the next connection on, removed ones no longer do. Returns false when there is none.
   */
  reloadClients(): boolean;
  /**
   * Rereads the `--curve-servers` directory (SIGHUP) and connects again each endpoint whose
   * server key changed (its channel's proxy pauses for a moment). Resolves with the endpoints
   * reconnected; undefined when there is no such directory. A directory that cannot be read, or
   * lacks a certificate now, keeps the keys in use (a warning says why, and `health()` until a
   * later reload succeeds).
   *
   * All or nothing: should one endpoint fail to reconnect (its proxy blocked in a send, so that
   * it cannot be paused), those already reconnected go back to their old keys, the keys in use
   * stay, `health()` says so until a later reload succeeds, and it rejects; the next call tries
   * again.
   */
  reloadServers(): Promise<string[] | undefined>;
  /**
   * Whether `stop()` closed every socket at least `--linger` ms ago: whatever libzmq still does
   * then (freeing the topics of millions of subscriptions takes seconds) can deliver nothing
   * more, since linger is how long libzmq keeps trying to. False while a proxy or a send has
   * not returned, as when libzmq is busy on the proxy's own thread.
   */
  lingerOver(): boolean;
  /** Stops forwarding, closes everything within the linger, removes our ipc files. Idempotent. */
  stop(): Promise<void>;
  /**
   * Removes our ipc socket and lock files at once, whatever `stop()` is doing: for a stop that
   * overran its deadline, just before the process exits (so the next start finds nothing stale).
   */
  releaseFiles(): void;
}

/** A part that must run as long as the adaptor does. */
interface Loop {
  readonly done: Promise<string>;
}

/**
 * Opens, binds and starts everything `config` asks for, and returns the running adaptor. Throws
 * `UsageError` (bad certificates, groups: exit 2) or `StartupError` (a busy port, a live ipc
 * path: exit 1), with nothing left open. `hooks` observe socket events and auth decisions
 * (`AdaptorMetrics.hooks` does, for `--metrics`).
 *
 * @example Forward from an ipc XSUB to a tcp XPUB, then stop
 * ```ts
 * import { startAdaptor } from "../src/adaptor/adaptor.ts";
 * import { makeConfig } from "../src/config/config.ts";
 *
 * const adaptor = await startAdaptor(makeConfig({
 *   bind: ["ipc:///tmp/example_queue"],
 *   publish: ["tcp://127.0.0.1:16001"],
 * }));
 * console.log(adaptor.endpoints.publish); // [ "tcp://127.0.0.1:16001" ]
 * console.log(adaptor.health()); // { ok: true }
 * await adaptor.stop(); // the socket file and its lock are gone
 * ```
 */
export function startAdaptor(
  config: Config,
  hooks: AdaptorHooks = {},
  host: AdaptorHost = {},
): Promise<AdaptorHandle> {
  return Adaptor.start(config, hooks, host);
}

/** What the process was handed by whoever started it. */
export interface AdaptorHost {
  /**
   * The listening sockets systemd passed (`inheritedListeners`): each is bound by the endpoint
   * on its address, which must be one of `config`'s (`claimListeners`).
   */
  readonly listeners?: readonly InheritedListener[];
}

/**
 * The running adaptor. `start` is the recipe, one named step a part, each part put on the
 * disposal stack the moment it exists; the methods are the handle's.
 */
class Adaptor implements AdaptorHandle {
  readonly channels: readonly ChannelName[] = [];
  readonly endpoints = {} as Record<Role, string[]>;
  readonly failure: Promise<string>;
  #security: SecuritySetup;
  readonly #gid: number | undefined;
  readonly #stack = new AsyncDisposableStack();
  readonly #loops: Loop[] = [];
  readonly #channels: Channel[] = [];
  readonly #caps = new Map<Role, ConnectionCap>();
  /** Hosts denied again and again are kept out by the kernel (`--block-after-denials`). */
  readonly #throttles = new Map<Role, SourceThrottle>();
  readonly #auth: AuthTracker;
  #stopping = false;
  #failed: string | undefined;
  /** Why the last `--curve-servers` reload could not be applied, until one is. */
  #reloadFailed: string | undefined;
  #stopped: Promise<void> | undefined;
  #onFailure!: (why: string) => void;
  /** The endpoints bound on a socket systemd passed. */
  readonly #inherited: Map<Endpoint, InheritedListener>;
  // Set by the steps below, in this order.
  #guard!: IpcGuard;
  #context!: Context;
  #peerEvents!: PeerEventLog;
  #tapKeys: CurveKeyPair | undefined;
  #zap: ZapHandler | undefined;
  #presence!: PublisherPresence;
  #subscriberWait!: SubscriberWait;

  private constructor(readonly config: Config, readonly hooks: AdaptorHooks, host: AdaptorHost) {
    // Bad certificates, groups and passed sockets are usage errors: refuse before touching anything.
    this.#security = loadSecurity(config);
    this.#inherited = claimListeners(
      host.listeners ?? [],
      (Object.keys(ROLES) as Role[]).flatMap((role) => config[role]),
    );
    this.#gid = config.ipcGroup !== undefined ? resolveGroup(config.ipcGroup) : undefined;
    this.#auth = new AuthTracker((event) => {
      this.#throttles.get(event.role)?.decided(event.allowed, event.address);
      hooks.onAuth?.(event);
    });
    this.failure = new Promise<string>((resolve) => this.#onFailure = resolve);
  }

  /** The recipe. A step that throws unwinds what the steps before it made. */
  static async start(config: Config, hooks: AdaptorHooks, host: AdaptorHost): Promise<Adaptor> {
    const adaptor = new Adaptor(config, hooks, host);
    try {
      await adaptor.#guardIpcPaths();
      adaptor.#openContext();
      adaptor.#startZapHandler();
      adaptor.#watchPublishers();
      adaptor.#openChannels();
      adaptor.#capConnections();
      warnAboutExposure(config, adaptor.#security);
      await adaptor.#startTaps();
      adaptor.#keepHouse();
    } catch (error) {
      await adaptor.#stack.disposeAsync().catch(() => {});
      throw error;
    }
    adaptor.#watchLoops();
    return adaptor;
  }

  /** Refuses before opening anything: a live ipc path belongs to another process. */
  async #guardIpcPaths(): Promise<void> {
    this.#guard = this.#stack.use(
      await IpcGuard.acquire(ipcPaths(this.config, this.#inherited), {
        onStale: (path) => log().info("Replacing stale socket file {path}", { path }),
        onRemoveFailure: (file, why) =>
          log().warn(
            literal(`cannot remove socket file ${file.path} (${why}); the next start will bind over it`),
          ),
        onWarning: (text) => log().warn(literal(text)),
      }),
    );
  }

  /** The context, which ends every wait and closes every socket it opened when disposed. */
  #openContext(): void {
    const ctx = new Context({ ioThreads: this.config.ioThreads });
    this.#context = ctx;
    this.#stack.defer(() => ctx.terminate());
    const peerEvents = new PeerEventLog({ limits: this.config, logger: log("socket") });
    this.#peerEvents = peerEvents;
    this.#stack.defer(() => peerEvents.close()); // closing our own sockets is no news
    const auth = this.#auth;
    this.#stack.defer(() => auth.close()); // the last window's summary of denials
    // The debug taps are CURVE clients of our own sockets, with a key made for this run.
    this.#tapKeys = this.#security.cert ? curveKeypair() : undefined;
  }

  /** The judge of `--curve-clients`, up before any socket binds. */
  #startZapHandler(): void {
    const clients = this.#security.clients;
    if (!clients) return;
    const handler = ZapHandler.start(this.#context, {
      clients,
      trusted: new Map([[this.#tapKeys!.publicKey, "the adaptor's own debug tap"]]),
      onDecision: (event) => {
        const role = (event.domain in ROLES ? event.domain : "publish") as Role;
        this.#auth.record(event, role, ROLES[role].socket);
      },
    });
    this.#zap = handler;
    this.#stack.defer(async () => void await handler.stop());
    this.#loops.push({ done: handler.done.then((why) => `the ZAP handler ended (${why})`) });
    reportClients(clients);
  }

  /** The XSUB's publishers: warned about, and unhealthy, when none is there for the grace. */
  #watchPublishers(): void {
    const where = `XSUB ${this.config.bind.map((e) => e.address).join(", ")}`;
    const presence = new PublisherPresence(where, this.config.publisherGrace);
    this.#presence = presence;
    this.#stack.defer(() => presence.close());
    // After a restart, what the workers queued waits in the XSUB until a subscriber is back.
    const wait = new SubscriberWait(this.config.subscriberWait);
    this.#subscriberWait = wait;
    this.#stack.defer(() => wait.close());
  }

  /** The main channel, and the inbound one with -l/-r. */
  #openChannels(): void {
    const { config } = this;
    // The network may not take the last descriptors (libzmq's ipc listener aborts on EMFILE).
    for (const role of tcpRoles(config)) {
      const cap = new ConnectionCap(ROLES[role].socket);
      this.#stack.defer(() => cap.close());
      this.#caps.set(role, cap);
      if (config.blockAfterDenials > 0) {
        const throttle = new SourceThrottle(ROLES[role].socket, { limit: config.blockAfterDenials });
        this.#stack.defer(() => throttle.close());
        this.#throttles.set(role, throttle);
      }
    }
    const deps = this.#channelDeps();
    const local = config.subscriptions === "local";
    this.#channels.push(openChannel(this.#stack, deps, local ? MAIN_LOCAL : MAIN));
    if (local) {
      log().info(
        "Forwarding XSUB -> PUB (ZeroMQ {zmqVersion}); subscriptions stay here, the workers send everything",
        { zmqVersion: zmqVersion() },
      );
    } else log().info("Forwarding XSUB -> XPUB (ZeroMQ {zmqVersion})", { zmqVersion: zmqVersion() });
    if (config.listen.length > 0) {
      this.#channels.push(openChannel(this.#stack, deps, INBOUND));
      log().info("Forwarding inbound SUB -> PUSH");
    }
    this.#loops.push(...this.#channels);
    (this.channels as ChannelName[]).push(...this.#channels.map((c) => c.name));
    for (const role of Object.keys(ROLES) as Role[]) {
      this.endpoints[role] = this.#channels.flatMap((c) => c.endpoints.get(role) ?? []);
    }
  }

  /** What a channel needs of the adaptor: its sockets' options, keys, events and gates. */
  #channelDeps(): ChannelDeps {
    const { config, hooks } = this;
    const peerEvents = this.#peerEvents;
    let warnedUmask = false;
    return {
      backlog: listenBacklog({ limit: fileLimit()?.soft, open: openDescriptors() }),
      ctx: this.#context,
      config,
      guard: this.#guard,
      gid: this.#gid,
      curve: (role: Role, endpoint: Endpoint) => curveFor(this.#security, role, endpoint),
      route: (channel: ChannelName, role: Role, curveServer: boolean) =>
        routeSocketEvents({
          channel,
          socket: ROLES[role].socket,
          role,
          curveServer,
          auth: this.#auth,
          debug: config.debug,
          dials: new Set(config[role].filter((e) => e.mode === "connect").map((e) => e.address)),
          peerEvents,
          logger: log("socket"),
          hook: (event) => {
            if (role === "bind") this.#presence.report(event);
            if (channel === "main" && role === "publish") this.#subscriberWait.report(event);
            this.#caps.get(role)?.report(event);
            this.#throttles.get(role)?.report(event);
            hooks.onSocketEvent?.(channel, role, event);
          },
        }),
      onRouteError: (channel: ChannelName, role: Role, error: unknown) =>
        peerEvents.warn(
          `${ROLES[role].socket} (${channel} channel)`,
          "monitor-callback",
          `a socket event's handler failed (${(error as Error)?.message ?? error}); the monitor goes on`,
        ),
      onRestart: (channel: ChannelName) => {
        peerEvents.warn(
          `${channel} channel`,
          "proxy-restart",
          "the proxy's wait was interrupted by a signal; restarted on the same sockets",
        );
        hooks.onProxyRestart?.(channel);
      },
      startGate: (channel: ChannelName) => channel === "main" ? this.#subscriberWait : undefined,
      inherited: (endpoint: Endpoint) => this.#inherited.get(endpoint),
      onChmodAfterBind: () => {
        if (warnedUmask) return;
        warnedUmask = true;
        log().warn("libc's umask is out of reach: socket files have the umask's mode until chmod");
      },
    };
  }

  /** The connection caps, measured now that every socket, thread and listener of ours exists. */
  #capConnections(): void {
    const { maxConnections } = this.config;
    const cap = connectionBudget(maxConnections, this.#caps.size, {
      limit: fileLimit()?.soft,
      open: openDescriptors(),
    });
    for (const watch of this.#caps.values()) watch.setCap(cap);
    if (this.#caps.size > 0 && Number.isFinite(cap)) {
      log().info(literal(
        `At most ${cap} connections on each of ${
          [...this.#caps.keys()].map((r) => ROLES[r].socket).join(", ")
        } ` +
          `(${maxConnections > 0 ? "--max-connections" : "what the descriptor limit leaves"})`,
      ));
    }
  }

  /** The debug taps of -d/-t/-r; a tap is a CURVE client where it goes to one of our CURVE servers. */
  async #startTaps(): Promise<void> {
    const { config } = this;
    if (!config.debug) return;
    const cert = this.#security.cert;
    const curve = cert && this.#tapKeys ? { serverKey: cert.publicKey, ...this.#tapKeys } : undefined;
    const endpoint = (role: Role) => this.#channels.flatMap((c) => c.endpoints.get(role) ?? [])[0];
    const { startTaps } = await import("./taps.ts"); // -d/-t/-r only
    startTaps(this.#context, {
      test: config.test,
      receiverTest: config.receiverTest,
      peer: (role) => {
        const peer = peerOf(config[role][0], endpoint(role));
        return curve && curveFor(this.#security, role, config[role][0])?.kind === "server"
          ? { ...peer, curve }
          : peer;
      },
    }, (tap) => {
      this.#stack.defer(() => tap.stop());
      this.#loops.push({ done: tap.done.then((why) => `${tap.name} ended (${why})`) });
    });
  }

  /** Freed queues go back to the system; the socket files are watched. */
  #keepHouse(): void {
    const trim = startMallocTrim();
    this.#stack.defer(() => trim.stop());
    this.#guard.watch((_file, state, text) => {
      if (state === "ok") log().info(literal(text));
      else log().warn(literal(text));
    });
  }

  /** A part that ends while the adaptor is not stopping is its failure. */
  #watchLoops(): void {
    for (const loop of this.#loops) {
      loop.done.then((why) => {
        if (this.#stopping) return;
        this.#failed ??= why;
        this.#onFailure(why);
      });
    }
  }

  health(): Health {
    return assessHealth({
      stopping: this.#stopping,
      failed: this.#failed,
      reloadFailed: this.#reloadFailed,
      absent: this.#presence.absence,
      channels: this.#channels.map((c) => ({ name: c.name, running: c.forwarder.running })),
      socketFiles: this.#guard.files,
    });
  }

  get healthy(): boolean {
    return this.health().ok;
  }

  get forwarding(): Promise<void> {
    return this.#subscriberWait.ready;
  }

  get publisherAbsence(): string | undefined {
    return this.#presence.absence;
  }

  get auth(): AuthCounts {
    return this.#auth.counts;
  }

  connectionCaps() {
    return [...this.#caps.entries()].map(([role, watch]) => ({
      socket: ROLES[role].socket,
      connections: watch.connections,
      cap: watch.cap,
      reached: watch.reached,
      listening: watch.listening,
    }));
  }

  reloadClients(): boolean {
    if (!this.#zap || this.#stopping) return false;
    this.#zap.reload();
    // The keys changed: a host denied before may be admitted now.
    for (const throttle of this.#throttles.values()) throttle.liftAll();
    return true;
  }

  async reloadServers(): Promise<string[] | undefined> {
    const { config } = this;
    const before = this.#security.servers;
    if (!before || this.#stopping) return undefined;
    let after: ServerKeys;
    try {
      after = readServerKeys(config, before.dir);
    } catch (error) {
      log("auth").warn(literal(`${oneLine(error)}: the server keys in use stay`));
      this.#reloadFailed =
        `the last reload of ${before.dir} failed (${oneLine(error)}); the server keys in use ` +
        "stay, SIGHUP tries again";
      return [];
    }
    const next = { ...this.#security, servers: after };
    const changes = (Object.keys(ROLES) as Role[]).flatMap((role) =>
      config[role].filter((endpoint) => {
        const [old, now] = [before.keys.get(endpoint.address), after.keys.get(endpoint.address)];
        return old && now && old.key !== now.key;
      }).map((endpoint) => ({ role, endpoint, channel: this.#channels.find((c) => c.endpoints.has(role))! }))
    );
    const done: typeof changes = [];
    for (const change of changes) {
      const { role, endpoint, channel } = change;
      try {
        await channel.reconnect(role, endpoint, curveFor(next, role, endpoint), RELOAD_PAUSE_MS);
        done.push(change);
      } catch (error) {
        const why = `reconnecting ${endpoint.address} failed: ${oneLine(error)}`;
        if (this.#stopping) throw new Error(`${why} (stopping)`);
        if (!(error instanceof ProxyBlockedError)) done.push(change); // its job may have run
        await this.#rollBack(done.reverse());
        this.#reloadFailed =
          `the last reload of ${before.dir} failed (${why}); the server keys in use stay, ` +
          "SIGHUP tries again";
        throw new Error(`${why}: no endpoint changed its key (SIGHUP tries again)`);
      }
    }
    this.#security = next;
    this.#reloadFailed = undefined;
    const changed = [...new Set(changes.map((c) => c.endpoint.address))];
    for (const address of changed) {
      log("auth").info(
        literal(`CURVE client of ${address}: new server key from ${after.keys.get(address)!.file}`),
      );
    }
    log("auth").info(
      literal(
        `Reread ${before.dir}: ${changed.length} endpoint${changed.length === 1 ? "" : "s"} reconnected`,
      ),
    );
    return changed;
  }

  /** Puts the endpoints a failed reload had reconnected back on the keys in use. */
  async #rollBack(changes: { role: Role; endpoint: Endpoint; channel: Channel }[]): Promise<void> {
    for (const { role, endpoint, channel } of changes) {
      await channel.reconnect(role, endpoint, curveFor(this.#security, role, endpoint)).catch((again) =>
        log("auth").error(literal(`${endpoint.address}: back to the old key failed: ${oneLine(again)}`))
      );
    }
  }

  async statistics(options: { timeoutMs?: number } = {}) {
    const result: Partial<Record<ChannelName, ProxyStatistics>> = {};
    await Promise.all(this.#channels.map(async ({ name, forwarder }) => {
      if (!forwarder.running) return;
      // Known blocked (an earlier request went unanswered past the timeout): not one more waiter
      // on that request per call, for as long as the block lasts.
      const waited = forwarder.unansweredForMs;
      if (options.timeoutMs !== undefined && waited !== undefined && waited >= options.timeoutMs) return;
      const stats = await withTimeout(forwarder.statistics(), options.timeoutMs).catch(() => undefined);
      if (stats) result[name] = stats;
    }));
    return result;
  }

  topics(): Partial<Record<ChannelName, number>> {
    const result: Partial<Record<ChannelName, number>> = {};
    for (const channel of this.#channels) {
      const topics = this.#stopping ? undefined : channel.topics();
      if (topics !== undefined) result[channel.name] = topics;
    }
    return result;
  }

  lingerOver(): boolean {
    const closedAt = this.#context?.socketsClosedAt;
    return closedAt !== undefined && performance.now() - closedAt >= this.config.linger;
  }

  releaseFiles(): void {
    this.#guard.releaseFiles();
  }

  stop(): Promise<void> {
    this.#stopping = true;
    // Meanwhile the kernel tears the file watch down (its close waits a grace period).
    const unwatched = this.#guard.unwatch();
    this.#stopped ??= drainMain(this.#channels, Math.min(DRAIN_MS, MAX_LINGER_MS - this.config.linger))
      .then(() => logTotals(this.#channels))
      .then(() => unwatched)
      .then(() => this.#stack.disposeAsync());
    return this.#stopped;
  }
}

/** The roles with a bound tcp endpoint: each gets a connection cap. */
function tcpRoles(config: Config): Role[] {
  return (Object.keys(ROLES) as Role[])
    .filter((r) => config[r].some((e) => e.mode === "bind" && e.transport === "tcp"));
}

/** The ipc paths `config` binds, for the guard; `inherited` are served by systemd's socket unit. */
function ipcPaths(config: Config, inherited: ReadonlyMap<Endpoint, unknown>): GuardedPath[] {
  return (Object.keys(ROLES) as Role[]).flatMap((role) =>
    config[role].flatMap((endpoint) =>
      endpoint.mode === "bind" && endpoint.ipcPath
        ? [{ path: endpoint.ipcPath, what: describe(role, endpoint), inherited: inherited.has(endpoint) }]
        : []
    )
  );
}

/** How long a reload waits for a channel's proxy to pause for a reconnect. */
const RELOAD_PAUSE_MS = 1000;

/** The longest a stop waits for the main proxy to forward what the publishers had sent. */
const DRAIN_MS = 250;

/** How often the drain looks at the proxy's counter (it forwards a queue of 10 000 in ~10 ms). */
const DRAIN_LOOK_MS = 3;

/**
 * The first step of a stop: the main channel takes nothing more from the gateway's workers
 * (they keep what they publish from now on for the next adaptor: their PUB keeps its pipe), and
 * its proxy forwards what they had already sent, until its frontend counter stands still over
 * two looks `DRAIN_LOOK_MS` apart or `budgetMs` have passed. Without this, a restart lost what
 * the XSUB had queued.
 */
async function drainMain(channels: readonly Channel[], budgetMs: number): Promise<void> {
  const main = channels.find((c) => c.name === "main");
  if (!main || budgetMs <= 0 || !main.forwarder.running) return;
  const deadline = performance.now() + budgetMs;
  try {
    await main.detachUpstream(budgetMs);
    let last = -1n;
    let still = 0;
    while (performance.now() < deadline) {
      const stats = await withTimeout(main.forwarder.statistics(), Math.max(1, deadline - performance.now()));
      if (!stats) return;
      still = stats.frontend.messagesIn === last ? still + 1 : 0;
      if (still === 2) return;
      last = stats.frontend.messagesIn;
      await new Promise((resolve) => setTimeout(resolve, DRAIN_LOOK_MS));
    }
  } catch {
    // The proxy stopped meanwhile: the stop goes on.
  }
}

/**
 * Logs each channel's counters as the proxy keeps them, once, at stop: what came in from
 * publishers and what went out. libzmq does not count what an XPUB drops for a subscriber
 * past its high-water mark, so "out" is what was handed to the subscribers' queues.
 */
async function logTotals(channels: readonly Channel[]): Promise<void> {
  // In parallel, 300 ms at most: a proxy blocked on a full PUSH answers nothing.
  const all = await Promise.all(channels.map(async ({ name, forwarder }) => {
    if (!forwarder.running) return undefined;
    const stats = await withTimeout(forwarder.statistics(), 300).catch(() => undefined);
    return stats ? describeTotals(name, stats) : undefined;
  }));
  for (const line of all) if (line) log().info(literal(line));
}

/** e.g. "main channel totals: 120 frames (5400 bytes) in, 120 out; subscriptions 3 in, 3 out upstream". */
export function describeTotals(name: ChannelName, stats: ProxyStatistics): string {
  const { frontend, backend } = stats;
  const main = name === "main";
  return `${name} channel totals: ${frontend.messagesIn} frames (${frontend.bytesIn} bytes) in, ` +
    `${backend.messagesOut} out` +
    (main
      ? ` to subscribers' queues; subscriptions ${backend.messagesIn} in, ${frontend.messagesOut} out upstream`
      : "");
}

/** `promise`, or undefined once `ms` have passed (never, when `ms` is undefined). */
function withTimeout<T>(promise: Promise<T>, ms: number | undefined): Promise<T | undefined> {
  if (ms === undefined) return promise;
  const timeout = Promise.withResolvers<undefined>();
  const timer = setTimeout(() => timeout.resolve(undefined), ms);
  return Promise.race([promise, timeout.promise]).finally(() => {
    clearTimeout(timer);
    timeout.resolve(undefined); // settled either way: nothing is left pending per call
  });
}

export type { Health, ProxyStatistics };
