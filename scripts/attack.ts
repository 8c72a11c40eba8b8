/**
 * `deno task attack`: the long floods of issue 13 against a spawned adaptor, with figures.
 * Not part of `deno task test` (minutes, and gigabytes of memory); the figures go to
 * docs/reliability.md.
 *
 * Each scenario starts a fresh adaptor (as `deno task start` runs it, defaults unless
 * `--adaptor-args` adds some) with two gateway-worker stand-ins (pyzmq where available, see
 * testing/worker.ts) and a legitimate subscriber, then:
 *
 * - `multipart-xpub`, `multipart-xsub`: one raw ZMTP connection (a SUB on the XPUB's tcp
 *   endpoint, a PUB on the XSUB's ipc one) sends frames with the MORE flag set and never the
 *   last one, until the adaptor grew by `--limit-mib` or `--seconds` passed. Frames stay under
 *   the socket's frame limit (1000 bytes on the XPUB, 60 000 on the XSUB), so no limit applies.
 * - `topics`: one raw SUB on the XPUB sends `--topics` random 20-byte subscriptions (2 M
 *   by default) in one go, then leaves; for `--leave-seconds` (30) the legitimate subscriber's
 *   longest wait for an event and `adaptor_topics` are sampled (libzmq removes the topics on the
 *   proxy's thread), and the adaptor is stopped with SIGTERM after that.
 * - `stalled-inbound`, `stalled-subscriber`: not an attack but the queues' worst case at the
 *   defaults. A publisher sends `--message-bytes` (65 536: --max-message-size) messages as fast
 *   as the adaptor takes them, to the inbound SUB (`-l`, whose PUSH has one PULL that never
 *   reads) or to the XSUB (one XPUB subscriber to everything that never reads), until the
 *   adaptor's RSS has stood still for 5 s; its plateau is the memory those queues can hold.
 *
 * - `flapping`: one raw SUB on the XPUB sends `--pairs` SUBSCRIBE/CANCEL pairs (1 M) of one topic
 *   nobody else holds, as fast as it can; counted: the subscription frames that reach each worker
 *   (the workers are pyzmq XPUBs here, which report each one) and the adaptor's RSS. Run it with
 *   the default and with `--adaptor-args "--subscriptions forward"`.
 * - `handshake-flood`: CURVE with `--curve-clients`; a pyzmq probe (a PUB on the XSUB, an admitted
 *   CURVE SUB on the XPUB, `--probe-rate` 1000 msg/s) measures the latency of each event for 5 s,
 *   then while a second pyzmq process makes `--flood-rate` (1000) denied CURVE clients a second,
 *   each with a fresh key, for `--flood-seconds` (10), then 5 s after (scripts/handshake_flood.py),
 *   from `--flood-source` (127.0.0.2: another host as the adaptor sees it; "" for the probe's).
 *   Compare with `--adaptor-args "--block-after-denials 0"`.
 *
 * Printed per scenario: bytes sent and for how long, the adaptor's RSS (start, peak, after the
 * attacker left, and after `--trim-wait` seconds, when the once-a-minute malloc_trim has run), each worker's RSS, whether the legitimate subscriber kept receiving, and how
 * long SIGTERM took.
 *
 *   deno task attack                        # every scenario
 *   deno task attack --scenario topics --topics 500000
 *   deno task attack --adaptor-args "--max-subscription-size 0"
 *   deno task attack --scenario handshake-flood --flood-rate 1300
 */

import { parseArgs } from "node:util";
import { freePort, ipcPath, sleep } from "../testing/net.ts";
import { Peers } from "../testing/peers.ts";
import { AdaptorProcess } from "../testing/process.ts";
import { scrape, value } from "../testing/scrape.ts";
import { rssKiB, WorkerProcess } from "../testing/worker.ts";
import {
  concat,
  connectRaw,
  frame,
  handshake,
  longFrameHeader,
  subscription,
  unsubscription,
} from "../testing/zmtp.ts";
import { keygen } from "../src/security/cert.ts";
import { ZMQ_PUB, ZMQ_PULL, ZMQ_SNDHWM, ZMQ_SUB, ZMQ_SUBSCRIBE } from "../src/zmq/constants.ts";

