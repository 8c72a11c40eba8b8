/**
 * A real nginx for end-to-end tests: Debian's nginx with lua-nginx-module, running the example
 * configuration `examples/nginx/nginx.conf` (a few lines replaced: the port, the endpoint, the
 * Lua path, the worker count) with the example publisher module, master as root and workers as
 * www-data, in a prefix of its own. Plus an HTTP load driver and a counter of the events that
 * reach a subscriber, by worker and sequence number.
 */

import { ROOT } from "./process.ts";
import { sleep } from "./net.ts";

export const EXAMPLE_DIR = `${ROOT}examples/nginx`;
const NGINX = "/usr/sbin/nginx";
const MODULES = [
  "/usr/lib/nginx/modules/ndk_http_module.so",
  "/usr/lib/nginx/modules/ngx_http_lua_module.so",
];

/** The apt packages the nginx tests need (Debian/Ubuntu); `.ci/run` installs them. */
export const NGINX_PACKAGES = ["nginx", "libnginx-mod-http-lua", "lua-resty-core", "libzmq5"];

const isFile = (path: string) => {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
};

/** Why the nginx tests cannot run here, or undefined when they can. */
export function nginxUnavailable(): string | undefined {
  const status = (() => {
    try {
      return Deno.readTextFileSync("/proc/self/status");
    } catch {
      return "";
    }
  })();
  if (!/^Uid:\s+\d+\s+0\s/m.test(status)) return "not root: nginx's workers must run as www-data";
  if (!isFile(NGINX)) return `no ${NGINX} (apt-get install ${NGINX_PACKAGES.join(" ")})`;
  for (const module of MODULES) {
    if (!isFile(module)) return `no ${module} (apt-get install libnginx-mod-http-lua)`;
  }
  if (!isFile("/usr/share/lua/5.1/resty/core.lua")) return "no resty.core (apt-get install lua-resty-core)";
  const libzmq = ["/usr/lib/x86_64-linux-gnu/libzmq.so.5", "/usr/lib/aarch64-linux-gnu/libzmq.so.5"];
  if (!libzmq.some(isFile)) return "no libzmq.so.5 (apt-get install libzmq5)";
  let group = "";
  try {
    group = Deno.readTextFileSync("/etc/group");
  } catch {
    // no names: reported below
  }
  if (!/^www-data:[^:]*:33:/m.test(group)) return "no www-data group (gid 33)";
  return undefined;
}

/** Replaces `from` in `text`, and insists that it was there: the example must stay testable. */
function replaceOnce(text: string, from: string, to: string): string {
  if (!text.includes(from)) {
    throw new Error(`examples/nginx/nginx.conf no longer has ${JSON.stringify(from)}`);
  }
  return text.replace(from, to);
}

/** The example configuration with this test's port, endpoint, Lua path and worker count. */
export function exampleConf(options: NginxOptions & { workers: number }): string {
  let conf = Deno.readTextFileSync(`${EXAMPLE_DIR}/nginx.conf`);
  for (const [from, to] of options.replace ?? []) conf = replaceOnce(conf, from, to);
  conf = replaceOnce(conf, "worker_processes auto;", `worker_processes ${options.workers};`);
  conf = replaceOnce(conf, "listen 127.0.0.1:8080;", `listen 127.0.0.1:${options.port};`);
  conf = replaceOnce(conf, '"/usr/local/share/api-gateway/lua/?.lua;;"', `"${EXAMPLE_DIR}/?.lua;;"`);
  conf = replaceOnce(conf, '"ipc:///run/api-gateway/nginx_queue_listen"', `"${options.endpoint}"`);
  return conf;
}

/** Where nginx listens and publishes, and what else in the example configuration to change. */
export interface NginxOptions {
  readonly port: number;
  readonly endpoint: string;
  /** Worker processes (default 2). */
  readonly workers?: number;
  /** Further [from, to] replacements in the example configuration (each must be there). */
  readonly replace?: readonly [string, string][];
}

/** A running nginx master (not daemonized: a child of the test) and its workers. */
export class Nginx {
  readonly port: number;
  readonly prefix: string;
  #child: Deno.ChildProcess;
  readonly status: Promise<Deno.CommandStatus>;

  private constructor(prefix: string, port: number, child: Deno.ChildProcess) {
    this.prefix = prefix;
    this.port = port;
    this.#child = child;
    this.status = child.status;
  }

