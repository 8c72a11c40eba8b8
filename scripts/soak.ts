/**
 * Soak test: the adaptor as a subprocess under steady load for a long time, with subscribers
 * and publishers coming and going, watched from outside.
 *
 *   deno task soak                       # 10 minutes at 50 000 messages/s
 *   deno task soak --duration 90s        # the same, short
 *
 * Load: `--publishers` in-process FFI publishers (gateway workers) share `--rate` messages a
 * second, paced by a token bucket on a 5 ms tick; they wait rather than drop, so every
 * message sent is accounted for. `--subscribers` subscribers that keep up (no queue limit on
 * their side) check every publisher's sequence numbers: a gap is a loss. Churn: every second
 * `--churn` new subscribers connect with topics of their own and those older than 3 s leave;
 * every 5 s a short-lived publisher connects, sends and leaves.
 *
 * The adaptor runs with `--sndhwm 100000` (2 s of traffic) by default: the load generator and
 * the subscribers share the machine's cores with it, and with the default 10 000 (0.2 s) a
 * scheduling hiccup of this process is already a drop for a subscriber "not keeping up".
 *
 * Routine requests meanwhile: `/metrics` is scraped every `--scrape-ms` (100 ms); the XPUB is a
 * CURVE server with an allow-list (`--plain`: plaintext, as before), so the subscribers and every
 * churn subscriber are admitted CURVE handshakes, and `--denials` clients a second (20) with keys
 * not on the list are denied ones.
 *
 * `--bursts N` first measures N scrapes back to back and then N CURVE denials as fast as they
 * go, sampling RSS before, after each and after `--settle` (65 s: the adaptor's malloc_trim runs
 * once a minute); `--duration 0` then stops there.
 *
 * Verdict (exit 0 or 1): zero loss on the subscribers that keep up; adaptor RSS at the end
 * within 5 % of RSS at the baseline (minute 1, or half the run if shorter); no file-descriptor
 * growth between those two points. Both points are measured with load and churn paused, churn
 * peers closed and the subscribers caught up, so that they compare like with like. Prints a line every 10 s and the figures at the
 * end (record them in docs/reliability.md).
 */

import { parseArgs } from "node:util";
import { keygen, type KeygenResult } from "../src/security/cert.ts";
import { freePort } from "../testing/net.ts";
import { AdaptorProcess } from "../testing/process.ts";
import { parseExposition, value } from "../testing/scrape.ts";
import {
  ZMQ_LINGER,
  ZMQ_PUB,
  ZMQ_RCVHWM,
  ZMQ_RECONNECT_IVL,
  ZMQ_SNDHWM,
  ZMQ_SUB,
  ZMQ_SUBSCRIBE,
} from "../src/zmq/constants.ts";
import { Context, type Socket } from "../src/zmq/socket.ts";

const ZMQ_XPUB_NODROP = 69;
const TOPIC = "usage.";
const SYNC = "sync|";
const CHURN_PUBLISHER = 0xffff;
const TICK_MS = 5;

const { values: flags } = parseArgs({
  args: Deno.args[0] === "--" ? Deno.args.slice(1) : Deno.args,
  options: {
    duration: { type: "string", default: "10m" },
    rate: { type: "string", default: "50000" },
    publishers: { type: "string", default: "4" },
    subscribers: { type: "string", default: "2" },
    churn: { type: "string", default: "5" },
    payload: { type: "string", default: "200" },
    sndhwm: { type: "string", default: "100000" },
    "scrape-ms": { type: "string", default: "100" },
    denials: { type: "string", default: "20" },
    plain: { type: "boolean", default: false },
    bursts: { type: "string", default: "0" },
    settle: { type: "string", default: "65s" },
  },
});

/** "10m", "90s", "1h" or plain seconds, in ms. */
function durationMs(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(s|m|h)?$/.exec(text.trim());
  if (!match) throw new Error(`--duration '${text}': expected e.g. 10m, 90s`);
  return Number(match[1]) * { s: 1000, m: 60_000, h: 3_600_000 }[match[2] as "s" | "m" | "h" ?? "s"];
}

