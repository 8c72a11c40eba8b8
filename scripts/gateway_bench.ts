/**
 * `deno task gateway-bench`: the gateway side measured (issue #14). Debian's nginx (2 workers as
 * www-data, examples/nginx/nginx.conf and its publisher module) → proxy → one subscriber, with
 * the adaptor and with libzmq's C proxy (scripts/bench/proxy.c, built here against the system
 * libzmq) in alternating rounds on the same nginx, the same ipc path and the same port.
 *
 * Phases, each run with a fresh proxy process:
 * - steady:     4 requests in flight from this process (new connection each), 3 s;
 * - saturation: wrk -t2 -c32 for 4 s, all of the machine's 2 CPUs shared by nginx, wrk, the
 *               proxy and the subscriber;
 * - restart:    2 requests in flight; after 1.5 s SIGTERM to the proxy and a new one started at
 *               once on the same path; 2 s more.
 * - kill:       the same with SIGKILL.
 *
 * Scenarios (nginx restarted with each publisher's settings):
 * - example: examples/nginx's publisher (SNDHWM 10 000, reconnect every 250 ms): all phases but kill;
 * - czmq3:   the settings of the gateway's own publisher, Adobe's api-gateway-zmq-logger on CZMQ 3
 *            (zctx's SNDHWM 1000 and linger 0, libzmq's 100 ms reconnect interval): restart and kill.
 *
 * The adaptor runs as the README tells operators to (scripts/start.sh), and again as the systemd
 * units run it with scripts/adaptor.socket ("adaptor (adaptor.socket)": testing/socket_unit.py holds
 * the socket on the path across the restart, as systemd does); `--baseline DIR` adds an
 * older checkout of the adaptor, run as `deno task start` in DIR, to the same rounds.
 *
 * Counting is exact, by worker and sequence number (`worker=…,seq=…` in every event): after a
 * phase, marker requests are sent until a marker from each worker has arrived; a worker's
 * events published in the phase are those between its marker before and its marker after.
 * lost = published − received; "dropped" is what the workers' publisher counted (a full queue).
 * The restart gap is the longest silence between two events received during the restart phase.
 *
 * Needs root, nginx + libnginx-mod-http-lua + lua-resty-core + libzmq5, wrk, gcc and libzmq3-dev:
 *   apt-get install -y nginx libnginx-mod-http-lua lua-resty-core libzmq5 libzmq3-dev wrk gcc
 *
 *   deno task gateway-bench [--rounds 3] [--no-write] [--only steady,saturation,restart,kill]
 *                           [--scenario example,czmq3] [--baseline DIR] [--rate 5000]
 *                           [--sub-reconnect-ivl MS] [--worker-reconnect-ivl MS]
 *                           [--adaptor-args "--subscriptions forward"] [-- ADAPTOR FLAGS]
 *
 * Writes the medians into docs/deployment.md between its gateway-bench markers (one block per
 * scenario), and the raw figures to .bench/gateway.json.
 */

import { AdaptorProcess, ROOT } from "../testing/process.ts";
import { freePort, sleep } from "../testing/net.ts";
import { Load, Nginx, nginxUnavailable, parseEvent } from "../testing/nginx.ts";
import { Peers } from "../testing/peers.ts";
import { SocketUnit } from "../testing/socket_unit.ts";
import { ZMQ_RCVHWM, ZMQ_SUB, ZMQ_SUBSCRIBE } from "../src/zmq/constants.ts";

const ZMQ_RECONNECT_IVL = 18;

type Kind = "adaptor" | "activated" | "activated-xpub" | "c-proxy" | "baseline";
type Phase = "steady" | "saturation" | "restart" | "kill";
type Scenario = "example" | "czmq3";

/** Each scenario's publisher settings (replacements in examples/nginx/nginx.conf) and phases. */
const SCENARIOS: Record<Scenario, { replace: [string, string][]; phases: Phase[]; what: string }> = {
  example: { replace: [], phases: ["steady", "saturation", "restart"], what: "the example publisher" },
  czmq3: {
    replace: [[
      "linger = 100, sndhwm = 10000, report_interval = 10,",
      "linger = 0, sndhwm = 1000, reconnect_ivl = 100, report_interval = 10,",
    ]],
    phases: ["restart", "kill"],
    what:
      "the example publisher set as api-gateway-zmq-logger on CZMQ 3 (SNDHWM 1000, linger 0, reconnect 100 ms)",
  },
};

