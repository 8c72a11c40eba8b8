/**
 * `deno task bench`: the adaptor side by side with libzmq's own C proxy (issue 3).
 *
 * Builds small C helpers into .bench/bin (a load generator, a subscriber, and the reference
 * proxy: zmq_proxy(XSUB, XPUB) set up like the adaptor's main channel), then runs every
 * scenario against each proxy in turn, round after round (C, adaptor, C, adaptor, ...), each
 * run with a fresh proxy process. Writes docs/benchmarks.md and docs/benchmarks.svg from the
 * medians of that run only; raw per-run figures go to .bench/results.json.
 * A third proxy, the same C program calling the libzmq inside the zeromq npm addon that the
 * adaptor uses, runs as a control unless --no-control. Before each run the bench waits for a
 * quiet machine (bounded), and repeats once a run that other work disturbed (see below).
 *
 * Three more kinds of variant share the rounds of some scenarios (see lineUp):
 * - subscriptions: the adaptor with --subscriptions forward (an XPUB egress, the C proxy's
 *   layout and the adaptor's default before issue 21) beside its default local mode (a PUB
 *   egress), in flood-64, fanout-8, rate-1m and startup;
 * - tuning (issue 3): the adaptor with libzmq's default write batch (--out-batch-size 8192)
 *   instead of its own, in flood-64, fanin-8 and fanout-8, so each run shows what the
 *   adaptor's larger batches buy (earlier tuning: docs/tuning.md);
 * - the two-hop chain (issue 7), in flood-64 and rate-50k: publishers → edge (XSUB ipc, XPUB
 *   tcp) → aggregator (XSUB connecting to the edge's XPUB, XPUB tcp) → subscribers, for the
 *   adaptor and for the C proxy, alternating with the single-hop runs, so the difference is
 *   what one more hop adds.
 *
 * Needs gcc and libzmq's headers (Debian: apt-get install -y libzmq3-dev gcc); installs nothing.
 *
 *   deno task bench [--rounds N] [--flood-ms MS] [--no-control] [--pin] [--quick] [--out DIR]
 *                   [--only flood-64,flood-512,flood-4k,fanin-8,fanout-8,rate-50k,rate-1m,fanout-rate,
 *                           idle,startup]
 *
 * --pin puts the proxy on the last CPU and publishers/subscribers on the others (taskset);
 * by default nothing is pinned and all processes share all CPUs.
 */

import {
  CLK_TCK,
  cpuNs,
  cpuTicks,
  machineBusyTicks,
  peakRssKb,
  Proc,
  rssKb,
  run,
  waitQuiet,
} from "../testing/proc.ts";
import { freePort, sleep } from "../testing/net.ts";
import { DEFAULTS } from "../src/config/options.ts";
import { RUN_FLAGS } from "../testing/process.ts";
import {
  type Aggregate,
  aggregate,
  type Meta,
  renderMarkdown,
  renderSvg,
  type RunResult,
  type Scenario,
  type Variant,
  type VariantId,
  type VariantSpec,
} from "./bench/report.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const WORK = `${ROOT}.bench`;
const BIN = `${WORK}/bin`;
const HELPERS = `${ROOT}scripts/bench`;

/**
 * Before each run, wait (up to QUIET_MAX_MS, and QUIET_BUDGET_MS over the whole bench) until
 * the machine uses less than QUIET_PCT % of one CPU: other work on a 2-CPU box skews results.
 */
const QUIET_PCT = 35;
const QUIET_MAX_MS = 20_000;
const QUIET_BUDGET_MS = 120_000;
/**
 * A run during which the rest of the machine (everything but the proxy and the load, so the
 * bench script and other work) used more than DISTURBED_PCT % of one CPU is repeated once,
 * within RETRY_BUDGET_MS over the whole bench.
 */
const DISTURBED_PCT = 60;
const RETRY_BUDGET_MS = 60_000;

/** The adaptor's defaults (src/config/options.ts), given explicitly to every proxy. */
const PROXY_SETTINGS = {
  sndhwm: DEFAULTS.sndhwm,
  rcvhwm: DEFAULTS.rcvhwm,
  linger: DEFAULTS.linger,
  tcpKeepalive: DEFAULTS.tcpKeepalive,
};
/** The C reference runs with libzmq's default of 1 I/O thread, as the C original did. */
const C_IO_THREADS = 1;
/**
 * Fixed-rate runs at high load: 64 B at a million messages a second to one subscriber (more than
 * either proxy delivers in a flood, where the flooding publisher takes CPU from it), and a quarter
 * of that to 8 subscribers (2 M deliveries a second). Both proxies keep up with both on this
 * machine, so CPU per message is compared at equal work (docs/tuning.md: where each one starts
 * to lose).
 */
const HIGH_RATE = 1_000_000;
const FANOUT_RATE = 250_000;
/**
 * SNDHWM/RCVHWM of the load generator in fixed-rate runs (libzmq's default is 1000): a paced
 * publisher that falls a few milliseconds behind catches up in a burst, and its own or the
 * subscriber's queue must hold that burst, so that only the proxy under test can lose messages.
 */
