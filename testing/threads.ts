/**
 * A process's threads as /proc shows them, and thread-directed signals (tgkill), for the tests
 * that aim a signal at the very thread waiting in libzmq.
 */

/** One thread of a process. */
export interface ThreadInfo {
  readonly tid: number;
  /** Its name, e.g. "tokio-runtime-w" (Deno's pools), "ZMQbg/IO/0" (libzmq's own). */
  readonly name: string;
  /** The system call it is blocked in (x86_64 numbers: 7 poll, 232 epoll_wait, 202 futex), or -1. */
  readonly syscall: number;
  /** Its blocked and pending signal sets (SigBlk, SigPnd). */
  readonly blocked: bigint;
  readonly pending: bigint;
}

/** The threads of process `pid`. */
export function threadsOf(pid: number): ThreadInfo[] {
  const threads: ThreadInfo[] = [];
  for (const entry of Deno.readDirSync(`/proc/${pid}/task`)) {
    const dir = `/proc/${pid}/task/${entry.name}`;
    try {
      const status = Deno.readTextFileSync(`${dir}/status`);
      const field = (name: string) =>
        BigInt(`0x${new RegExp(`^${name}:\\s*([0-9a-f]+)`, "m").exec(status)![1]}`);
      const call = Deno.readTextFileSync(`${dir}/syscall`).split(" ")[0];
      threads.push({
        tid: Number(entry.name),
        name: Deno.readTextFileSync(`${dir}/comm`).trim(),
        syscall: /^\d+$/.test(call) ? Number(call) : -1,
        blocked: field("SigBlk"),
        pending: field("SigPnd"),
      });
    } catch {
      // the thread ended meanwhile
    }
  }
  return threads;
}

/** poll(2)'s number: libzmq's blocking waits (proxy, receive) sit in it. */
export const SYS_POLL = Deno.build.arch === "x86_64" ? 7 : 73; // aarch64 has only ppoll

/**
 * The threads of `pid` that wait in libzmq on Deno's blocking pool: pool threads in poll(2).
 * (libzmq's own threads, ZMQbg/*, wait in epoll and block every signal themselves.)
 */
export function waitingPoolThreads(pid: number): ThreadInfo[] {
  return threadsOf(pid).filter((t) => t.name.startsWith("tokio-runtime") && t.syscall === SYS_POLL);
}

const SYS_TGKILL = Deno.build.arch === "x86_64" ? 234 : 131;

let libc: { syscall: (n: bigint, a: bigint, b: bigint, c: bigint) => bigint } | undefined;

/** Sends `signal` (a number: 1 SIGHUP, 15 SIGTERM…) to thread `tid` of process `pid` only. */
export function tgkill(pid: number, tid: number, signal: number): void {
  libc ??= Deno.dlopen("libc.so.6", {
    syscall: { parameters: ["i64", "i64", "i64", "i64"], result: "i64" },
  }).symbols;
  const rc = libc.syscall(BigInt(SYS_TGKILL), BigInt(pid), BigInt(tid), BigInt(signal));
  if (rc !== 0n) throw new Error(`tgkill(${pid}, ${tid}, ${signal}) failed`);
}

/** The bit of `signal` in a /proc signal set. */
export const signalBit = (signal: number): bigint => 1n << BigInt(signal - 1);