interface PhaseResult {
  kind: Kind;
  phase: Phase;
  round: number;
  seconds: number;
  published: number;
  received: number;
  lost: number;
  dropped: number;
  scenario: Scenario;
  /** The longest silence between two received events (restart phase). */
  gapMs?: number;
  /** Restart phases: signal → the old process has exited. */
  stopMs?: number;
  /** Restart phases: relaunch → the new process is ready. */
  readyMs?: number;
  /** Restart phases: signal → the first event received from the new process. */
  flowingMs?: number;
}

const args = Deno.args;
const rounds = Number(args[args.indexOf("--rounds") + 1] || 3) || 3;
const write = !args.includes("--no-write");
const only = args.includes("--only") ? args[args.indexOf("--only") + 1].split(",") as Phase[] : undefined;
const scenarios = args.includes("--scenario")
  ? args[args.indexOf("--scenario") + 1].split(",") as Scenario[]
  : ["example", "czmq3"] as Scenario[];
const baseline = args.includes("--baseline") ? args[args.indexOf("--baseline") + 1] : undefined;
/** Further flags for the adaptor (and the baseline): what follows `--`, e.g. `-- --subscriptions local`. */
const adaptorFlags = args.includes("--") ? args.slice(args.indexOf("--") + 1) : [];
/** The subscriber's ZMQ_RECONNECT_IVL (libzmq's default 100 ms), for experiments. */
/** The workers' publisher's reconnect_ivl (the module's default 100 ms), for experiments. */
const workerReconnectIvl = args.includes("--worker-reconnect-ivl")
  ? Number(args[args.indexOf("--worker-reconnect-ivl") + 1])
  : undefined;
const subReconnectIvl = args.includes("--sub-reconnect-ivl")
  ? Number(args[args.indexOf("--sub-reconnect-ivl") + 1])
  : undefined;
/** More flags for the adaptor, e.g. `--adaptor-args "--subscriptions forward"`. */
const adaptorArgs = args.includes("--adaptor-args")
  ? args[args.indexOf("--adaptor-args") + 1].split(/\s+/).filter((a) => a !== "")
  : [];
/** The czmq3 scenario's load, events (requests) a second: `--rate`. */
const rate = Number(args[args.indexOf("--rate") + 1] || 0) || 5000;
const BENCH = `${ROOT}.bench`;
const PROXY_BIN = `${BENCH}/bin/gateway-proxy`;
/** fork-and-exec with the unit's socket, as systemd starts a socket-activated service. */
const LISTEN_FDS_EXEC = `${BENCH}/bin/listen_fds_exec`;
const WWW_DATA = 33;
const decoder = new TextDecoder();

async function buildProxy(): Promise<void> {
  Deno.mkdirSync(`${BENCH}/bin`, { recursive: true });
  const out = await new Deno.Command("gcc", {
    args: ["-O2", "-o", PROXY_BIN, `${ROOT}scripts/bench/proxy.c`, "-lzmq", "-lpthread"],
  }).output();
  if (!out.success) {
    throw new Error(`gcc failed (apt-get install -y gcc libzmq3-dev):\n${decoder.decode(out.stderr)}`);
  }
  const exec = await new Deno.Command("gcc", {
    args: ["-O2", "-o", LISTEN_FDS_EXEC, `${ROOT}scripts/bench/listen_fds_exec.c`],
  }).output();
  if (!exec.success) throw new Error(`gcc failed:\n${decoder.decode(exec.stderr)}`);
}

/** An event received, and when. */
interface Arrival {
  t: number;
  worker: number;
  seq: number;
  req: string;
}