const LOAD_HWM = 1_000_000;
/** The tuning variant: the adaptor with libzmq's default write batch instead of its own. */
const LIBZMQ_OUT_BATCH_SIZE = 8192;

/** How each variant runs: which program, one proxy or an edge → aggregator chain, I/O threads. */
const SPECS: Record<VariantId, VariantSpec> = {
  c: { program: "c", hops: 1, ioThreads: C_IO_THREADS },
  adaptor: { program: "adaptor", hops: 1, ioThreads: DEFAULTS.ioThreads },
  "c-npm": { program: "c-npm", hops: 1, ioThreads: C_IO_THREADS },
  "adaptor-tuned": {
    program: "adaptor",
    hops: 1,
    ioThreads: DEFAULTS.ioThreads,
    outBatchSize: LIBZMQ_OUT_BATCH_SIZE,
  },
  "adaptor-forward": { program: "adaptor", hops: 1, ioThreads: DEFAULTS.ioThreads, subscriptions: "forward" },
  "c-chain": { program: "c", hops: 2, ioThreads: C_IO_THREADS },
  "adaptor-chain": { program: "adaptor", hops: 2, ioThreads: DEFAULTS.ioThreads },
};

interface Options {
  rounds: number;
  startupRounds: number;
  floodMs: number;
  rateMs: number;
  rate: number;
  idleMs: number;
  control: boolean;
  pin: boolean;
  only?: string[];
  out: string;
}

function parseOptions(args: string[]): Options {
  const options: Options = {
    rounds: 5,
    startupRounds: 10,
    floodMs: 2000,
    rateMs: 5000,
    rate: 50_000,
    idleMs: 5000,
    control: true,
    pin: false,
    out: `${ROOT}docs`,
  };
  for (let i = 0; i < args.length; i++) {
    const value = () => {
      const v = args[++i];
      if (v === undefined) throw new Error(`${args[i - 1]} needs a value`);
      return v;
    };
    const count = () => {
      const n = Number(value());
      if (!Number.isInteger(n) || n < 1) throw new Error(`${args[i - 1]}: expected a positive whole number`);
      return n;
    };
    switch (args[i]) {
      case "--rounds":
        options.rounds = count();
        options.startupRounds = 2 * options.rounds;
        break;
      case "--flood-ms":
        options.floodMs = count();
        break;
      case "--no-control":
        options.control = false;
        break;
      case "--pin":
        options.pin = true;
        break;
      case "--only":
        options.only = value().split(",");
        break;
      case "--quick":
        Object.assign(options, { rounds: 1, startupRounds: 1, floodMs: 500, rateMs: 1000, idleMs: 1000 });
        break;
      case "--out":
        options.out = value();
        break;
      default:
        throw new Error(`unknown argument ${args[i]} (see the comment at the top of scripts/bench.ts)`);
    }
  }
  return options;
}

// ---------------------------------------------------------------------------------------------
// Build

async function build(
  addonPath: string | null,
  control: boolean,
): Promise<{ control: boolean; note?: string }> {
  await Deno.mkdir(BIN, { recursive: true });
  const gcc = await run("gcc", ["--version"]);
  if (gcc.missing) {
    throw new Error(
      "gcc not found. Install the C toolchain and libzmq headers: apt-get install -y libzmq3-dev gcc",
    );
  }
  const flags = ["-O2", "-Wall", "-Wextra"];
  const compile = async (out: string, sources: string[], extra: string[]) => {
    const result = await run("gcc", [...flags, "-o", `${BIN}/${out}`, ...sources, ...extra]);
    if (!result.ok) {
      const missingZmq = /zmq\.h|lzmq/.test(result.stderr);
      throw new Error(
        missingZmq
          ? `libzmq headers/library not found (apt-get install -y libzmq3-dev):\n${result.stderr}`
          : `gcc failed building ${out}:\n${result.stderr}`,
      );
    }
  };
  await compile("pub", [`${HELPERS}/pub.c`], ["-lzmq"]);
  await compile("sub", [`${HELPERS}/sub.c`], ["-lzmq"]);
  await compile("proxy", [`${HELPERS}/proxy.c`], ["-lzmq", "-lpthread"]);
  if (!control) return { control: false, note: "disabled with --no-control" };
  if (!addonPath) return { control: false, note: "the zeromq addon was not found" };
  // The npm addon also needs Node-API/libuv functions it never calls from zmq_*; give it
  // stubs (exported with -rdynamic) so that dlopen can bind its relocations.
  const nm = await run("nm", ["-D", "--undefined-only", addonPath]);
  if (!nm.ok) return { control: false, note: `nm failed (${nm.stderr.trim()})` };
  const names = nm.stdout.split("\n").map((l) => l.trim().split(/\s+/))
    .filter((f) => f[0] === "U" && f[1] && !f[1].includes("@") && /^(napi|uv)_\w+$/.test(f[1]))
    .map((f) => f[1]);
  const stubs = ["#include <stdlib.h>", ...names.map((n) => `void ${n} (void) { abort (); }`)].join("\n");
  await Deno.writeTextFile(`${WORK}/napi_stubs.c`, stubs + "\n");
  await compile("proxy-npm", [`${HELPERS}/proxy.c`, `${WORK}/napi_stubs.c`], [
    "-DBENCH_DLOPEN",
    "-rdynamic",
    "-ldl",
    "-lpthread",
  ]);
  return { control: true };
}

