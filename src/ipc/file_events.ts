/**
 * File change events from the kernel (inotify), through FFI on glibc's libc.so.6: the adaptor
 * learns at once that an ipc socket file was removed, replaced, renamed or its mode changed,
 * and spends nothing while nothing happens.
 *
 * The watch is on the file itself, not on its directory: a socket file lives in a busy
 * directory (/tmp by default), whose every event would wake us. Removing, replacing (renaming
 * another file over it, or another process unlinking it to bind there) or chmod'ing the file
 * changes its link count or attributes, which inotify reports as IN_ATTRIB on the file; a
 * connecting peer reports nothing. Why not Deno.watchFs: in our probes it gave no event when
 * a directory holding a live socket file was removed (`rm -r`).
 *
 * The wait is a `poll(2)` on the inotify descriptor and on a pipe, made with `nonblocking:
 * true`, so it blocks a thread of Deno's blocking pool, not the event loop; `stop()` writes to
 * the pipe to end it. Where libc.so.6 or inotify is not available (musl, or the per-user limit
 * of inotify instances reached), `watchFiles` returns undefined and the caller polls.
 */

import { libcLoader, O_CLOEXEC, O_NONBLOCK } from "../os/libc.ts";

const IN_NONBLOCK = 0o4000;
const IN_CLOEXEC = 0o2000000;
const IN_ATTRIB = 0x4;
const IN_DELETE_SELF = 0x400;
const IN_MOVE_SELF = 0x800;
/** Link count or mode changed (unlinked, replaced, chmod), the file freed or renamed. */
const MASK = IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF;
const POLLIN = 0x1;

const SYMBOLS = {
  inotify_init1: { parameters: ["i32"], result: "i32" },
  inotify_add_watch: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  pipe2: { parameters: ["buffer", "i32"], result: "i32" },
  // Blocks until an event or stop(): on the blocking pool.
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32", nonblocking: true },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
  // Closing an inotify descriptor waits for the kernel's SRCU grace period (tens of ms): off the
  // JavaScript thread.
  close_pool: { name: "close", parameters: ["i32"], result: "i32", nonblocking: true },
} as const satisfies Deno.ForeignLibraryInterface;

const load = libcLoader(SYMBOLS);

/** A running `watchFiles`. */
export interface FileEvents {
  /** Ends the wait and closes the descriptors; resolves once the waiting thread is back. */
  stop(): Promise<void>;
}

/**
 * Calls `onEvent` (with no details: the caller looks for itself) after the kernel reported a
 * change to any of the files at `paths`: unlinked, replaced, renamed, mode or owner changed.
 * Several events that arrive together make one call; `onEvent` must not throw. Returns
 * undefined when inotify cannot be used here, or a file cannot be watched.
 */
export function watchFiles(paths: readonly string[], onEvent: () => void): FileEvents | undefined {
  const c = load();
  if (!c || paths.length === 0) return undefined;
  const inotify = c.inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (inotify < 0) return undefined;
  const pipe = new Int32Array(2);
  if (c.pipe2(new Uint8Array(pipe.buffer), O_NONBLOCK | O_CLOEXEC) !== 0) {
    c.close(inotify);
    return undefined;
  }
  const closeAll = () => [inotify, pipe[0], pipe[1]].forEach((fd) => c.close(fd));
  for (const path of new Set(paths)) {
    if (c.inotify_add_watch(inotify, new TextEncoder().encode(path + "\0"), MASK) < 0) {
      closeAll();
      return undefined;
    }
  }

  // struct pollfd[2] = { { inotify, POLLIN }, { the pipe's read end, POLLIN } }
  const fds = new Uint8Array(16);
  const view = new DataView(fds.buffer);
  view.setInt32(0, inotify, true);
  view.setInt16(4, POLLIN, true);
  view.setInt32(8, pipe[0], true);
  view.setInt16(12, POLLIN, true);
  const events = new Uint8Array(4096);
  let stopping = false;

  // Ends on stop(), or gives up on events (the caller's sweep goes on) if poll(2) keeps failing
  // or reports the descriptor in error: never a busy loop. (errno is not readable here: poll ran
  // on another thread, and errno is per thread; EINTR, the one expected failure, is retried.)
  const waiting = (async () => {
    let failures = 0;
    while (!stopping) {
      view.setInt16(6, 0, true);
      view.setInt16(14, 0, true);
      const ready = await c.poll(fds, 2n, -1);
      if (stopping || view.getInt16(14, true) !== 0) break;
      if (ready < 0) {
        if (++failures > 3) break;
        continue;
      }
      failures = 0;
      const revents = view.getInt16(6, true);
      if (revents & ~POLLIN) break;
      if (revents === 0) continue;
      // Drain what is queued; its content does not matter, the caller checks the files.
      while (c.read(inotify, events, BigInt(events.length)) > 0) { /* more */ }
      onEvent();
    }
  })();

  let stopped: Promise<void> | undefined;
  return {
    stop() {
      stopped ??= (async () => {
        stopping = true;
        c.write(pipe[1], new Uint8Array([1]), 1n);
        await waiting;
        c.close(pipe[0]);
        c.close(pipe[1]);
        await c.close_pool(inotify);
      })();
      return stopped;
    },
  };
}