  /**
   * Starts nginx in `prefix` (its conf, pid and error.log go there) and waits until every one
   * of `workers` workers has run `init_worker_by_lua` (the publisher's "connecting" line).
   */
  static async start(prefix: string, options: NginxOptions): Promise<Nginx> {
    const workers = options.workers ?? 2;
    Deno.writeTextFileSync(`${prefix}/nginx.conf`, exampleConf({ ...options, workers }));
    const child = new Deno.Command(NGINX, {
      args: [
        "-p",
        prefix,
        "-c",
        `${prefix}/nginx.conf`,
        "-e",
        `${prefix}/error.log`,
        "-g",
        `daemon off; pid ${prefix}/nginx.pid; error_log ${prefix}/error.log info;`,
      ],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const nginx = new Nginx(prefix, options.port, child);
    try {
      const deadline = performance.now() + 10_000;
      while (nginx.connectingWorkers().size < workers) {
        const exited = await Promise.race([nginx.status.then(() => true), sleep(20).then(() => false)]);
        if (exited) throw new Error(`nginx exited at start; error.log:\n${nginx.errorLog()}`);
        if (performance.now() > deadline) {
          throw new Error(`nginx's workers did not start within 10 s; error.log:\n${nginx.errorLog()}`);
        }
      }
    } catch (error) {
      await nginx.stop();
      throw error;
    }
    return nginx;
  }

  get pid(): number {
    return this.#child.pid;
  }

  errorLog(): string {
    try {
      return Deno.readTextFileSync(`${this.prefix}/error.log`);
    } catch {
      return "";
    }
  }

  /** Pids of the workers whose publisher logged "connecting". */
  connectingWorkers(): Set<number> {
    const pids = new Set<number>();
    for (const m of this.errorLog().matchAll(/zmq publisher: connecting .*; worker pid=(\d+)/g)) {
      pids.add(Number(m[1]));
    }
    return pids;
  }

  /** The master's children now (its workers), from /proc. */
  workerPids(): number[] {
    try {
      const text = Deno.readTextFileSync(`/proc/${this.pid}/task/${this.pid}/children`).trim();
      return text === "" ? [] : text.split(/\s+/).map(Number).sort((a, b) => a - b);
    } catch {
      return [];
    }
  }

  /** The user a process runs as (the name from /proc's Uid and /etc/passwd). */
  static userOf(pid: number): string {
    const uid = /^Uid:\s+(\d+)/m.exec(Deno.readTextFileSync(`/proc/${pid}/status`))?.[1];
    const line = Deno.readTextFileSync("/etc/passwd").split("\n").find((l) => l.split(":")[2] === uid);
    return line?.split(":")[0] ?? String(uid);
  }

  /** The counters of /zmq-publisher-stats (all workers' drops and errors). */
  async publisherStats(): Promise<{ dropped: number; errors: number }> {
    const text = await (await fetch(`http://127.0.0.1:${this.port}/zmq-publisher-stats`)).text();
    const m = /dropped=(\d+) errors=(\d+)/.exec(text);
    if (!m) throw new Error(`/zmq-publisher-stats: ${text}`);
    return { dropped: Number(m[1]), errors: Number(m[2]) };
  }

  /** SIGTERM (fast shutdown: workers run exit_worker_by_lua), SIGKILL after 5 s; workers too. */
  async stop(): Promise<void> {
    const workers = this.workerPids();
    try {
      this.#child.kill("SIGTERM");
    } catch {
      // already gone
    }
    const timer = setTimeout(() => {
      for (const pid of [this.pid, ...workers]) {
        try {
          Deno.kill(pid, "SIGKILL");
        } catch {
          // gone
        }
      }
    }, 5_000);
    await this.status;
    clearTimeout(timer);
    for (const pid of workers) {
      try {
        Deno.kill(pid, "SIGKILL"); // an orphaned worker (the master was killed) must not outlive the test
      } catch {
        // gone, as it should be
      }
    }
  }
}

/**
 * Sends GET requests to nginx, `concurrency` at a time, each on a new connection (so that both
 * workers get some), until `stop()` or `count` requests. Counts the 200s per request tag.
 */
export class Load {
  sent = 0;
  failed = 0;
  #stopped = false;
  readonly done: Promise<void>;
  #client = Deno.createHttpClient({ poolMaxIdlePerHost: 0 });

  constructor(
    port: number,
    options: { tag: string; count?: number; concurrency?: number; pauseMs?: number; rate?: number },
  ) {
    const { tag, count = Infinity, concurrency = 4, pauseMs = 0, rate } = options;
    let next = 0;
    const start = performance.now();
    const one = async () => {
      while (!this.#stopped && next < count) {
        const i = next++;
        // Paced: request i is due i/rate seconds after the start (late ones go at once).
        const due = rate ? start + (i * 1000) / rate - performance.now() : 0;
        if (due > 1) await sleep(due);
        try {
          const response = await fetch(`http://127.0.0.1:${port}/api/usage?api_key=${tag}-${i}`, {
            client: this.#client,
          });
          await response.body?.cancel();
          if (response.status === 200) this.sent++;
          else this.failed++;
        } catch {
          this.failed++;
        }
        if (pauseMs > 0) await sleep(pauseMs);
      }
    };
    this.done = Promise.all(Array.from({ length: concurrency }, one)).then(() => this.#client.close());
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.done;
  }
}

/** An event as the example configuration publishes it. */
export interface UsageEvent {
  readonly app: string;
  readonly serv: string;
  readonly req: string;
  readonly resp: string;
  readonly worker: number;
  readonly seq: number;
}

const EVENT = /^app=([^,]*),serv=([^,]*),req=([^,]*),resp=([A-Z]+\.\d{3}),worker=(\d+),seq=(\d+)$/;

/** Parses `app=…,serv=…,req=…,resp=GET.200,worker=…,seq=…`; throws on anything else. */
export function parseEvent(text: string): UsageEvent {
  const m = EVENT.exec(text);
  if (!m) throw new Error(`not a usage event: ${JSON.stringify(text)}`);
  return { app: m[1], serv: m[2], req: m[3], resp: m[4], worker: Number(m[5]), seq: Number(m[6]) };
}

/** The events of requests tagged `tag` (`req=tag-N`), per worker: their sequence numbers. */
export function byWorker(events: readonly UsageEvent[], tag: string): Map<number, number[]> {
  const map = new Map<number, number[]>();
  for (const e of events) {
    if (!e.req.startsWith(`${tag}-`)) continue;
    const list = map.get(e.worker) ?? [];
    list.push(e.seq);
    map.set(e.worker, list);
  }
  return map;
}

/** Sequence numbers missing between each worker's first and last seen (in `seqs`). */
export function gaps(seqs: readonly number[]): number {
  if (seqs.length === 0) return 0;
  const unique = new Set(seqs);
  const first = Math.min(...seqs);
  const last = Math.max(...seqs);
  return last - first + 1 - unique.size;
}