// ---------------------------------------------------------------------------------------------
// Proxies

let tmpDir = "";
let runCounter = 0;
/** With --pin: CPU lists for the proxy and for the load generators (taskset -c). */
let pinning: { proxy: string; load: string } | undefined;

function spawn(
  role: "proxy" | "load",
  name: string,
  command: string,
  args: string[],
  options: { cwd?: string; env?: Record<string, string> } = {},
): Proc {
  if (!pinning) return new Proc(name, command, args, options);
  // taskset execs the command: the pid stays the proxy's own.
  return new Proc(name, "taskset", ["-c", pinning[role], command, ...args], options);
}

function adaptorEnv(): Record<string, string> {
  const env = Deno.env.toObject();
  for (const key of Object.keys(env)) if (key.startsWith("ADAPTOR_")) delete env[key];
  env.NO_COLOR = "1";
  env.DENO = Deno.execPath();
  return env;
}

/** A proxy's line on stderr once it is bound and forwarding (the adaptor's and proxy.c's). */
const READY = /\bready\b/;

/** One proxy process: XSUB on `bindEp` (a leading '>' connects), XPUB bound on `publishEp`. */
function startProxy(
  spec: VariantSpec,
  name: string,
  bindEp: string,
  publishEp: string,
  addonPath: string | null,
): Proc {
  const { program, ioThreads } = spec;
  const s = PROXY_SETTINGS;
  const options = [
    "--sndhwm",
    `${s.sndhwm}`,
    "--rcvhwm",
    `${s.rcvhwm}`,
    "--linger",
    `${s.linger}`,
    "--io-threads",
    `${ioThreads}`,
    "--tcp-keepalive",
    `${s.tcpKeepalive}`,
  ];
  if (program === "adaptor") {
    // As the README runs it: scripts/start.sh, deno.json's start flags, exec'd (one process).
    return spawn("proxy", name, `${ROOT}scripts/start.sh`, [
      "-b",
      bindEp,
      "-p",
      publishEp,
      ...options,
      ...(spec.outBatchSize ? ["--out-batch-size", `${spec.outBatchSize}`] : []),
      ...(spec.subscriptions ? ["--subscriptions", spec.subscriptions] : []),
    ], { cwd: ROOT, env: adaptorEnv() });
  }
  const args = ["--bind", bindEp, "--publish", publishEp, ...options];
  if (program === "c-npm") return spawn("proxy", name, `${BIN}/proxy-npm`, [...args, "--lib", addonPath!]);
  return spawn("proxy", name, `${BIN}/proxy`, args);
}

/** The proxy processes of one run, with what the load needs to reach them. */
interface Topology {
  procs: Proc[];
  /** The XPUB endpoint that subscribers connect to (the aggregator's, for a chain). */
  publishEp: string;
  /** From the first spawn to the last proxy's "ready". */
  readyMs: number;
}

/**
 * Starts `variant` with its XSUB bound on `ipc` and its (last) XPUB bound on `tcp`. A chain
 * starts the edge first (XSUB ipc, XPUB tcp), then the aggregator, whose XSUB connects to the
 * edge's XPUB ('>tcp://…', as in docs/deployment.md) and whose XPUB binds `tcp`.
 */
async function startTopology(
  variant: VariantId,
  ipc: string,
  tcp: string,
  addonPath: string | null,
): Promise<Topology> {
  const spec = SPECS[variant];
  const procs: Proc[] = [];
  try {
    if (spec.hops === 1) {
      procs.push(startProxy(spec, variant, ipc, tcp, addonPath));
    } else {
      const edgeEp = `tcp://127.0.0.1:${freePort()}`;
      procs.push(startProxy(spec, `${variant} edge`, ipc, edgeEp, addonPath));
      await procs[0].waitLine("stderr", READY, 30_000);
      procs.push(
        startProxy(spec, `${variant} aggregator`, `>${edgeEp}`, tcp, addonPath),
      );
    }
    let readyAt = 0;
    for (const proc of procs) readyAt = Math.max(readyAt, await proc.waitLine("stderr", READY, 30_000));
    return { procs, publishEp: tcp, readyMs: readyAt - procs[0].spawnedAt };
  } catch (error) {
    await stopAll(procs);
    throw error;
  }
}

