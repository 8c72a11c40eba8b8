/**
 * A gateway worker stand-in as a separate process, whose memory a test can watch: pyzmq
 * (`worker_publisher.py`, an independent libzmq) when /usr/bin/python3 has it, else the same
 * publisher on the adaptor's libzmq (`worker_publisher.ts`).
 */

import { exitWithin } from "./child.ts";
import { fileURLToPath } from "node:url";

const here = (name: string) => fileURLToPath(new URL(name, import.meta.url));

/** Whether /usr/bin/python3 can import zmq. */
export function hasPyzmq(): boolean {
  try {
    const { success } = new Deno.Command("/usr/bin/python3", {
      args: ["-c", "import zmq"],
      stdout: "null",
      stderr: "null",
    }).outputSync();
    return success;
  } catch {
    return false;
  }
}

/** A running worker publisher. */
export class WorkerProcess {
  readonly kind: "pyzmq" | "deno";
  readonly #child: Deno.ChildProcess;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly started: Promise<void>;

  constructor(endpoint: string, name: string) {
    this.kind = hasPyzmq() ? "pyzmq" : "deno";
    const [command, args] = this.kind === "pyzmq"
      ? ["/usr/bin/python3", [here("worker_publisher.py"), endpoint, name]]
      : [Deno.execPath(), ["run", "--allow-all", here("worker_publisher.ts"), endpoint, name]];
    this.#child = new Deno.Command(command, { args, stdin: "piped", stdout: "piped", stderr: "inherit" })
      .spawn();
    this.#stdin = this.#child.stdin.getWriter();
    const child = this.#child;
    const kind = this.kind;
    // stdout is read to its end (never cancelled: a closed pipe would kill the worker).
    let seen = () => {};
    let failed = (_error: Error) => {};
    this.started = new Promise<void>((resolve, reject) => [seen, failed] = [resolve, reject]);
    (async () => {
      let text = "";
      for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
        if (text.length < 100) text += chunk;
        if (text.includes("publishing")) seen();
      }
      failed(new Error(`the ${kind} worker publisher exited before publishing`));
    })().catch(() => {});
  }

  get pid(): number {
    return this.#child.pid;
  }

  /** Resident memory in KiB (VmRSS), as the kernel counts it. */
  rssKiB(): number {
    return rssKiB(this.pid);
  }

  /** Closes its stdin (it exits), SIGKILL after 5 s. */
  async stop(): Promise<void> {
    await this.#stdin.close().catch(() => {});
    await exitWithin(this.#child, 5000);
  }
}

/** Resident memory of process `pid` in KiB. */
export function rssKiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(Deno.readTextFileSync(`/proc/${pid}/status`))![1]);
}