const { values: options } = parseArgs({
  options: {
    scenario: { type: "string", default: "all" },
    topics: { type: "string", default: "2000000" },
    "leave-seconds": { type: "string", default: "30" },
    "limit-mib": { type: "string", default: "1024" },
    seconds: { type: "string", default: "20" },
    "trim-wait": { type: "string", default: "65" },
    "adaptor-args": { type: "string", default: "" },
    "message-bytes": { type: "string", default: "65536" },
    pairs: { type: "string", default: "1000000" },
    "flood-rate": { type: "string", default: "1000" },
    "flood-seconds": { type: "string", default: "10" },
    "probe-rate": { type: "string", default: "1000" },
    "flood-source": { type: "string", default: "127.0.0.2" },
  },
});

const SCENARIOS = [
  "multipart-xpub",
  "multipart-xsub",
  "topics",
  "stalled-inbound",
  "stalled-subscriber",
  "flapping",
  "handshake-flood",
] as const;
type Scenario = typeof SCENARIOS[number];
const chosen: Scenario[] = options.scenario === "all"
  ? [...SCENARIOS]
  : options.scenario!.split(",").map((s) => {
    if (!(SCENARIOS as readonly string[]).includes(s)) throw new Error(`unknown scenario ${s}`);
    return s as Scenario;
  });
const extraArgs = options["adaptor-args"]!.split(/\s+/).filter((a) => a !== "");
const MiB = 1024;

const mib = (kib: number) => `${(kib / 1024).toFixed(0)} MiB`;

interface Setup {
  adaptor: AdaptorProcess;
  xsub: string;
  xpub: string;
  url: string;
  workers: WorkerProcess[];
  peers: Peers;
  received: () => number;
}

async function setUp(): Promise<Setup> {
  const xsub = `ipc://${ipcPath("attack-xsub")}`;
  const xpub = `tcp://127.0.0.1:${freePort()}`;
  const metricsPort = freePort();
  const adaptor = new AdaptorProcess([
    "-b",
    xsub,
    "-p",
    xpub,
    "--metrics",
    `127.0.0.1:${metricsPort}`,
    ...extraArgs,
  ]);
  await adaptor.ready();
  const workers = [new WorkerProcess(xsub, "usage"), new WorkerProcess(xsub, "usage")];
  await Promise.all(workers.map((w) => w.started));
  const peers = new Peers();
  const sub = peers.subscriber(xpub, ["usage."]);
  const deadline = performance.now() + 10_000;
  while (sub.messages.length === 0 && performance.now() < deadline) await sleep(20);
  if (sub.messages.length === 0) throw new Error("the workers' events never reached the subscriber");
  return {
    adaptor,
    xsub,
    xpub,
    url: `http://127.0.0.1:${metricsPort}`,
    workers,
    peers,
    received: () => sub.messages.length,
  };
}

async function tearDown(setup: Setup): Promise<{ ms: number; code: number }> {
  await setup.peers.close();
  const { ms, status } = await setup.adaptor.stop();
  await Promise.all(setup.workers.map((w) => w.stop()));
  return { ms, code: status.code };
}

/** The legitimate subscriber's messages in the next second (the workers send 100/s each). */
async function receivedInOneSecond(setup: Setup): Promise<number> {
  const before = setup.received();
  await sleep(1000);
  return setup.received() - before;
}

function report(lines: [string, string][]): void {
  const width = Math.max(...lines.map(([k]) => k.length));
  for (const [key, text] of lines) console.log(`  ${key.padEnd(width)}  ${text}`);
}

