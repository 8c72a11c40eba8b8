/**
 * Processes for the benchmark: spawning with line-by-line output, and what /proc says about
 * a process tree (CPU ticks, peak and current resident memory).
 */

import { readLines, signalQuietly } from "./child.ts";
import { sleep } from "./net.ts";

/** Clock ticks per second of /proc/PID/stat times (sysconf(_SC_CLK_TCK); 100 on Linux). */
export const CLK_TCK = 100;

/** A spawned process whose stdout and stderr are read line by line. */
export class Proc {
  readonly child: Deno.ChildProcess;
  readonly pid: number;
  readonly name: string;
  readonly stdout: string[] = [];
  readonly stderr: string[] = [];
  /** performance.now() just before the spawn. */
  readonly spawnedAt: number;
  #waiters: { stream: "stdout" | "stderr"; test: (line: string) => boolean; resolve: (t: number) => void }[] =
    [];
  #times = { stdout: [] as number[], stderr: [] as number[] };
  #exited = false;
  readonly status: Promise<Deno.CommandStatus>;
  readonly drained: Promise<void>;

  constructor(
    name: string,
    command: string,
    args: string[],
    options: { cwd?: string; env?: Record<string, string> } = {},
  ) {
    this.name = name;
    this.spawnedAt = performance.now();
    this.child = new Deno.Command(command, {
      args,
      cwd: options.cwd,
      env: options.env,
      clearEnv: options.env !== undefined,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.pid = this.child.pid;
    this.status = this.child.status.then((s) => {
      this.#exited = true;
      return s;
    });
    this.drained = Promise.all([
      this.#read(this.child.stdout, "stdout"),
      this.#read(this.child.stderr, "stderr"),
    ]).then(() => {});
  }

  get exited(): boolean {
    return this.#exited;
  }

  #read(stream: ReadableStream<Uint8Array>, which: "stdout" | "stderr"): Promise<void> {
    return readLines(stream, (line) => {
      const now = performance.now();
      this[which].push(line);
      this.#times[which].push(now);
      this.#waiters = this.#waiters.filter((w) => {
        if (w.stream !== which || !w.test(line)) return true;
        w.resolve(now);
        return false;
      });
    });
  }

  /**
   * Resolves with performance.now() at the moment a line of `stream` matching `pattern` was
   * read (earlier lines count too); rejects after `timeoutMs` or when the process exits first.
   */
  waitLine(stream: "stdout" | "stderr", pattern: RegExp, timeoutMs: number): Promise<number> {
    const seen = this[stream].findIndex((l) => pattern.test(l));
    if (seen >= 0) return Promise.resolve(this.#times[stream][seen]);
    return new Promise<number>((resolve, reject) => {
      const waiter = {
        stream,
        test: (line: string) => pattern.test(line),
        resolve: (t: number) => {
          clearTimeout(timer);
          resolve(t);
        },
      };
      this.#waiters.push(waiter);
      const fail = (why: string) => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        clearTimeout(timer);
        reject(new Error(`${this.name}: ${why} waiting for ${pattern}; stderr: ${this.tail()}`));
      };
      const timer = setTimeout(() => fail(`timeout after ${timeoutMs} ms`), timeoutMs);
      this.drained.then(() => {
        if (this.#waiters.includes(waiter)) fail("output ended");
      });
    });
  }

  /** The last lines of stderr, for error messages. */
  tail(lines = 5): string {
    return this.stderr.slice(-lines).join(" | ") || "(empty)";
  }

  signal(signal: Deno.Signal): void {
    if (!this.#exited) signalQuietly(this.child, signal);
  }

  /** SIGTERM, then SIGKILL after `graceMs`. Resolves with the time from SIGTERM to exit. */
  async stop(graceMs = 5000): Promise<{ ms: number; killed: boolean; code: number }> {
    const start = performance.now();
    this.signal("SIGTERM");
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<"late">((resolve) => timer = setTimeout(() => resolve("late"), graceMs));
    const first = await Promise.race([this.status, late]);
    clearTimeout(timer);
    let killed = false;
    if (first === "late") {
      killed = true;
      this.signal("SIGKILL");
    }
    const status = await this.status;
    await this.drained;
    return { ms: performance.now() - start, killed, code: status.code };
  }

  /** Waits for the exit (SIGKILL after `timeoutMs`) and the end of its output. */
  async wait(timeoutMs: number): Promise<Deno.CommandStatus> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<"late">((resolve) => timer = setTimeout(() => resolve("late"), timeoutMs));
    const first = await Promise.race([this.status, late]);
    clearTimeout(timer);
    if (first === "late") this.signal("SIGKILL");
    const status = await this.status;
    await this.drained;
    return status;
  }
}

