/**
 * Reading the adaptor's metrics server as Prometheus would: fetch `/metrics`, parse the text
 * format into series, and fetch `/healthz`.
 */

import { sleep } from "./net.ts";

/** A scrape: the value of each series, keyed as written, e.g. `adaptor_publishers{channel="main"}`. */
export type Series = Map<string, number>;

/** Parses the text exposition format; checks that every sample follows its HELP and TYPE. */
export function parseExposition(text: string): Series {
  const series: Series = new Map();
  const described = new Set<string>();
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const meta = /^# (HELP|TYPE) (\w+) (.+)$/.exec(line);
    if (meta) {
      if (meta[1] === "TYPE") described.add(meta[2]);
      continue;
    }
    const sample = /^(\w+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!sample) throw new Error(`not a sample line: ${line}`);
    if (!described.has(sample[1])) throw new Error(`sample before its TYPE line: ${line}`);
    series.set(`${sample[1]}${sample[2] ?? ""}`, Number(sample[3]));
  }
  return series;
}

/** GETs `url`/metrics and parses it; throws unless it is a 200 in the text format. */
export async function scrape(url: string): Promise<Series> {
  const response = await fetch(`${url}/metrics`);
  const text = await response.text();
  if (response.status !== 200) throw new Error(`/metrics answered ${response.status}: ${text}`);
  if (!response.headers.get("content-type")?.startsWith("text/plain; version=0.0.4")) {
    throw new Error(`/metrics content-type ${response.headers.get("content-type")}`);
  }
  return parseExposition(text);
}

/** GETs `url`/healthz: its status and body. */
export async function health(url: string): Promise<{ status: number; body: string }> {
  const response = await fetch(`${url}/healthz`);
  return { status: response.status, body: await response.text() };
}

/**
 * Asks `/healthz` every 100 ms until it answers (a flood may hold the port for a while) with a
 * 200, `tries` times at most; returns the last answer (undefined if none came).
 */
export async function healthOnceServed(
  url: string,
  tries = 100,
): Promise<{ status: number; body: string } | undefined> {
  let answer: { status: number; body: string } | undefined;
  for (let i = 0; i < tries && answer?.status !== 200; i++) {
    answer = await health(url).catch(() => undefined);
    if (answer?.status !== 200) await sleep(100);
  }
  return answer;
}

/** One series' value (undefined when absent). */
export function value(series: Series, name: string, labels: Record<string, string> = {}): number | undefined {
  const entries = Object.entries(labels);
  const key = entries.length === 0 ? name : `${name}{${entries.map(([k, v]) => `${k}="${v}"`).join(",")}}`;
  return series.get(key);
}

/** Scrapes until `check` holds for a scrape; returns that scrape. Throws with the last after `ms`. */
export async function scrapeUntil(
  url: string,
  check: (series: Series) => boolean,
  what: string,
  ms = 10_000,
): Promise<Series> {
  const deadline = performance.now() + ms;
  for (;;) {
    const series = await scrape(url);
    if (check(series)) return series;
    if (performance.now() > deadline) {
      const shown = [...series].filter(([k]) => k.startsWith("adaptor_")).map(([k, v]) => `${k} ${v}`);
      throw new Error(`timed out after ${ms} ms: ${what}; last scrape:\n${shown.join("\n")}`);
    }
    await sleep(50);
  }
}