async function multipart(scenario: "multipart-xpub" | "multipart-xsub"): Promise<void> {
  const setup = await setUp();
  const onXpub = scenario === "multipart-xpub";
  const size = onXpub ? 1000 : 60_000;
  const body = new Uint8Array(size).fill(0x78);
  const one = size < 256 ? frame(body, true) : concat(longFrameHeader(BigInt(size), true), body);
  const chunk = concat(...Array.from({ length: Math.max(1, Math.floor(1_000_000 / one.length)) }, () => one));
  const start = rssKiB(setup.adaptor.pid);
  const workersStart = setup.workers.map((w) => w.rssKiB());
  const limit = Number(options["limit-mib"]) * MiB;
  const conn = await connectRaw(onXpub ? setup.xpub : setup.xsub);
  await handshake(conn, onXpub ? "SUB" : "PUB");
  let sent = 0;
  let peak = start;
  const began = performance.now();
  const stopAt = began + Number(options.seconds) * 1000;
  let why = "time limit";
  try {
    while (performance.now() < stopAt) {
      for (let at = 0; at < chunk.length;) at += await conn.write(chunk.subarray(at));
      sent += chunk.length;
      if ((sent / chunk.length) % 20 === 0) {
        peak = Math.max(peak, rssKiB(setup.adaptor.pid));
        if (peak - start >= limit) {
          why = `adaptor grew by ${mib(limit)}`;
          break;
        }
      }
    }
  } catch (error) {
    why = `connection closed by the adaptor (${(error as Error).name})`;
  }
  const seconds = (performance.now() - began) / 1000;
  peak = Math.max(peak, rssKiB(setup.adaptor.pid));
  const during = await receivedInOneSecond(setup);
  const workersEnd = setup.workers.map((w) => w.rssKiB());
  conn.close();
  await sleep(2000);
  const after = rssKiB(setup.adaptor.pid);
  // The adaptor gives freed heap pages back once a minute (malloc_trim): wait for one.
  await sleep(Math.max(0, Number(options["trim-wait"]) * 1000 - 2000));
  const trimmed = rssKiB(setup.adaptor.pid);
  const warnings = setup.adaptor.lines.filter((l) => / \[(WRN|ERR)\] /.test(l)).map((l) =>
    l.replace(/^.* \[(WRN|ERR)\] /, "").slice(0, 200)
  );
  const { ms: stopMs, code } = await tearDown(setup);
  console.log(`${scenario}: never-ending message of ${size}-byte MORE frames on one connection`);
  report([
    ["sent", `${(sent / 2 ** 20).toFixed(0)} MiB in ${seconds.toFixed(1)} s (stopped: ${why})`],
    [
      "adaptor RSS",
      `${mib(start)} -> peak ${mib(peak)} (+${mib(peak - start)}); ${
        mib(after)
      } 2 s after the attacker left, ` +
      `${mib(trimmed)} after ${options["trim-wait"]} s (malloc_trim)`,
    ],
    [
      "workers' RSS",
      `${workersStart.map(mib).join(", ")} at start, ${workersEnd.map(mib).join(", ")} at the end`,
    ],
    ["adaptor said", warnings.length ? warnings.join(" | ") : "nothing"],
    ["subscriber", `${during} events in the second after the flood (the 2 workers send ~200/s)`],
    ["SIGTERM", `${stopMs.toFixed(0)} ms, exit ${code}`],
  ]);
}

