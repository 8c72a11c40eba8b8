/**
 * `deno task fleet`: the fleet's tree across network namespaces, under faults (issue #16).
 *
 * 3 edge hosts (an adaptor each, a gateway worker stand-in publishing numbered events to its ipc
 * XSUB), 1 aggregator host (its adaptor's XSUB connects to every edge's XPUB over a veth link of
 * its own), 1 tracker host (a SUB on the aggregator's XPUB, over another link). Each round builds
 * that fleet afresh (testing/fleet.ts), then, one after the other:
 *
 *   a. edge0's link to the aggregator down 10 s (its end: the aggregator only loses the carrier;
 *      no FIN, no RST), then up;
 *   s. edge2's link down for a third of the heartbeat timeout: shorter than any detection;
 *   b. the aggregator SIGKILLed and started again at once;
 *   c. edge1's adaptor restarted (SIGTERM, started again once it has exited);
 *   d. the tracker's link down for the heartbeat timeout + 2 s (the aggregator's end).
 *
 * Every event is counted by worker and sequence number; each fault's losses are split into what
 * the worker never sent (no subscription had reached it), what it dropped (full queue) and what
 * was lost in the tree (sent toward a connection that was then found dead). Detection is the
 * adaptors' "disconnected" log lines; recovery is the subscription back at the worker and the
 * tracker's first event after the outage, both from the heal (link up, new process spawned).
 *
 * Needs root and iproute2 (network namespaces, veth pairs); otherwise prints `skipped: <why>`.
 *
 *   deno task fleet [--rounds 3] [--rate 200] [--curve] [--no-write]
 *                   [--heartbeat-interval 1000] [--heartbeat-timeout 3000] [--tcp-user-timeout 5000]
 *                   [--partition-ms 10000] [--tracker-no-heartbeat]
 *   deno task fleet --render .bench/fleet.json      (the table of an earlier run again)
 *
 * The tracker's SUB has heartbeats of its own (the same interval and timeout) unless
 * --tracker-no-heartbeat: then fault d shows why it needs them (it never reconnects).
 *
 * Writes the medians (min–max over the rounds) into docs/deployment.md between its fleet markers
 * (fleet-curve markers with --curve), and the raw figures to .bench/fleet.json (fleet-curve.json).
 */

import { curveUnavailable, Fleet, type FleetOptions, type Outcome } from "../testing/fleet.ts";
import { netnsUnavailable } from "../testing/netns.ts";
import { ROOT } from "../testing/process.ts";