const DURATION = durationMs(flags.duration!);
const RATE = Number(flags.rate);
const PUBLISHERS = Number(flags.publishers);
const SUBSCRIBERS = Number(flags.subscribers);
const CHURN = Number(flags.churn);
const PAYLOAD = Math.max(TOPIC.length + 6, Number(flags.payload));
const BASELINE_AT = Math.min(60_000, DURATION / 2);
const SCRAPE_MS = Number(flags["scrape-ms"]);
const DENIALS = Number(flags.denials);
const CURVE = !flags.plain;
const BURSTS = Number(flags.bursts);
const SETTLE = durationMs(flags.settle!);

let start = performance.now();
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const encoder = new TextEncoder();

// ---- the adaptor, and how it is doing --------------------------------------------------

const bind = `ipc:///tmp/adaptor-soak-${Deno.pid}`;
const publish = `tcp://127.0.0.1:${freePort()}`;
const metricsUrl = `http://127.0.0.1:${freePort()}`;

// CURVE: the adaptor's certificate, one admitted client key (every subscriber's) and a stranger's.
const keyDir = Deno.makeTempDirSync({ prefix: "adaptor-soak-keys-" });
Deno.mkdirSync(`${keyDir}/clients`);
const serverKeys = keygen(`${keyDir}/server`);
const secretOf = (pair: KeygenResult) =>
  /secret-key = "(.{40})"/.exec(Deno.readTextFileSync(pair.secretPath))![1];
const clientOf = (pair: KeygenResult) => ({
  serverKey: serverKeys.publicKey,
  publicKey: pair.publicKey,
  secretKey: secretOf(pair),
});
const tracker = keygen(`${keyDir}/tracker`);
Deno.copyFileSync(tracker.publicPath, `${keyDir}/clients/tracker`);
const admitted = clientOf(tracker);
const stranger = clientOf(keygen(`${keyDir}/stranger`));

const adaptor = new AdaptorProcess([
  ...["-b", bind, "-p", publish, "--sndhwm", flags.sndhwm!, "--metrics", metricsUrl.slice("http://".length)],
  ...(CURVE ? ["--curve-cert", serverKeys.secretPath, "--curve-clients", `${keyDir}/clients`] : []),
]);
await adaptor.ready();

interface Sample {
  readonly t: number;
  readonly rssKiB: number;
  /** Anonymous memory (heaps, queues) and file-backed pages (the deno binary's code, touched as used). */
  readonly anonKiB: number;
  readonly fileKiB: number;
  readonly fds: number;
  readonly cpuSeconds: number;
}

