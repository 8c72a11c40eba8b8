/**
 * The fleet's tree across network namespaces (issue #16): N edge hosts, each an adaptor (XSUB on
 * an ipc socket file, XPUB on its link's address) with one gateway worker stand-in publishing
 * numbered events; an aggregator host whose adaptor's XSUB connects (`>tcp://EDGE:6001`) to every
 * edge over its own veth link; a tracker host whose SUB connects to the aggregator's XPUB over
 * another. Every process runs inside its host's namespace (`ip netns exec`), the adaptors exactly
 * as `deno task start` runs them.
 *
 * Faults cut links silently (`ip link set … down`), SIGKILL or restart adaptors; `Fleet` records
 * what the adaptors log (JSON lines; their `disconnected` warnings date the detections — not `-d`,
 * whose debug subscriber would hold every subscription at the workers through a fault), what the workers saw (subscriptions leaving and coming
 * back, with the sequence number they were at) and what the tracker got (every gap in every
 * worker's sequence), and `outcome()` accounts for every event each worker published.
 *
 * Used by tests/e2e_fleet_test.ts (a short scenario) and scripts/fleet.ts (all four faults).
 */

import { exitWithin, readLines, signalQuietly } from "./child.ts";
import { keygen } from "../src/security/cert.ts";
import { type Host, type Link, netnsUnavailable, Network } from "./netns.ts";
import { sleep } from "./net.ts";
import { AdaptorProcess, ROOT, RUN_FLAGS } from "./process.ts";

/** Why the fleet cannot run here, or undefined. */
export { netnsUnavailable };

/**
 * Why the CURVE variant cannot run (undefined when it can): the adaptor has no client-side CURVE
 * (`--curve-servers`) yet.
 */
export async function curveUnavailable(): Promise<string | undefined> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...RUN_FLAGS, `${ROOT}src/main.ts`, "--help"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const help = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  return help.includes("--curve-servers")
    ? undefined
    : "the adaptor has no --curve-servers yet (not in `deno task start --help`): the aggregator cannot be a CURVE client of the edges";
}

/** Options of a fleet. */
export interface FleetOptions {
  readonly edges: number;
  /** Events a second each edge's worker publishes. */
  readonly rate: number;
  readonly heartbeatInterval: number;
  readonly heartbeatTimeout: number;
  readonly tcpUserTimeout: number;
  /** The aggregator's --reconnect-ivl / --reconnect-ivl-max (default: the adaptor's). */
  readonly reconnectIvl?: number;
  readonly reconnectIvlMax?: number;
  /** CURVE on every tcp hop: edges' XPUBs, the aggregator as their client, its XPUB. */
  readonly curve: boolean;
  /**
   * The tracker SUB's own heartbeats (ZMQ_HEARTBEAT_IVL/TIMEOUT, the adaptors' values); default
   * true. Without them it never notices a silent partition while events flow: the adaptor's
   * PING carries a TTL, but libzmq arms that timer only on a PING and disarms it on the next
   * message, so a SUB that was receiving when the link died waits forever.
   */
  readonly trackerHeartbeat?: boolean;
  /** The tracker SUB's ZMQ_CONNECT_TIMEOUT in ms (default: libzmq's, none). */
  readonly trackerConnectTimeout?: number;
  /** Log progress lines here. */
  readonly log?: (line: string) => void;
}

/** One stdout JSON line of a fleet peer. */
// deno-lint-ignore no-explicit-any
export type PeerEvent = { t: number; ev: string; [field: string]: any };

/** A fleet peer process (testing/fleet_peer.ts) inside a namespace. */
export class PeerProcess {
  readonly events: PeerEvent[] = [];
  readonly stderr: string[] = [];
  readonly status: Promise<Deno.CommandStatus>;
  #child: Deno.ChildProcess;
  #pumps: Promise<void>[];

