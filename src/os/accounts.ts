/**
 * Users and groups as the files say (/etc/passwd, /etc/group: `name:x:id:…` lines), for names in
 * messages and for groups where glibc's getgrnam (NSS) cannot be asked.
 */

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