const args = Deno.args;
function numberArg(name: string, fallback: number): number {
  const at = args.indexOf(name);
  if (at < 0) return fallback;
  const value = Number(args[at + 1]);
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name} needs a number`);
  return value;
}

const rounds = numberArg("--rounds", 3);
const curve = args.includes("--curve");
const write = !args.includes("--no-write");
const options: FleetOptions = {
  edges: 3,
  rate: numberArg("--rate", 200),
  heartbeatInterval: numberArg("--heartbeat-interval", 1_000),
  heartbeatTimeout: numberArg("--heartbeat-timeout", 3_000),
  tcpUserTimeout: numberArg("--tcp-user-timeout", 5_000),
  curve,
  trackerHeartbeat: !args.includes("--tracker-no-heartbeat"),
  log: (line) => console.log(`  ${line}`),
};
const PARTITION_MS = numberArg("--partition-ms", 10_000);
const SHORT_MS = Math.round(options.heartbeatTimeout / 3);
const TRACKER_MS = options.heartbeatTimeout + 2_000;

/** The faults of a round, in order; `key` names a row of the table. */
const FAULTS = [
  { key: "a", run: (f: Fleet) => f.partitionEdge(0, PARTITION_MS) },
  { key: "s", run: (f: Fleet) => f.partitionEdge(2, SHORT_MS) },
  { key: "b", run: (f: Fleet) => f.killAggregator() },
  { key: "c", run: (f: Fleet) => f.restartEdge(1) },
  { key: "d", run: (f: Fleet) => f.partitionTracker(TRACKER_MS) },
] as const;

/** The fleet of the round under way: Ctrl-C (or SIGTERM) tears it down before exiting. */
let current: Fleet | undefined;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, async () => {
    console.error(`fleet: ${signal}, removing the namespaces`);
    await current?.destroy();
    Deno.exit(130);
  });
}

async function round(n: number): Promise<Outcome> {
  console.log(`round ${n + 1} of ${rounds}`);
  const fleet = current = await Fleet.start(options);
  try {
    for (const fault of FAULTS) await fault.run(fleet);
    return await fleet.finish();
  } catch (error) {
    console.error(fleet.transcript());
    throw error;
  } finally {
    await fleet.destroy();
    current = undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Figures

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0
    ? NaN
    : s.length % 2
    ? s[(s.length - 1) / 2]
    : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** "median (min–max)" of `xs`, formatted by `f`; "–" when none. */
function spread(xs: (number | undefined)[], f: (x: number) => string): string {
  const got = xs.filter((x): x is number => x !== undefined && Number.isFinite(x));
  if (got.length === 0) return "–";
  const [mid, lo, hi] = [median(got), Math.min(...got), Math.max(...got)].map(f);
  return lo === hi ? mid : `${mid} (${lo}–${hi})`;
}
/** Seconds with one decimal; a few ms before the heal's timestamp (-0.0) is 0.0. */
const seconds = (ms: number) => (ms / 1000).toFixed(1).replace(/^-0\.0$/, "0.0");
const count = (x: number) => Math.round(x).toLocaleString("en-US");

function render(outcomes: Outcome[], meta: Record<string, string>, o: FleetOptions): string {
  const lines: string[] = [];
  lines.push(
    `Measured with \`deno task fleet${o.curve ? " --curve" : ""}\` on ${meta.date}: ${outcomes.length} round${
      outcomes.length === 1 ? "" : "s"
    }, each on a fresh fleet`,
    `of namespaces; ${meta.machine}. ${o.edges} edges, each worker publishing ${o.rate} events/s; on every adaptor`,
    `\`--heartbeat-interval ${o.heartbeatInterval} --heartbeat-timeout ${o.heartbeatTimeout} --tcp-user-timeout ${o.tcpUserTimeout}\`${
      o.trackerHeartbeat === false ? "" : ", the same heartbeats on the tracker's SUB"
    };`,
    `the aggregator reconnects as by default (100 ms, doubling to 5 s); ${
      o.curve ? "CURVE on every tcp hop" : "plaintext"
    }.`,
    `Seconds and events, medians (min–max). *Detected*: the first \`disconnected\` line of the aggregator, of`,
    `the edge; *worker unsubscribed*: from the fault; *resubscribed*, *flowing*: from the heal (link up, or the`,
    `new process spawned) to the subscription back at the worker, to the tracker's first event after the outage.`,
    "",
    "| fault | edge | detected: aggregator, edge | worker unsubscribed | resubscribed | flowing | longest silence | lost | never sent | lost in the tree | dropped by the worker |",
    "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
  );

  FAULTS.forEach((fault, i) => {
    const records = outcomes.map((out) => out.faults[i]);
    let first = true;
    for (const edge of records[0].losses.map((l) => l.edge)) {
      const losses = records.map((r) => r.losses.find((l) => l.edge === edge)!);
      const affected = records[0].affected.includes(edge);
      const quiet = losses.every((l) => l.lost === 0 && l.silenceMs === 0);
      if (!affected && quiet) continue;
      const detect = (r: (typeof records)[number], who: (w: string) => boolean) =>
        r.detections.find((d) => who(d.who))?.ms;
      const aggDetect = spread(records.map((r) => detect(r, (w) => w === "aggregator")), seconds);
      const edgeDetect = spread(records.map((r) => detect(r, (w) => w === edge)), seconds);
      lines.push(
        `| ${first ? `${fault.key}. ${records[0].name}` : ""} | ${edge}${
          affected ? "" : " (not cut off)"
        } | ${aggDetect}, ${edgeDetect} | ${spread(losses.map((l) => l.unsubscribedMs), seconds)} | ${
          spread(losses.map((l) => l.resubscribedMs), seconds)
        } | ${spread(losses.map((l) => l.flowingMs), seconds)} | ${
          spread(losses.map((l) => l.silenceMs), seconds)
        } | ${spread(losses.map((l) => l.lost), count)} | ${
          spread(losses.map((l) => l.filteredAtWorker), count)
        } | ${spread(losses.map((l) => l.lostInTree), count)} | ${
          spread(losses.map((l) => l.droppedAtWorker), count)
        } |`,
      );
      first = false;
    }
    const others = records[0].losses.filter((l) => !records[0].affected.includes(l.edge)).map((l) => l.edge);
    const otherLost = records.flatMap((r) =>
      r.losses.filter((l) => others.includes(l.edge)).map((l) => l.lost)
    );
    if (others.length > 0) {
      lines.push(
        `| | ${others.join(", ")} (not cut off) | | | | | | ${
          spread(otherLost, count)
        } in every round | | | |`,
      );
    }
  });
  const published = outcomes.flatMap((out) => out.edges.map((e) => e.published)).reduce((a, b) => a + b, 0);
  const unexplained = outcomes.flatMap((out) => out.edges.map((e) => e.unexplained)).reduce(
    (a, b) => a + b,
    0,
  );
  const reordered = outcomes.flatMap((out) => out.edges.map((e) => e.reordered)).reduce((a, b) => a + b, 0);
  lines.push(
    "",
    `Every event accounted for: ${count(published)} published in all rounds; ${
      count(unexplained)
    } lost outside the`,
    `faults' windows; ${count(reordered)} out of order or twice.`,
  );
  return lines.join("\n");
}