/** SIGTERM to every proxy still running (SIGKILL after the grace time); the last one's stop figures. */
async function stopAll(procs: Proc[]): Promise<{ ms: number; killed: boolean }> {
  const stops = await Promise.all(procs.filter((p) => !p.exited).map((p) => p.stop()));
  return { ms: Math.max(0, ...stops.map((x) => x.ms)), killed: stops.some((x) => x.killed) };
}

const treeCpu = (procs: Proc[]) => sum(procs.map((p) => cpuTicks(p.pid)));
const treePeakKb = (procs: Proc[]) => sum(procs.map((p) => peakRssKb(p.pid)));

function endpoints(): { ipc: string; tcp: string } {
  const n = ++runCounter;
  return { ipc: `ipc://${tmpDir}/q${n}.ipc`, tcp: `tcp://127.0.0.1:${freePort()}` };
}

// ---------------------------------------------------------------------------------------------
// Runs

interface SubReport {
  received: number;
  expected: number;
  lost: number;
  out_of_order: number;
  ends_missing: number;
  bytes: number;
  stop: string;
  first_sent_ns: number;
  last_recv_ns: number;
  lat_us: { p50: number; p90: number; p99: number; p999: number; max: number };
  cpu_s: number;
}

interface PubReport {
  sent: number;
  seconds: number;
  msgs_per_s: number;
  cpu_s: number;
}

function lastJson<T>(proc: Proc): T {
  const line = [...proc.stdout].reverse().find((l) => l.startsWith("{"));
  if (!line) throw new Error(`${proc.name} printed no result; stderr: ${proc.tail()}`);
  return JSON.parse(line) as T;
}

async function trafficRun(
  variant: VariantId,
  sc: Scenario,
  addonPath: string | null,
): Promise<Partial<RunResult>> {
  const { ipc, tcp } = endpoints();
  const topology = await startTopology(variant, ipc, tcp, addonPath);
  const proxies = topology.procs;
  const subs: Proc[] = [];
  const pubs: Proc[] = [];
  try {
    const readyDir = await Deno.makeTempDir({ dir: tmpDir, prefix: "ready-" });
    const cpu0 = treeCpu(proxies);
    const machine0 = machineBusyTicks();
    const t0 = performance.now();
    const amount = sc.rate
      ? ["--count", `${Math.round(sc.rate * sc.seconds!)}`]
      : ["--duration-ms", `${sc.floodMs}`];
    const pace = sc.rate ? ["--rate", `${Math.round(sc.rate / sc.pubs)}`] : [];
    const hwm = (flag: string) => sc.loadHwm ? [flag, `${sc.loadHwm}`] : [];
    for (let j = 0; j < sc.subs; j++) {
      subs.push(
        spawn("load", `sub ${j}`, `${BIN}/sub`, [
          "--connect",
          topology.publishEp,
          "--id",
          `${j}`,
          "--pubs",
          `${sc.pubs}`,
          "--ready-dir",
          readyDir,
          ...hwm("--rcvhwm"),
        ]),
      );
    }
    for (let i = 0; i < sc.pubs; i++) {
      pubs.push(
        spawn("load", `pub ${i}`, `${BIN}/pub`, [
          "--connect",
          ipc,
          "--id",
          `${i}`,
          "--size",
          `${sc.size}`,
          ...amount,
          ...pace,
          "--ready-dir",
          readyDir,
          "--subs",
          `${sc.subs}`,
          ...hwm("--sndhwm"),
        ]),
      );
    }
    const limit = (sc.seconds ?? sc.floodMs! / 1000) * 1000 + 60_000;
    const statuses = await Promise.all(subs.map((s) => s.wait(limit)));
    const cpu1 = treeCpu(proxies);
    const machine1 = machineBusyTicks();
    const wall = (performance.now() - t0) / 1000;
    const hwmKb = treePeakKb(proxies);
    const gone = proxies.find((p) => p.exited);
    await Promise.all(pubs.map((p) => p.stop(2000)));
    if (gone) throw new Error(`${gone.name} exited during the run; stderr: ${gone.tail()}`);
    statuses.forEach((s, j) => {
      if (!s.success) throw new Error(`sub ${j} failed (${s.code}): ${subs[j].tail()}`);
    });
    const subReports = subs.map((s) => lastJson<SubReport>(s));
    const pubReports = pubs.map((p) => lastJson<PubReport>(p));
    const stopped = await stopAll(proxies);

    const delivered = sum(subReports.map((r) => r.received));
    const expected = sum(subReports.map((r) => r.expected));
    const firstSent = Math.min(...subReports.filter((r) => r.received > 0).map((r) => r.first_sent_ns));
    const lastRecv = Math.max(...subReports.map((r) => r.last_recv_ns));
    const window = delivered > 0 ? (lastRecv - firstSent) / 1e9 : 0;
    const cpuS = (cpu1 - cpu0) / CLK_TCK;
    const loadCpuS = sum(pubReports.map((r) => r.cpu_s)) + sum(subReports.map((r) => r.cpu_s));
    const otherS = (machine1 - machine0) / CLK_TCK - cpuS - loadCpuS;
    const worst = (k: keyof SubReport["lat_us"]) => Math.max(...subReports.map((r) => r.lat_us[k]));
    return {
      readyMs: topology.readyMs,
      stopMs: stopped.ms,
      stopKilled: stopped.killed,
      sent: sum(pubReports.map((r) => r.sent)),
      pubMsgsPerS: sum(pubReports.map((r) => r.msgs_per_s)),
      delivered,
      expected,
      lost: expected - delivered,
      lossPct: expected > 0 ? (100 * (expected - delivered)) / expected : 0,
      outOfOrder: sum(subReports.map((r) => r.out_of_order)),
      endsMissing: sum(subReports.map((r) => r.ends_missing)),
      windowS: window,
      msgsPerS: window > 0 ? delivered / window : 0,
      mbPerS: window > 0 ? sum(subReports.map((r) => r.bytes)) / window / 1e6 : 0,
      cpuS,
      cpuPct: (100 * cpuS) / wall,
      cpuPerM: delivered > 0 ? cpuS / (delivered / 1e6) : 0,
      pubCpuPct: window > 0 ? (100 * sum(pubReports.map((r) => r.cpu_s))) / window : 0,
      subCpuPct: window > 0 ? (100 * sum(subReports.map((r) => r.cpu_s))) / window : 0,
      otherCpuPct: Math.max(0, (100 * otherS) / wall),
      hwmMiB: hwmKb / 1024,
      p50: worst("p50"),
      p90: worst("p90"),
      p99: worst("p99"),
      p999: worst("p999"),
      max: worst("max"),
    };
  } finally {
    for (const p of [...pubs, ...subs]) p.signal("SIGKILL");
    await stopAll(proxies);
  }
}