/** The pid and all its descendants (threads are not processes: their time is in the pid's). */
export function processTree(pid: number): number[] {
  const all = [pid];
  for (let i = 0; i < all.length; i++) {
    let tasks: string[] = [];
    try {
      tasks = [...Deno.readDirSync(`/proc/${all[i]}/task`)].map((e) => e.name);
    } catch {
      continue;
    }
    for (const tid of tasks) {
      try {
        const text = Deno.readTextFileSync(`/proc/${all[i]}/task/${tid}/children`).trim();
        if (text !== "") all.push(...text.split(/\s+/).map(Number));
      } catch {
        // thread ended meanwhile
      }
    }
  }
  return all;
}

/** utime + stime of one process (all its threads), in clock ticks; 0 when gone. */
function cpuTicksOf(pid: number): number {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // Fields after "(comm)": state is field 3, so utime (14) and stime (15) are at 11 and 12.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}

/**
 * CPU time in nanoseconds used so far by the live threads of the process tree of `pid`
 * (/proc/PID/task/TID/schedstat): exact where ticks (10 ms) round an idle process to zero.
 */
export function cpuNs(pid: number): number {
  let total = 0;
  for (const p of processTree(pid)) {
    let tasks: string[] = [];
    try {
      tasks = [...Deno.readDirSync(`/proc/${p}/task`)].map((e) => e.name);
    } catch {
      continue;
    }
    for (const tid of tasks) {
      try {
        total += Number(Deno.readTextFileSync(`/proc/${p}/task/${tid}/schedstat`).split(" ")[0]);
      } catch {
        // the thread ended
      }
    }
  }
  return total;
}

/** CPU ticks (user + system) used so far by the process tree of `pid`. */
export function cpuTicks(pid: number): number {
  return processTree(pid).reduce((sum, p) => sum + cpuTicksOf(p), 0);
}

function statusKb(pid: number, field: string): number {
  try {
    const text = Deno.readTextFileSync(`/proc/${pid}/status`);
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text);
    return match ? Number(match[1]) : 0;
  } catch {
    return 0;
  }
}

/** Peak resident set (VmHWM) summed over the process tree, in KiB. */
export function peakRssKb(pid: number): number {
  return processTree(pid).reduce((sum, p) => sum + statusKb(p, "VmHWM"), 0);
}

/** Current resident set (VmRSS) summed over the process tree, in KiB. */
export function rssKb(pid: number): number {
  return processTree(pid).reduce((sum, p) => sum + statusKb(p, "VmRSS"), 0);
}

/** Runs a command to its end; returns its exit code and output. Never throws for a missing program. */
export async function run(
  command: string,
  args: string[],
  options: { cwd?: string } = {},
): Promise<{ ok: boolean; code: number; stdout: string; stderr: string; missing?: boolean }> {
  try {
    const out = await new Deno.Command(command, { args, cwd: options.cwd, stdin: "null" }).output();
    const dec = new TextDecoder();
    return {
      ok: out.success,
      code: out.code,
      stdout: dec.decode(out.stdout),
      stderr: dec.decode(out.stderr),
    };
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      return { ok: false, code: -1, stdout: "", stderr: `${command}: not found`, missing: true };
    }
    throw error;
  }
}

/** Busy CPU ticks of the whole machine so far (all CPUs; /proc/stat "cpu" line, idle and iowait excluded). */
export function machineBusyTicks(): number {
  const line = Deno.readTextFileSync("/proc/stat").split("\n")[0];
  const [user, nice, system, _idle, _iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(
    Number,
  );
  return user + nice + system + irq + softirq + (steal ?? 0);
}

/**
 * Waits until the machine looks quiet: less than `maxPct` % of one CPU busy over a 250 ms
 * sample, for at most `maxWaitMs`. Returns how long it waited and the last sample.
 */
export async function waitQuiet(
  maxPct: number,
  maxWaitMs: number,
): Promise<{ waitedMs: number; busyPct: number }> {
  const start = performance.now();
  for (;;) {
    const b0 = machineBusyTicks();
    const t0 = performance.now();
    await sleep(250);
    const busyPct = (100 * (machineBusyTicks() - b0)) / CLK_TCK / ((performance.now() - t0) / 1000);
    const waitedMs = performance.now() - start;
    if (busyPct < maxPct || waitedMs >= maxWaitMs) return { waitedMs, busyPct };
  }
}