/** Whether every figure holds what the scenario promises; the problems otherwise. */
function problems(outcomes: Outcome[]): string[] {
  const found: string[] = [];
  for (const [n, out] of outcomes.entries()) {
    for (const edge of out.edges) {
      if (edge.unexplained !== 0) {
        found.push(`round ${n + 1}: ${edge.edge} lost ${edge.unexplained} outside every fault`);
      }
      if (edge.reordered !== 0) {
        found.push(`round ${n + 1}: ${edge.edge}: ${edge.reordered} out of order or twice`);
      }
    }
    for (const fault of out.faults) {
      for (const loss of fault.losses) {
        if (!fault.affected.includes(loss.edge) && loss.lost > 0) {
          found.push(`round ${n + 1}: "${fault.name}" cost ${loss.edge}, not cut off, ${loss.lost} events`);
        }
      }
    }
  }
  return found;
}

async function main(): Promise<void> {
  const from = args.indexOf("--render");
  if (from >= 0) {
    // Render (and write) the figures of an earlier run again, e.g. after a change of the table.
    const saved = JSON.parse(Deno.readTextFileSync(args[from + 1]));
    publish(saved.outcomes, saved.meta, saved.options);
    return;
  }
  const reason = await netnsUnavailable() ?? (curve ? await curveUnavailable() : undefined);
  if (reason) {
    console.log(`skipped: ${reason}`);
    return;
  }
  const outcomes: Outcome[] = [];
  for (let n = 0; n < rounds; n++) outcomes.push(await round(n));
  const meta = {
    date: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    machine: `${navigator.hardwareConcurrency} CPUs shared by every host`,
  };
  Deno.mkdirSync(`${ROOT}.bench`, { recursive: true });
  const file = `${ROOT}.bench/${curve ? "fleet-curve" : "fleet"}.json`;
  Deno.writeTextFileSync(file, JSON.stringify({ meta, options, outcomes }, null, 2) + "\n");
  publish(outcomes, meta, options);
}

/** Prints the table, checks what must hold, and writes the table into docs/deployment.md. */
function publish(outcomes: Outcome[], meta: Record<string, string>, o: FleetOptions): void {
  const name = o.curve ? "fleet-curve" : "fleet";
  const text = render(outcomes, meta, o);
  console.log("\n" + text);
  const found = problems(outcomes);
  for (const problem of found) console.error(`fleet: ${problem}`);
  if (write && found.length === 0) {
    const doc = `${ROOT}docs/deployment.md`;
    const md = Deno.readTextFileSync(doc);
    const start = `<!-- ${name}:start -->`;
    const end = `<!-- ${name}:end -->`;
    const a = md.indexOf(start);
    const b = md.indexOf(end);
    if (a < 0 || b < a) throw new Error(`docs/deployment.md has no ${start} … ${end} block`);
    Deno.writeTextFileSync(doc, md.slice(0, a + start.length) + "\n" + text + "\n" + md.slice(b));
    console.log("wrote docs/deployment.md");
  }
  if (found.length > 0) Deno.exit(1);
}

if (import.meta.main) {
  try {
    await main();
  } catch (error) {
    console.error(`fleet: ${(error as Error).stack ?? error}`);
    Deno.exit(1);
  }
}
