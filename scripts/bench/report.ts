/**
 * The benchmark's types, medians, and its two outputs: docs/benchmarks.md and an SVG bar chart
 * (written by hand, no dependency). Everything rendered comes from the run's measurements;
 * the only fixed text is the description of the method.
 */

/**
 * c: the C reference; adaptor: the adaptor as configured by default; c-npm: the C program on
 * the adaptor's libzmq (control); adaptor-tuned: the adaptor with libzmq's default write batch;
 * adaptor-forward: the adaptor with --subscriptions forward (an XPUB, as the C proxy's);
 * c-chain / adaptor-chain: two proxies in a row (edge → aggregator).
 */
export type VariantId =
  | "c"
  | "adaptor"
  | "c-npm"
  | "adaptor-tuned"
  | "adaptor-forward"
  | "c-chain"
  | "adaptor-chain";

/** How a variant runs: which program, one proxy or an edge → aggregator chain, I/O threads. */
export interface VariantSpec {
  readonly program: "c" | "c-npm" | "adaptor";
  readonly hops: 1 | 2;
  readonly ioThreads: number;
  /** The adaptor's --out-batch-size; undefined: its default. */
  readonly outBatchSize?: number;
  /** The adaptor's --subscriptions; undefined: its default. */
  readonly subscriptions?: "forward" | "local";
}

export interface Variant {
  readonly id: VariantId;
  readonly label: string;
  readonly short: string;
  readonly spec: VariantSpec;
}

export interface Scenario {
  readonly id: string;
  readonly kind: "traffic" | "idle" | "startup";
  readonly title: string;
  readonly size: number;
  readonly pubs: number;
  readonly subs: number;
  /** Flood runs: how long each publisher sends. */
  readonly floodMs?: number;
  /** Fixed-rate runs: total messages per second over all publishers, and for how long. */
  readonly rate?: number;
  readonly seconds?: number;
  /** Idle runs: how long after "ready" the measurement starts (the runtime settles first). */
  readonly settleSeconds?: number;
  /**
   * High-water mark of the load generator's own sockets (publishers' SNDHWM, subscribers'
   * RCVHWM) in fixed-rate runs: large, so that a message can only be lost in the proxy.
   */
  readonly loadHwm?: number;
  readonly rounds: number;
  /** Run in this order within each round. */
  readonly variants: readonly VariantId[];
  /** Ratio columns of the scenario's table: first ÷ second. */
  readonly compare: readonly (readonly [VariantId, VariantId])[];
}

/** A scenario where the two-hop chains run beside the single proxies. */
export const isChain = (sc: Scenario): boolean => sc.variants.includes("adaptor-chain");
/** A scenario with the I/O-thread tuning variant. */
export const isTuned = (sc: Scenario): boolean => sc.variants.includes("adaptor-tuned");

/** One run of one variant in one scenario; which fields are set depends on the scenario. */
export interface RunResult {
  scenario: string;
  variant: VariantId;
  round: number;
  error?: string;
  readyMs?: number;
  firstMs?: number;
  stopMs?: number;
  stopKilled?: boolean;
  sent?: number;
  pubMsgsPerS?: number;
  delivered?: number;
  expected?: number;
  lost?: number;
  lossPct?: number;
  outOfOrder?: number;
  endsMissing?: number;
  windowS?: number;
  msgsPerS?: number;
  mbPerS?: number;
  cpuS?: number;
  cpuPct?: number;
  cpuPerM?: number;
  pubCpuPct?: number;
  subCpuPct?: number;
  /** Machine CPU busy during the run minus the proxy's and the load's (the bench script, other work). */
  otherCpuPct?: number;
  /** Waiting for a quiet machine before the run, and the busy % of one CPU just before it. */
  quietWaitMs?: number;
  busyBeforePct?: number;
  /** Disturbed by other load and run again: kept in the per-run table, left out of the medians. */
  repeated?: boolean;
  hwmMiB?: number;
  rssMiB?: number;
  idleSeconds?: number;
  /** Idle runs: CPU µs per second of the proxy's threads, from schedstat (exact). */
  idleCpuUsPerS?: number;
  p50?: number;
  p90?: number;
  p99?: number;
  p999?: number;
  max?: number;
}

type Metric = Exclude<
  keyof RunResult,
  "scenario" | "variant" | "round" | "error" | "stopKilled"
>;

export interface Stat {
  median: number;
  min: number;
  max: number;
  n: number;
}

export interface Aggregate {
  scenario: string;
  variant: VariantId;
  ok: number;
  failed: number;
  stats: Partial<Record<Metric, Stat>>;
}