/** How long an idle run waits after "ready" before it measures. */
const IDLE_SETTLE_MS = 5000;

async function idleRun(
  variant: VariantId,
  idleMs: number,
  addonPath: string | null,
): Promise<Partial<RunResult>> {
  const { ipc, tcp } = endpoints();
  const topology = await startTopology(variant, ipc, tcp, addonPath);
  const proxies = topology.procs;
  try {
    // At rest, not just started: Deno's runtime settles (GC, code flushing) in its first seconds.
    await sleep(IDLE_SETTLE_MS);
    const cpu0 = treeCpu(proxies);
    const ns0 = sum(proxies.map((p) => cpuNs(p.pid)));
    const machine0 = machineBusyTicks();
    const t0 = performance.now();
    await sleep(idleMs);
    const cpu1 = treeCpu(proxies);
    const ns1 = sum(proxies.map((p) => cpuNs(p.pid)));
    const machine1 = machineBusyTicks();
    const wall = (performance.now() - t0) / 1000;
    const rss = sum(proxies.map((p) => rssKb(p.pid)));
    const hwm = treePeakKb(proxies);
    const gone = proxies.find((p) => p.exited);
    if (gone) throw new Error(`${gone.name} exited while idle; stderr: ${gone.tail()}`);
    const stopped = await stopAll(proxies);
    const cpuS = (cpu1 - cpu0) / CLK_TCK;
    return {
      readyMs: topology.readyMs,
      stopMs: stopped.ms,
      stopKilled: stopped.killed,
      idleSeconds: wall,
      cpuS,
      otherCpuPct: Math.max(0, (100 * ((machine1 - machine0) / CLK_TCK - cpuS)) / wall),
      cpuPct: (100 * cpuS) / wall,
      // Exact (schedstat), where ticks round an idle process to 0.
      idleCpuUsPerS: (ns1 - ns0) / 1000 / wall,
      rssMiB: rss / 1024,
      hwmMiB: hwm / 1024,
    };
  } finally {
    await stopAll(proxies);
  }
}

/**
 * Exec → "ready", and exec → first message at a subscriber. The subscriber and a publisher
 * sending a 64 B message every millisecond are started first, with a 1 ms reconnect interval,
 * so they attach as soon as the proxy binds.
 */