async function topics(): Promise<void> {
  const setup = await setUp();
  const count = Number(options.topics);
  const start = rssKiB(setup.adaptor.pid);
  const workersStart = setup.workers.map((w) => w.rssKiB());
  const conn = await connectRaw(setup.xpub);
  await handshake(conn, "SUB");
  const began = performance.now();
  // Subscriptions as ZMTP 3.0 messages: 0x01 and the topic, 22 bytes a frame with its header.
  const batch = 50_000;
  const random = new Uint8Array(20);
  let sent = 0;
  while (sent < count) {
    const n = Math.min(batch, count - sent);
    const bytes = new Uint8Array(n * 23);
    for (let i = 0; i < n; i++) {
      crypto.getRandomValues(random);
      const at = i * 23;
      bytes[at] = 0;
      bytes[at + 1] = 21;
      bytes[at + 2] = 1;
      // Printable topics (hex would double the length): 20 bytes from 0x21..0x7e.
      for (let j = 0; j < 20; j++) bytes[at + 3 + j] = 0x21 + (random[j] % 94);
    }
    for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
    sent += n;
  }
  const written = (performance.now() - began) / 1000;
  // Wait until the adaptor has passed them upstream (its counter), or 120 s.
  let upstream = 0;
  let topicsPeak = 0;
  let peak = start;
  const workerPeaks = [...workersStart];
  const deadline = performance.now() + 120_000;
  let lastChange = performance.now();
  while (performance.now() < deadline) {
    const series = await scrape(setup.url);
    const now = value(series, "adaptor_upstream_messages_total", { channel: "main" }) ?? 0;
    topicsPeak = Math.max(topicsPeak, value(series, "adaptor_topics", { channel: "main" }) ?? 0);
    if (now !== upstream) lastChange = performance.now();
    upstream = now;
    peak = Math.max(peak, rssKiB(setup.adaptor.pid));
    setup.workers.forEach((w, i) => workerPeaks[i] = Math.max(workerPeaks[i], w.rssKiB()));
    if (upstream >= count || performance.now() - lastChange > 10_000) break;
    await sleep(500);
  }
  const taken = (performance.now() - began) / 1000;
  await sleep(2000);
  setup.workers.forEach((w, i) => workerPeaks[i] = Math.max(workerPeaks[i], w.rssKiB()));
  peak = Math.max(peak, rssKiB(setup.adaptor.pid));
  const during = await receivedInOneSecond(setup);
  // The leave: libzmq walks the subscriber's topics on the proxy's thread (and, with forward,
  // sends an unsubscription for each). Sample forwarding and the gauge meanwhile, for up to 3 s.
  conn.close();
  const leaveMs = Number(options["leave-seconds"]) * 1000;
  const left = performance.now();
  let longestGap = 0;
  let lastArrival = left;
  let seen = setup.received();
  let topicsBackMs: number | undefined;
  while (performance.now() - left < leaveMs) {
    await sleep(50);
    const now = performance.now();
    if (setup.received() !== seen) [seen, lastArrival] = [setup.received(), now];
    longestGap = Math.max(longestGap, now - lastArrival);
    if (topicsBackMs === undefined && Math.round(now - left) % 250 < 50) {
      const t = value(await scrape(setup.url), "adaptor_topics", { channel: "main" });
      if (t !== undefined && t <= 2) topicsBackMs = now - left;
    }
  }
  const final = await scrape(setup.url);
  const topicsAfter = value(final, "adaptor_topics", { channel: "main" });
  const unanswered = value(final, "adaptor_statistics_unanswered_total", { channel: "main" }) ?? 0;
  const after = rssKiB(setup.adaptor.pid);
  const workersAfter = setup.workers.map((w) => w.rssKiB());
  const logFrom = setup.adaptor.lines.length;
  const { ms: stopMs, code } = await tearDown(setup);
  const stopLog = setup.adaptor.lines.slice(logFrom).filter((l) => !l.includes("connected"));
  console.log(`topics: ${count} random 20-byte subscriptions from one subscriber`);
  report([
    ["sent", `${(sent * 23 / 2 ** 20).toFixed(0)} MiB in ${written.toFixed(1)} s`],
    ["upstream", `${upstream} subscription messages passed on within ${taken.toFixed(1)} s`],
    [
      "adaptor RSS",
      `${mib(start)} -> peak ${mib(peak)} (+${mib(peak - start)}); ${mib(after)} ${
        leaveMs / 1000
      } s after it left`,
    ],
    [
      "workers' RSS",
      setup.workers.map((w, i) =>
        `${w.kind} ${mib(workersStart[i])} -> peak ${mib(workerPeaks[i])}, ${mib(workersAfter[i])} after`
      ).join("; "),
    ],
    [
      "adaptor_topics",
      `peak ${topicsPeak}; ${topicsAfter} ${leaveMs / 1000} s after it left` +
      (topicsBackMs === undefined || topicsPeak <= 2
        ? ""
        : ` (back to ≤ 2 after ${(topicsBackMs / 1000).toFixed(1)} s)`),
    ],
    ["subscriber", `${during} events in one second after the flood (the 2 workers send ~200/s)`],
    [
      "the leave",
      `forwarding stalled up to ${(longestGap / 1000).toFixed(1)} s in the ${
        leaveMs / 1000
      } s after it left; ` +
      `${unanswered} scrapes unanswered (adaptor_statistics_unanswered_total)`,
    ],
    ["SIGTERM", `${stopMs.toFixed(0)} ms, exit ${code}`],
  ]);
  for (const line of stopLog.slice(-12)) console.log(`    | ${line}`);
}