export interface Meta {
  date: string;
  totalSeconds: number;
  machine: { nproc: number; cpuModel: string; memGiB: number; kernel: string; os: string };
  deno: string;
  adaptorVersion: string;
  /** The flags of `deno task start` the adaptor ran with. */
  adaptorFlags: string;
  systemLibzmq: string;
  npmLibzmq: string;
  gcc: string;
  commit: string;
  srcDirty: boolean;
  controlNote?: string;
  options: Record<string, unknown>;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

export function aggregate(scenarios: readonly Scenario[], results: readonly RunResult[]): Aggregate[] {
  const out: Aggregate[] = [];
  for (const sc of scenarios) {
    for (const variant of sc.variants) {
      const runs = results.filter((r) => r.scenario === sc.id && r.variant === variant);
      const ok = runs.filter((r) => !r.error && !r.repeated);
      const stats: Partial<Record<Metric, Stat>> = {};
      const keys = new Set(ok.flatMap((r) => Object.keys(r))) as Set<keyof RunResult>;
      for (const key of keys) {
        const values = ok.map((r) => r[key]).filter((v): v is number =>
          typeof v === "number" && Number.isFinite(v)
        );
        if (values.length === 0 || key === "round") continue;
        stats[key as Metric] = {
          median: median(values),
          min: Math.min(...values),
          max: Math.max(...values),
          n: values.length,
        };
      }
      const failed = runs.filter((r) => r.error && !r.repeated).length;
      out.push({ scenario: sc.id, variant, ok: ok.length, failed, stats });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Number formatting

/** 3 significant digits with k/M suffixes: 812 k, 1.23 M, 45.6. */
export function compact(x: number): string {
  const abs = Math.abs(x);
  if (abs >= 1e6) return `${sig(x / 1e6)} M`;
  if (abs >= 1e4) return `${sig(x / 1e3)} k`;
  return sig(x);
}

/** An axis label: compact() without trailing decimal zeros (1.00 M → 1 M, 2.50 M → 2.5 M). */
function tick(x: number): string {
  return compact(x).replace(/(\.\d*?)0+(?= |$)/, "$1").replace(/\.(?= |$)/, "");
}

function sig(x: number): string {
  if (x === 0) return "0";
  const abs = Math.abs(x);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : abs >= 1 ? 2 : 3;
  return x.toFixed(digits);
}

const count = (x: number) => Math.round(x).toLocaleString("en-US");

interface Row {
  label: string;
  metric: Metric;
  format: (x: number) => string;
}

const TRAFFIC_ROWS: Row[] = [
  { label: "Delivered msg/s (sum over subscribers)", metric: "msgsPerS", format: compact },
  { label: "Delivered MB/s", metric: "mbPerS", format: sig },
  { label: "Publishers' send rate, msg/s (offered load)", metric: "pubMsgsPerS", format: compact },
  { label: "Messages sent × subscribers (expected)", metric: "expected", format: compact },
  { label: "Messages delivered", metric: "delivered", format: compact },
  { label: "Messages lost", metric: "lost", format: compact },
  { label: "Lost, % of expected", metric: "lossPct", format: (x) => x.toFixed(1) },
  { label: "Latency p50, µs", metric: "p50", format: sig },
  { label: "Latency p90, µs", metric: "p90", format: sig },
  { label: "Latency p99, µs", metric: "p99", format: sig },
  { label: "Latency p99.9, µs", metric: "p999", format: sig },
  { label: "Latency max, µs", metric: "max", format: sig },
  { label: "Proxy CPU s per million delivered", metric: "cpuPerM", format: sig },
  { label: "Proxy CPU, % of one core", metric: "cpuPct", format: sig },
  { label: "Publishers' CPU, % of one core (load generator)", metric: "pubCpuPct", format: sig },
  { label: "Subscribers' CPU, % of one core", metric: "subCpuPct", format: sig },
  { label: "Other CPU on the machine during the run, % of one core", metric: "otherCpuPct", format: sig },
  { label: "Proxy peak RSS (VmHWM), MiB", metric: "hwmMiB", format: sig },
  { label: "Exec → ready, ms", metric: "readyMs", format: sig },
];

const IDLE_ROWS: Row[] = [
  { label: "CPU, % of one core (ticks)", metric: "cpuPct", format: (x) => x.toFixed(2) },
  { label: "CPU, µs per second (schedstat)", metric: "idleCpuUsPerS", format: sig },
  { label: "CPU seconds in the window", metric: "cpuS", format: (x) => x.toFixed(2) },
  { label: "Other CPU on the machine meanwhile, % of one core", metric: "otherCpuPct", format: sig },
  { label: "RSS at the end (VmRSS), MiB", metric: "rssMiB", format: sig },
  { label: "Peak RSS (VmHWM), MiB", metric: "hwmMiB", format: sig },
  { label: "Exec → ready, ms", metric: "readyMs", format: sig },
];

const STARTUP_ROWS: Row[] = [
  { label: 'Exec → "ready" on stderr, ms', metric: "readyMs", format: sig },
  { label: "Exec → first message at the subscriber, ms", metric: "firstMs", format: sig },
  { label: "SIGTERM → exit, ms", metric: "stopMs", format: sig },
  { label: "Peak RSS (VmHWM), MiB", metric: "hwmMiB", format: sig },
];

function rowsOf(sc: Scenario): Row[] {
  return sc.kind === "traffic" ? TRAFFIC_ROWS : sc.kind === "idle" ? IDLE_ROWS : STARTUP_ROWS;
}

function find(aggs: readonly Aggregate[], scenario: string, variant: VariantId): Aggregate | undefined {
  return aggs.find((a) => a.scenario === scenario && a.variant === variant);
}

function cell(stat: Stat | undefined, format: (x: number) => string): string {
  if (!stat) return "–";
  if (stat.n === 1 || stat.min === stat.max) return format(stat.median);
  return `${format(stat.median)} <sub>(${format(stat.min)}–${format(stat.max)})</sub>`;
}

function ratio(a: Stat | undefined, b: Stat | undefined): string {
  if (!a || !b || b.median === 0) return "–";
  return `${(a.median / b.median).toFixed(2)}×`;
}

// ---------------------------------------------------------------------------------------------
// Markdown

export function renderMarkdown(
  meta: Meta,
  scenarios: readonly Scenario[],
  variants: readonly Variant[],
  aggs: readonly Aggregate[],
  results: readonly RunResult[],
): string {
  const v = (id: VariantId) => variants.find((x) => x.id === id)!;
  const hasControl = aggs.some((a) => a.variant === "c-npm" && a.ok > 0);
  const m = meta.machine;
  const o = meta.options as Record<string, number | boolean>;
  const s = o.settings as unknown as Record<string, number>;
  const lines: string[] = [];
  const p = (...xs: string[]) => lines.push(...xs);

  p(
    "# Benchmarks: the adaptor vs libzmq's own C proxy",
    "",
    "<!-- Generated by `deno task bench` (scripts/bench.ts). Do not edit by hand: re-run the bench. -->",
    "",
    `Measured on ${meta.date} by \`deno task bench\` in ${(meta.totalSeconds / 60).toFixed(1)} minutes. ` +
      "Every figure on this page comes from that run; run the bench again to replace it.",
    "",
    "## Machine and versions",
    "",
    `- CPU: ${m.cpuModel}, \`nproc\` = ${m.nproc}`,
    `- Memory: ${m.memGiB.toFixed(1)} GiB`,
    `- OS: ${m.os}, Linux ${m.kernel}`,
    `- Deno ${meta.deno}; adaptor \`--version\`: \`${meta.adaptorVersion}\``,
    `- libzmq: ${meta.systemLibzmq} (Debian's libzmq3-dev: C reference proxy, load generator, subscribers); ` +
      `${meta.npmLibzmq} (built into the zeromq npm addon, which the adaptor calls through FFI)`,
    `- gcc ${meta.gcc}, helpers built with -O2`,
    `- Adaptor source: commit ${meta.commit}` +
      (meta.srcDirty ? " **with uncommitted changes in src/ or deno.json at bench time**" : ""),
    "",
    "## Summary",
    "",
    `Medians of ${o.rounds} rounds per proxy (idle: ${
      scenarios.find((x) => x.kind === "idle")?.rounds ?? "–"
    }, start-up: ${o.startupRounds}); ratios are adaptor ÷ C reference ` +
      "(for msg/s higher is better, for CPU, latency and memory lower is better).",
    "",
    "![Delivered msg/s by message size, adaptor vs C](benchmarks.svg)",
    "",
  );

  // Summary table
  p(
    `| Scenario | ${
      v("c").short
    } msg/s | adaptor msg/s | ratio | lost % C / adaptor | CPU s/M C / adaptor | p99 µs C / adaptor |`,
    "|---|---:|---:|---:|---:|---:|---:|",
  );
  for (const sc of scenarios.filter((x) => x.kind === "traffic")) {
    const c = find(aggs, sc.id, "c")?.stats;
    const a = find(aggs, sc.id, "adaptor")?.stats;
    const pair = (k: Metric, f: (x: number) => string) =>
      `${c?.[k] ? f(c[k]!.median) : "–"} / ${a?.[k] ? f(a[k]!.median) : "–"}`;
    p(
      `| ${sc.title} | ${c?.msgsPerS ? compact(c.msgsPerS.median) : "–"} | ` +
        `${a?.msgsPerS ? compact(a.msgsPerS.median) : "–"} | ${ratio(a?.msgsPerS, c?.msgsPerS)} | ` +
        `${pair("lossPct", (x) => x.toFixed(1))} | ${pair("cpuPerM", sig)} | ${pair("p99", sig)} |`,
    );
  }
  const idleC = find(aggs, "idle", "c")?.stats;
  const idleA = find(aggs, "idle", "adaptor")?.stats;
  const upC = find(aggs, "startup", "c")?.stats;
  const upA = find(aggs, "startup", "adaptor")?.stats;
  p(
    "",
    `- Idle CPU: C ${idleC?.idleCpuUsPerS ? sig(idleC.idleCpuUsPerS.median) : "–"} µs per second, ` +
      `adaptor ${idleA?.idleCpuUsPerS ? sig(idleA.idleCpuUsPerS.median) : "–"} µs per second ` +
      `(${
        idleA?.idleCpuUsPerS ? (idleA.idleCpuUsPerS.median / 1e4).toFixed(4) : "–"
      } % of one core); idle RSS: C ${idleC?.rssMiB ? sig(idleC.rssMiB.median) : "–"} MiB, ` +
      `adaptor ${idleA?.rssMiB ? sig(idleA.rssMiB.median) : "–"} MiB.`,
    `- Exec → ready: C ${upC?.readyMs ? sig(upC.readyMs.median) : "–"} ms, adaptor ` +
      `${upA?.readyMs ? sig(upA.readyMs.median) : "–"} ms; exec → first message forwarded: C ` +
      `${upC?.firstMs ? sig(upC.firstMs.median) : "–"} ms, adaptor ${
        upA?.firstMs ? sig(upA.firstMs.median) : "–"
      } ms.`,
  );
  const failed = results.filter((r) => r.error);
  const q = o.quiet as unknown as { disturbedPct: number };
  const used = results.filter((r) => !r.repeated);
  const disturbed = used.filter((r) => (r.otherCpuPct ?? 0) > q.disturbedPct);
  const repeated = results.filter((r) => r.repeated);
  const waited = results.reduce((t, r) => t + (r.quietWaitMs ?? 0), 0);
  p(
    `- Runs: ${results.length}, failed: ${failed.length}${
      failed.length ? " (see the per-run table)" : ""
    }; ` +
      `repeated because of other load: ${repeated.length}; runs used for the medians during which other ` +
      `processes still used more than ${q.disturbedPct}% of a CPU: ${disturbed.length}; ` +
      `time spent waiting for a quiet machine: ${(waited / 1000).toFixed(0)} s.`,
    "",
  );

  p("### Reading the numbers (computed from this run)", "");
  for (const line of observations(scenarios, aggs, hasControl)) p(`- ${line}`);
  p("");

  p(...chainSection(scenarios, variants, aggs));
  p(...tuningSection(scenarios, variants, aggs, results, meta));

  // Per-scenario tables
  p("## Scenarios", "");
  const shown = (sc: Scenario) => sc.variants.filter((id) => id !== "c-npm" || hasControl);
  const twoHops: VariantId[] = ["adaptor-chain", "c-chain"];
  for (const sc of scenarios) {
    const ids = shown(sc);
    p(`### ${sc.title}`, "", describe(sc, meta), "");
    const stat = (id: VariantId, metric: Metric) => find(aggs, sc.id, id)?.stats[metric];
    // Single proxies in one table; the chains, with the single proxies they are compared to, in another.
    const tables = [ids.filter((id) => !twoHops.includes(id))];
    if (isChain(sc)) tables.push(["adaptor", "adaptor-chain", "c", "c-chain"]);
    for (const [t, cols] of tables.entries()) {
      const pairs = sc.compare.filter(([a, b]) =>
        cols.includes(a) && cols.includes(b) && (t === 0 || twoHops.includes(a))
      );
      const head = [
        t === 0 ? "Metric" : "Metric (two hops)",
        ...cols.map((id) => v(id).label),
        ...pairs.map(([a, b]) => `${v(a).short} ÷ ${v(b).short}`),
      ];
      if (t > 0) p("");
      p(`| ${head.join(" | ")} |`, `|---|${head.slice(1).map(() => "---:").join("|")}|`);
      for (const row of rowsOf(sc)) {
        const cells = [
          row.label,
          ...cols.map((id) => cell(stat(id, row.metric), row.format)),
          ...pairs.map(([a, b]) => ratio(stat(a, row.metric), stat(b, row.metric))),
        ];
        p(`| ${cells.join(" | ")} |`);
      }
    }
    const runsLine = ids.map((id) => {
      const a = find(aggs, sc.id, id);
      return `${v(id).short}: ${a?.ok ?? 0} ok${a?.failed ? `, ${a.failed} failed` : ""}`;
    }).join("; ");
    p("", `Median <sub>(min–max)</sub> over the rounds. Runs: ${runsLine}.`, "");
  }

  p(...method(meta, s, o, hasControl));

  // Per-run appendix
  p(
    "## Every run",
    "",
    "<details><summary>Per-run figures, in the order they ran</summary>",
    "",
    "| Scenario | Round | Proxy | msg/s | lost % | p50 µs | p99 µs | CPU s/M | CPU % | peak RSS MiB | ready ms | " +
      "first msg ms | other CPU % | waited for quiet, ms | note |",
    "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
  );
  const opt = (x: number | undefined, f: (x: number) => string) => (x === undefined ? "" : f(x));
  for (const r of results) {
    const note = r.error ? `FAILED: ${r.error.replaceAll("|", "/").slice(0, 200)}` : [
      r.outOfOrder ? `${r.outOfOrder} out of order` : "",
      r.endsMissing ? `${r.endsMissing} END missing` : "",
      r.stopKilled ? "needed SIGKILL" : "",
      r.repeated ? "disturbed by other load: repeated, not in the medians" : "",
    ].filter(Boolean).join(", ");
    p(
      `| ${r.scenario} | ${r.round} | ${v(r.variant).short} | ${opt(r.msgsPerS, count)} | ` +
        `${opt(r.lossPct, (x) => x.toFixed(1))} | ${opt(r.p50, sig)} | ${opt(r.p99, sig)} | ${
          opt(r.cpuPerM, sig)
        } | ` +
        `${opt(r.cpuPct, (x) => x.toFixed(1))} | ${opt(r.hwmMiB, sig)} | ${opt(r.readyMs, sig)} | ${
          opt(r.firstMs, sig)
        } | ${opt(r.otherCpuPct, (x) => x.toFixed(0))} | ${
          opt(r.quietWaitMs, (x) => x.toFixed(0))
        } | ${note} |`,
    );
  }
  p("", "</details>", "");
  return lines.join("\n");
}

/** Median of `a` minus median of `b`, signed, or "–". */
function added(a: Stat | undefined, b: Stat | undefined, format: (x: number) => string): string {
  if (!a || !b) return "–";
  const d = a.median - b.median;
  return `${d >= 0 ? "+" : "−"}${format(Math.abs(d))}`;
}

/** " (ranges overlap)" or " (ranges do not overlap)" for two min–max ranges; "" for single runs. */
function overlapNote(a: Stat | undefined, b: Stat | undefined): string {
  if (!a || !b || a.n < 2 || b.n < 2) return "";
  return a.min <= b.max && b.min <= a.max ? " (ranges overlap)" : " (ranges do not overlap)";
}

/**
 * "Two-hop chain": the chain's figures beside the single proxy's from the same rounds, and
 * what the second hop adds (difference of medians; for msg/s the ratio).
 */
function chainSection(
  scenarios: readonly Scenario[],
  variants: readonly Variant[],
  aggs: readonly Aggregate[],
): string[] {
  // The fixed rate (latency) first, then the flood (throughput).
  const chains = scenarios.filter((sc) => isChain(sc) && sc.kind === "traffic")
    .sort((x, y) => (x.rate ? 0 : 1) - (y.rate ? 0 : 1));
  if (chains.length === 0) return [];
  const v = (id: VariantId) => variants.find((x) => x.id === id)!;
  const out = [
    "## Two-hop chain: what one more hop costs",
    "",
    "Publishers → *edge* proxy (XSUB binds ipc, XPUB binds tcp) → *aggregator* proxy (its XSUB connects to the " +
    "edge's XPUB: `-b '>tcp://127.0.0.1:PORT'`; its XPUB binds tcp) → subscribers: the aggregation tier of " +
    "[deployment.md](deployment.md), both proxies on this machine. The chains ran in the same rounds as the single " +
    "proxy, alternating with it. *Added by the second hop* is the chain's median minus the single proxy's; " +
    "for msg/s it is the ratio two hops ÷ one hop. CPU and memory are the sum of both proxy processes.",
    "",
    `| Scenario, figure | ${v("adaptor").short}, one hop | ${
      v("adaptor-chain").short
    } | added by the second hop | ` +
    `${v("c").short}, one hop | ${v("c-chain").short} | added by the second hop |`,
    "|---|---:|---:|---:|---:|---:|---:|",
  ];
  const bullets: string[] = [];
  for (const sc of chains) {
    const st = (id: VariantId) => find(aggs, sc.id, id)?.stats;
    const [a1, a2, c1, c2] = [st("adaptor"), st("adaptor-chain"), st("c"), st("c-chain")];
    const short = sc.rate ? `${compact(sc.rate)} msg/s, ${sc.size} B` : `flood, ${sc.size} B`;
    const rows: Row[] = sc.rate
      ? [
        { label: "latency p50, µs", metric: "p50", format: sig },
        { label: "latency p99, µs", metric: "p99", format: sig },
        { label: "latency p99.9, µs", metric: "p999", format: sig },
        { label: "latency max, µs", metric: "max", format: sig },
        { label: "messages lost", metric: "lost", format: count },
        { label: "proxy CPU, % of one core", metric: "cpuPct", format: sig },
        { label: "proxy CPU s per million delivered", metric: "cpuPerM", format: sig },
        { label: "proxy peak RSS, MiB", metric: "hwmMiB", format: sig },
      ]
      : [
        { label: "delivered msg/s", metric: "msgsPerS", format: compact },
        { label: "lost, % of expected", metric: "lossPct", format: (x) => x.toFixed(1) },
        { label: "latency p50, µs", metric: "p50", format: sig },
        { label: "latency p99, µs", metric: "p99", format: sig },
        { label: "proxy CPU, % of one core", metric: "cpuPct", format: sig },
        { label: "proxy CPU s per million delivered", metric: "cpuPerM", format: sig },
        { label: "proxy peak RSS, MiB", metric: "hwmMiB", format: sig },
      ];
    for (const row of rows) {
      const diff = (two: Stat | undefined, one: Stat | undefined) =>
        row.metric === "msgsPerS" ? ratio(two, one) : added(two, one, row.format);
      const m = row.metric;
      out.push(
        `| ${short}: ${row.label} | ${cell(a1?.[m], row.format)} | ${cell(a2?.[m], row.format)} | ` +
          `${diff(a2?.[m], a1?.[m])} | ${cell(c1?.[m], row.format)} | ${cell(c2?.[m], row.format)} | ` +
          `${diff(c2?.[m], c1?.[m])} |`,
      );
    }
    if (sc.rate && a1?.p50 && a2?.p50 && a1.p99 && a2.p99 && a1.p999 && a2.p999) {
      const cPart = c1?.p50 && c2?.p50 && c1.p99 && c2.p99
        ? `; for the C proxy ${added(c2.p50, c1.p50, sig)} µs at p50 and ${
          added(c2.p99, c1.p99, sig)
        } µs at p99`
        : "";
      bullets.push(
        `At ${compact(sc.rate)} msg/s (${sc.size} B) one more adaptor hop added ${
          added(a2.p50, a1.p50, sig)
        } µs ` +
          `at p50${overlapNote(a2.p50, a1.p50)}, ${added(a2.p99, a1.p99, sig)} µs at p99` +
          `${overlapNote(a2.p99, a1.p99)} and ${added(a2.p999, a1.p999, sig)} µs at p99.9${cPart}. ` +
          `Lost: ${sig(a2.lost?.median ?? 0)} messages through the adaptor chain, ` +
          `${sig(c2?.lost?.median ?? 0)} through the C chain.`,
      );
      if (a1.cpuPct && a2.cpuPct) {
        bullets.push(
          `CPU at that rate: ${sig(a2.cpuPct.median)}% of one core for the two adaptors together vs ` +
            `${sig(a1.cpuPct.median)}% for one (C: ${sig(c2?.cpuPct?.median ?? NaN)}% vs ` +
            `${sig(c1?.cpuPct?.median ?? NaN)}%); memory ${sig(a2.hwmMiB?.median ?? NaN)} vs ` +
            `${sig(a1.hwmMiB?.median ?? NaN)} MiB (two Deno runtimes).`,
        );
      }
    }
    if (!sc.rate && a1?.msgsPerS && a2?.msgsPerS) {
      const cPart = c1?.msgsPerS && c2?.msgsPerS
        ? `; the C chain ${(c2.msgsPerS.median / c1.msgsPerS.median).toFixed(2)}× the C proxy's` +
          overlapNote(c2.msgsPerS, c1.msgsPerS)
        : "";
      bullets.push(
        `Flood (${sc.size} B): the adaptor chain delivered ${
          (a2.msgsPerS.median / a1.msgsPerS.median).toFixed(2)
        }× one adaptor's msg/s${overlapNote(a2.msgsPerS, a1.msgsPerS)}${cPart}. Both proxies of a chain, ` +
          "the publisher and the subscriber share this machine's CPUs, so the chain's flood figure is " +
          "bounded by CPU here, not by the network; on separate hosts each proxy would have its own CPUs.",
      );
    }
  }
  return [...out, "", ...bullets.map((b) => `- ${b}`), ""];
}

/**
 * "Tuning: what was tried" (issue 3): each tuning variant against the adaptor's default and
 * the C reference, in the same rounds; the verdict follows a stated rule, and the adaptor's
 * actual default is read from src/config/options.ts, so a disagreement would show.
 */
function tuningSection(
  scenarios: readonly Scenario[],
  variants: readonly Variant[],
  aggs: readonly Aggregate[],
  results: readonly RunResult[],
  meta: Meta,
): string[] {
  const tuned = scenarios.filter(isTuned);
  const v = (id: VariantId) => variants.find((x) => x.id === id)!;
  const kib = (bytes: number) => `${bytes / 1024} KiB`;
  const ours = Number(
    (meta.options.settings as { adaptorOutBatchSize?: number } | undefined)?.adaptorOutBatchSize,
  );
  const theirs = v("adaptor-tuned").spec.outBatchSize!;
  const out = [
    "## Tuning: what was tried",
    "",
    "Issue 3 asks for throughput ≥ 1.00× the C proxy in every scenario and ≥ 1.3× in the 8-subscriber " +
    "fan-out. Each change was measured as one more variant in the same rounds as the C reference (at " +
    "libzmq's defaults, as the C original ran) and the adaptor at its default. Earlier experiments (I/O " +
    "threads, V8 flags, memory) and their figures: [tuning.md](tuning.md).",
    "",
  ];
  if (tuned.length === 0) return [...out, "Not measured in this run (see --only).", ""];
  out.push(
    `### Write batches: ${kib(ours)} instead of libzmq's ${kib(theirs)}`,
    "",
    "libzmq's I/O thread encodes messages into a buffer of `ZMQ_OUT_BATCH_SIZE` bytes and writes it to the " +
      `connection in one \`send()\`: at ${kib(theirs)}, 124 messages of 64 B. The adaptor sets ` +
      `${kib(ours)} (\`--out-batch-size\`): fewer system calls per message, most of all when every message ` +
      "goes out to many subscribers. It does not delay anything: a batch holds what is already queued.",
    "",
    `| Scenario | ${v("c").short} msg/s | adaptor, ${kib(ours)} msg/s | adaptor, ${kib(theirs)} msg/s | ` +
      `${kib(ours)} ÷ ${kib(theirs)} (medians) | paired by round: median | rounds where ${
        kib(ours)
      } delivered more | ` +
      `${kib(ours)} ÷ C | ${kib(theirs)} ÷ C | p99 µs | CPU s/M | proxy CPU % |`,
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  );
  const gains: { sc: Scenario; gain: number; wins: number; rounds: number }[] = [];
  for (const sc of tuned) {
    const st = (id: VariantId) => find(aggs, sc.id, id)?.stats;
    const [c, big, small] = [st("c"), st("adaptor"), st("adaptor-tuned")];
    // Runs of the same round ran back to back: their ratio cancels slow changes in the other load.
    const used = results.filter((r) => r.scenario === sc.id && !r.error && !r.repeated && r.msgsPerS);
    const paired = [...new Set(used.map((r) => r.round))].flatMap((round) => {
      const x = used.find((r) => r.round === round && r.variant === "adaptor-tuned")?.msgsPerS;
      const y = used.find((r) => r.round === round && r.variant === "adaptor")?.msgsPerS;
      return x && y ? [y / x] : [];
    });
    const gain = paired.length ? median(paired) : NaN;
    const wins = paired.filter((x) => x > 1).length;
    if (paired.length) gains.push({ sc, gain, wins, rounds: paired.length });
    const pair = (k: Metric, f: (x: number) => string) =>
      `${big?.[k] ? f(big[k]!.median) : "–"} / ${small?.[k] ? f(small[k]!.median) : "–"}`;
    out.push(
      `| ${sc.title} | ${cell(c?.msgsPerS, compact)} | ${cell(big?.msgsPerS, compact)} | ` +
        `${cell(small?.msgsPerS, compact)} | ${ratio(big?.msgsPerS, small?.msgsPerS)} | ` +
        `${paired.length ? `${gain.toFixed(2)}×` : "–"} | ${
          paired.length ? `${wins} of ${paired.length}` : "–"
        } | ` +
        `${ratio(big?.msgsPerS, c?.msgsPerS)} | ${ratio(small?.msgsPerS, c?.msgsPerS)} | ${
          pair("p99", sig)
        } | ` +
        `${pair("cpuPerM", sig)} | ${pair("cpuPct", sig)} |`,
    );
  }
  out.push("", `(p99, CPU: ${kib(ours)} / ${kib(theirs)}.)`, "");
  const fanout = gains.find((g) => g.sc.subs > 1);
  const helps = fanout !== undefined && fanout.gain >= 1.1 && fanout.wins > fanout.rounds / 2;
  const hurts = gains.filter((g) => g.gain < 0.95);
  const rule =
    `Rule: keep ${kib(ours)} as the default only if it helps the fan-out clearly (per-round ratio ` +
    `≥ 1.10× at the median, more msg/s in most rounds) and hurts nothing (no scenario's median per-round ratio ` +
    "below 0.95×).";
  out.push(
    ...gains.map((g) =>
      `- ${g.sc.title}: with ${kib(ours)} batches the adaptor delivered ${
        (100 * g.gain).toFixed(0)
      }% of its ` +
      `msg/s with ${kib(theirs)} (median of the per-round ratios), more in ${g.wins} of ${g.rounds} rounds.`
    ),
    `- ${rule} This run says: **${
      helps && hurts.length === 0 ? `keep ${kib(ours)}` : `go back to ${kib(theirs)}`
    }**` +
      (helps && !hurts.length ? "." : ` (${
        [
          helps ? "" : "no clear gain in the fan-out",
          hurts.length ? `lower in ${hurts.map((g) => g.sc.id).join(", ")}` : "",
        ].filter(Boolean).join("; ")
      }).`),
    "",
  );
  // Issue 3's targets, as they stand in this run for the adaptor at its default.
  const main = scenarios.filter((sc) => sc.kind === "traffic" && !sc.rate);
  const below = main.map((sc) => ({
    sc,
    r: (find(aggs, sc.id, "adaptor")?.stats.msgsPerS?.median ?? NaN) /
      (find(aggs, sc.id, "c")?.stats.msgsPerS?.median ?? NaN),
  })).filter((x) => Number.isFinite(x.r));
  const fan = below.find((x) => x.sc.subs > 1);
  const spread = (sc: Scenario) =>
    overlapNote(find(aggs, sc.id, "adaptor")?.stats.msgsPerS, find(aggs, sc.id, "c")?.stats.msgsPerS)
      .replace(/^ \((.*)\)$/, "; $1");
  out.push(
    "### Where the targets stand in this run (adaptor at its default ÷ C reference, median msg/s)",
    "",
    ...below.map((x) =>
      `- ${x.sc.title}: ${x.r.toFixed(2)}× (target ${x.sc === fan?.sc ? "1.3" : "1.00"}×: ${
        x.r >= (x.sc === fan?.sc ? 1.3 : 1.0) ? "met" : "not met"
      } by the median${spread(x.sc)}).`
    ),
    "",
  );
  // CPU per message: at a fixed rate both proxies do the same work; in a flood they do not.
  const cpu = scenarios.filter((sc) => sc.kind === "traffic").map((sc) => {
    const [a, c] = [find(aggs, sc.id, "adaptor")?.stats.cpuPerM, find(aggs, sc.id, "c")?.stats.cpuPerM];
    return { sc, a, c, r: a && c ? a.median / c.median : NaN };
  }).filter((x) => Number.isFinite(x.r));
  if (cpu.length) {
    out.push(
      "CPU per million delivered messages (adaptor ÷ C reference, medians; target ≤ 1.05×). Fixed-rate " +
        "scenarios first: there both proxies do the same work.",
      "",
      ...[...cpu.filter((x) => x.sc.rate), ...cpu.filter((x) => !x.sc.rate)].map((x) =>
        `- ${x.sc.title}: ${x.r.toFixed(2)}× (${sig(x.a!.median)} vs ${sig(x.c!.median)} s; ${
          x.r <= 1.05 ? "met" : "not met"
        } by the median${overlapNote(x.a, x.c).replace(/^ \((.*)\)$/, "; $1")}).`
      ),
      "",
    );
  }
  return out;
}

function describe(sc: Scenario, meta: Meta): string {
  const rounds = `${sc.rounds} rounds, proxies alternating in the order ${
    sc.variants.join(", ")
  } within each round.`;
  if (sc.kind === "idle") {
    return `Proxy started with no peers; from ${sc.settleSeconds} s after "ready", CPU is read from /proc over ${sc.seconds} s. ${rounds}`;
  }
  if (sc.kind === "startup") {
    return "A subscriber and a publisher (one 64 B message per ms) are started first with a 1 ms reconnect " +
      "interval; then the proxy is exec'd. Times are from just before the spawn to the proxy's \"ready\" " +
      `line and to the subscriber's first message. ${rounds}`;
  }
  const load = sc.rate
    ? `${compact(sc.rate)} msg/s in total for ${sc.seconds} s (${compact(sc.rate * sc.seconds!)} messages)`
    : `each publisher floods for ${(sc.floodMs! / 1000).toFixed(1)} s`;
  void meta;
  const chain = isChain(sc)
    ? " The two-hop chains put a second proxy in between: the edge's XPUB binds tcp (127.0.0.1), the " +
      "aggregator's XSUB connects to it, and the subscribers connect to the aggregator's XPUB; their figures " +
      "are in a second table."
    : "";
  return `${sc.pubs} publisher${sc.pubs > 1 ? "s" : ""} → XSUB over ipc, XPUB → ${sc.subs} subscriber${
    sc.subs > 1 ? "s" : ""
  } over tcp (127.0.0.1), ${sc.size} B messages; ${load}. ${rounds}${chain}`;
}

/** Plain statements derived from the medians and ranges; nothing here is fixed in advance. */
function observations(
  scenarios: readonly Scenario[],
  aggs: readonly Aggregate[],
  hasControl: boolean,
): string[] {
  const out: string[] = [];
  const overlap = (a: Stat, b: Stat) => a.min <= b.max && b.min <= a.max;
  const noise = (a: Stat, b: Stat) =>
    a.n < 2 || b.n < 2 ? "" : overlap(a, b) ? " (ranges overlap)" : " (ranges do not overlap)";
  const pct = (a: Stat, b: Stat) => `${(100 * a.median / b.median).toFixed(0)}%`;
  for (const sc of scenarios.filter((x) => x.kind === "traffic")) {
    const c = find(aggs, sc.id, "c")?.stats;
    const a = find(aggs, sc.id, "adaptor")?.stats;
    const n = find(aggs, sc.id, "c-npm")?.stats;
    if (!c?.msgsPerS || !a?.msgsPerS) continue;
    const parts: string[] = [];
    if (sc.rate) {
      parts.push(
        `lost ${sig(c.lost?.median ?? 0)} (C) and ${sig(a.lost?.median ?? 0)} (adaptor) messages`,
        `latency p50 ${sig(c.p50!.median)} vs ${sig(a.p50!.median)} µs${noise(a.p50!, c.p50!)}`,
        `p99 ${sig(c.p99!.median)} vs ${sig(a.p99!.median)} µs${noise(a.p99!, c.p99!)}`,
        `max ${sig(c.max!.median)} vs ${sig(a.max!.median)} µs`,
      );
    } else {
      parts.push(
        `the adaptor delivered ${pct(a.msgsPerS, c.msgsPerS)} of the C reference's msg/s${
          noise(a.msgsPerS, c.msgsPerS)
        }`,
      );
      if (hasControl && n?.msgsPerS) {
        parts.push(
          `${pct(a.msgsPerS, n.msgsPerS)} of the C proxy's on the adaptor's own libzmq build${
            noise(a.msgsPerS, n.msgsPerS)
          }`,
        );
      }
      if (c.lossPct && a.lossPct) {
        parts.push(`loss ${c.lossPct.median.toFixed(1)}% (C) vs ${a.lossPct.median.toFixed(1)}% (adaptor)`);
      }
    }
    if (c.cpuPerM && a.cpuPerM) {
      parts.push(
        `proxy CPU per million messages ${
          (a.cpuPerM.median / c.cpuPerM.median).toFixed(2)
        }× the C reference's${noise(a.cpuPerM, c.cpuPerM)}`,
      );
    }
    out.push(`${sc.title}: ${parts.join("; ")}.`);
  }
  const f64 = find(aggs, "flood-64", "c")?.stats;
  if (f64?.pubMsgsPerS && f64.msgsPerS) {
    out.push(
      `Where flood losses come from: in the 64 B flood one C publisher offered ${
        compact(f64.pubMsgsPerS.median)
      } ` +
        `msg/s, ${
          (f64.pubMsgsPerS.median / f64.msgsPerS.median).toFixed(0)
        }× what the C proxy delivered, so most ` +
        "messages are dropped at the publisher's own PUB high-water mark, for both proxies alike.",
    );
  }
  const ic = find(aggs, "idle", "c")?.stats;
  const ia = find(aggs, "idle", "adaptor")?.stats;
  if (ic?.cpuPct && ia?.cpuPct && ic.rssMiB && ia.rssMiB) {
    out.push(
      `Idle: ${ia.idleCpuUsPerS ? sig(ia.idleCpuUsPerS.median) : "–"} µs of CPU per second (adaptor) vs ` +
        `${ic.idleCpuUsPerS ? sig(ic.idleCpuUsPerS.median) : "–"} (C); ` +
        `RSS ${sig(ia.rssMiB.median)} MiB vs ${
          sig(ic.rssMiB.median)
        } MiB (a Deno runtime with V8 vs a small C program).`,
    );
  }
  const uc = find(aggs, "startup", "c")?.stats;
  const ua = find(aggs, "startup", "adaptor")?.stats;
  if (uc?.readyMs && ua?.readyMs && uc.firstMs && ua.firstMs) {
    out.push(
      `Start-up: exec → ready ${sig(ua.readyMs.median)} ms (adaptor) vs ${sig(uc.readyMs.median)} ms (C); ` +
        `exec → first message forwarded ${sig(ua.firstMs.median)} vs ${sig(uc.firstMs.median)} ms ` +
        "(Deno start-up, module loading and loading the addon account for the difference).",
    );
  }
  return out;
}

function method(
  meta: Meta,
  s: Record<string, number>,
  o: Record<string, number | boolean>,
  hasControl: boolean,
): string[] {
  const q = o.quiet as unknown as {
    pct: number;
    maxMs: number;
    budgetMs: number;
    disturbedPct: number;
    retryBudgetMs: number;
  };
  return [
    "## Method",
    "",
    "**Proxies.** Each run starts a fresh proxy process and stops it with SIGTERM afterwards:",
    "",
    "- *C reference* — `scripts/bench/proxy.c`: `zmq_proxy(xsub, xpub, NULL)` in a C program linked " +
    `with the system libzmq ${meta.systemLibzmq}; XSUB binds the ipc endpoint, XPUB binds tcp://127.0.0.1:PORT.`,
    "- *adaptor* — `scripts/start.sh -b ipc://… -p tcp://127.0.0.1:PORT`, as the README runs it: " +
    `\`exec deno run \${meta.adaptorFlags} src/main.ts\` with \`DENO_NO_UPDATE_CHECK=1\`, the flags of \`deno task start\` ` +
    "(its forwarding loop is libzmq's `zmq_proxy_steerable`, running on a Deno blocking-pool thread).",
    "- *adaptor, 8 KiB batches* (tuning) — the same with `--out-batch-size 8192`, libzmq's default, in the " +
    "scenarios listed under *Tuning*.",
    "- *two hops* — the same program twice: an edge (XSUB binds the ipc endpoint, XPUB binds tcp://127.0.0.1:PORT1), " +
    "started first, then an aggregator whose XSUB connects to it (`>tcp://127.0.0.1:PORT1`, proxy.c takes the " +
    "adaptor's `>` syntax) and whose XPUB binds tcp://127.0.0.1:PORT2 for the subscribers.",
    hasControl
      ? `- *C on npm libzmq* (control) — the same proxy.c, but calling the libzmq ${meta.npmLibzmq} built into the ` +
        "zeromq npm addon that the adaptor uses (dlopen'ed; its unused Node-API imports are stubbed). It separates " +
        '"Deno/FFI vs C" from "one libzmq build vs another".'
      : `- The control variant (C proxy on the npm libzmq) did not run: ${meta.controlNote ?? "not built"}.`,
    "",
    `All proxies use the same socket options: SNDHWM ${s.sndhwm} and RCVHWM ${s.rcvhwm} on XSUB and XPUB (the ` +
    `adaptor's defaults), LINGER ${s.linger} ms, TCP keepalive idle ${s.tcpKeepalive} s. I/O threads: ` +
    `${s.cIoThreads} for the C proxy (libzmq's default, as in the C original), ${s.adaptorIoThreads} for the ` +
    "adaptor (its default). " +
    "Scenarios run one after the other; within a scenario the proxies alternate (in the order given under each " +
    `scenario, then again) for ${o.rounds} rounds (idle: ${
      Math.min(Number(o.rounds), 3)
    }, start-up: ${o.startupRounds}).`,
    "",
    "**Load.** `scripts/bench/pub.c` PUB-connects to the XSUB endpoint (ipc) and sends messages whose first 24 bytes " +
    "are a sequence number, the CLOCK_MONOTONIC send time in ns, the publisher's id and a kind (warm-up, data, end); " +
    "the rest is filler. `scripts/bench/sub.c` SUB-connects to the XPUB endpoint (tcp), subscribes to everything, " +
    "and counts. All processes run on this machine, so send and receive stamps share one clock.",
    "",
    "- *Subscriptions before measuring*: each publisher sends a warm-up message every millisecond until every " +
    "subscriber has written a ready file; a subscriber writes its file once it has received a warm-up message from " +
    "every publisher. So the measured messages start only when every subscription has reached every publisher " +
    "through the proxy. Warm-up messages are not counted.",
    `- *Flood*: publishers call zmq_send in a loop for ${
      (Number(o.floodMs) / 1000).toFixed(1)
    } s with libzmq's default ` +
    "SNDHWM (1000); a PUB socket never blocks: at its high-water mark it drops. Subscribers use the default RCVHWM " +
    "(1000). Whatever does not arrive is reported as lost, wherever it was dropped (mostly in the publisher's own " +
    "PUB queue when the proxy cannot keep up with a C publisher; also at the XPUB when a subscriber falls behind).",
    "- *Fixed rate*: the publisher sends at the scenario's rate against absolute deadlines (clock_nanosleep), so " +
    "after a late wake-up it sends the messages due back to back. Publisher and subscribers run with a SNDHWM/RCVHWM " +
    "of 1 000 000 here, so that such a burst cannot be dropped by the load generator itself: a message lost in a " +
    "fixed-rate run was dropped by the proxy (its XPUB, at the high-water mark it was given). At the high rates " +
    "(64 B at 1 M msg/s; 250 k msg/s to 8 subscribers) every proxy gets the same work, so their CPU per " +
    "message compares like for like; in a flood the publisher burns whatever CPU the proxy leaves it.",
    "- *End of a run*: each publisher then sends an END message (carrying how many data messages it sent) every " +
    "10 ms; a subscriber stops when it has an END from every publisher (or after 3 s of silence).",
    "",
    "**Figures.**",
    "",
    "- *msg/s*: data messages received by all subscribers ÷ (last receive − earliest send stamp among received " +
    "messages). For 8 subscribers this is the sum (each message counts once per subscriber). MB/s uses payload bytes.",
    "- *Lost*: messages sent × subscribers − messages received, from the publishers' counts and the sequence numbers.",
    "- *Latency*: receive time − send stamp of every received data message (nearest-rank percentiles). With several " +
    "subscribers the table shows the worst subscriber's value. Under flood this is mostly queueing time.",
    `- *CPU*: utime + stime of the proxy's process tree from /proc/PID/stat (CLK_TCK = 100, so 10 ms resolution), ` +
    "read after the proxy said ready and before the load starts, and again when all subscribers are done; so it " +
    "includes connection set-up and warm-up. Per million *delivered* messages.",
    "- *Peak RSS*: VmHWM from /proc/PID/status at the end of the run, summed over the process tree (for a chain, " +
    "over both proxies' trees; CPU likewise).",
    '- *Exec → ready*: from just before spawning the proxy to reading its line containing "ready" on stderr. ' +
    "The adaptor is started with `deno run` on a warm module cache (the bench runs `--version` first). For a " +
    "chain: from spawning the edge to the aggregator's ready line.",
    "",
    o.pin
      ? `**CPU placement.** Run with --pin: the proxy was pinned to one CPU and the publishers and subscribers to ` +
        "the others (taskset)."
      : "**CPU placement.** Nothing pinned: the proxy and the load processes share all CPUs (`--pin` separates them).",
    "",
    `**Other load.** Before each run the bench waits (at most ${q.maxMs / 1000} s per run, ${
      q.budgetMs / 1000
    } s ` +
    `in all) until the whole machine uses less than ${q.pct}% of one CPU over 250 ms. ` +
    "During each run it also records the machine's busy CPU (/proc/stat) " +
    "minus what the proxy, publishers and subscribers used: *other CPU* — the bench script itself, kernel time " +
    "charged to no process (softirq), and any other work on the machine. A run with more than " +
    `${q.disturbedPct}% other CPU is repeated once, while a retry budget of ${
      q.retryBudgetMs / 1000
    } s lasts; ` +
    "the disturbed attempt stays in the per-run table but is left out of the medians. No other run is discarded.",
    "",
    "**Caveats.** This machine has " + `${meta.machine.nproc}` +
    " CPUs; the proxy (a forwarding thread plus I/O threads; two of each for a chain), the publishers and the " +
    "subscribers all compete for them, so flood results measure the proxy " +
    "under CPU contention and vary between rounds — read the ranges, not only the medians. Nothing here asserts on " +
    "timing; the bench only reports.",
    "",
  ];
}

// ---------------------------------------------------------------------------------------------
// SVG

/** The chart shows the single-proxy variants at their defaults. */
const COLORS: Partial<Record<VariantId, string>> = { c: "#4e79a7", adaptor: "#f28e2b", "c-npm": "#9c9c9c" };

function esc(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll(
    '"',
    "&quot;",
  );
}

function niceStep(max: number, ticks: number): number {
  const raw = max / ticks;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  return (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 2.5 ? 2.5 : norm <= 5 ? 5 : 10) * mag;
}

/**
 * Delivered msg/s of the 1 → 1 flood runs, one panel per message size (each with its own
 * scale, so that 4 KiB stays readable), one bar per proxy (median), whiskers min–max.
 */
export function renderSvg(
  meta: Meta,
  scenarios: readonly Scenario[],
  variants: readonly Variant[],
  aggs: readonly Aggregate[],
): string {
  const groups = scenarios.filter((s) => s.kind === "traffic" && !s.rate && s.pubs === 1 && s.subs === 1);
  const ids = (["c", "adaptor", "c-npm"] as VariantId[]).filter((id) =>
    groups.some((g) => find(aggs, g.id, id)?.stats.msgsPerS)
  );
  const panels = Math.max(1, groups.length);
  const W = 780, panelTop = 70, plotH = 240, axisW = 52, gap = 16, side = 12;
  const panelW = (W - 2 * side - gap * (panels - 1)) / panels;
  const legendTop = panelTop + plotH + 58;
  const H = legendTop + 18 * ids.length + 10;
  const out: string[] = [];
  const e = (line: string) => out.push(line);
  e(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" ` +
      `font-family="Helvetica, Arial, sans-serif" font-size="12">`,
  );
  e(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  e(
    `<text x="${W / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">` +
      `Delivered msg/s by message size (1 publisher → 1 subscriber, flood)</text>`,
  );
  e(
    `<text x="${W / 2}" y="44" text-anchor="middle" fill="#555">` +
      esc(
        `median of ${meta.options.rounds} rounds (whiskers: min–max); each panel has its own scale; ` +
          `${meta.machine.nproc} CPUs; ${meta.date}`,
      ) + `</text>`,
  );
  groups.forEach((g, gi) => {
    const x0 = side + gi * (panelW + gap);
    const plotX = x0 + axisW;
    const plotW = panelW - axisW;
    const maxValue = Math.max(1, ...ids.map((id) => find(aggs, g.id, id)?.stats.msgsPerS?.max ?? 0));
    const step = niceStep(maxValue, 4);
    const yMax = Math.ceil((maxValue * 1.08) / step) * step;
    const y = (value: number) => panelTop + plotH - (value / yMax) * plotH;
    for (let v = 0; v <= yMax + step / 2; v += step) {
      const yy = y(v).toFixed(1);
      e(`<line x1="${plotX}" y1="${yy}" x2="${(plotX + plotW).toFixed(1)}" y2="${yy}" stroke="#e3e3e3"/>`);
      e(
        `<text x="${plotX - 6}" y="${yy}" text-anchor="end" dominant-baseline="middle" fill="#333" ` +
          `font-size="11">${esc(tick(v))}</text>`,
      );
    }
    e(
      `<line x1="${plotX}" y1="${panelTop + plotH}" x2="${(plotX + plotW).toFixed(1)}" ` +
        `y2="${panelTop + plotH}" stroke="#333"/>`,
    );
    const barW = Math.min(60, (plotW * 0.8) / Math.max(1, ids.length));
    const bx0 = plotX + (plotW - barW * ids.length) / 2;
    ids.forEach((id, vi) => {
      const stat = find(aggs, g.id, id)?.stats.msgsPerS;
      if (!stat) return;
      const x = bx0 + vi * barW;
      const yy = y(stat.median);
      const mid = (x + barW / 2).toFixed(1);
      e(
        `<rect x="${(x + 3).toFixed(1)}" y="${yy.toFixed(1)}" width="${(barW - 6).toFixed(1)}" ` +
          `height="${(panelTop + plotH - yy).toFixed(1)}" fill="${COLORS[id]}"/>`,
      );
      if (stat.n > 1) {
        const y1 = y(stat.min).toFixed(1), y2 = y(stat.max).toFixed(1);
        const l = (x + barW / 2 - 5).toFixed(1), r = (x + barW / 2 + 5).toFixed(1);
        e(`<line x1="${mid}" y1="${y1}" x2="${mid}" y2="${y2}" stroke="#222"/>`);
        e(`<line x1="${l}" y1="${y1}" x2="${r}" y2="${y1}" stroke="#222"/>`);
        e(`<line x1="${l}" y1="${y2}" x2="${r}" y2="${y2}" stroke="#222"/>`);
      }
      e(
        `<text x="${mid}" y="${(Math.min(yy, y(stat.max)) - 5).toFixed(1)}" text-anchor="middle" ` +
          `font-size="11">${esc(compact(stat.median))}</text>`,
      );
    });
    const cx = (plotX + plotW / 2).toFixed(1);
    const sizeLabel = g.size >= 1024 ? `${g.size / 1024} KiB` : `${g.size} B`;
    e(`<text x="${cx}" y="${
      panelTop + plotH + 20
    }" text-anchor="middle" font-weight="bold">${sizeLabel}</text>`);
    const c = find(aggs, g.id, "c")?.stats.msgsPerS;
    const a = find(aggs, g.id, "adaptor")?.stats.msgsPerS;
    if (c && a) {
      e(
        `<text x="${cx}" y="${panelTop + plotH + 36}" text-anchor="middle" fill="#555">` +
          `adaptor ÷ C = ${(a.median / c.median).toFixed(2)}×</text>`,
      );
    }
  });
  ids.forEach((id, i) => {
    const ly = legendTop + 18 * i;
    const label = variants.find((v) => v.id === id)!.label;
    e(`<rect x="${side + axisW}" y="${ly - 10}" width="12" height="12" fill="${COLORS[id]}"/>`);
    e(`<text x="${side + axisW + 18}" y="${ly}" fill="#333">${esc(label)}</text>`);
  });
  e(`</svg>`);
  return out.join("\n") + "\n";
}
