/**
 * `deno task systemd`: the shipped unit (scripts/adaptor.service, the Debian drop-in, the
 * sysusers file) under a real systemd 252 as PID 1, in a Debian 12 root booted by systemd-nspawn.
 * The adaptor runs from source (a drop-in's ExecStart=: the binary cannot be built here), with
 * CURVE, --metrics, a connection cap and the hardening, and the syscall filter's action set back
 * to killing (SIGSYS) so that any call outside it shows. Checks, with figures printed:
 *
 * - `systemctl start` returns once the adaptor is ready: the socket file and the XPUB accept then;
 * - publishers as www-data (the workers' user) and a CURVE subscriber: it forwards; STATUS= says so;
 * - the connection cap's socket filter, /metrics, the socket-file watch, malloc_trim (a minute up)
 *   and `systemctl reload` (RELOADING=1 then READY=1 in systemd's own log) kill nothing;
 * - the watchdog restarts it when its loop is stopped (SIGSTOP);
 * - SIGKILL again and again: restarted every time, never the start limit;
 * - `systemctl stop` stops it within 2 s; no SIGSYS anywhere in the journal.
 *
 * Then with scripts/adaptor.socket enabled (socket activation), publishers as CZMQ 3 sets them up
 * (SNDHWM 1000, `--rate` events a second each, 1000 unless given) and a subscriber counting their
 * sequence numbers:
 *
 * - the socket unit makes /run/api-gateway and the socket file (adaptor:www-data 0660), which
 *   www-data reaches before and after the service starts; the adaptor binds its XSUB on it;
 * - `systemctl restart`, `systemctl kill -s KILL` (Restart=) and a `systemctl stop` that the
 *   workers' reconnect undoes lose nothing the workers' queues could hold (the losses printed; 252's
 *   RestartSec=1s outlasts the queues, so its SIGKILL's loss is only printed), and systemd's journal
 *   shows where each restart's time went; the socket file keeps its inode throughout;
 * - stopped with nobody connected, it stays stopped until a publisher connects, which starts it;
 * - with the socket unit stopped and disabled, a plain start binds the path by itself;
 * - installed beside that running adaptor: systemd refuses to start the socket unit while its
 *   service runs; stopping the service, then starting both, does it.
 *
 * `--socket-only` runs the socket-activation part alone.
 *
 * The root is made once by debootstrap (~75 s) and kept in /var/cache/adaptor-systemd-root
 * (ADAPTOR_SYSTEMD_ROOT); the container runs on an overlay of it (--volatile=overlay) with its
 * own network namespace, and is killed at the end whatever happened. Needs root, debootstrap,
 * systemd-container and Debian's package archive.
 *
 * `--systemd-254`: the same under systemd 254 from bookworm-backports (a copy of the root, cached
 * as ROOT-254) with scripts/adaptor.service.d/systemd-254.conf: notify-reload, restart back-off.
 */

import { taskFlags } from "../testing/process.ts";

const REPO = new URL("../", import.meta.url).pathname.replace(/\/$/, "");
const BASE = Deno.env.get("ADAPTOR_SYSTEMD_ROOT") ?? "/var/cache/adaptor-systemd-root";
/** `--systemd-254`: systemd 254 from bookworm-backports, with scripts/adaptor.service.d/systemd-254.conf. */
const NEWER = Deno.args.includes("--systemd-254");
const ROOT = NEWER ? `${BASE}-254` : BASE;
/** SIGKILLs in a row: with the newer drop-in each waits longer (RestartSteps=), up to 30 s. */
const KILLS = NEWER ? 4 : 8;
/** `--socket-only`: the socket-activation phase alone (the service's own checks skipped). */
const SOCKET_ONLY = Deno.args.includes("--socket-only");
const PACKAGES = "systemd,systemd-sysv,dbus,python3-zmq,python3-cffi-backend";
const MIRROR = Deno.env.get("ADAPTOR_SYSTEMD_MIRROR") ?? "http://deb.debian.org/debian";
const SOCKET = "/run/api-gateway/nginx_queue_listen";
const MAX_CONNECTIONS = 4;
/** Deno's cache, bound read-only: the container has no network to fetch npm packages. */
const DENO_DIR = Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME") ?? "/root"}/.cache/deno`;

const decoder = new TextDecoder();
const figures: string[] = [];
const failures: string[] = [];

function figure(text: string): void {
  figures.push(text);
  console.log(`  ${text}`);
}

function check(ok: boolean, what: string): boolean {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
  if (!ok) failures.push(what);
  return ok;
}

/** A check the rest depends on: stops the run when it fails. */
function must(ok: boolean, what: string): void {
  if (!check(ok, what)) throw new Error(`stopped: ${what}`);
}