  constructor(command: string[], readonly label: string) {
    this.#child = new Deno.Command(command[0], {
      args: command.slice(1),
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.status = this.#child.status;
    this.#pumps = [
      readLines(this.#child.stdout, (line) => {
        try {
          this.events.push(JSON.parse(line));
        } catch {
          this.stderr.push(`stdout: ${line}`);
        }
      }),
      readLines(this.#child.stderr, (line) => this.stderr.push(line)),
    ];
  }

  /** The last event of kind `ev` (optionally matching `where`). */
  last(ev: string, where: (e: PeerEvent) => boolean = () => true): PeerEvent | undefined {
    return this.events.findLast((e) => e.ev === ev && where(e));
  }

  /** Waits for an event of kind `ev` matching `where`; throws after `ms`. */
  async waitFor(ev: string, where: (e: PeerEvent) => boolean, what: string, ms: number): Promise<PeerEvent> {
    const deadline = performance.now() + ms;
    for (;;) {
      const found = this.events.find((e) => e.ev === ev && where(e));
      if (found) return found;
      if (performance.now() > deadline) {
        throw new Error(
          `${this.label}: timed out after ${ms} ms waiting for ${what}; stderr:\n${this.stderr.join("\n")}`,
        );
      }
      await sleep(20);
    }
  }

  /** SIGTERM, then the exit (SIGKILL after 5 s). */
  async stop(): Promise<Deno.CommandStatus> {
    this.kill("SIGTERM");
    const status = await exitWithin(this.#child, 5_000);
    await Promise.all(this.#pumps);
    return status;
  }

  kill(signal: Deno.Signal): void {
    signalQuietly(this.#child, signal);
  }
}

/** A log line of an adaptor (`--log-format json`), with its time in ms. */
export interface LogLine {
  readonly at: number;
  readonly level: string;
  readonly message: string;
  readonly who: string;
}

interface Adaptor {
  readonly who: string;
  readonly host: Host;
  readonly args: string[];
  proc: AdaptorProcess;
  /** Every process this adaptor has been (restarts), for their logs. */
  readonly history: AdaptorProcess[];
}

interface Edge {
  readonly index: number;
  readonly name: string;
  readonly host: Host;
  readonly link: Link;
  readonly endpoint: string;
  readonly ipc: string;
  readonly adaptor: Adaptor;
  readonly worker: PeerProcess;
}

/** What one fault did to one edge's events. */
export interface EdgeLoss {
  readonly edge: string;
  /** Events the tracker never got, published during the fault's window. */
  readonly lost: number;
  /** Of them, published while no subscription had reached the worker: never sent. */
  readonly filteredAtWorker: number;
  /** Of them, dropped by the worker on a full queue (HWM). */
  readonly droppedAtWorker: number;
  /** Of them, sent by the worker and lost in the tree (queued toward a dead connection, etc.). */
  readonly lostInTree: number;
  /** From the fault to the subscription leaving the worker (ms), if it left. */
  readonly unsubscribedMs?: number;
  /** From the heal (link up, new process spawned) to the subscription back at the worker (ms). */
  readonly resubscribedMs?: number;
  /** From the heal to the tracker's first event of this edge after the outage (ms). */
  readonly flowingMs?: number;
  /** The tracker's longest silence from this edge in the window (ms). */
  readonly silenceMs: number;
}

/** One fault and what it did. */
export interface FaultRecord {
  readonly name: string;
  readonly start: number;
  /** When the fault was undone: link up, or the new process spawned. */
  readonly healed: number;
  /** The end of its window: every edge flowing again, plus a settling time. */
  end: number;
  /** The edges the fault cut off (the others must lose nothing). */
  readonly affected: readonly string[];
  /** Log lines saying a peer disconnected, from the fault on, with ms since the fault. */
  readonly detections: { who: string; ms: number; message: string }[];
  losses: EdgeLoss[];
}

/** The account of the whole run. */
export interface Outcome {
  readonly faults: FaultRecord[];
  /** Per edge: published (from the tracker's first event on), received, lost outside every fault. */
  readonly edges: {
    edge: string;
    published: number;
    received: number;
    lost: number;
    unexplained: number;
    reordered: number;
  }[];
}

const PORT = 6001;
const ADDRESS_BASE = 213;

/** A running fleet. */
export class Fleet {
  readonly edges: Edge[] = [];
  readonly faults: FaultRecord[] = [];
  aggregator!: Adaptor;
  tracker!: PeerProcess;
  trackerLink!: Link;
  #net!: Network;
  #dir = "";
  #log: (line: string) => void;
  /** Every process started, for destroy(). */
  #adaptors: Adaptor[] = [];
  #peers: PeerProcess[] = [];

  private constructor(readonly options: FleetOptions) {
    this.#log = options.log ?? (() => {});
  }

  /** Builds the network, starts every adaptor and peer, and waits until events flow end to end. */
  static async start(options: FleetOptions): Promise<Fleet> {
    const fleet = new Fleet(options);
    try {
      await fleet.#start();
      return fleet;
    } catch (error) {
      await fleet.destroy();
      throw error;
    }
  }

  async #start(): Promise<void> {
    const o = this.options;
    this.#dir = await Deno.makeTempDir({ prefix: "zfleet-" });
    this.#net = await Network.create(ADDRESS_BASE);
    const agg = await this.#net.host("agg");
    const trk = await this.#net.host("tracker");
    const edgeHosts: { host: Host; link: Link }[] = [];
    for (let i = 0; i < o.edges; i++) {
      const host = await this.#net.host(`edge${i}`);
      edgeHosts.push({ host, link: await this.#net.link(agg, `e${i}`, host, "up") });
    }
    this.trackerLink = await this.#net.link(agg, "trk", trk, "up");
    this.#log(
      `network: ${this.#net.hosts.map((h) => h.ns).join(", ")}; ${
        this.#net.links.map((l) =>
          `${l.a.host.name}:${l.a.ifname} ${l.a.address} ↔ ${l.b.host.name}:${l.b.ifname} ${l.b.address}`
        )
          .join("; ")
      }`,
    );

    // Subscriptions travel down the tree where every tcp hop authenticates its peers; plaintext
    // hops off loopback keep them local (forward is refused there), and the workers send everything.
    const common = [
      ...(o.curve ? ["--subscriptions", "forward"] : []),
      "--log-format",
      "json",
      "--heartbeat-interval",
      String(o.heartbeatInterval),
      "--heartbeat-timeout",
      String(o.heartbeatTimeout),
      "--tcp-user-timeout",
      String(o.tcpUserTimeout),
    ];
    const curve = o.curve ? this.#keys(edgeHosts.map((e) => `${e.link.b.address}:${PORT}`)) : undefined;
    const edgeAdaptors = edgeHosts.map(({ host, link }, i) => {
      const ipc = `${this.#dir}/edge${i}.ipc`;
      const endpoint = `tcp://${link.b.address}:${PORT}`;
      const args = ["-b", `ipc://${ipc}`, "-p", endpoint, ...common, ...(curve?.edge(i) ?? [])];
      return { host, link, ipc, endpoint, adaptor: this.#adaptor(`edge${i}`, host, args) };
    });
    const aggArgs = [
      ...edgeAdaptors.flatMap((e) => ["-b", `>${e.endpoint}`]),
      "-p",
      `tcp://${this.trackerLink.a.address}:${PORT}`,
      ...common,
      ...(o.reconnectIvl !== undefined ? ["--reconnect-ivl", String(o.reconnectIvl)] : []),
      ...(o.reconnectIvlMax !== undefined ? ["--reconnect-ivl-max", String(o.reconnectIvlMax)] : []),
      ...(curve?.aggregator ?? []),
    ];
    this.aggregator = this.#adaptor("aggregator", agg, aggArgs);
    await Promise.all([...edgeAdaptors.map((e) => e.adaptor.proc.ready()), this.aggregator.proc.ready()]);

    this.tracker = this.#peer(trk, "tracker", [
      "sub",
      `tcp://${this.trackerLink.a.address}:${PORT}`,
      "usage.",
      ...(o.trackerHeartbeat ?? true ? ["--heartbeat", `${o.heartbeatInterval},${o.heartbeatTimeout}`] : []),
      ...(o.trackerConnectTimeout ? ["--connect-timeout", String(o.trackerConnectTimeout)] : []),
      ...(curve?.tracker ?? []),
    ]);
    for (const [i, e] of edgeAdaptors.entries()) {
      const name = `edge${i}`;
      const worker = this.#peer(e.host, `${name} worker`, ["pub", `ipc://${e.ipc}`, name, String(o.rate)]);
      this.edges.push({ index: i, name, ...e, worker });
    }
    for (const edge of this.edges) {
      await edge.worker.waitFor(
        "sub",
        (e) => e.on && (e.topic === "usage." || (!o.curve && e.topic === "")),
        `usage. to reach ${edge.name}'s worker`,
        20_000,
      );
      await this.tracker.waitFor(
        "first",
        (e) => e.name === edge.name,
        `the tracker's first event from ${edge.name}`,
        20_000,
      );
    }
    this.#log(
      `fleet up: ${o.edges} edges at ${o.rate} events/s each${o.curve ? ", CURVE on every tcp hop" : ""}`,
    );
  }

  /** Certificates for every host, and the flags that use them. */
  #keys(servers: string[]) {
    const dir = `${this.#dir}/keys`;
    for (const sub of ["edge-clients", "servers", "agg-clients"]) {
      Deno.mkdirSync(`${dir}/${sub}`, { recursive: true });
    }
    const agg = keygen(`${dir}/agg`);
    const tracker = keygen(`${dir}/tracker`);
    Deno.copyFileSync(agg.publicPath, `${dir}/edge-clients/agg`);
    Deno.copyFileSync(tracker.publicPath, `${dir}/agg-clients/tracker`);
    servers.forEach((server, i) => {
      const edge = keygen(`${dir}/edge${i}`);
      Deno.copyFileSync(edge.publicPath, `${dir}/servers/${server}`);
    });
    return {
      edge: (
        i: number,
      ) => ["--curve-cert", `${dir}/edge${i}_secret`, "--curve-clients", `${dir}/edge-clients`],
      aggregator: [
        "--curve-cert",
        agg.secretPath,
        "--curve-servers",
        `${dir}/servers`,
        "--curve-clients",
        `${dir}/agg-clients`,
      ],
      tracker: ["--curve-cert", tracker.secretPath, "--curve-server", agg.publicPath],
    };
  }

  #adaptorCommand(host: Host): string[] {
    return this.#net.exec(host, [Deno.execPath(), "run", ...RUN_FLAGS, `${ROOT}src/main.ts`]);
  }

  #adaptor(who: string, host: Host, args: string[]): Adaptor {
    const proc = new AdaptorProcess(args, { command: this.#adaptorCommand(host) });
    const adaptor = { who, host, args, proc, history: [proc] };
    this.#adaptors.push(adaptor);
    return adaptor;
  }

  #respawn(adaptor: Adaptor): void {
    adaptor.proc = new AdaptorProcess(adaptor.args, { command: this.#adaptorCommand(adaptor.host) });
    adaptor.history.push(adaptor.proc);
  }

  #peer(host: Host, label: string, args: string[]): PeerProcess {
    const command = this.#net.exec(host, [
      Deno.execPath(),
      "run",
      "--allow-all",
      "--v8-flags=--no-opt,--no-maglev",
      `${ROOT}testing/fleet_peer.ts`,
      ...args,
    ]);
    const peer = new PeerProcess(command, label);
    this.#peers.push(peer);
    return peer;
  }

  /** Every JSON log line of every adaptor process so far. */
  logs(): LogLine[] {
    const all: LogLine[] = [];
    for (const adaptor of this.#adaptors) {
      for (const proc of adaptor.history) {
        for (const line of proc.lines) {
          try {
            const record = JSON.parse(line);
            all.push({
              at: Date.parse(record.time),
              level: record.level,
              message: record.message,
              who: adaptor.who,
            });
          } catch {
            // not a JSON line (none expected)
          }
        }
      }
    }
    return all.sort((a, b) => a.at - b.at);
  }

  // -------------------------------------------------------------------------------------------
  // Faults

  /** Cuts edge `i`'s link to the aggregator for `ms` (its own end down: the aggregator sees no carrier). */
  async partitionEdge(i: number, ms: number, settleMs = 1_500): Promise<FaultRecord> {
    const edge = this.edges[i];
    return await this.#fault(
      `edge–aggregator link of ${edge.name} down ${ms / 1000} s`,
      [edge.name],
      settleMs,
      async () => {
        await this.#net.down(edge.link.b);
        await sleep(ms);
        await this.#net.up(edge.link.b);
      },
    );
  }

  /** SIGKILLs the aggregator and starts it again at once. */
  async killAggregator(settleMs = 1_500): Promise<FaultRecord> {
    return await this.#fault(
      "aggregator SIGKILLed, restarted",
      this.edges.map((e) => e.name),
      settleMs,
      async () => {
        this.aggregator.proc.kill("SIGKILL");
        await this.aggregator.proc.exit();
        this.#respawn(this.aggregator);
      },
      () => this.aggregator.proc.ready(),
    );
  }

  /** SIGTERMs edge `i`'s adaptor and starts it again once it has exited. */
  async restartEdge(i: number, settleMs = 1_500): Promise<FaultRecord> {
    const edge = this.edges[i];
    return await this.#fault(`${edge.name} adaptor restarted (SIGTERM)`, [edge.name], settleMs, async () => {
      const { status } = await edge.adaptor.proc.stop("SIGTERM");
      if (status.code !== 0) throw new Error(`${edge.name} exited ${status.code} on SIGTERM`);
      this.#respawn(edge.adaptor);
    }, () => edge.adaptor.proc.ready());
  }

  /** Cuts the tracker's link for `ms` (the aggregator's end down: the tracker sees no carrier). */
  async partitionTracker(ms: number, settleMs = 1_500): Promise<FaultRecord> {
    return await this.#fault(
      `tracker–aggregator link down ${ms / 1000} s`,
      this.edges.map((e) => e.name),
      settleMs,
      async () => {
        await this.#net.down(this.trackerLink.a);
        await sleep(ms);
        await this.#net.up(this.trackerLink.a);
      },
    );
  }

  async #fault(
    name: string,
    affected: string[],
    settleMs: number,
    act: () => Promise<void>,
    afterHeal: () => Promise<unknown> = () => Promise.resolve(),
  ): Promise<FaultRecord> {
    this.#log(`fault: ${name}`);
    const start = Date.now();
    await act();
    const healed = Date.now();
    await afterHeal();
    const record: FaultRecord = { name, start, healed, end: 0, affected, detections: [], losses: [] };
    for (const edge of this.edges.filter((e) => affected.includes(e.name))) {
      // Flowing again: the tracker's first event after an outage that began with the fault, or,
      // if it saw no outage at all, an event the worker published after the heal.
      const publishedByHeal = edge.worker.last("stats", (e) => e.t <= healed)?.seq ?? 0;
      const what = `${edge.name}'s events at the tracker again after "${name}"`;
      const deadline = performance.now() + 60_000;
      while (
        !this.tracker.last("resume", (e) => e.name === edge.name && e.after >= start) &&
        !(this.tracker.last("stats")?.counts[edge.name]?.last > publishedByHeal)
      ) {
        if (performance.now() > deadline) throw new Error(`timed out after 60 s waiting for ${what}`);
        await sleep(20);
      }
    }
    await sleep(settleMs);
    record.end = Date.now();
    this.faults.push(record);
    const took = (record.end - start) / 1000;
    this.#log(`  recovered; window ${took.toFixed(1)} s`);
    return record;
  }

  // -------------------------------------------------------------------------------------------
  // Accounting

  /**
   * Stops the workers, waits for the tracker to get the last events, stops the tracker, and
   * accounts for every event: per fault per edge, and outside every fault (must be 0).
   */
  async finish(): Promise<Outcome> {
    const ends = new Map<string, PeerEvent>();
    for (const edge of this.edges) {
      await edge.worker.stop();
      const end = edge.worker.last("end");
      if (!end) {
        throw new Error(`${edge.name}'s worker reported no end; stderr:\n${edge.worker.stderr.join("\n")}`);
      }
      ends.set(edge.name, end);
    }
    // The last events are sent; give them up to 5 s to arrive.
    const deadline = performance.now() + 5_000;
    while (performance.now() < deadline) {
      const stats = this.tracker.last("stats");
      if (stats && this.edges.every((e) => stats.counts[e.name]?.last >= ends.get(e.name)!.seq - 1)) break;
      await sleep(50);
    }
    await this.tracker.stop();
    const trackerEnd = this.tracker.last("end");
    if (!trackerEnd) {
      throw new Error(`the tracker reported no end; stderr:\n${this.tracker.stderr.join("\n")}`);
    }
    return this.#account(ends, trackerEnd);
  }

  #account(ends: Map<string, PeerEvent>, trackerEnd: PeerEvent): Outcome {
    const logs = this.logs();
    for (const fault of this.faults) {
      fault.detections.push(
        ...logs.filter((l) => l.at >= fault.start && l.at <= fault.end && /disconnected/.test(l.message))
          .map((l) => ({ who: l.who, ms: l.at - fault.start, message: l.message })),
      );
    }
    const edges: Outcome["edges"] = [];
    for (const edge of this.edges) {
      const count = trackerEnd.counts[edge.name];
      const end = ends.get(edge.name)!;
      const gaps: { from: number; to: number; before: number; after: number }[] = count?.gaps ?? [];
      // Events after the tracker's last one were lost at the end: a gap up to the last published.
      const tail = count ? end.seq - 1 - count.last : end.seq;
      if (tail > 0) {
        gaps.push({ from: end.seq - tail, to: end.seq - 1, before: count?.lastAt ?? 0, after: Infinity });
      }
      const subs = edge.worker.events.filter((e) => e.ev === "sub" && e.topic === "usage.");
      const statsAt = (t: number) => edge.worker.events.findLast((e) => e.ev === "stats" && e.t <= t);
      const resumes = this.tracker.events.filter((e) => e.ev === "resume" && e.name === edge.name);
      let explained = 0;
      for (const fault of this.faults) {
        const mine = gaps.filter((g) => g.after >= fault.start && g.after <= fault.end);
        const lost = mine.reduce((n, g) => n + g.to - g.from + 1, 0);
        explained += lost;
        const off = subs.find((e) => !e.on && e.t >= fault.start && e.t <= fault.end);
        const on = subs.find((e) => e.on && e.t >= (off?.t ?? fault.start) && e.t <= fault.end);
        let filtered = 0;
        if (off) filtered = (on?.seq ?? end.seq) - off.seq;
        const before = statsAt(fault.start);
        const after = statsAt(fault.end) ?? end;
        const dropped = (after?.dropped ?? 0) - (before?.dropped ?? 0);
        const resume = resumes.find((e) => e.after >= fault.start && e.after <= fault.end);
        const silence = Math.max(
          0,
          ...resumes.filter((e) => e.after >= fault.start && e.after <= fault.end).map((e) =>
            e.after - e.before
          ),
        );
        fault.losses.push({
          edge: edge.name,
          lost,
          filteredAtWorker: filtered,
          droppedAtWorker: dropped,
          lostInTree: lost - filtered - dropped,
          unsubscribedMs: off ? off.t - fault.start : undefined,
          resubscribedMs: on ? on.t - fault.healed : undefined,
          flowingMs: resume ? resume.after - fault.healed : undefined,
          silenceMs: silence,
        });
      }
      const received = count?.received ?? 0;
      const published = count ? end.seq - count.first : end.seq;
      const lost = gaps.reduce((n, g) => n + g.to - g.from + 1, 0);
      edges.push({
        edge: edge.name,
        published,
        received,
        lost,
        unexplained: lost - explained,
        reordered: count?.reordered ?? 0,
      });
    }
    return { faults: this.faults, edges };
  }

  /** Every adaptor's and peer's output, for a failing test's message. */
  transcript(): string {
    const parts: string[] = [];
    for (const adaptor of this.#adaptors) {
      adaptor.history.forEach((p, n) =>
        parts.push(`--- ${adaptor.who} #${n}\n${p.lines.slice(-30).join("\n")}`)
      );
    }
    for (const peer of this.#peers) {
      parts.push(`--- ${peer.label} (stderr)\n${peer.stderr.slice(-20).join("\n")}`);
    }
    return parts.join("\n");
  }

  /** Stops every process (SIGKILL after a grace) and deletes the namespaces; never throws. */
  async destroy(): Promise<void> {
    await Promise.all(this.#peers.map((p) => p.stop().catch(() => {})));
    await Promise.all(this.#adaptors.map(async (a) => {
      a.proc.kill("SIGTERM");
      await a.proc.exit(5_000).catch(() => {});
    }));
    await this.#net?.destroy();
    if (this.#dir) await Deno.remove(this.#dir, { recursive: true }).catch(() => {});
  }
}
