/**
 * Users and groups: as the C library resolves them (getgrnam, getpwuid through NSS: LDAP, SSSD),
 * and as the files say (/etc/passwd, /etc/group) where it cannot be asked; this process's uid,
 * and a process's command name.
 */

import { libc, readSmallFile } from "./libc.ts";

/** The names and ids of an `/etc/passwd`- or `/etc/group`-style file; empty when it cannot be read. */
export interface Accounts {
  /** id → name (the first name wins). */
  readonly names: ReadonlyMap<number, string>;
  /** name → id. */
  readonly ids: ReadonlyMap<string, number>;
}

/** Reads `file`; throws what reading it threw when `strict`, else gives an empty table. */
export function readAccounts(file: string, strict = false): Accounts {
  const names = new Map<number, string>();
  const ids = new Map<string, number>();
  let text = "";
  try {
    text = Deno.readTextFileSync(file);
  } catch (error) {
    if (strict) throw error;
  }
  for (const line of text.split("\n")) {
    const [name, , id] = line.split(":");
    if (!name || id === undefined || !/^\d+$/.test(id)) continue;
    if (!names.has(Number(id))) names.set(Number(id), name);
    if (!ids.has(name)) ids.set(name, Number(id));
  }
  return { names, ids };
}

/**
 * The gid of group `name` as the C library resolves it (getgrnam(3): /etc/group, LDAP, SSSD…,
 * as nsswitch.conf says); null when there is no such group; undefined where libc cannot be
 * opened (the caller then reads /etc/group itself).
 */
export function groupId(name: string): number | null | undefined {
  const c = libc();
  if (!c) return undefined;
  const entry = c.getgrnam(new TextEncoder().encode(name + "\0"));
  if (!entry) return null;
  return new Deno.UnsafePointerView(entry).getUint32(16); // struct group: name, passwd, gid_t gr_gid
}

/** This process's effective uid, or undefined where libc cannot be opened. */
export function effectiveUid(): number | undefined {
  return libc()?.geteuid();
}

/** "uid 65534 (nobody)": a uid with its user name where the C library knows one. */
export function describeUid(uid: number): string {
  const c = libc();
  const entry = c?.getpwuid(uid);
  const name = entry
    ? Deno.UnsafePointerView.getCString(new Deno.UnsafePointerView(entry).getPointer(0)!)
    : "";
  return name ? `uid ${uid} (${name})` : `uid ${uid}`;
}

/** The command name of process `pid` (/proc/PID/comm), if it can be read. */
export function processName(pid: number): string | undefined {
  const c = libc();
  return c ? readSmallFile(c, `/proc/${pid}/comm`)?.trim() || undefined : undefined;
}
