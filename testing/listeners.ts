/**
 * What a process listens on, read from /proc as `ss -ltnp -lxp` would: its sockets' inodes
 * (/proc/PID/fd) matched against the kernel's tables of listening tcp and unix sockets.
 */

/** The process's listening sockets, as "tcp 127.0.0.1:6001", "tcp6 [::1]:6001" or "unix /path". */
export function listeningSockets(pid: number): string[] {
  const inodes = new Set<string>();
  for (const entry of Deno.readDirSync(`/proc/${pid}/fd`)) {
    try {
      const target = Deno.readLinkSync(`/proc/${pid}/fd/${entry.name}`);
      const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
      if (inode) inodes.add(inode);
    } catch {
      // closed meanwhile
    }
  }
  const found: string[] = [];
  for (const family of ["tcp", "tcp6"] as const) {
    for (const row of Deno.readTextFileSync(`/proc/${pid}/net/${family}`).split("\n").slice(1)) {
      const cells = row.trim().split(/\s+/);
      // sl local_address rem_address st tx:rx tr:tm retrnsmt uid timeout inode
      if (cells.length < 10 || cells[3] !== "0A" || !inodes.has(cells[9])) continue;
      found.push(`${family} ${address(cells[1])}`);
    }
  }
  for (const row of Deno.readTextFileSync(`/proc/${pid}/net/unix`).split("\n").slice(1)) {
    const cells = row.trim().split(/\s+/);
    // Num RefCount Protocol Flags Type St Inode Path; flag 0x10000 is __SO_ACCEPTCON (listening)
    if (cells.length < 7 || (parseInt(cells[3], 16) & 0x10000) === 0 || !inodes.has(cells[6])) continue;
    found.push(`unix ${cells[7] ?? "(unnamed)"}`);
  }
  return found.sort();
}

/** "0100007F:1771" → "127.0.0.1:6001"; the IPv6 form → "[::1]:6001". */
function address(hex: string): string {
  const [ip, port] = hex.split(":");
  const p = parseInt(port, 16);
  if (ip.length === 8) {
    const bytes = ip.match(/../g)!.map((b) => parseInt(b, 16)).reverse();
    return `${bytes.join(".")}:${p}`;
  }
  // Four little-endian 32-bit words.
  const words = ip.match(/.{8}/g)!.map((w) => w.match(/../g)!.reverse().join(""));
  const groups = words.join("").match(/.{4}/g)!.map((g) => parseInt(g, 16).toString(16));
  return `[${groups.join(":").replace(/(^|:)0(:0)+(:|$)/, "::")}]:${p}`;
}