/** The queues' worst case: a full-size flood into a channel whose consumer never reads. */
async function stalled(scenario: "stalled-inbound" | "stalled-subscriber"): Promise<void> {
  const inbound = scenario === "stalled-inbound";
  const size = Number(options["message-bytes"]);
  const xsub = `ipc://${ipcPath("stalled-xsub")}`;
  const xpub = `tcp://127.0.0.1:${freePort()}`;
  const source = `tcp://127.0.0.1:${freePort()}`;
  const push = `ipc://${ipcPath("stalled-push")}`;
  const peers = new Peers();
  // The inbound SUB connects out (-l): its publisher is bound first.
  const publisher = peers.socket(ZMQ_PUB);
  publisher.setInt(ZMQ_SNDHWM, 1000);
  if (inbound) publisher.bind(source);
  const adaptor = new AdaptorProcess([
    "-b",
    xsub,
    "-p",
    xpub,
    ...(inbound ? ["-l", source, "-u", push] : []),
    ...extraArgs,
  ]);
  await adaptor.ready();
  const stuck = peers.socket(inbound ? ZMQ_PULL : ZMQ_SUB);
  if (!inbound) stuck.setBytes(ZMQ_SUBSCRIBE, "");
  stuck.connect(inbound ? push : xpub);
  if (!inbound) publisher.connect(xsub);
  await sleep(1000); // connected, subscribed
  const body = new Uint8Array(size).fill(0x78);
  const start = rssKiB(adaptor.pid);
  let peak = start;
  let sent = 0;
  let stillSince = performance.now();
  const began = performance.now();
  const stopAt = began + Number(options.seconds) * 3000;
  while (performance.now() < stopAt && performance.now() - stillSince < 5000) {
    for (let i = 0; i < 200; i++) if (publisher.trySend([body])) sent++;
    await sleep(2);
    const now = rssKiB(adaptor.pid);
    if (now > peak + 1024) {
      peak = now;
      stillSince = performance.now();
    }
  }
  const seconds = (performance.now() - began) / 1000;
  peak = Math.max(peak, rssKiB(adaptor.pid));
  await peers.close();
  const { ms: stopMs, status } = await adaptor.stop();
  console.log(
    `${scenario}: ${size}-byte messages into ${
      inbound ? "the inbound SUB, its PULL never reading" : "the XSUB, an XPUB subscriber never reading"
    }`,
  );
  report([
    ["offered", `${sent} messages in ${seconds.toFixed(1)} s (the PUB drops what its queue cannot take)`],
    [
      "adaptor RSS",
      `${mib(start)} -> plateau ${mib(peak)} (+${mib(peak - start)}, ${
        (peak - start) * 1024 / size | 0
      } messages' worth)`,
    ],
    ["SIGTERM", `${stopMs.toFixed(0)} ms, exit ${status.code}`],
  ]);
}