async function startupRun(variant: VariantId, addonPath: string | null): Promise<Partial<RunResult>> {
  const { ipc, tcp } = endpoints();
  const sub = spawn("load", "sub", `${BIN}/sub`, [
    "--connect",
    tcp,
    "--first",
    "--reconnect-ivl",
    "1",
    "--max-ms",
    "60000",
  ]);
  const pub = spawn("load", "pub", `${BIN}/pub`, [
    "--connect",
    ipc,
    "--no-warmup",
    "--rate",
    "1000",
    "--duration-ms",
    "60000",
    "--size",
    "64",
    "--reconnect-ivl",
    "1",
  ]);
  let proxies: Proc[] = [];
  try {
    await sleep(300);
    const topology = await startTopology(variant, ipc, tcp, addonPath);
    proxies = topology.procs;
    const firstAt = await sub.waitLine("stdout", /^first$/, 30_000);
    const hwm = treePeakKb(proxies);
    await pub.stop(2000);
    await sub.wait(2000);
    const stopped = await stopAll(proxies);
    return {
      readyMs: topology.readyMs,
      firstMs: firstAt - proxies[0].spawnedAt,
      stopMs: stopped.ms,
      stopKilled: stopped.killed,
      hwmMiB: hwm / 1024,
    };
  } finally {
    pub.signal("SIGKILL");
    sub.signal("SIGKILL");
    await stopAll(proxies);
  }
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

// ---------------------------------------------------------------------------------------------
// Main

/**
 * Which variants run in a traffic scenario, in their order within a round, and its ratio
 * columns. `tune`: the batch-size variant, where batching matters (small messages, fan-in,
 * fan-out). `chain`: the two-hop chains, beside the single proxies in the same rounds.
 */
function lineUp(control: boolean, extra: { tune?: boolean; chain?: boolean; forward?: boolean } = {}) {
  const variants: VariantId[] = ["c", "adaptor"];
  const compare: [VariantId, VariantId][] = [["adaptor", "c"]];
  if (extra.forward) {
    variants.push("adaptor-forward");
    compare.push(["adaptor-forward", "c"], ["adaptor", "adaptor-forward"]);
  }
  if (extra.tune) {
    variants.push("adaptor-tuned");
    compare.push(["adaptor-tuned", "c"], ["adaptor-tuned", "adaptor"]);
  }
  if (control) {
    variants.push("c-npm");
    compare.push(["adaptor", "c-npm"]);
  }
  if (extra.chain) {
    variants.push("adaptor-chain", "c-chain");
    compare.push(["adaptor-chain", "adaptor"], ["c-chain", "c"], ["adaptor-chain", "c-chain"]);
  }
  return { variants, compare };
}

function scenarios(o: Options, control: boolean): Scenario[] {
  const flood = (
    id: string,
    title: string,
    size: number,
    pubs: number,
    subs: number,
    extra: { tune?: boolean; chain?: boolean; forward?: boolean } = {},
  ): Scenario => ({
    id,
    kind: "traffic",
    title,
    size,
    pubs,
    subs,
    floodMs: o.floodMs,
    rounds: o.rounds,
    ...lineUp(control, extra),
  });
  /** Fixed rate: every proxy gets the same offered load, so CPU and latency compare like for like. */
  const paced = (
    id: string,
    size: number,
    subs: number,
    rate: number,
    extra: { chain?: boolean; forward?: boolean } = {},
  ): Scenario => ({
    id,
    kind: "traffic",
    title: `1 publisher → ${subs} subscriber${subs > 1 ? "s (tcp)" : ""}, ${size} B, fixed rate ${
      rate >= 1e6 ? `${rate / 1e6}M` : `${rate / 1000}k`
    } msg/s`,
    size,
    pubs: 1,
    subs,
    rate,
    seconds: o.rateMs / 1000,
    loadHwm: LOAD_HWM,
    rounds: o.rounds,
    ...lineUp(control, extra),
  });
  return [
    flood("flood-64", "1 publisher → 1 subscriber, 64 B, flood", 64, 1, 1, {
      tune: true,
      chain: true,
      forward: true,
    }),
    flood("flood-512", "1 publisher → 1 subscriber, 512 B, flood", 512, 1, 1),
    flood("flood-4k", "1 publisher → 1 subscriber, 4 KiB, flood", 4096, 1, 1),
    flood("fanin-8", "8 publishers (ipc) → 1 subscriber, 64 B, flood", 64, 8, 1, { tune: true }),
    flood("fanout-8", "1 publisher → 8 subscribers (tcp), 64 B, flood", 64, 1, 8, {
      tune: true,
      forward: true,
    }),
    paced("rate-50k", 512, 1, o.rate, { chain: true }),
    paced("rate-1m", 64, 1, HIGH_RATE, { forward: true }),
    paced("fanout-rate", 64, 8, FANOUT_RATE),
    {
      id: "idle",
      kind: "idle",
      title: `Idle, no peers, ${o.idleMs / 1000} s (measured from ${IDLE_SETTLE_MS / 1000} s after ready)`,
      size: 0,
      pubs: 0,
      subs: 0,
      seconds: o.idleMs / 1000,
      settleSeconds: IDLE_SETTLE_MS / 1000,
      rounds: Math.min(o.rounds, 3),
      variants: ["c", "adaptor"],
      compare: [["adaptor", "c"]],
    },
    {
      id: "startup",
      kind: "startup",
      title: "Start-up: exec → ready, exec → first message forwarded",
      size: 64,
      pubs: 1,
      subs: 1,
      rounds: o.startupRounds,
      variants: ["c", "adaptor", "adaptor-forward"],
      compare: [["adaptor", "c"], ["adaptor-forward", "c"], ["adaptor", "adaptor-forward"]],
    },
  ];
}

function fmtRun(r: Partial<RunResult>): string {
  const parts: string[] = [];
  if (r.msgsPerS !== undefined) {
    parts.push(
      `${Math.round(r.msgsPerS).toLocaleString("en-US")} msg/s`,
      `lost ${r.lost} (${r.lossPct!.toFixed(1)}%)`,
    );
    parts.push(`p50 ${r.p50!.toFixed(0)} µs p99 ${r.p99!.toFixed(0)} µs`, `cpu ${r.cpuPerM!.toFixed(2)} s/M`);
  }
  if (r.idleSeconds !== undefined) parts.push(`idle cpu ${r.cpuPct!.toFixed(2)}%`);
  if (r.firstMs !== undefined) parts.push(`first msg ${r.firstMs.toFixed(0)} ms`);
  if (r.readyMs !== undefined) parts.push(`ready ${r.readyMs.toFixed(0)} ms`);
  if (r.hwmMiB !== undefined) parts.push(`peak RSS ${r.hwmMiB.toFixed(1)} MiB`);
  return parts.join(", ");
}

async function machine(): Promise<Meta["machine"]> {
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo");
  const meminfo = await Deno.readTextFile("/proc/meminfo");
  const nproc = await run("nproc", []);
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1].trim() ?? "unknown";
  const memKb = Number(/^MemTotal:\s+(\d+)/m.exec(meminfo)?.[1] ?? 0);
  let os = Deno.build.os as string;
  try {
    os = /^PRETTY_NAME="?([^"\n]+)/m.exec(await Deno.readTextFile("/etc/os-release"))?.[1] ?? os;
  } catch { /* keep */ }
  return {
    nproc: nproc.ok ? Number(nproc.stdout.trim()) : navigator.hardwareConcurrency,
    cpuModel: model,
    memGiB: memKb / 1024 / 1024,
    kernel: Deno.osRelease(),
    os,
  };
}

