/**
 * Debian's Prometheus in tests: finding `promtool` and `prometheus` (or why they are missing),
 * running promtool, starting a real server on loopback and asking its HTTP API.
 */

import { exitWithin, signalQuietly } from "./child.ts";
import { freePort, sleep } from "./net.ts";
import { ROOT } from "./process.ts";

/** The rules, their unit tests and the dashboard, as shipped. */
export const RULES = `${ROOT}scripts/prometheus/adaptor.rules.yml`;
export const RULES_TESTS = `${ROOT}scripts/prometheus/adaptor.rules.test.yml`;
export const DASHBOARD = `${ROOT}scripts/grafana/adaptor.dashboard.json`;

/** The path of `name` on PATH (or in /usr/bin), or undefined. */
export function which(name: string): string | undefined {
  for (const dir of [...(Deno.env.get("PATH") ?? "").split(":"), "/usr/bin"]) {
    if (!dir) continue;
    try {
      const info = Deno.statSync(`${dir}/${name}`);
      if (info.isFile && (info.mode ?? 0) & 0o111) return `${dir}/${name}`;
    } catch {
      // not there
    }
  }
  return undefined;
}

/** Why `name` (promtool, prometheus) cannot be used here, or undefined when it can. */
export function missing(name: string): string | undefined {
  return which(name) ? undefined : `${name} is not installed (Debian: apt-get install prometheus)`;
}

/** A test that is reported skipped, with the reason, where `skip` says so. */
export function testUnless(skip: string | undefined, name: string, fn: () => Promise<void> | void): void {
  if (skip) console.log(`${name}: skipped: ${skip}`);
  Deno.test({ name: skip ? `${name} (skipped: ${skip})` : name, ignore: skip !== undefined, fn });
}

/** Runs promtool with `args`; its exit code and output (stdout and stderr together). */
export async function promtool(...args: string[]): Promise<{ code: number; output: string }> {
  const { code, stdout, stderr } = await new Deno.Command(which("promtool")!, {
    args,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return { code, output: decoder.decode(stdout) + decoder.decode(stderr) };
}

/** A Prometheus server on 127.0.0.1 with its own storage directory; `stop()` removes it. */
export class PrometheusServer {
  readonly url: string;
  readonly #dir: string;
  readonly #child: Deno.ChildProcess;
  readonly #log: Promise<string>;

  /**
   * Starts `prometheus` scraping `target` (HOST:PORT) as job "adaptor" every `scrapeSeconds`,
   * evaluating `ruleFiles` as often.
   */
  constructor(target: string, options: { ruleFiles?: string[]; scrapeSeconds?: number } = {}) {
    const seconds = options.scrapeSeconds ?? 1;
    this.#dir = Deno.makeTempDirSync({ prefix: "adaptor-prometheus-" });
    const port = freePort();
    this.url = `http://127.0.0.1:${port}`;
    const config = [
      "global:",
      `  scrape_interval: ${seconds}s`,
      `  scrape_timeout: ${seconds}s`,
      `  evaluation_interval: ${seconds}s`,
      "rule_files:",
      ...(options.ruleFiles ?? []).map((file) => `  - ${JSON.stringify(file)}`),
      "scrape_configs:",
      "  - job_name: adaptor",
      "    static_configs:",
      `      - targets: [${JSON.stringify(target)}]`,
      "",
    ].join("\n");
    Deno.writeTextFileSync(`${this.#dir}/prometheus.yml`, config);
    this.#child = new Deno.Command(which("prometheus")!, {
      args: [
        `--config.file=${this.#dir}/prometheus.yml`,
        `--storage.tsdb.path=${this.#dir}/data`,
        `--web.listen-address=127.0.0.1:${port}`,
        "--log.level=warn",
      ],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    this.#log = new Response(this.#child.stderr).text();
  }

  /** Waits until the server answers /-/ready. */
  async ready(ms = 10_000): Promise<void> {
    const deadline = performance.now() + ms;
    for (;;) {
      const ok = await fetch(`${this.url}/-/ready`).then(async (r) => (await r.body?.cancel(), r.ok))
        .catch(() => false);
      if (ok) return;
      if (performance.now() > deadline) throw new Error(`prometheus not ready after ${ms} ms`);
      await sleep(100);
    }
  }

  /** GETs `path` of the HTTP API (e.g. `/api/v1/query?query=up`) and returns its `data`. */
  async api<T = unknown>(path: string): Promise<T> {
    const response = await fetch(`${this.url}${path}`);
    const body = await response.json();
    if (body.status !== "success") throw new Error(`${path}: ${JSON.stringify(body)}`);
    return body.data as T;
  }

  /** The instant vector of `query` now: each series' labels and value. */
  async query(query: string): Promise<{ metric: Record<string, string>; value: number }[]> {
    const data = await this.api<{ result: { metric: Record<string, string>; value: [number, string] }[] }>(
      `/api/v1/query?query=${encodeURIComponent(query)}`,
    );
    return data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
  }

  /** Asks `probe` every 250 ms until it returns a value; throws `what` after `ms`. */
  async until<T>(probe: () => Promise<T | undefined>, what: string, ms = 10_000): Promise<T> {
    const deadline = performance.now() + ms;
    for (;;) {
      const result = await probe();
      if (result !== undefined) return result;
      if (performance.now() > deadline) throw new Error(`timed out after ${ms} ms: ${what}`);
      await sleep(250);
    }
  }

  /** Stops the server (SIGTERM, then SIGKILL after 5 s), removes its storage; returns its log. */
  async stop(): Promise<string> {
    signalQuietly(this.#child, "SIGTERM");
    await exitWithin(this.#child, 5000);
    const log = await this.#log;
    Deno.removeSync(this.#dir, { recursive: true });
    return log;
  }
}
