/**
 * Is stderr the systemd journal? systemd sets `JOURNAL_STREAM=DEV:INODE` to the device and inode
 * of the stream it connects a service's stdout/stderr to (sd-daemon(3)); the variable is
 * inherited by children whose stderr goes elsewhere, so it counts only when it names stderr
 * itself. Then each line may start with its syslog priority (`<3>` error, `<4>` warning…),
 * which journald takes off and stores as PRIORITY= (`journalctl -p warning`).
 */

import { libcLoader } from "../os/libc.ts";

/** syslog priorities of LogTape's levels (and of the last line of a process that cannot go on). */
export const PRIORITIES = {
  fatal: 2, // crit
  error: 3, // err
  warning: 4, // warning
  info: 6, // info
  debug: 7, // debug
  trace: 7,
} as const;

export type PriorityLevel = keyof typeof PRIORITIES;

/** `line` with the priority prefix journald reads, e.g. `<4>` for a warning. */
export function withPriority(level: PriorityLevel, line: string): string {
  return `<${PRIORITIES[level]}>${line}`;
}

// statx(2) rather than fstat: glibc exports fstat only since 2.33 and its struct stat differs
// between architectures; struct statx is the same everywhere (glibc >= 2.28).
const load = libcLoader({
  statx: { parameters: ["i32", "buffer", "i32", "u32", "buffer"], result: "i32", optional: true },
});

const AT_EMPTY_PATH = 0x1000;
const STATX_INO = 0x100;

/**
 * The device and inode of open descriptor `fd`, with the device as `st_dev` (and Deno's
 * `FileInfo.dev`) encodes it; undefined where libc or statx is missing, or the call fails.
 */
export function descriptorIdentity(fd: number): { dev: bigint; ino: bigint } | undefined {
  const statx = load()?.statx;
  if (!statx) return undefined;
  const buf = new Uint8Array(256); // struct statx
  if (statx(fd, new Uint8Array(1), AT_EMPTY_PATH, STATX_INO, buf) !== 0) return undefined;
  const view = new DataView(buf.buffer);
  const major = BigInt(view.getUint32(136, true)); // stx_dev_major
  const minor = BigInt(view.getUint32(140, true)); // stx_dev_minor
  // glibc's makedev()
  const dev = (minor & 0xffn) | ((major & 0xfffn) << 8n) | ((minor & ~0xffn) << 12n) |
    ((major & ~0xfffn) << 32n);
  return { dev, ino: view.getBigUint64(32, true) }; // stx_ino
}

/**
 * Whether stderr is the journal: `journalStream` (the value of JOURNAL_STREAM) is
 * `DEV:INODE` in decimal and names the file stderr is open on.
 */
export function stderrIsJournal(journalStream: string | undefined): boolean {
  const match = /^(\d+):(\d+)$/.exec(journalStream?.trim() ?? "");
  if (!match) return false;
  const stderr = descriptorIdentity(2);
  return stderr !== undefined && stderr.dev === BigInt(match[1]) && stderr.ino === BigInt(match[2]);
}