async function main(): Promise<void> {
  const options = parseOptions(Deno.args);
  const started = performance.now();
  const startedAt = new Date();
  await Deno.mkdir(WORK, { recursive: true });
  tmpDir = await Deno.makeTempDir({ prefix: "zmq-adaptor-bench-" });

  const addon = await run(Deno.execPath(), ["run", "--allow-all", `${HELPERS}/addon.ts`], { cwd: ROOT });
  const addonInfo = addon.ok
    ? JSON.parse(addon.stdout.trim()) as { path: string | null; version: string | null }
    : null;
  const built = await build(addonInfo?.path ?? null, options.control);
  if (!addonInfo?.path && built.note) built.note += ` (${addon.stderr.trim().split("\n").pop()})`;
  if (!built.control) console.log(`control variant (C proxy on the npm libzmq) skipped: ${built.note}`);

  // Also warms Deno's module cache, so that start-up figures are for a warm start.
  const version = await run(Deno.execPath(), [
    "run",
    ...RUN_FLAGS,
    `${ROOT}src/main.ts`,
    "--version",
  ], {
    cwd: ROOT,
  });
  if (!version.ok) throw new Error(`the adaptor does not start: ${version.stderr || version.stdout}`);
  const systemZmq = await run("pkg-config", ["--modversion", "libzmq"]);
  const git = await run("git", ["rev-parse", "--short", "HEAD"], { cwd: ROOT });
  const dirty = await run("git", ["status", "--porcelain", "--", "src", "deno.json", "deno.lock"], {
    cwd: ROOT,
  });

  if (options.pin) {
    const cpus = navigator.hardwareConcurrency;
    if (cpus < 2) throw new Error("--pin needs at least 2 CPUs");
    if ((await run("taskset", ["-V"])).missing) throw new Error("--pin needs taskset (util-linux)");
    pinning = { proxy: `${cpus - 1}`, load: cpus === 2 ? "0" : `0-${cpus - 2}` };
  }
  const list = scenarios(options, built.control).filter((sc) =>
    !options.only || options.only.includes(sc.id)
  );
  if (list.length === 0) throw new Error(`--only: no such scenario (${options.only})`);
  const results: RunResult[] = [];
  let quietBudget = QUIET_BUDGET_MS;
  let retryBudget = RETRY_BUDGET_MS;
  for (const sc of list) {
    console.log(`\n== ${sc.title} (${sc.rounds} rounds, order ${sc.variants.join(" → ")})`);
    for (let round = 1; round <= sc.rounds; round++) {
      for (const variant of sc.variants) {
        for (let attempt = 1;; attempt++) {
          const quiet = await waitQuiet(QUIET_PCT, Math.min(QUIET_MAX_MS, Math.max(0, quietBudget)));
          quietBudget -= quiet.waitedMs;
          const base = {
            scenario: sc.id,
            variant,
            round,
            quietWaitMs: quiet.waitedMs,
            busyBeforePct: quiet.busyPct,
          };
          const t0 = performance.now();
          let result: RunResult;
          try {
            const measured = sc.kind === "traffic"
              ? await trafficRun(variant, sc, addonInfo?.path ?? null)
              : sc.kind === "idle"
              ? await idleRun(variant, options.idleMs, addonInfo?.path ?? null)
              : await startupRun(variant, addonInfo?.path ?? null);
            result = { ...base, ...measured };
            console.log(`  round ${round} ${variant.padEnd(13)} ${fmtRun(result)}`);
          } catch (error) {
            result = { ...base, error: error instanceof Error ? error.message : String(error) };
            console.log(`  round ${round} ${variant.padEnd(13)} FAILED: ${result.error}`);
          }
          results.push(result);
          // A run during which other work took a good part of the machine is repeated once
          // (budget permitting); both attempts are kept, the medians use the last one.
          const disturbed = (result.otherCpuPct ?? 0) > DISTURBED_PCT;
          if (!disturbed || attempt > 1 || retryBudget <= 0) break;
          result.repeated = true;
          retryBudget -= performance.now() - t0;
          console.log(
            `    other load ${result.otherCpuPct!.toFixed(0)}% of a CPU during that run: repeating it`,
          );
        }
      }
    }
  }

  const totalS = (performance.now() - started) / 1000;
  const sys = `system libzmq ${systemZmq.ok ? systemZmq.stdout.trim() : "?"}`;
  const npm = `npm libzmq ${addonInfo?.version ?? "?"}`;
  const names: Record<VariantId, { label: string; short: string }> = {
    c: { label: `C zmq_proxy (${sys})`, short: "C zmq_proxy" },
    adaptor: { label: `adaptor (Deno FFI, ${npm})`, short: "adaptor" },
    "c-npm": { label: `C zmq_proxy on the adaptor's ${npm}`, short: "C on npm libzmq" },
    "adaptor-tuned": {
      label: `adaptor with --out-batch-size ${LIBZMQ_OUT_BATCH_SIZE} (libzmq's default)`,
      short: `adaptor, ${LIBZMQ_OUT_BATCH_SIZE / 1024} KiB batches`,
    },
    "adaptor-forward": {
      label: "adaptor with --subscriptions forward (XPUB egress)",
      short: "adaptor, forward",
    },
    "c-chain": { label: `C zmq_proxy, two hops (edge → aggregator, ${sys})`, short: "C, two hops" },
    "adaptor-chain": { label: "adaptor, two hops (edge → aggregator)", short: "adaptor, two hops" },
  };
  const variants: Variant[] = (Object.keys(SPECS) as VariantId[]).map((id) => ({
    id,
    ...names[id],
    spec: SPECS[id],
  }));
  const meta: Meta = {
    date: startedAt.toISOString().replace(/\.\d+Z$/, "Z"),
    totalSeconds: totalS,
    machine: await machine(),
    deno: Deno.version.deno,
    adaptorVersion: version.stdout.trim(),
    adaptorFlags: RUN_FLAGS.join(" "),
    systemLibzmq: systemZmq.ok ? systemZmq.stdout.trim() : "unknown",
    npmLibzmq: addonInfo?.version ?? "unknown",
    gcc: (await run("gcc", ["-dumpfullversion"])).stdout.trim(),
    commit: git.ok ? git.stdout.trim() : "unknown",
    srcDirty: dirty.ok && dirty.stdout.trim() !== "",
    controlNote: built.note,
    options: {
      ...options,
      out: undefined,
      settings: {
        ...PROXY_SETTINGS,
        cIoThreads: C_IO_THREADS,
        adaptorIoThreads: DEFAULTS.ioThreads,
        adaptorOutBatchSize: DEFAULTS.outBatchSize,
      },
      quiet: {
        pct: QUIET_PCT,
        maxMs: QUIET_MAX_MS,
        budgetMs: QUIET_BUDGET_MS,
        disturbedPct: DISTURBED_PCT,
        retryBudgetMs: RETRY_BUDGET_MS,
      },
    },
  };
  const aggregates: Aggregate[] = aggregate(list, results);
  await Deno.mkdir(options.out, { recursive: true });
  await Deno.writeTextFile(
    `${WORK}/results.json`,
    JSON.stringify({ meta, scenarios: list, results }, null, 2),
  );
  await Deno.writeTextFile(
    `${options.out}/benchmarks.md`,
    renderMarkdown(meta, list, variants, aggregates, results),
  );
  await Deno.writeTextFile(`${options.out}/benchmarks.svg`, renderSvg(meta, list, variants, aggregates));
  await Deno.remove(tmpDir, { recursive: true }).catch(() => {});
  const failed = results.filter((r) => r.error).length;
  console.log(
    `\nwrote ${options.out}/benchmarks.md, ${options.out}/benchmarks.svg and .bench/results.json ` +
      `(${results.length} runs, ${failed} failed) in ${totalS.toFixed(0)} s`,
  );
}

if (import.meta.main) {
  try {
    await main();
  } catch (error) {
    console.error(`bench: ${error instanceof Error ? error.message : error}`);
    if (tmpDir) await Deno.remove(tmpDir, { recursive: true }).catch(() => {});
    Deno.exit(1);
  }
}