/** A SUB in this process that timestamps every event. */
function subscribe(peers: Peers, endpoint: string): Arrival[] {
  const socket = peers.socket(ZMQ_SUB);
  socket.setInt(ZMQ_RCVHWM, 0);
  socket.setBytes(ZMQ_SUBSCRIBE, "");
  if (subReconnectIvl !== undefined) socket.setInt(ZMQ_RECONNECT_IVL, subReconnectIvl);
  socket.connect(endpoint);
  const arrivals: Arrival[] = [];
  const take = (frames: Uint8Array[]) => {
    const e = parseEvent(decoder.decode(frames[0]));
    arrivals.push({ t: performance.now(), worker: e.worker, seq: e.seq, req: e.req });
  };
  (async () => {
    try {
      for (;;) {
        const first = await socket.receive();
        if (!first) return;
        take(first);
        let more;
        while ((more = socket.tryReceive())) take(more);
      }
    } catch {
      // context shut down
    }
  })();
  return arrivals;
}

class Gateway {
  proxy?: AdaptorProcess;
  /** For "activated": the socket that outlives each adaptor, held as systemd's socket unit holds it. */
  unit?: SocketUnit;
  /** The pid of the proxy itself (the child of `deno task` for the baseline). */
  pid = 0;
  constructor(readonly path: string, readonly publish: string) {}

  async start(kind: Kind): Promise<void> {
    if (kind !== "c-proxy") {
      const args = [
        "-b",
        `ipc://${this.path}`,
        "-p",
        this.publish,
        "--ipc-group",
        "www-data",
        ...adaptorArgs,
        ...adaptorFlags,
      ];
      // As the README says: scripts/start.sh; an older checkout's README said `deno task start`.
      // "activated": as scripts/adaptor.socket and adaptor.service run it, on a socket that outlives it.
      const activated = kind === "activated" || kind === "activated-xpub";
      if (activated && !this.unit) {
        // "activated-xpub": the XPUB's port in the unit too (adaptor.socket's optional ListenStream=).
        this.unit = new SocketUnit(
          `ipc://${this.path}${kind === "activated-xpub" ? `,${this.publish}` : ""}`,
        );
        await this.unit.listening;
        Deno.chownSync(this.path, null, WWW_DATA); // SocketGroup=www-data, SocketMode=0660
        Deno.chmodSync(this.path, 0o660);
      }
      this.proxy = kind === "adaptor"
        ? new AdaptorProcess(args, { command: [`${ROOT}scripts/start.sh`] })
        : activated
        ? new AdaptorProcess(args, {
          command: [LISTEN_FDS_EXEC, this.unit!.control, `${ROOT}scripts/start.sh`],
        })
        : new AdaptorProcess(args, { command: [Deno.execPath(), "task", "start"], cwd: baseline });
      const line = await this.proxy.ready();
      this.pid = Number(/ ready \(pid (\d+)\)/.exec(line)?.[1] ?? this.proxy.pid);
    } else {
      this.proxy = new AdaptorProcess(["--bind", `ipc://${this.path}`, "--publish", this.publish], {
        command: [PROXY_BIN],
      });
      await this.proxy.waitFor(/proxy ready/);
      this.pid = this.proxy.pid;
      // zmq_proxy knows nothing of file permissions: let the workers in, as --ipc-group does.
      Deno.chownSync(this.path, null, WWW_DATA);
      Deno.chmodSync(this.path, 0o660);
    }
  }

  async stop(signal: Deno.Signal = "SIGTERM"): Promise<void> {
    if (signal === "SIGKILL" && this.proxy) {
      Deno.kill(this.pid, "SIGKILL"); // the process itself, not a `deno task` parent
      await this.proxy.exit();
    } else await this.proxy?.stop(signal);
    this.proxy = undefined;
  }

  /** The end of a phase: no socket is left on the path for the next proxy. */
  async close(): Promise<void> {
    await this.stop();
    await this.unit?.close();
    this.unit = undefined;
  }
}

/**
 * Marker requests until a marker from every worker has arrived; returns each worker's marker
 * seq. Everything a worker published before its marker has arrived by then, or never will.
 */