async function flapping(): Promise<void> {
  const setup = await setUp();
  // An XPUB in a third worker's place: it reports each subscription frame that reaches it.
  const upstream = setup.peers.upstream(setup.xsub);
  await sleep(500);
  const heard = upstream.log.length;
  const pairs = Number(options.pairs);
  const start = rssKiB(setup.adaptor.pid);
  const workersStart = setup.workers.map((w) => w.rssKiB());
  const conn = await connectRaw(setup.xpub);
  await handshake(conn, "SUB");
  const pair = concat(subscription("flap."), unsubscription("flap."));
  const batch = concat(...Array.from({ length: 10_000 }, () => pair));
  const began = performance.now();
  let peak = start;
  for (let n = 0; n < pairs; n += 10_000) {
    for (let at = 0; at < batch.length;) at += await conn.write(batch.subarray(at));
    if (n % 100_000 === 0) peak = Math.max(peak, rssKiB(setup.adaptor.pid));
  }
  const written = (performance.now() - began) / 1000;
  // Until the worker stand-in stops hearing more (or 60 s).
  let last = -1;
  const workerPeaks = [...workersStart];
  const deadline = performance.now() + 60_000;
  while (performance.now() < deadline) {
    await sleep(1000);
    peak = Math.max(peak, rssKiB(setup.adaptor.pid));
    setup.workers.forEach((w, i) => workerPeaks[i] = Math.max(workerPeaks[i], w.rssKiB()));
    if (upstream.log.length === last) break;
    last = upstream.log.length;
  }
  const taken = (performance.now() - began) / 1000;
  const during = await receivedInOneSecond(setup);
  conn.close();
  const after = rssKiB(setup.adaptor.pid);
  const { ms: stopMs, code } = await tearDown(setup);
  console.log(
    `flapping: ${pairs} SUBSCRIBE/CANCEL pairs of one topic nobody else holds, from one subscriber`,
  );
  report([
    ["sent", `${(pairs * 2 * 8 / 2 ** 20).toFixed(0)} MiB in ${written.toFixed(1)} s`],
    ["at a worker", `${upstream.log.length - heard} subscription frames within ${taken.toFixed(1)} s`],
    ["adaptor RSS", `${mib(start)} -> peak ${mib(peak)} (+${mib(peak - start)}); ${mib(after)} after`],
    [
      "workers' RSS",
      setup.workers.map((w, i) => `${w.kind} ${mib(workersStart[i])} -> peak ${mib(workerPeaks[i])}`).join(
        "; ",
      ),
    ],
    ["subscriber", `${during} events in one second after the flood (the 2 workers send ~200/s)`],
    ["SIGTERM", `${stopMs.toFixed(0)} ms, exit ${code}`],
  ]);
}

/** A pyzmq peer of scripts/handshake_flood.py: its stdout lines, and stdin to steer it. */
class PyPeer {
  readonly lines: string[] = [];
  readonly #child: Deno.ChildProcess;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly #pump: Promise<void>;

  constructor(args: string[]) {
    this.#child = new Deno.Command("/usr/bin/python3", {
      args: [new URL("./handshake_flood.py", import.meta.url).pathname, ...args],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.#stdin = this.#child.stdin.getWriter();
    const stdout = this.#child.stdout;
    this.#pump = (async () => {
      let rest = "";
      for await (const chunk of stdout.pipeThrough(new TextDecoderStream())) {
        rest += chunk;
        let at: number;
        while ((at = rest.indexOf("\n")) >= 0) {
          this.lines.push(rest.slice(0, at));
          rest = rest.slice(at + 1);
        }
      }
    })();
  }

  async line(ms = 30_000): Promise<string> {
    const seen = this.lines.length;
    const deadline = performance.now() + ms;
    while (this.lines.length === seen) {
      if (performance.now() > deadline) throw new Error("handshake_flood.py said nothing");
      await sleep(20);
    }
    return this.lines[seen];
  }

  async say(text: string): Promise<void> {
    await this.#stdin.write(new TextEncoder().encode(`${text}\n`));
  }

  async end(): Promise<void> {
    await this.#stdin.close().catch(() => {});
    await this.#child.status;
    await this.#pump;
  }
}

interface Latency {
  received: number;
  sent: number;
  p50: number;
  p99: number;
  p999: number;
  max: number;
}

