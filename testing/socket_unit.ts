/**
 * A socket unit for tests (testing/socket_unit.py): a listening socket that outlives each
 * adaptor started on it, handed over as systemd hands it (LISTEN_PID, LISTEN_FDS, descriptor 3).
 */

import { ROOT } from "./process.ts";
import { readLines } from "./child.ts";

export class SocketUnit {
  readonly control: string;
  readonly #child: Deno.ChildProcess;
  readonly listening: Promise<void>;

  /**
   * Listens on `endpoint` (`ipc:///path` or `tcp://ip:port`; several: comma-separated, passed in
   * that order) until `close`. `dropAll`: the sockets come with a filter that drops every packet,
   * as an adaptor killed at its connection cap leaves them.
   */
  constructor(readonly endpoint: string, options: { dropAll?: boolean } = {}) {
    this.control = `/tmp/adaptor-socket-unit-${crypto.randomUUID().slice(0, 8)}.ctl`;
    this.#child = new Deno.Command("/usr/bin/python3", {
      args: [
        `${ROOT}testing/socket_unit.py`,
        "serve",
        endpoint,
        this.control,
        ...(options.dropAll ? ["--drop-all"] : []),
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const listening = Promise.withResolvers<void>();
    this.listening = listening.promise;
    readLines(this.#child.stdout, (line) => line === "listening" && listening.resolve())
      .finally(() => listening.reject(new Error(`socket_unit.py did not listen on ${endpoint}`)));
  }

  /** The command prefix that starts a service with the socket, e.g. before `deno run …`. */
  service(command: string[]): string[] {
    return ["/usr/bin/python3", `${ROOT}testing/socket_unit.py`, "exec", this.control, "--", ...command];
  }

  async close(): Promise<void> {
    await this.#child.stdin.close().catch(() => {});
    await this.#child.status;
  }
}
