/**
 * The adaptor as a real subprocess: spawn it, read its stderr line by line, wait for a line,
 * signal it, and collect its exit.
 */

import { fileURLToPath } from "node:url";
import { exitWithin, readLines, signalQuietly } from "./child.ts";

/** The repository root, for running `src/main.ts`. */
export const ROOT = fileURLToPath(new URL("../", import.meta.url));

/**
 * The flags `deno task start` runs `src/main.ts` with (permissions, V8 flags), read from
 * deno.json: tests, the soak and the bench run the adaptor exactly as operators do.
 */
export const RUN_FLAGS: readonly string[] = taskFlags("start");

/** The words of deno.json's task `name` between the subcommand and `src/main.ts`. */
export function taskFlags(name: string): string[] {
  const task = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`)).tasks[name] as string;
  const words = task.split(/\s+/);
  const end = words.indexOf("src/main.ts");
  if (words[0] !== "deno" || end < 2) {
    throw new Error(`deno.json: task ${name} should be 'deno SUBCOMMAND … src/main.ts'`);
  }
  return words.slice(2, end);
}

/** The command of the adaptor as `deno task start` runs it, under `ulimit -n limit` (soft and hard). */
export function underFileLimit(limit: number): string[] {
  return [
    "bash",
    "-c",
    `ulimit -n ${limit} && exec "$0" "$@"`,
    Deno.execPath(),
    "run",
    ...RUN_FLAGS,
    `${ROOT}src/main.ts`,
  ];
}

/** A running adaptor process. */
export class AdaptorProcess {
  readonly lines: string[] = [];
  readonly stdoutLines: string[] = [];
  readonly status: Promise<Deno.CommandStatus>;
  #child: Deno.ChildProcess;
  #waiters: { re: RegExp; resolve: (line: string) => void }[] = [];
  #pumps: Promise<void>[];

  constructor(
    args: readonly string[],
    options: { env?: Record<string, string>; command?: string[]; cwd?: string } = {},
  ) {
    const command = options.command ?? [Deno.execPath(), "run", ...RUN_FLAGS, `${ROOT}src/main.ts`];
    this.#child = new Deno.Command(command[0], {
      args: [...command.slice(1), ...args],
      cwd: options.cwd ?? ROOT,
      env: options.env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.status = this.#child.status;
    this.#pumps = [
      this.#pump(this.#child.stderr, this.lines),
      this.#pump(this.#child.stdout, this.stdoutLines),
    ];
  }

  get pid(): number {
    return this.#child.pid;
  }

  #pump(stream: ReadableStream<Uint8Array>, into: string[]): Promise<void> {
    return readLines(stream, (line) => {
      into.push(line);
      this.#waiters = this.#waiters.filter((w) => !(w.re.test(line) && (w.resolve(line), true)));
    });
  }

  /** Resolves with the first stderr line (past or future) matching `re`; rejects after `ms`. */
  waitFor(re: RegExp, ms = 10_000): Promise<string> {
    const seen = this.lines.find((l) => re.test(l));
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`no line matching ${re} within ${ms} ms; stderr:\n${this.lines.join("\n")}`));
      }, ms);
      this.#waiters.push({
        re,
        resolve: (line) => {
          clearTimeout(timer);
          resolve(line);
        },
      });
      this.status.then(async (status) => {
        clearTimeout(timer);
        await Promise.all(this.#pumps);
        const line = this.lines.find((l) => re.test(l));
        if (line !== undefined) resolve(line);
        else {
          const how = status.signal ? `killed by ${status.signal}` : `exit code ${status.code}`;
          reject(
            new Error(`exited (${how}) without a line matching ${re}; stderr:\n${this.lines.join("\n")}`),
          );
        }
      });
    });
  }

  /** Waits for the adaptor's ready line. */
  ready(ms = 15_000): Promise<string> {
    return this.waitFor(/ ready \(pid \d+\)/, ms);
  }

  kill(signal: Deno.Signal = "SIGTERM"): void {
    signalQuietly(this.#child, signal);
  }

  /** Sends `signal` and returns the exit status and how long the exit took, in ms. */
  async stop(signal: Deno.Signal = "SIGTERM"): Promise<{ status: Deno.CommandStatus; ms: number }> {
    const start = performance.now();
    this.kill(signal);
    const status = await this.status;
    const ms = performance.now() - start;
    await Promise.all(this.#pumps);
    return { status, ms };
  }

  /** Waits for the exit; kills with SIGKILL after `ms`. */
  async exit(ms = 15_000): Promise<Deno.CommandStatus> {
    const status = await exitWithin(this.#child, ms);
    await Promise.all(this.#pumps);
    return status;
  }
}

/** Runs the adaptor to its end (for bad input); returns code and output. */
export async function runAdaptor(
  args: readonly string[],
  options: { env?: Record<string, string>; timeoutMs?: number; command?: string[] } = {},
): Promise<{ code: number; stderr: string[]; stdout: string[] }> {
  const proc = new AdaptorProcess(args, options);
  const status = await proc.exit(options.timeoutMs ?? 15_000);
  return { code: status.code, stderr: proc.lines, stdout: proc.stdoutLines };
}