async function handshakeFlood(): Promise<void> {
  const dir = Deno.makeTempDirSync({ prefix: "adaptor-attack-curve-" });
  Deno.mkdirSync(`${dir}/clients`);
  const server = keygen(`${dir}/server`);
  const probeCert = keygen(`${dir}/probe`);
  Deno.copyFileSync(probeCert.publicPath, `${dir}/clients/probe`);
  const secret = /secret-key = "(.{40})"/.exec(Deno.readTextFileSync(probeCert.secretPath))![1];
  const xsub = `ipc://${ipcPath("attack-xsub")}`;
  const xpub = `tcp://127.0.0.1:${freePort()}`;
  const metricsPort = freePort();
  const url = `http://127.0.0.1:${metricsPort}`;
  const adaptor = new AdaptorProcess([
    ...["-b", xsub, "-p", xpub, "--metrics", `127.0.0.1:${metricsPort}`],
    ...["--curve-cert", server.secretPath, "--curve-clients", `${dir}/clients`],
    ...extraArgs,
  ]);
  await adaptor.ready();
  const rate = Number(options["flood-rate"]);
  const seconds = Number(options["flood-seconds"]);
  const probe = new PyPeer([
    "probe",
    xsub,
    xpub,
    server.publicKey,
    probeCert.publicKey,
    secret,
    options["probe-rate"]!,
  ]);
  const phases: [string, Latency][] = [];
  const mark = async (name: string) => {
    await probe.say("mark");
    phases.push([name, JSON.parse(await probe.line())]);
  };
  let denied = 0;
  let clients = 0;
  let floodSeconds = 0;
  const start = rssKiB(adaptor.pid);
  let peak = start;
  try {
    if ((await probe.line()) !== "ready") throw new Error("the probe did not start");
    await sleep(1000);
    await mark("warm-up");
    await sleep(5000);
    await mark("before");
    const deniedBefore = value(await scrape(url), "adaptor_auth_denied_total", { socket: "XPUB" }) ?? 0;
    // From another loopback address than the probe's, as from another host (libzmq's `src;dest`).
    const source = options["flood-source"] ? `${options["flood-source"]}:0;` : "";
    const target = xpub.replace("tcp://", `tcp://${source}`);
    const flood = new PyPeer(["flood", target, server.publicKey, `${rate}`, `${seconds}`]);
    const result = JSON.parse(await flood.line(seconds * 1000 + 60_000));
    [clients, floodSeconds] = [result.clients, result.seconds];
    peak = Math.max(peak, rssKiB(adaptor.pid));
    await mark("flood");
    await flood.end();
    await sleep(2000);
    denied = (value(await scrape(url), "adaptor_auth_denied_total", { socket: "XPUB" }) ?? 0) - deniedBefore;
    await sleep(3000);
    await mark("after");
  } finally {
    await probe.end();
  }
  const { ms: stopMs, status: { code } } = await adaptor.stop();
  Deno.removeSync(dir, { recursive: true });
  const ms = (us: number | null) => us === null ? "-" : `${(us / 1000).toFixed(us < 10_000 ? 2 : 0)} ms`;
  console.log(
    `handshake-flood: ${rate} denied CURVE clients a second for ${seconds} s; a probe at ${
      options["probe-rate"]
    } msg/s`,
  );
  report([
    [
      "flood",
      `${clients} clients in ${floodSeconds.toFixed(1)} s (${(clients / floodSeconds).toFixed(0)}/s), ` +
      `${denied} denials counted`,
    ],
    ...phases.filter(([name]) => name !== "warm-up").map(([name, l]): [string, string] => [
      `latency ${name}`,
      `p50 ${ms(l.p50)}, p99 ${ms(l.p99)}, p99.9 ${ms(l.p999)}, max ${
        ms(l.max)
      } (${l.received} of ${l.sent})`,
    ]),
    ["adaptor RSS", `${mib(start)} -> ${mib(peak)} at the flood's end`],
    ["SIGTERM", `${stopMs.toFixed(0)} ms, exit ${code}`],
  ]);
}

console.log(
  `attack figures (${new Date().toISOString()}, Deno ${Deno.version.deno}; adaptor args: ${
    extraArgs.join(" ") || "defaults"
  })`,
);
for (const scenario of chosen) {
  if (scenario === "topics") await topics();
  else if (scenario === "stalled-inbound" || scenario === "stalled-subscriber") await stalled(scenario);
  else if (scenario === "flapping") await flapping();
  else if (scenario === "handshake-flood") await handshakeFlood();
  else await multipart(scenario);
}
