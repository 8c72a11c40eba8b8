/**
 * Limits of the environment, checked at start before anything is opened, so that a limit too
 * low for the configuration is one line and exit 1 rather than a libzmq assertion (SIGABRT) half
 * way through the start, with socket and lock files left behind.
 *
 * - Descriptors (RLIMIT_NOFILE): what the configuration opens (`descriptorsNeeded`) plus room for
 *   peers. libzmq asserts when it cannot make an eventfd or epoll instance, and its ipc listener
 *   aborts on EMFILE, so running short later is worse than refusing now.
 *
 * - Memory: the queues are bounded in messages, not bytes. A stalled consumer on a channel (an
 *   XPUB subscriber under a flood, the inbound channel's PULL) lets libzmq keep up to --rcvhwm
 *   plus --sndhwm messages of up to --max-message-size: when that is above the control group's
 *   memory limit (systemd MemoryMax=), the kernel would kill the adaptor for doing its job, so a
 *   warning says so at start (`queueBudget`).
 *
 * Not checked: the address space (RLIMIT_AS, `ulimit -v`). The JavaScript engine reserves 32 GiB
 * of it while the runtime starts, before any of the adaptor's code runs: below that the process
 * ends in V8's own fatal message, which nothing here can replace; above it, more than 14 GiB were
 * left free at start (docs/reliability.md).
 */

import type { Config } from "../config/config.ts";
import type { Role } from "../config/endpoint.ts";
import { StartupError } from "../errors.ts";
import { fileLimit, openDescriptors } from "./descriptors.ts";
import { memoryLimit } from "./memory.ts";

/** Descriptors kept for peers beyond what the adaptor opens itself: workers, subscribers, scrapes. */
export const PEER_DESCRIPTORS = 64;

/** The metrics server's connections at once (metrics_server.ts DEFAULT_HTTP_LIMITS). */
const METRICS_CONNECTIONS = 32;

/**
 * The descriptors the adaptor itself opens for `config`, beyond those the runtime holds: the
 * context (reaper's epoll and mailbox, the context's mailbox, an epoll and a mailbox per I/O
 * thread; and two the runtime opens meanwhile), per channel two sockets, two monitors (a pair each) and the proxy's control pair
 * (a mailbox each), a descriptor per endpoint (listener or connection), a lock per ipc bind and
 * the file watch, the ZAP handler's two sockets, the debug taps, and the metrics server.
 */
export function descriptorsNeeded(config: Config): number {
  const endpoints = (["bind", "publish", "listen", "push"] as Role[]).flatMap((role) => config[role]);
  const ipcBinds = endpoints.filter((e) => e.mode === "bind" && e.ipcPath).length;
  const channels = config.listen.length > 0 ? 2 : 1;
  return 5 + 2 * config.ioThreads +
    8 * channels +
    endpoints.length +
    ipcBinds + 1 +
    (config.curveClients ? 2 : 0) +
    (config.debug ? 12 : 0) +
    (config.metrics ? 1 + METRICS_CONNECTIONS : 0);
}

/** What a running adaptor holds besides its queues (docs/reliability.md: about 60 MiB). */
export const BASELINE_BYTES = 64 * 2 ** 20;

/**
 * The most memory `config` lets the adaptor hold with one stalled consumer on each channel:
 * `BASELINE_BYTES`, and per channel --rcvhwm + --sndhwm messages of --max-message-size (the
 * measured plateaus are within it: docs/reliability.md). Infinity when a mark or the size is
 * unlimited (0). Each further stalled subscriber adds --sndhwm messages.
 */
export function queueBudget(config: Config): number {
  const { rcvhwm, sndhwm, maxMessageSize } = config;
  if (rcvhwm === 0 || sndhwm === 0 || maxMessageSize === 0) return Infinity;
  const channels = config.listen.length > 0 ? 2 : 1;
  return BASELINE_BYTES + channels * (rcvhwm + sndhwm) * maxMessageSize;
}

/**
 * Throws `StartupError` (one line for the operator) when a limit of this process is too low for
 * `config`; returns warnings for limits that may be too low. `now` is for tests: the limits and
 * counts as they are, read from the process when left out.
 */
export function checkLimits(
  config: Config,
  now: {
    files?: { soft: number };
    open?: number;
    memory?: number;
  } = {},
): string[] {
  const files = now.files ?? fileLimit();
  const open = now.open ?? openDescriptors();
  if (files && open !== undefined && Number.isFinite(files.soft)) {
    const own = descriptorsNeeded(config);
    const need = open + own + PEER_DESCRIPTORS;
    if (files.soft < need) {
      throw new StartupError(
        `the open-files limit (RLIMIT_NOFILE) is ${files.soft}, below the ${need} this configuration needs ` +
          `(${open} open now, ${own} for its sockets and threads, ${PEER_DESCRIPTORS} for peers): raise it ` +
          `(ulimit -n, systemd LimitNOFILE=)`,
      );
    }
  }
  const memory = "memory" in now ? now.memory : memoryLimit();
  const budget = queueBudget(config);
  if (memory === undefined || budget <= memory) return [];
  const mib = (bytes: number) => `${Math.round(bytes / 2 ** 20)} MiB`;
  const channels = config.listen.length > 0 ? "each of 2 channels" : "the main channel";
  return [
    `the queues may hold ${Number.isFinite(budget) ? mib(budget) : "without bound"} (--rcvhwm ` +
    `${config.rcvhwm} + --sndhwm ${config.sndhwm} messages of up to --max-message-size ` +
    `${config.maxMessageSize} bytes on ${channels}, a stalled consumer each, and ${mib(BASELINE_BYTES)} ` +
    `to run), above this process's memory limit of ${mib(memory)} (cgroup; systemd MemoryMax=): the ` +
    `kernel would stop the adaptor instead of the queues dropping; raise MemoryMax= or lower the ` +
    `marks or --max-message-size (docs/reliability.md)`,
  ];
}
