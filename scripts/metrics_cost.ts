/**
 * Measures what `--metrics` costs the forwarding. A real adaptor process is flooded by a
 * second process (a few publishers on the XSUB, one subscriber reading everything from the
 * XPUB); this process compares the forwarded rate in rounds without scrapes and with a scrape
 * every 100 ms, and times the scrapes. Rates come from the adaptor's own counters (first and
 * last scrape of a round). First, idle, it measures the adaptor's CPU time per scrape.
 * A measurement for docs/operations.md, not a test:
 *
 *   deno run --allow-all scripts/metrics_cost.ts [seconds-per-round] [rounds] [publishers]
 */

import { freePort, ipcPath, sleep } from "../testing/net.ts";
import { Peers, syncUp } from "../testing/peers.ts";
import { AdaptorProcess } from "../testing/process.ts";
import { scrape, value } from "../testing/scrape.ts";

const PAYLOAD = new Uint8Array(200).fill(65);

/** The flooding process: `metrics_cost.ts flood XSUB XPUB PUBLISHERS`; runs until killed. */
async function flood(xsub: string, xpub: string, publisherCount: number): Promise<void> {
  const peers = new Peers();
  const subscriber = peers.subscriber(xpub);
  const publishers = Array.from({ length: publisherCount }, () => peers.publisher(xsub));
  await syncUp(publishers, [subscriber]);
  console.log("flooding");
  setInterval(() => subscriber.messages.length = 0, 100); // count nothing, keep memory flat
  await Promise.all(publishers.map(async (publisher) => {
    for (;;) {
      for (let i = 0; i < 500; i++) publisher.socket.trySend(PAYLOAD);
      await sleep(0);
    }
  }));
}

async function measure(seconds: number, rounds: number, publisherCount: number): Promise<void> {
  const xsub = `ipc://${ipcPath("xsub")}`;
  const xpub = `tcp://127.0.0.1:${freePort()}`;
  const address = `127.0.0.1:${freePort()}`;
  const url = `http://${address}`;
  const adaptor = new AdaptorProcess(["-b", xsub, "-p", xpub, "--metrics", address]);
  let flooder: Deno.ChildProcess | undefined;
  try {
    await adaptor.ready();
    // The adaptor's CPU per scrape, measured idle: its own counter over 500 scrapes.
    const cpu = async () => value(await scrape(url), "process_cpu_seconds_total")!;
    const cpuBefore = await cpu();
    for (let i = 0; i < 500; i++) await scrape(url);
    const perScrape = ((await cpu()) - cpuBefore) / 501;
    console.log(`adaptor CPU per scrape (idle, 500 scrapes): ${(perScrape * 1000).toFixed(2)} ms`);

    flooder = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", import.meta.filename!, "flood", xsub, xpub, String(publisherCount)],
      stdout: "null",
      stderr: "inherit",
    }).spawn();
    const forwarded = async () =>
      value(await scrape(url), "adaptor_messages_forwarded_total", { channel: "main" })!;
    while ((await forwarded()) < 100_000) await sleep(200); // started and warmed up
    console.log(`${publisherCount} publishers, 1 subscriber, 200-byte messages, ${seconds} s rounds`);
    const rates: Record<"without" | "with", number[]> = { without: [], with: [] };
    for (let round = 1; round <= rounds; round++) {
      for (const scraping of [false, true]) {
        const latencies: number[] = [];
        const before = await forwarded();
        const start = performance.now();
        const end = start + seconds * 1000;
        while (scraping && performance.now() < end) {
          const t = performance.now();
          await scrape(url);
          latencies.push(performance.now() - t);
          await sleep(100);
        }
        if (!scraping) await sleep(seconds * 1000);
        const rate = ((await forwarded()) - before) / ((performance.now() - start) / 1000);
        rates[scraping ? "with" : "without"].push(rate);
        latencies.sort((a, b) => a - b);
        const scrapes = latencies.length === 0 ? "" : ` (${latencies.length} scrapes, median ` +
          `${latencies[latencies.length >> 1].toFixed(1)} ms, max ${latencies.at(-1)!.toFixed(1)} ms)`;
        console.log(
          `round ${round} ${scraping ? "with   " : "without"} scrapes: ` +
            `${Math.round(rate).toLocaleString("en")} msg/s${scrapes}`,
        );
      }
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
    const [without, withScrapes] = [median(rates.without), median(rates.with)];
    console.log(
      `median without ${Math.round(without).toLocaleString("en")} msg/s, with ` +
        `${Math.round(withScrapes).toLocaleString("en")} msg/s ` +
        `(${((withScrapes / without - 1) * 100).toFixed(1)}%); load average ${Deno.loadavg().join(" ")}`,
    );
  } finally {
    flooder?.kill("SIGKILL");
    await flooder?.status;
    await adaptor.stop();
  }
}

if (import.meta.main) {
  if (Deno.args[0] === "flood") await flood(Deno.args[1], Deno.args[2], Number(Deno.args[3]));
  else await measure(Number(Deno.args[0] ?? 5), Number(Deno.args[1] ?? 3), Number(Deno.args[2] ?? 3));
}