function sample(t: number): Sample {
  const status = Deno.readTextFileSync(`/proc/${adaptor.pid}/status`);
  const kib = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)![1]);
  const [rssKiB, anonKiB, fileKiB] = [kib("VmRSS"), kib("RssAnon"), kib("RssFile")];
  const fds = [...Deno.readDirSync(`/proc/${adaptor.pid}/fd`)].length;
  const stat = Deno.readTextFileSync(`/proc/${adaptor.pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]); // utime + stime
  return { t, rssKiB, anonKiB, fileKiB, fds, cpuSeconds: ticks / 100 };
}

// ---- peers -------------------------------------------------------------------------------

const ctx = new Context();
const open = (type: number): Socket => {
  const socket = ctx.socket(type);
  socket.setInt(ZMQ_LINGER, 0);
  return socket;
};

/** A paced publisher: message i is TOPIC + u16 publisher + u32 sequence + padding. */
class Publisher {
  readonly socket = open(ZMQ_PUB);
  readonly message = new Uint8Array(PAYLOAD);
  readonly view = new DataView(this.message.buffer);
  seq = 0;
  blocked = 0;

  constructor(readonly id: number) {
    this.socket.setInt(ZMQ_XPUB_NODROP, 1);
    this.socket.setInt(ZMQ_SNDHWM, 10_000);
    this.socket.connect(bind);
    this.message.set(encoder.encode(TOPIC));
    this.message.fill(120, TOPIC.length + 6);
    this.view.setUint16(TOPIC.length, id, true);
  }

  /** Sends up to `n` messages; returns how many went (fewer when its pipe is full). */
  send(n: number): number {
    for (let i = 0; i < n; i++) {
      this.view.setUint32(TOPIC.length + 2, this.seq, true);
      if (!this.socket.trySend(this.message)) {
        this.blocked++;
        return i;
      }
      this.seq++;
    }
    return n;
  }
}

/** A subscriber that keeps up: no queue limit, drained every tick, sequences checked. */
class Subscriber {
  readonly socket = open(ZMQ_SUB);
  readonly buffer = new Uint8Array(65_536);
  readonly view = new DataView(this.buffer.buffer);
  readonly next = new Map<number, number>();
  readonly synced = new Set<number>();
  received = 0;
  churnReceived = 0;
  gaps = 0;
  lost = 0;
  /** When gaps were seen (s since start) and how many messages each lost; the first 20. */
  readonly gapLog: string[] = [];

  constructor() {
    this.socket.setInt(ZMQ_RCVHWM, 0);
    if (CURVE) this.socket.curveClient(admitted);
    this.socket.setBytes(ZMQ_SUBSCRIBE, TOPIC);
    this.socket.setBytes(ZMQ_SUBSCRIBE, SYNC);
    this.socket.connect(publish);
  }

  drain(): void {
    let n: number;
    while ((n = this.socket.tryReceiveInto(this.buffer)) >= 0) {
      if (this.buffer[0] === 115 /* s */) {
        this.synced.add(this.buffer[SYNC.length]);
        continue;
      }
      if (n < TOPIC.length + 6) continue;
      const id = this.view.getUint16(TOPIC.length, true);
      if (id === CHURN_PUBLISHER) {
        this.churnReceived++;
        continue;
      }
      const seq = this.view.getUint32(TOPIC.length + 2, true);
      const expected = this.next.get(id) ?? 0;
      if (seq !== expected) {
        this.gaps++;
        this.lost += seq - expected;
        if (this.gapLog.length < 20) {
          this.gapLog.push(`${((performance.now() - start) / 1000).toFixed(1)}s:${seq - expected}`);
        }
      }
      this.next.set(id, seq + 1);
      this.received++;
    }
  }
}

const publishers = Array.from({ length: PUBLISHERS }, (_, i) => new Publisher(i));
const subscribers = Array.from({ length: SUBSCRIBERS }, () => new Subscriber());

// Sync: until every subscriber has a sync message from every publisher, every subscription
// has reached every publisher, and sequence 0 will not be lost to the slow-joiner effect.
for (const deadline = performance.now() + 15_000;;) {
  subscribers.forEach((s) => s.drain());
  if (subscribers.every((s) => publishers.every((p) => s.synced.has(p.id)))) break;
  if (performance.now() > deadline) throw new Error("soak: peers did not sync");
  publishers.forEach((p) => p.socket.trySend(new Uint8Array([...encoder.encode(SYNC), p.id])));
  await sleep(50);
}
await sleep(100);
subscribers.forEach((s) => s.drain());

// ---- routine requests: scrapes and CURVE handshakes ---------------------------------------------

const scrapeMs: number[] = [];
let scrapeFailures = 0;
let lastScrape = "";

/** One GET /metrics; its time is kept, a failure counted. */
async function scrapeOnce(): Promise<void> {
  const t0 = performance.now();
  try {
    const response = await fetch(`${metricsUrl}/metrics`);
    lastScrape = await response.text();
    if (response.status !== 200) scrapeFailures++;
  } catch {
    scrapeFailures++;
  }
  scrapeMs.push(performance.now() - t0);
}

/** Decisions the adaptor counted, from a fresh scrape. */
async function authCounts(): Promise<{ allowed: number; denied: number }> {
  await scrapeOnce();
  const series = parseExposition(lastScrape);
  return {
    allowed: value(series, "adaptor_auth_allowed_total", { socket: "XPUB" }) ?? 0,
    denied: value(series, "adaptor_auth_denied_total", { socket: "XPUB" }) ?? 0,
  };
}

/** A client with a key not on the list: denied at each handshake, retried every `retryMs`. */
function strangerSocket(retryMs: number): Socket {
  const socket = open(ZMQ_SUB);
  socket.setInt(ZMQ_RECONNECT_IVL, retryMs);
  socket.curveClient(stranger);
  socket.connect(publish);
  return socket;
}

const pctl = (values: number[], p: number) =>
  values.length
    ? [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(values.length * p))]
    : 0;

if (BURSTS > 0) {
  const mib = (s: Sample) => `${(s.rssKiB / 1024).toFixed(1)} MiB (anon ${(s.anonKiB / 1024).toFixed(1)})`;
  const t = () => performance.now() - start;
  await sleep(1500);
  const before = sample(t());
  const t0 = performance.now();
  for (let i = 0; i < BURSTS; i++) await scrapeOnce();
  const scrapeS = (performance.now() - t0) / 1000;
  const scrapeFigures =
    `p50 ${pctl(scrapeMs, 0.5).toFixed(2)} ms, p99 ${pctl(scrapeMs, 0.99).toFixed(2)} ms, ` +
    `${scrapeFailures} failed`;
  await sleep(1500);
  const afterScrapes = sample(t());
  let denialS = 0;
  let denied = 0;
  if (CURVE) {
    // A denied client does not try again: new ones, 100 at a time, each batch closed once denied.
    const first = (await authCounts()).denied;
    const t1 = performance.now();
    for (const deadline = t1 + 600_000; denied < BURSTS && performance.now() < deadline;) {
      const batch = Array.from({ length: Math.min(100, BURSTS - denied) }, () => strangerSocket(60_000));
      for (const until = performance.now() + 2000; performance.now() < until;) {
        await sleep(20);
        const now = (await authCounts()).denied - first;
        if (now >= denied + batch.length) break;
      }
      denied = (await authCounts()).denied - first;
      batch.forEach((socket) => socket.close());
    }
    denialS = (performance.now() - t1) / 1000;
  }
  await sleep(1500);
  const afterDenials = sample(t());
  await sleep(SETTLE);
  const settled = sample(t());
  const grew = (s: Sample) => `${((s.rssKiB - before.rssKiB) / 1024).toFixed(1)} MiB`;
  console.log(
    `
bursts (${new Date().toISOString()}, Deno ${Deno.version.deno})
  before                 ${mib(before)}
  ${`${BURSTS} scrapes`.padEnd(22)} in ${scrapeS.toFixed(1)} s (${scrapeFigures}): ${mib(afterScrapes)}, ` +
      `${grew(afterScrapes)}
  ${`${denied} CURVE denials`.padEnd(22)} in ${denialS.toFixed(1)} s: ${mib(afterDenials)}, ${
        grew(afterDenials)
      }
  ${`after ${SETTLE / 1000} s idle`.padEnd(22)} ${mib(settled)}, ${grew(settled)}`,
  );
  scrapeMs.length = 0;
  scrapeFailures = 0;
}

if (DURATION === 0) {
  const stopped = await adaptor.stop();
  console.log(`  SIGTERM: exit ${stopped.status.code} in ${stopped.ms.toFixed(0)} ms`);
  Deno.removeSync(keyDir, { recursive: true });
  Deno.exit(stopped.status.code === 0 && stopped.ms < 2000 ? 0 : 1);
}

// ---- churn -------------------------------------------------------------------------------

let churnPaused = false;
let churnSubscribersOpened = 0;
let strangersOpened = 0;
let churnPublishersOpened = 0;
const churning: { socket: Socket; at: number }[] = [];
let churnSeq = 0;

function churnTick(now: number): void {
  while (churning.length > 0 && (churnPaused || now - churning[0].at > 3000)) {
    churning.shift()!.socket.close();
  }
  if (churnPaused) return;
  for (let i = 0; i < CHURN; i++) {
    const socket = open(ZMQ_SUB);
    const n = churnSeq++;
    // Topics of their own only: one that took live traffic without reading would hold up to
    // --sndhwm messages in the adaptor, and RSS would measure how many happened to be alive.
    if (CURVE) socket.curveClient(admitted);
    socket.setBytes(ZMQ_SUBSCRIBE, `churn.${n}.`);
    socket.setBytes(ZMQ_SUBSCRIBE, `churn.shared.`);
    socket.connect(publish);
    churning.push({ socket, at: now });
    churnSubscribersOpened++;
  }
  // Denied handshakes: one each (a retry only after they left).
  for (let i = 0; CURVE && i < DENIALS; i++) {
    churning.push({ socket: strangerSocket(60_000), at: now });
    strangersOpened++;
  }
}

async function churnPublisher(): Promise<void> {
  if (churnPaused) return;
  churnPublishersOpened++;
  const p = new Publisher(CHURN_PUBLISHER);
  await sleep(200);
  p.send(100);
  await sleep(200);
  p.socket.close();
}

// ---- the run -----------------------------------------------------------------------------

let scraping = SCRAPE_MS > 0;
const scraper = (async () => {
  for (let next = performance.now(); scraping; next += SCRAPE_MS) {
    await sleep(Math.max(0, next - performance.now()));
    await scrapeOnce();
  }
})();

console.log(
  `soak: ${DURATION / 1000} s at ${RATE} msg/s (${PUBLISHERS} publishers, ${PAYLOAD}-byte messages), ` +
    `${SUBSCRIBERS} subscribers, churn ${CHURN} subscribers/s; adaptor --sndhwm ${flags.sndhwm}, pid ${adaptor.pid}`,
);
start = performance.now();
let sent = 0;
const samples: Sample[] = [];
let lastReport = 0;
let lastChurn = 0;
let lastChurnPublisher = 0;
let measuring = false;
let sending = true;
/** Time spent with the load paused for quiescent samples; the token bucket skips it. */
let pausedMs = 0;
let paused = false;

/**
 * Pauses the load and the churn, closes the churn peers, lets the subscribers catch up (so
 * that no queue holds messages) and the adaptor see the peers go, then samples. RSS then
 * measures what the adaptor keeps, not what happens to be in flight.
 */
async function quiescentSample(t: number): Promise<Sample> {
  measuring = true;
  churnPaused = true;
  const pausedAt = performance.now();
  paused = true;
  churnTick(pausedAt);
  for (const deadline = pausedAt + 10_000; performance.now() < deadline;) {
    if (subscribers.every((s) => s.received + s.lost >= sent)) break;
    await sleep(20);
  }
  await sleep(1500);
  const s = sample(t);
  pausedMs += performance.now() - pausedAt;
  paused = false;
  churnPaused = false;
  measuring = false;
  return s;
}

const loop = setInterval(() => {
  const now = performance.now();
  const elapsed = now - start;
  // Token bucket: what should have gone by now, capped so a stall does not become a burst.
  const sendingFor = Math.min(elapsed, DURATION) - pausedMs;
  let due = sending && !paused ? Math.min(Math.floor((sendingFor * RATE) / 1000) - sent, RATE / 10) : 0;
  for (let i = 0; due > 0 && i < PUBLISHERS * 2; i++) {
    const p = publishers[(sent + i) % PUBLISHERS];
    const n = p.send(Math.ceil(due / PUBLISHERS));
    sent += n;
    due -= n;
  }
  for (const s of subscribers) s.drain();
  if (!measuring && now - lastChurn >= 1000) {
    lastChurn = now;
    churnTick(now);
  }
  if (!measuring && now - lastChurnPublisher >= 5000) {
    lastChurnPublisher = now;
    churnPublisher();
  }
  if (elapsed - lastReport >= 10_000 && elapsed < DURATION) {
    lastReport = elapsed;
    const s = sample(elapsed);
    samples.push(s);
    const recv = subscribers.map((x) => x.received).join("/");
    console.log(
      `t=${(elapsed / 1000).toFixed(0)}s sent=${sent} (${((sent / elapsed) * 1000).toFixed(0)}/s) ` +
        `received=${recv} lost=${subscribers.map((x) => x.lost).join("/")} ` +
        `rss=${(s.rssKiB / 1024).toFixed(1)}MiB (anon ${(s.anonKiB / 1024).toFixed(1)}) fds=${s.fds} cpu=${
          s.cpuSeconds.toFixed(1)
        }s ` +
        `churn=${churnSubscribersOpened}+${churnPublishersOpened}`,
    );
  }
}, TICK_MS);

await sleep(BASELINE_AT);
const baseline = await quiescentSample(performance.now() - start);
const baselinePauseMs = pausedMs;
console.log(
  `baseline at ${(baseline.t / 1000).toFixed(0)}s: rss=${baseline.rssKiB} KiB ` +
    `(anon ${baseline.anonKiB}, file ${baseline.fileKiB}) fds=${baseline.fds}`,
);
await sleep(Math.max(0, DURATION - (performance.now() - start)));

// The end: stop sending, let the subscribers catch up, then measure with churn stopped.
sending = false;
const expected = sent;
for (const deadline = performance.now() + 10_000; performance.now() < deadline;) {
  if (subscribers.every((s) => s.received + s.lost >= expected)) break;
  await sleep(50);
}
churnPaused = true;
const end = await quiescentSample(performance.now() - start);
clearInterval(loop);
for (const s of subscribers) s.drain();
const elapsedS = (performance.now() - start) / 1000;

scraping = false;
await scraper;
const auth = await authCounts();
const stopped = await adaptor.stop();
const { status } = stopped;
Deno.removeSync(keyDir, { recursive: true });
for (const { socket } of churning) socket.close();
publishers.forEach((p) => p.socket.close());
subscribers.forEach((s) => s.socket.close());
await ctx.terminate();

// ---- figures and verdict -------------------------------------------------------------------

const rssChange = (end.rssKiB - baseline.rssKiB) / baseline.rssKiB;
const pct = (from: number, to: number) => `${(((to - from) / from) * 100).toFixed(2)} %`;
const cpuPercent = ((end.cpuSeconds - baseline.cpuSeconds) / ((end.t - baseline.t) / 1000)) * 100;
const totals = adaptor.lines.find((l) => l.includes("main channel totals"));
const warnings = adaptor.lines.filter((l) => l.includes("[WRN]")).length;
const problems: string[] = [];
for (const [i, s] of subscribers.entries()) {
  const missing = expected - s.received;
  if (missing !== 0 || s.gaps !== 0) {
    problems.push(`subscriber ${i}: ${missing} of ${expected} missing (${s.gaps} gaps)`);
  }
}
if (Math.abs(rssChange) > 0.05) problems.push(`RSS changed ${(rssChange * 100).toFixed(1)} % (limit 5 %)`);
if (end.fds > baseline.fds) problems.push(`file descriptors grew from ${baseline.fds} to ${end.fds}`);
if (status.code !== 0) problems.push(`adaptor exit code ${status.code}`);
if (stopped.ms >= 2000) problems.push(`SIGTERM took ${stopped.ms.toFixed(0)} ms`);
if (scrapeFailures > 0) problems.push(`${scrapeFailures} scrapes failed`);
const gapLogs = subscribers.map((s, i) =>
  s.gapLog.length ? `\n  gaps of subscriber ${i}      ${s.gapLog.join(" ")}` : ""
)
  .join("");

console.log(
  `
soak figures (${new Date().toISOString()}, Deno ${Deno.version.deno})
  duration               ${elapsedS.toFixed(0)} s
  messages sent          ${expected} (${
    (expected / ((DURATION - baselinePauseMs) / 1000)).toFixed(0)
  } msg/s, target ${RATE}; load paused ${(baselinePauseMs / 1000).toFixed(1)} s for the baseline sample; ` +
    `publisher waits ${publishers.reduce((n, p) => n + p.blocked, 0)})
  received per subscriber ${subscribers.map((s) => s.received).join(", ")} (lost ${
      subscribers.map((s) => s.lost).join(", ")
    }, gaps ${subscribers.map((s) => s.gaps).join(", ")})
  churn                  ${churnSubscribersOpened} subscribers and ${churnPublishersOpened} publishers came and went
  scrapes                ${scrapeMs.length} every ${SCRAPE_MS} ms (p50 ${
      pctl(scrapeMs, 0.5).toFixed(2)
    } ms, p99 ${pctl(scrapeMs, 0.99).toFixed(2)} ms, max ${
      Math.max(0, ...scrapeMs).toFixed(1)
    } ms, ${scrapeFailures} failed)
  CURVE handshakes       ${
      CURVE
        ? `${auth.allowed} admitted, ${auth.denied} denied (${strangersOpened} strangers, ${DENIALS}/s)`
        : "none (--plain)"
    }
  SIGTERM                exit ${status.code} in ${stopped.ms.toFixed(0)} ms
  adaptor RSS            ${baseline.rssKiB} KiB at ${
      (baseline.t / 1000).toFixed(0)
    } s -> ${end.rssKiB} KiB at end ` +
    `(${(rssChange * 100).toFixed(2)} %); max ${Math.max(...samples.map((s) => s.rssKiB))} KiB
  adaptor RSS split      anonymous (heaps, queues) ${baseline.anonKiB} -> ${end.anonKiB} KiB (${
      pct(baseline.anonKiB, end.anonKiB)
    }), file-backed (code pages) ${baseline.fileKiB} -> ${end.fileKiB} KiB (${
      pct(baseline.fileKiB, end.fileKiB)
    })
  adaptor fds            ${baseline.fds} -> ${end.fds} (quiescent); during churn ${
      Math.min(...samples.map((s) => s.fds))
    }..${Math.max(...samples.map((s) => s.fds))}
  adaptor CPU            ${cpuPercent.toFixed(1)} % of one core (baseline to end)
  adaptor warnings       ${warnings} log lines
  ${totals?.replace(/^.*adaptor: /, "") ?? "(no totals line)"}${gapLogs}
verdict: ${problems.length === 0 ? "PASS" : "FAIL: " + problems.join("; ")}`,
);
Deno.exit(problems.length === 0 ? 0 : 1);
