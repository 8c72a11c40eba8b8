/**
 * The gateway's real publisher for tests and benches: testing/czmq3_publisher.py, a worker set up
 * as api-gateway-zmq-logger on CZMQ 3 sets it up (SNDHWM 1000, drops in silence), on pyzmq.
 */

import { ROOT } from "./process.ts";
import { until } from "./net.ts";

/** The gateway's real publisher's settings (CZMQ 3: SNDHWM 1000, drops in silence), on pyzmq. */
export class Czmq3Publisher {
  readonly #child: Deno.ChildProcess;
  readonly #lines: string[] = [];
  readonly #pump: Promise<void>;
  constructor(endpoint: string, rate: number) {
    this.#child = new Deno.Command("/usr/bin/python3", {
      args: [`${ROOT}testing/czmq3_publisher.py`, endpoint, "ev", String(rate)],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const stdout = this.#child.stdout;
    this.#pump = (async () => {
      for await (const chunk of stdout.pipeThrough(new TextDecoderStream())) {
        this.#lines.push(...chunk.split("\n").filter(Boolean));
      }
    })();
  }
  /** Stops publishing; resolves with how many events it published (seq 0 … n−1). */
  async stop(): Promise<number> {
    await this.#child.stdin.close().catch(() => {});
    await this.#child.status;
    await this.#pump;
    const n = /published (\d+)/.exec(this.#lines.join("\n"))?.[1];
    if (n === undefined) throw new Error(`the publisher said: ${this.#lines.join(" | ")}`);
    return Number(n);
  }
  /**
   * Stops publishing and counts, from the first event `texts` holds on, the sequence numbers it
   * is missing once the last one has arrived (or 5 s have passed).
   */
  async stopAndCount(texts: () => string[]): Promise<{ published: number; lost: number[] }> {
    const last = await this.stop();
    const seqs = () => new Set(texts().map((t) => Number(t.split(".")[1])));
    await until(() => seqs().has(last - 1), "the last event", 5000).catch(() => {});
    const got = seqs();
    const first = Math.min(...got);
    const lost = Array.from({ length: last - first }, (_, i) => first + i).filter((n) => !got.has(n));
    return { published: last - first, lost };
  }

  kill(): void {
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // gone
    }
  }
}

/** Whether python3-zmq is installed (the publisher needs it). */
export const hasPyzmq = (() => {
  try {
    return new Deno.Command("/usr/bin/python3", { args: ["-c", "import zmq"] }).outputSync().success;
  } catch {
    return false;
  }
})();