async function mark(
  nginx: Nginx,
  arrivals: Arrival[],
  workers: number[],
  tag: string,
): Promise<Map<number, number>> {
  for (let round = 0; round < 500; round++) {
    const seen = new Map<number, number>();
    for (const a of arrivals) {
      if (a.req.startsWith(`${tag}-`) && !seen.has(a.worker)) seen.set(a.worker, a.seq);
    }
    if (workers.every((w) => seen.has(w))) {
      await sleep(50);
      return seen;
    }
    await new Load(nginx.port, { tag, count: 10, concurrency: 2 }).done;
    await sleep(10);
  }
  throw new Error(`markers '${tag}' did not arrive from every worker`);
}

function count(
  arrivals: Arrival[],
  before: Map<number, number>,
  after: Map<number, number>,
): { published: number; received: number } {
  let published = 0;
  let received = 0;
  for (const [worker, start] of before) {
    const end = after.get(worker)!;
    published += end - start - 1;
    received += new Set(
      arrivals.filter((a) => a.worker === worker && a.seq > start && a.seq < end).map((a) => a.seq),
    ).size;
  }
  return { published, received };
}

async function wrk(port: number, seconds: number): Promise<void> {
  const out = await new Deno.Command("wrk", {
    args: ["-t2", "-c32", `-d${seconds}s`, `http://127.0.0.1:${port}/api/usage?api_key=wrk`],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`wrk failed: ${decoder.decode(out.stderr)}`);
}

async function runPhase(
  kind: Kind,
  phase: Phase,
  round: number,
  ctx: { nginx: Nginx; gateway: Gateway; arrivals: Arrival[]; workers: number[]; scenario: Scenario },
): Promise<PhaseResult> {
  const { nginx, gateway, arrivals, workers, scenario } = ctx;
  const tag = `${scenario}-${kind}-${phase}-${round}`;
  await gateway.start(kind);
  const dropsBefore = (await nginx.publisherStats()).dropped;
  const before = await mark(nginx, arrivals, workers, `${tag}-a`);
  const from = arrivals.length;
  const t0 = performance.now();
  let gapMs: number | undefined;
  let stopMs: number | undefined;
  let readyMs: number | undefined;
  let flowingMs: number | undefined;
  if (phase === "steady") {
    const load = new Load(nginx.port, { tag, concurrency: 4 });
    await sleep(3000);
    await load.stop();
  } else if (phase === "saturation") {
    await wrk(nginx.port, 4);
  } else {
    // The czmq3 scenario at the issue's ~5 000 events/s (each request is one event); the other at
    // what 2 requests in flight make.
    const load = new Load(
      nginx.port,
      scenario === "czmq3" ? { tag, concurrency: 8, rate } : { tag, concurrency: 2 },
    );
    await sleep(1500);
    const signalled = performance.now();
    await gateway.stop(phase === "kill" ? "SIGKILL" : "SIGTERM");
    const relaunched = performance.now();
    stopMs = relaunched - signalled;
    await gateway.start(kind);
    readyMs = performance.now() - relaunched;
    const readyAt = performance.now();
    await sleep(2000);
    await load.stop();
    const first = arrivals.slice(from).find((a) => a.t >= readyAt);
    flowingMs = first ? first.t - signalled : undefined;
    let last = signalled;
    gapMs = 0;
    // The longest silence from the signal on (the restart's), between two received events.
    for (const a of arrivals.slice(from)) {
      if (a.t < signalled) continue;
      gapMs = Math.max(gapMs, a.t - last);
      last = a.t;
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  const after = await mark(nginx, arrivals, workers, `${tag}-z`);
  const { published, received } = count(arrivals, before, after);
  const dropped = (await nginx.publisherStats()).dropped - dropsBefore;
  await gateway.close();
  return {
    kind,
    phase,
    round,
    scenario,
    seconds,
    published,
    received,
    lost: published - received,
    dropped,
    gapMs,
    stopMs,
    readyMs,
    flowingMs,
  };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const KIND_NAMES: Record<Kind, string> = {
  "adaptor": "adaptor",
  "activated": "adaptor (adaptor.socket)",
  "activated-xpub": "adaptor (adaptor.socket + XPUB)",
  "baseline": "adaptor (baseline)",
  "c-proxy": "C zmq_proxy",
};

function render(
  scenario: Scenario,
  results: PhaseResult[],
  kinds: Kind[],
  meta: Record<string, string>,
): string {
  const rows: string[] = [];
  const get = (kind: Kind, phase: Phase) =>
    results.filter((r) => r.scenario === scenario && r.kind === kind && r.phase === phase);
  const fmt = (n: number, digits = 0) => n.toLocaleString("en-US", { maximumFractionDigits: digits });
  const range = (xs: number[], digits = 0) =>
    xs.length > 1 ? ` (${fmt(Math.min(...xs), digits)}–${fmt(Math.max(...xs), digits)})` : "";
  const cell = (rs: PhaseResult[], f: (r: PhaseResult) => number | undefined, digits = 0) => {
    const xs = rs.map(f).filter((x): x is number => x !== undefined);
    return xs.length ? `${fmt(median(xs), digits)}${range(xs, digits)}` : "–";
  };
  rows.push(
    `| phase | figure | ${kinds.map((k) => KIND_NAMES[k]).join(" | ")} |`,
    `|---|---|${kinds.map(() => "---:").join("|")}|`,
  );
  for (const phase of SCENARIOS[scenario].phases) {
    const byKind = kinds.map((k) => get(k, phase));
    if (byKind.some((rs) => rs.length === 0)) continue;
    const line = (figure: string, f: (r: PhaseResult) => number | undefined, digits = 0) =>
      rows.push(`| ${phase} | ${figure} | ${byKind.map((rs) => cell(rs, f, digits)).join(" | ")} |`);
    line("events/s published by nginx", (r) => r.published / r.seconds);
    if (phase === "steady" || phase === "saturation") {
      line("events/s received", (r) => r.received / r.seconds);
    }
    line("events lost", (r) => r.lost);
    line("lost, % of published", (r) => 100 * r.lost / Math.max(1, r.published), 2);
    line("of them dropped (counted) by the workers", (r) => r.dropped);
    if (phase === "restart" || phase === "kill") {
      line("signal → old process gone, ms", (r) => r.stopMs);
      line("relaunch → ready, ms", (r) => r.readyMs);
      line("signal → first event through the new process, ms", (r) => r.flowingMs);
      line("longest silence around the restart, ms", (r) => r.gapMs ?? 0);
    }
  }
  const runs = kinds.map((k) =>
    `${KIND_NAMES[k]} ${results.filter((r) => r.scenario === scenario && r.kind === k).length}`
  );
  return [
    `Measured with \`deno task gateway-bench\` on ${meta.date} (${rounds} rounds, alternating; phases run: ${
      runs.join(", ")
    };`,
    `${meta.machine}; nginx ${meta.nginx}, 2 workers as www-data, ${
      SCENARIOS[scenario].what
    } on libzmq ${meta.libzmq};`,
    `the adaptor run as scripts/start.sh${
      adaptorFlags.length ? ` ${adaptorFlags.join(" ")}` : ""
    } (with adaptor.socket: on a socket held as systemd holds it, testing/socket_unit.py, and passed as systemd passes it, scripts/bench/listen_fds_exec.c)${
      baseline ? ", the baseline as `deno task start`" : ""
    }; the adaptor's libzmq is the zeromq`,
    `addon's 4.3.5, the C proxy's the system's). Medians (min–max):`,
    "",
    ...rows,
    "",
  ].join("\n");
}

let publisherZmq = "?";

async function runScenario(
  scenario: Scenario,
  dir: string,
  peers: Peers,
  results: PhaseResult[],
  kinds: Kind[],
): Promise<void> {
  const path = `${dir}/nginx_queue_listen`;
  const publish = `tcp://127.0.0.1:${freePort()}`;
  const gateway = new Gateway(path, publish);
  const arrivals = subscribe(peers, publish);
  const replace = [...SCENARIOS[scenario].replace];
  if (workerReconnectIvl !== undefined && scenario === "example") {
    replace.push(["report_interval = 10,", `report_interval = 10, reconnect_ivl = ${workerReconnectIvl},`]);
  }
  const nginx = await Nginx.start(dir, { port: freePort(), endpoint: `ipc://${path}`, replace });
  try {
    const workers = nginx.workerPids();
    publisherZmq = /zmq publisher: connecting \(ZeroMQ ([\d.]+)\)/.exec(nginx.errorLog())?.[1] ?? "?";
    const ctx = { nginx, gateway, arrivals, workers, scenario };
    for (let round = 1; round <= rounds; round++) {
      for (const phase of SCENARIOS[scenario].phases) {
        if (only && !only.includes(phase)) continue;
        // Alternating: each kind goes first in turn.
        const order = kinds.map((_, i) => kinds[(i + round - 1) % kinds.length]);
        for (const kind of order) {
          const r = await runPhase(kind, phase, round, ctx);
          results.push(r);
          const ms = (x: number | undefined) => x === undefined ? "–" : x.toFixed(0);
          console.log(
            `${scenario} round ${round} ${phase.padEnd(10)} ${kind.padEnd(14)}: published ${r.published} in ${
              r.seconds.toFixed(1)
            } s, received ${r.received}, lost ${r.lost}, dropped ${r.dropped}` +
              (r.gapMs !== undefined
                ? `, stop ${ms(r.stopMs)} ms, relaunch → ready ${ms(r.readyMs)} ms, signal → flowing ${
                  ms(r.flowingMs)
                } ms, longest silence ${ms(r.gapMs)} ms`
                : ""),
          );
          // The subscriber's list only grows: drop what the next phases do not need.
          arrivals.splice(0, arrivals.length);
        }
      }
    }
  } finally {
    await gateway.close();
    await nginx.stop();
  }
}

async function main(): Promise<void> {
  const why = nginxUnavailable();
  if (why) throw new Error(`cannot run: ${why}`);
  await buildProxy();
  const dir = Deno.makeTempDirSync({ prefix: "adaptor-gateway-bench-" });
  const peers = new Peers();
  const results: PhaseResult[] = [];
  const kinds: Kind[] = baseline
    ? ["adaptor", "activated", "activated-xpub", "baseline", "c-proxy"]
    : ["adaptor", "activated", "activated-xpub", "c-proxy"];
  try {
    Deno.chownSync(dir, 0, WWW_DATA);
    Deno.chmodSync(dir, 0o750);
    for (const scenario of scenarios) await runScenario(scenario, dir, peers, results, kinds);
  } finally {
    await peers.close();
    Deno.removeSync(dir, { recursive: true });
  }
  const cpus =
    Deno.readTextFileSync("/proc/cpuinfo").split("\n").filter((l) => l.startsWith("processor")).length;
  const nginxVersion = decoder.decode((await new Deno.Command("nginx", { args: ["-v"] }).output()).stderr)
    .trim().replace(/^nginx version: nginx\//, "");
  const meta = {
    date: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    machine: `${cpus} CPUs shared by everything`,
    nginx: nginxVersion,
    libzmq: publisherZmq,
  };
  Deno.writeTextFileSync(`${BENCH}/gateway.json`, JSON.stringify({ meta, results }, null, 2) + "\n");
  for (const scenario of scenarios) {
    const text = render(scenario, results, kinds, meta);
    console.log(`\n${scenario}:\n${text}`);
    if (!write) continue;
    const doc = `${ROOT}docs/deployment.md`;
    const md = Deno.readTextFileSync(doc);
    const name = scenario === "example" ? "gateway-bench" : `gateway-bench-${scenario}`;
    const start = `<!-- ${name}:start -->`;
    const end = `<!-- ${name}:end -->`;
    const a = md.indexOf(start);
    const b = md.indexOf(end);
    if (a < 0 || b < a) throw new Error(`docs/deployment.md has no ${start} … ${end} block`);
    Deno.writeTextFileSync(doc, md.slice(0, a + start.length) + "\n" + text + md.slice(b));
    console.log(`wrote docs/deployment.md (${scenario})`);
  }
}

if (import.meta.main) {
  try {
    await main();
  } catch (error) {
    console.error(`gateway-bench: ${(error as Error).message}`);
    Deno.exit(1);
  }
}