/** The kernel's seccomp kills (audit type 1326), with the syscall's number. */
async function seccompKills(): Promise<string[]> {
  const out = (await run(["dmesg"], 10_000)).out;
  return out.split("\n").filter((l) => l.includes("type=1326"));
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function run(command: string[], timeoutMs = 30_000): Promise<{ code: number; out: string }> {
  const output = await new Deno.Command("timeout", {
    args: ["-k", "2", String(Math.ceil(timeoutMs / 1000)), ...command],
    stdin: "null",
  }).output();
  return { code: output.code, out: decoder.decode(output.stdout) + decoder.decode(output.stderr) };
}

/** The Debian 12 root, made by debootstrap unless the cached one has the same packages. */
async function ensureRoot(
  root: string,
  packages: string,
  make: (tmp: string) => Promise<void>,
): Promise<void> {
  const marker = `${root}/.adaptor-root`;
  try {
    if (Deno.readTextFileSync(marker).trim() === packages) {
      console.log(`root: ${root} (cached; remove it to make it again)`);
      return;
    }
  } catch { /* not made yet */ }
  const tmp = `${root}.tmp`;
  await Deno.remove(tmp, { recursive: true }).catch(() => {});
  await Deno.remove(root, { recursive: true }).catch(() => {});
  const start = performance.now();
  await make(tmp);
  Deno.writeTextFileSync(`${tmp}/.adaptor-root`, packages + "\n");
  Deno.renameSync(tmp, root);
  figure(`${root} made in ${((performance.now() - start) / 1000).toFixed(0)} s`);
}

async function ensureRoots(): Promise<void> {
  await ensureRoot(BASE, PACKAGES, async (tmp) => {
    console.log(`root: debootstrap bookworm into ${BASE} (about 75 s)...`);
    const made = await run(
      ["debootstrap", "--variant=minbase", `--include=${PACKAGES}`, "bookworm", tmp, MIRROR],
      600_000,
    );
    if (made.code !== 0) throw new Error(`debootstrap failed:\n${made.out.slice(-2000)}`);
  });
  if (!NEWER) return;
  await ensureRoot(ROOT, `${PACKAGES} systemd/bookworm-backports`, async (tmp) => {
    console.log(`root: ${BASE} with systemd from bookworm-backports into ${ROOT}...`);
    const copied = await run(["cp", "-a", BASE, tmp], 120_000);
    if (copied.code !== 0) throw new Error(`cp failed: ${copied.out}`);
    Deno.writeTextFileSync(
      `${tmp}/etc/apt/sources.list.d/backports.list`,
      `deb ${MIRROR} bookworm-backports main\n`,
    );
    Deno.copyFileSync("/etc/resolv.conf", `${tmp}/etc/resolv.conf`);
    const apt = (...args: string[]) =>
      run(["chroot", tmp, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-q", "-y", ...args], 300_000);
    for (const step of [["update"], ["install", "-t", "bookworm-backports", "systemd", "systemd-sysv"]]) {
      const done = await apt(...step);
      if (done.code !== 0) throw new Error(`apt-get ${step.join(" ")} failed:\n${done.out.slice(-2000)}`);
    }
  });
}

/** The drop-ins installed beside the unit: the Debian one, and the one running from source. */
function dropIns(dir: string): void {
  Deno.mkdirSync(`${dir}/adaptor.service.d`, { recursive: true });
  Deno.copyFileSync(`${REPO}/scripts/adaptor.service.d/debian.conf`, `${dir}/adaptor.service.d/gateway.conf`);
  if (NEWER) {
    Deno.copyFileSync(
      `${REPO}/scripts/adaptor.service.d/systemd-254.conf`,
      `${dir}/adaptor.service.d/systemd-254.conf`,
    );
  }
  Deno.writeTextFileSync(
    `${dir}/adaptor.service.d/zz-source.conf`,
    [
      "# deno task systemd: the adaptor from source (no binary here), CURVE, a connection cap;",
      "# a syscall outside the filter kills (SIGSYS) instead of failing with EPERM.",
      "[Service]",
      "ExecStart=",
      `ExecStart=/usr/local/bin/deno run ${taskFlags("start").join(" ")} /opt/adaptor/src/main.ts`,
      "Environment=DENO_DIR=/var/cache/deno NO_COLOR=1",
      "Environment=ADAPTOR_CURVE_CERT=/etc/api-gateway/curve/node1_secret",
      "Environment=ADAPTOR_CURVE_CLIENTS=/etc/api-gateway/curve/clients",
      `Environment=ADAPTOR_MAX_CONNECTIONS=${MAX_CONNECTIONS}`,
      "SystemCallErrorNumber=",
      "",
    ].join("\n"),
  );
}

/** A worktree's node_modules may be a symlink out of the repository: bind its target where the link points. */
function linkedNodeModules(): string[] {
  const link = `${REPO}/node_modules`;
  if (!Deno.lstatSync(link).isSymlink) return [];
  const target = Deno.readLinkSync(link);
  const inside = target.startsWith("/") ? target : new URL(target, "file:///opt/adaptor/").pathname;
  return [`--bind-ro=${Deno.realPathSync(link)}:${inside}`];
}

/** A booted container: `sh` runs a command in it, `spawn` starts a long-lived one. */
class Container {
  readonly #nspawn: Deno.ChildProcess;
  readonly #dir: string;
  #leader = 0;

  constructor() {
    this.#dir = Deno.makeTempDirSync({ prefix: "adaptor-systemd-" });
    dropIns(this.#dir);
    this.#nspawn = new Deno.Command("systemd-nspawn", {
      args: [
        "--register=no",
        "--keep-unit",
        "--quiet",
        "--private-network",
        "--volatile=overlay",
        "--console=passive",
        "-D",
        ROOT,
        `--bind-ro=${REPO}:/opt/adaptor`,
        `--bind-ro=${Deno.execPath()}:/usr/local/bin/deno`,
        // Writable for root in the container (changes go to a temporary upper layer): the cache is
        // warmed for /opt/adaptor once, as a deploy would, instead of the service (which cannot
        // write it) transpiling every module at each start.
        `--overlay=${DENO_DIR}::/var/cache/deno`,
        `--bind-ro=${REPO}/scripts/adaptor.service:/etc/systemd/system/adaptor.service`,
        `--bind-ro=${this.#dir}/adaptor.service.d:/etc/systemd/system/adaptor.service.d`,
        `--bind-ro=${REPO}/scripts/adaptor.sysusers:/etc/sysusers.d/adaptor.conf`,
        `--bind-ro=${REPO}/scripts/adaptor.socket:/etc/systemd/system/adaptor.socket`,
        ...linkedNodeModules(),
        "-b",
      ],
      stdin: "null",
      stdout: "null",
      stderr: "inherit",
    }).spawn();
  }

  /** Waits until systemd in the container is up (running or degraded). */
  async booted(ms = 60_000): Promise<number> {
    const start = performance.now();
    while (performance.now() - start < ms) {
      const leader = await run(["pgrep", "-P", String(this.#nspawn.pid), "-x", "systemd"], 5000);
      if (leader.code === 0) {
        this.#leader = Number(leader.out.trim().split("\n")[0]);
        const state = await this.sh("systemctl is-system-running", 5000);
        if (/^(running|degraded)/.test(state.out)) return performance.now() - start;
      }
      await sleep(200);
    }
    throw new Error(`the container did not boot within ${ms} ms`);
  }

  sh(script: string, timeoutMs = 30_000): Promise<{ code: number; out: string }> {
    return run(["nsenter", "-t", String(this.#leader), "-a", "sh", "-c", script], timeoutMs);
  }

  /**
   * A process in the container whose stdout lines are collected; it must end when its stdin closes:
   * nsenter forks into the PID namespace, so killing nsenter leaves the process running.
   */
  spawn(script: string): { lines: string[]; stop: () => Promise<void> } {
    const child = new Deno.Command("nsenter", {
      args: ["-t", String(this.#leader), "-a", "sh", "-c", script],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const lines: string[] = [];
    const pump = (async () => {
      let rest = "";
      for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
        rest += chunk;
        const parts = rest.split("\n");
        rest = parts.pop()!;
        lines.push(...parts);
      }
    })();
    return {
      lines,
      stop: async () => {
        await child.stdin.close().catch(() => {});
        const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
        await child.status;
        clearTimeout(timer);
        await Promise.race([pump, sleep(3000)]);
      },
    };
  }

  /**
   * Kills the container (no machined with --register=no): SIGKILL to its PID 1 ends its PID
   * namespace, then nspawn; nspawn itself is killed if it is not gone within 10 s.
   */
  async destroy(): Promise<void> {
    const kill = (pid: number) => {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch { /* gone */ }
    };
    if (this.#leader > 0) kill(this.#leader);
    else kill(this.#nspawn.pid);
    const gone = (ms: number) =>
      Promise.race([this.#nspawn.status.then(() => true), sleep(ms).then(() => false)]);
    if (!await gone(10_000)) {
      kill(this.#nspawn.pid);
      if (!await gone(5_000)) console.log(`systemd-nspawn ${this.#nspawn.pid} did not end`);
    }
    Deno.removeSync(this.#dir, { recursive: true });
  }
}

/** A CURVE SUB (the subscriber's key, the node's server key) that ends when its stdin closes. */
const PY_CURVE_SUB = `
import json, os, sys, threading, time, zmq, zmq.auth
threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
pub, sec = zmq.auth.load_certificate("/root/sub1_secret")
server, _ = zmq.auth.load_certificate("/etc/api-gateway/curve/node1")
ctx = zmq.Context(); s = ctx.socket(zmq.SUB)
s.curve_publickey, s.curve_secretkey, s.curve_serverkey = pub, sec, server
`;

const PY_SUBSCRIBER = `${PY_CURVE_SUB}s.setsockopt(zmq.SUBSCRIBE, b""); s.connect("tcp://127.0.0.1:6001")
n = 0; last = time.time()
while True:
    if s.poll(100): s.recv(); n += 1
    if time.time() - last > 0.2: print(n, flush=True); last = time.time()
`;

const PY_CONNECTIONS = `
import socket, time
held = []
for i in range(${MAX_CONNECTIONS + 3}):
    s = socket.socket(); s.settimeout(0.5)
    try: s.connect(("127.0.0.1", 6001)); held.append(s)
    except OSError: pass
time.sleep(2)
for s in held: s.close()
`;

const PY_METRICS = `
import urllib.request
body = urllib.request.urlopen("http://127.0.0.1:6002/metrics", timeout=5).read().decode()
print(sum(1 for l in body.splitlines() if l.startswith("adaptor_")))
`;

const PY_ACCEPTS = `
import socket
u = socket.socket(socket.AF_UNIX); u.connect("${SOCKET}")
t = socket.socket(); t.connect(("127.0.0.1", 6001))
print("accepts")
`;

/** The gateway's publisher as CZMQ 3 sets it up (SNDHWM 1000), as www-data, at `--rate` events a second. */
const RATE = Deno.args.includes("--rate") ? Number(Deno.args[Deno.args.indexOf("--rate") + 1]) : 1000;
if (!(RATE >= 100 && RATE <= 20_000)) throw new Error("--rate: events a second per publisher, 100-20000");
/**
 * What a worker's queue holds for certain while no adaptor reads: half its SNDHWM. libzmq's
 * writer learns what was read in steps of half the HWM, so what the dead adaptor had read since
 * the last step still counts against the queue.
 */
const HELD = 500;
/** What a restart on the passed socket may lose: what the old process had read and not passed on. */
const IN_FLIGHT = 30;

/** Counts each publisher's `name.seq`: prints {name: [first, last, received, last 4 gaps as [from, size]]} every 100 ms. */
const PY_SEQ_SUBSCRIBER =
  `${PY_CURVE_SUB}s.setsockopt(zmq.RCVHWM, 0); s.setsockopt(zmq.SUBSCRIBE, b""); s.connect("tcp://127.0.0.1:6001")
seen = {}; last = time.time()
while True:
    if s.poll(50):
        while True:
            try: m = s.recv(zmq.NOBLOCK)
            except zmq.Again: break
            name, _, seq = m.decode().rpartition(".")
            seq = int(seq); r = seen.get(name)
            if r is None: seen[name] = [seq, seq, 1, []]; continue
            if seq != r[1] + 1: r[3] = (r[3] + [[r[1] + 1, seq - r[1] - 1]])[-4:]
            r[1] = seq; r[2] += 1
    if time.time() - last > 0.1: print(json.dumps(seen), flush=True); last = time.time()
`;

/**
 * scripts/adaptor.socket under the same systemd: the adaptor binds its XSUB on the socket systemd
 * holds, and a restart (SIGTERM, SIGKILL, a stop that traffic undoes) loses only what the
 * workers' queues (SNDHWM 1000) cannot hold while no adaptor runs.
 */
async function socketActivation(container: Container, peers: { stop: () => Promise<void> }[]): Promise<void> {
  const { sh, show, active, activeAgain, journal, systemdLog } = controls(container);
  const stat = async (path: string) => (await sh(`stat -c '%a %U:%G %i' ${path}`)).out.trim();
  const wwwData = (command: string) => `setpriv --reuid=www-data --regid=www-data --init-groups ${command}`;
  const reachable = async () =>
    (await sh(
      wwwData(`python3 -c 'import socket; socket.socket(socket.AF_UNIX).connect("${SOCKET}")' && echo yes`),
    ))
      .out.trim() === "yes";
  /** From systemd's journal: when the start began, the new process bound, and READY=1 came. */
  const startSteps = async (since: number, next: string) => {
    const entries = (await sh(`journalctl -u adaptor -o json --no-pager -n 200`)).out.split("\n")
      .filter((l) => l.startsWith("{")).map((l) => JSON.parse(l))
      .filter((e) => Number(e.__REALTIME_TIMESTAMP) >= since);
    const at = (test: (e: Record<string, string>) => boolean) => {
      const found = entries.find(test);
      return found ? (Number(found.__REALTIME_TIMESTAMP) - since) / 1000 : NaN;
    };
    const starting = at((e) => e._PID === "1" && /^Starting /.test(e.MESSAGE));
    const bound = at((e) => e._PID === next && /XSUB bound/.test(e.MESSAGE));
    const started = at((e) => e._PID === "1" && /^Started /.test(e.MESSAGE));
    return `systemd's journal, ms from the command: Starting ${starting.toFixed(0)}, the new process's ` +
      `XSUB bound ${bound.toFixed(0)}, Started (READY=1) ${started.toFixed(0)}`;
  };
  const boundOnPassed = async (pid: string) =>
    (await journal(pid)).split("\n").find((l) => l.includes("bound on the socket systemd passed at"));
  for (const peer of peers.splice(0)) await peer.stop();
  // A subscriber left over would take the workers' flush after a restart in the counting one's stead.
  const leftover = (await sh("grep -l '[p]ython3' /proc/[0-9]*/cmdline 2>/dev/null | wc -l")).out.trim();
  check(
    leftover === "0",
    `no peer of the first part is left in the container (${leftover} python3 processes)`,
  );

  // As at boot: sockets.target comes first, so the socket unit makes /run/api-gateway.
  await sh("systemctl stop adaptor; rm -rf /run/api-gateway");
  const enabled = await sh("systemctl enable --now adaptor.socket");
  must(enabled.code === 0, `systemctl enable --now adaptor.socket${enabled.code ? `: ${enabled.out}` : ""}`);
  const made = (await stat(`/run/api-gateway ${SOCKET}`)).split("\n");
  const inode = made[1].split(" ").pop();
  check(
    /^755 root:root /.test(made[0]) && /^660 adaptor:www-data /.test(made[1]),
    `adaptor.socket made /run/api-gateway ${made[0]} and the socket ${made[1]}`,
  );
  check(await reachable(), "www-data connects to the socket before the service has started");
  const started = await sh("systemctl restart adaptor", 60_000);
  must(
    started.code === 0,
    `systemctl restart adaptor with adaptor.socket listening${started.code ? `: ${started.out}` : ""}`,
  );
  let pid = await show("MainPID");
  const bound = await boundOnPassed(pid);
  check(
    bound !== undefined,
    `the adaptor bound its XSUB on the socket systemd passed (${bound ?? await journal(pid)})`,
  );
  let files = (await stat(`/run/api-gateway ${SOCKET}`)).split("\n");
  // RuntimeDirectory= makes the directory the service's (and, the first time, all in it).
  check(
    /^750 adaptor:www-data /.test(files[0]) && files[1] === made[1],
    `with the service started: /run/api-gateway ${files[0]}; the socket ${files[1]} (unchanged)`,
  );
  check(await reachable(), "www-data connects to the socket through /run/api-gateway then");

  const subscriber = container.spawn(`exec python3 -c '${PY_SEQ_SUBSCRIBER}'`);
  peers.push(subscriber);
  const publishers = ["c1", "c2"].map((name) =>
    container.spawn(
      `exec ${wwwData(`python3 /opt/adaptor/testing/czmq3_publisher.py ipc://${SOCKET} ${name} ${RATE}`)}`,
    )
  );
  peers.push(...publishers);
  type Seen = Record<string, [first: number, last: number, received: number, gaps: [number, number][]]>;
  const seen = (): Seen => JSON.parse(subscriber.lines.at(-1) ?? "{}");
  const gaps = (s: Seen) => Object.values(s).reduce((n, [first, last, got]) => n + last - first + 1 - got, 0);
  /** Waits until every publisher's events have gone `ms` of its rate past `from`; false if not within 20 s. */
  const flowing = async (names: string[], ms: number, from: Seen = seen()) => {
    const start = performance.now();
    const past = (s: Seen) => names.every((n) => s[n] && s[n][1] >= (from[n]?.[1] ?? 0) + (RATE * ms) / 1000);
    while (performance.now() - start < 20_000 && !past(seen())) await sleep(100);
    return past(seen());
  };
  must(await flowing(["c1", "c2"], 1000), `2 publishers as www-data (SNDHWM 1000, ${RATE}/s each) forward`);

  /**
   * `action`, then the adaptor active again under a new pid, then 1.5 s of events: what was lost,
   * which must be at most what outlasted each worker's certain queue (`HELD`), and `IN_FLIGHT`.
   */
  const restart = async (what: string, action: string, bounded = true, names = ["c1", "c2"]) => {
    const before = seen();
    const since = Date.now() * 1000;
    const t0 = performance.now();
    const done = await sh(action, 60_000);
    const next = await activeAgain(pid, 60_000);
    const outage = performance.now() - t0;

    const arrived = next !== undefined && await flowing(names, 1500, before);
    const after = seen();
    const lost = gaps(after) - gaps(before);
    const down = Math.round((RATE * names.length * outage) / 1000);
    // Each gap as its size and where it began, counted in events from the last one before `action`.
    const where = names.map((n) =>
      `${n}: ${
        (after[n]?.[3] ?? []).filter(([from]) => from > (before[n]?.[1] ?? -1))
          .map(([from, size]) => `${size} from +${from - (before[n]?.[1] ?? 0)}`).join(", ") || "none"
      }`
    ).join("; ");
    figure(
      `${what}: active again after ${outage.toFixed(0)} ms, ~${down} events published meanwhile, ` +
        `${lost} lost (${where})`,
    );
    if (next) {
      const wait = /Forwarding starts after [^"(]*/.exec(await journal(next))?.[0] ??
        "no subscriber-wait line";
      figure(`  ${await startSteps(since, next)}; ${wait.trim()}`);
    }
    const most = IN_FLIGHT + names.length * Math.max(0, Math.round((RATE * outage) / 1000) - HELD);
    check(
      done.code === 0 && arrived && (!bounded || lost <= most),
      `${what}: events flow again; ${lost} lost${
        bounded
          ? ` (at most ${most}: ${IN_FLIGHT} in flight${
            most > IN_FLIGHT ? ", and what outlasted the queues" : ""
          })`
          : ""
      }`,
    );
    if (next) pid = next;
    return done.out;
  };
  await restart("systemctl restart adaptor (SIGTERM, start)", "systemctl restart adaptor");
  check((await boundOnPassed(pid)) !== undefined, "after the restart, bound on the passed socket again");
  // 252: RestartSec=1s, longer than the queues last: the loss is printed, not bounded. 254's drop-in: 100 ms.
  await restart(
    `systemctl kill -s KILL adaptor (Restart=, RestartSec=${NEWER ? "100ms" : "1s"})`,
    "systemctl kill -s KILL adaptor",
    NEWER,
  );
  figure(`NRestarts=${await show("NRestarts")}`);
  // A stop with the workers connected: their reconnect (100 ms on) is traffic on the socket, which
  // starts the service again; the queues hold what they can meanwhile.
  const warned = await restart(
    "systemctl stop adaptor, the workers' reconnect starts it",
    "systemctl stop adaptor",
  );
  check(
    // 252's systemctl: "can still be activated by"; 254's: "its triggering units are still active".
    /(can still be activated by|triggering units are still active):\s+adaptor\.socket/.test(warned),
    `systemctl stop warns that adaptor.socket can start it (${warned.trim().replace(/\s+/g, " ")})`,
  );
  files = (await stat(`/run/api-gateway ${SOCKET}`)).split("\n");
  check(files[1] === made[1], `the socket file is the same after 3 restarts (${files[1]}, inode ${inode})`);

  // Stopped with nobody connected: it stays stopped until a publisher connects.
  for (const publisher of publishers) await publisher.stop();
  const stopped = await sh("systemctl stop adaptor >/dev/null 2>&1; sleep 2; systemctl is-active adaptor");
  check(
    stopped.out.trim() === "inactive",
    `stopped with no publisher connected, it stays ${stopped.out.trim()}`,
  );

  const a0 = performance.now();
  const late = container.spawn(
    `exec ${wwwData(`python3 /opt/adaptor/testing/czmq3_publisher.py ipc://${SOCKET} c3 ${RATE}`)}`,
  );
  peers.push(late);
  const activated = await activeAgain("0", 30_000);
  figure(
    `a publisher connects to the stopped service's socket: active after ${
      (performance.now() - a0).toFixed(0)
    } ms`,
  );
  check(
    activated !== undefined && (await boundOnPassed(activated)) !== undefined,
    "a publisher's connect started the service (socket activation)",
  );
  if (activated) pid = activated;
  check(await flowing(["c3"], 1000), "its events reach the subscriber");

  // Both stopped: what systemd leaves at the path; a plain start binds by itself.
  await sh("systemctl stop adaptor.socket adaptor");
  const left = await stat(SOCKET);
  figure(
    `systemctl stop adaptor.socket adaptor: the socket file ${left ? `is left: ${left}` : "is removed"}`,
  );
  const plain = await sh("systemctl disable adaptor.socket && systemctl start adaptor", 60_000);
  pid = await show("MainPID");
  const own = (await journal(pid)).split("\n").find((l) => /XSUB\W+bound\W+ipc:/.test(l));
  files = (await stat(`/run/api-gateway ${SOCKET}`)).split("\n");
  check(
    plain.code === 0 && own !== undefined && (await boundOnPassed(pid)) === undefined &&
      /^660 adaptor:www-data /.test(files[1]),
    `without adaptor.socket, systemctl start binds by itself (${own ?? plain.out}); the socket ${files[1]}`,
  );
  check(await flowing(["c3"], 1000), "the publisher reconnects to it and forwards");

  // Installed on a running node: systemd refuses to start a socket unit whose service runs, so
  // the service stops first, then both start (the socket first: it orders itself before).
  const own1 = pid;
  const live = await sh("systemctl enable --now adaptor.socket");
  const socketState = (await sh("systemctl is-active adaptor.socket")).out.trim();
  // 252's systemctl exits 1 here; 254's says "Job failed" and exits 0.
  check(
    socketState !== "active" && (await active()) === "active" &&
      (await systemdLog()).includes("Socket service adaptor.service already active, refusing"),
    `enable --now adaptor.socket beside the running adaptor: refused ("Socket service adaptor.service ` +
      `already active, refusing"; systemctl exit ${live.code}, the socket ${socketState}); the adaptor runs on`,
  );
  const swapped = await sh("systemctl stop adaptor && systemctl start adaptor.socket adaptor", 60_000);
  pid = await show("MainPID");
  files = (await stat(`/run/api-gateway ${SOCKET}`)).split("\n");
  check(
    swapped.code === 0 && pid !== own1 && (await boundOnPassed(pid)) !== undefined,
    `systemctl stop adaptor && systemctl start adaptor.socket adaptor: bound on the passed socket (${
      files[1]
    })`,
  );
  check(await flowing(["c3"], 1000), "the publisher's events flow through the passed socket");
  await late.stop();
  await sh("systemctl stop adaptor.socket adaptor");
  check((await active()) === "inactive", "stopped");
}

/** systemctl and journalctl in the container, for adaptor.service. */
function controls(container: Container) {
  const sh = (script: string, ms?: number) => container.sh(script, ms);
  const show = async (property: string) =>
    (await sh(`systemctl show -p ${property} --value adaptor`)).out.trim();
  const active = async () => (await sh("systemctl is-active adaptor")).out.trim();
  /** Waits for the adaptor to be active with a main pid other than `other`; its pid. */
  const activeAgain = async (other: string, ms: number) => {
    const start = performance.now();
    while (performance.now() - start < ms) {
      const pid = await show("MainPID");
      if (pid !== "0" && pid !== other && (await active()) === "active") return pid;
      await sleep(50);
    }
    return undefined;
  };
  /** The adaptor's journal; only what process `pid` wrote when given. */
  const journal = async (pid?: string) =>
    (await sh(`journalctl -u adaptor -o cat --no-pager${pid ? ` _PID=${pid}` : ""}`, 30_000)).out;
  const systemdLog = async () => (await sh("journalctl -b -o cat --no-pager", 30_000)).out;
  return { sh, show, active, activeAgain, journal, systemdLog };
}

/** The unit by itself: start, forwarding, the cap, /metrics, reload, the watchdog, SIGKILLs, stop. */
async function serviceChecks(
  container: Container,
  peers: { stop: () => Promise<void> }[],
  killsBefore: number,
) {
  const { sh, show, active, activeAgain, journal, systemdLog } = controls(container);
  // Start: systemctl returns when READY=1 came; by then the XSUB and XPUB accept.
  const t0 = performance.now();
  const started = await sh("systemctl start adaptor", 60_000);
  const startMs = performance.now() - t0;
  if (started.code !== 0) {
    console.log((await journal()).split("\n").slice(-20).join("\n"));
    console.log((await seccompKills()).slice(killsBefore).join("\n"));
  }
  must(started.code === 0, `systemctl start adaptor${started.code ? `: ${started.out}` : ""}`);
  figure(`systemctl start to active (Type=notify, READY=1 once bound): ${startMs.toFixed(0)} ms`);
  check(
    (await sh(`python3 -c '${PY_ACCEPTS}'`)).out.includes("accepts"),
    "when active, the socket file and the XPUB accept",
  );
  const perms = await sh(`stat -c '%a %U:%G' /run/api-gateway ${SOCKET}`);
  check(
    /^750 adaptor:www-data\n660 adaptor:www-data/.test(perms.out),
    `socket directory and file: ${perms.out.replace(/\n/g, ", ")}`,
  );
  const firstPid = await show("MainPID");
  const firstSince = performance.now();

  // Publishers as www-data, a CURVE subscriber: forwarding, and STATUS= says so.
  for (const name of ["w1", "w2"]) {
    peers.push(container.spawn(
      `exec setpriv --reuid=www-data --regid=www-data --init-groups python3 /opt/adaptor/testing/worker_publisher.py ipc://${SOCKET} ${name}`,
    ));
  }
  const subscriber = container.spawn(`exec python3 -c '${PY_SUBSCRIBER}'`);
  peers.push(subscriber);
  const received = () => Number(subscriber.lines.at(-1) ?? 0);
  const forwards = async (what: string) => {
    const before = received();
    const start = performance.now();
    while (performance.now() - start < 15_000 && received() < before + 50) await sleep(100);
    check(received() >= before + 50, `${what}: the subscriber receives (${received() - before} more)`);
  };
  await forwards("publishers as www-data, a CURVE subscriber");
  await sleep(800);
  const status = await show("StatusText");
  check(status === "forwarding; 2 publishers, 1 subscriber", `STATUS=: "${status}"`);

  // The connection cap's socket filter, /metrics, the socket-file watch: nothing is killed.
  await sh(`python3 -c '${PY_CONNECTIONS}'`);
  const metrics = await sh(`python3 -c '${PY_METRICS}'`);
  check(Number(metrics.out.trim()) > 10, `/metrics answers (${metrics.out.trim()} adaptor_ lines)`);
  await sh(`mv ${SOCKET} ${SOCKET}.moved && sleep 1 && mv ${SOCKET}.moved ${SOCKET} && sleep 1`);
  const lines = await journal();
  check(
    /At most \d+ connections|stopped listening|takes tcp connections again/.test(lines),
    "the connection cap ran",
  );
  check(
    lines.includes("is gone") && lines.includes("is fine again"),
    "the socket-file watch saw the file go and come back",
  );

  // Reload: systemd's own log shows RELOADING=1, then READY=1, from the adaptor.
  await sh("systemd-analyze log-level debug");
  const r0 = performance.now();
  const reloaded = await sh("systemctl reload adaptor");
  figure(
    `systemctl reload: ${(performance.now() - r0).toFixed(0)} ms ${
      NEWER ? "(Type=notify-reload: returns at READY=1)" : "(returns once SIGHUP is sent)"
    }`,
  );
  await sleep(1000);
  await sh("systemd-analyze log-level info");
  const debug = await systemdLog();
  const mainPid = await show("MainPID");
  const notes = [
    ...debug.matchAll(new RegExp(`Got notification message from PID ${mainPid} \\((.*)\\)`, "g")),
  ]
    .map((m) => m[1]);
  const reloadingAt = notes.findIndex((n) => n.startsWith("RELOADING=1"));
  if (reloadingAt < 0) {
    console.log(debug.split("\n").filter((l) => /notification|adaptor/.test(l)).slice(-15).join("\n"));
  }
  check(
    reloaded.code === 0 && reloadingAt >= 0 &&
      notes.slice(reloadingAt).some((n) => n.startsWith("READY=1")),
    `systemctl reload: RELOADING=1 then READY=1 (${
      notes.filter((n) => !n.startsWith("WATCHDOG")).slice(-2).join(" | ")
    })`,
  );
  if (NEWER) {
    check(
      /Changed reload-signal -> reload-notify[\s\S]*Changed reload-notify -> running/.test(debug),
      "notify-reload: systemd signalled, then waited for READY=1 (reload-signal -> reload-notify -> running)",
    );
  }
  await forwards("after the reload");

  // malloc_trim runs every 60 s: keep the first process a minute and more.
  const wait = 65_000 - (performance.now() - firstSince);
  if (wait > 0) await sleep(wait);
  check(
    await show("MainPID") === firstPid && await active() === "active",
    "the same process ran for 65 s (malloc_trim ran once)",
  );

  // The watchdog: a stopped loop is killed and restarted.
  const w0 = performance.now();
  await sh(`kill -STOP ${firstPid}`);
  const afterWatchdog = await activeAgain(firstPid, 40_000);
  figure(
    `watchdog: SIGSTOP to active again: ${((performance.now() - w0) / 1000).toFixed(1)} s (WatchdogSec=10s)`,
  );
  check(
    afterWatchdog !== undefined && (await systemdLog()).includes("Watchdog timeout"),
    "the watchdog restarted it",
  );
  await forwards("after the watchdog's restart");

  // SIGKILL, again and again: never the start limit.
  const restarts: number[] = [];
  let pid = afterWatchdog ?? (await show("MainPID"));
  for (let i = 0; i < KILLS; i++) {
    const k0 = performance.now();
    await sh(`kill -KILL ${pid}`);
    const next = await activeAgain(pid, 45_000);
    if (!next) break;
    restarts.push(performance.now() - k0);
    pid = next;
  }
  check(
    restarts.length === KILLS,
    `restarted after each of ${KILLS} SIGKILLs (${restarts.length}); NRestarts=${await show("NRestarts")}`,
  );
  figure(
    `SIGKILL to active again, in order: ${restarts.map((ms) => (ms / 1000).toFixed(2)).join(", ")} s ${
      NEWER ? "(RestartSec=1s, RestartSteps=5, RestartMaxDelaySec=30s)" : "(RestartSec=1s)"
    }`,
  );
  if (NEWER) {
    check(
      restarts.every((ms, i) => i === 0 || ms > restarts[i - 1]),
      "the restarts back off (each waits longer than the one before)",
    );
  }
  await forwards(`after ${KILLS} SIGKILLs`);

  // Stop within 2 s.
  const s0 = performance.now();
  await sh("systemctl stop adaptor", 20_000);
  const stopMs = performance.now() - s0;
  figure(`systemctl stop: ${stopMs.toFixed(0)} ms`);
  check(
    stopMs < 2000 && (await show("Result")) === "success",
    `stopped within 2 s, Result=${await show("Result")}`,
  );
}

async function main(): Promise<void> {
  if (Deno.uid() !== 0) throw new Error("deno task systemd needs root (debootstrap, systemd-nspawn)");
  await ensureRoots();
  const container = new Container();
  const peers: { stop: () => Promise<void> }[] = [];
  try {
    figure(`boot to running: ${(await container.booted()).toFixed(0)} ms`);
    const { sh, systemdLog } = controls(container);

    // What a node that runs from source has after its first start (the compiled binary embeds it).
    const warmed = await sh(
      `DENO_DIR=/var/cache/deno deno cache --node-modules-dir=manual /opt/adaptor/src/main.ts 2>&1 | tail -3`,
      120_000,
    );
    check(
      warmed.code === 0,
      `Deno's cache warmed for /opt/adaptor (${warmed.out.trim() || "nothing to do"})`,
    );
    // Keys: the adaptor's (owned by it, 0600) and a subscriber's, admitted by its public key.
    const keys = await sh(
      [
        "set -e; mkdir -p /etc/api-gateway/curve/clients; cd /etc/api-gateway/curve",
        `DENO_DIR=/var/cache/deno deno run ${
          taskFlags("start").join(" ")
        } /opt/adaptor/src/main.ts keygen node1`,
        `DENO_DIR=/var/cache/deno deno run ${
          taskFlags("start").join(" ")
        } /opt/adaptor/src/main.ts keygen /root/sub1`,
        "cp /root/sub1 clients/sub1; chown adaptor node1_secret; id adaptor",
      ].join(" && "),
      60_000,
    );
    must(
      keys.code === 0,
      `CURVE keys made; the sysusers file made the user (${keys.out.trim().split("\n").pop()})`,
    );
    const killsBefore = (await seccompKills()).length;

    if (!SOCKET_ONLY) await serviceChecks(container, peers, killsBefore);
    await socketActivation(container, peers);

    const lines = await systemdLog();
    const sigsys = [
      ...lines.split("\n").filter((l) => /SIGSYS|status=31\/SYS/.test(l)),
      ...(await seccompKills()).slice(killsBefore),
    ];
    check(
      sigsys.length === 0,
      `no SIGSYS in the journal nor the kernel's log${sigsys.length ? `:\n${sigsys.join("\n")}` : ""}`,
    );
    const killed = lines.split("\n").filter((l) =>
      /adaptor\.service: Main process exited, code=(killed|dumped)/.test(l)
    );
    // The watchdog's, KILLS SIGKILLs, and the socket phase's SIGKILL.
    const expected = SOCKET_ONLY ? 1 : KILLS + 2;
    console.log(`  main process kills seen by systemd: ${killed.length} (${expected} expected)`);
    check(killed.length === expected, "no kill other than ours");
  } finally {
    // The container first: its end ends the peers (nsenter's own child holds their pipes).
    await container.destroy();
    for (const peer of peers) await peer.stop().catch(() => {});
  }
  console.log(`\n${figures.length} figures; ${failures.length} failed`);
  if (failures.length > 0) {
    console.log(failures.map((f) => `  - ${f}`).join("\n"));
    Deno.exit(1);
  }
}

if (import.meta.main) await main();
