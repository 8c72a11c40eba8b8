/**
 * Hosts in Linux network namespaces, joined by veth pairs: a fleet on one machine, where a link
 * can be cut silently (`ip link set … down`: no FIN, no RST, packets simply stop). Needs root
 * and iproute2; `netnsUnavailable()` says why not, for tests to report themselves skipped.
 *
 * Every namespace this process makes is called `PREFIX<pid>-<host>`; `Network.create()` first
 * deletes those of processes that are gone (a run killed before its cleanup), and `destroy()`
 * deletes this one's (the veths inside go with them). Only addresses inside these namespaces
 * are configured; the root namespace is never touched.
 */

/** The prefix of every namespace made here. */
export const PREFIX = "zfleet-";

const decoder = new TextDecoder();

/** Runs `ip ARGS`; throws with its stderr on failure. */
export async function ip(...args: string[]): Promise<string> {
  const out = await new Deno.Command("ip", { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) throw new Error(`ip ${args.join(" ")}: ${decoder.decode(out.stderr).trim()}`);
  return decoder.decode(out.stdout);
}

/** Why namespaces cannot be made here (undefined when they can): not root, no `ip`, refused. */
export async function netnsUnavailable(): Promise<string | undefined> {
  if (Deno.build.os !== "linux") return `network namespaces are Linux-only (this is ${Deno.build.os})`;
  if (Deno.uid() !== 0) return "needs root for ip netns and veth pairs";
  const probe = `${PREFIX}${Deno.pid}-probe`;
  try {
    await ip("netns", "add", probe);
  } catch (error) {
    return error instanceof Deno.errors.NotFound
      ? "no ip command (apt-get install -y iproute2)"
      : `ip netns add refused: ${(error as Error).message}`;
  }
  try {
    await ip(
      "link",
      "add",
      "zfprobe0",
      "netns",
      probe,
      "type",
      "veth",
      "peer",
      "name",
      "zfprobe1",
      "netns",
      probe,
    );
  } catch (error) {
    return `veth pairs cannot be made: ${(error as Error).message}`;
  } finally {
    await ip("netns", "delete", probe).catch(() => {});
  }
  return undefined;
}

/**
 * Deletes the namespaces left by runs that no longer run (killed before their cleanup), after
 * SIGKILLing the processes still inside them (adaptors and peers those runs started).
 */
export async function removeStale(): Promise<string[]> {
  const removed: string[] = [];
  for (const line of (await ip("netns", "list")).split("\n")) {
    const match = new RegExp(`^(${PREFIX}(\\d+)-\\S+)`).exec(line);
    if (!match || alive(Number(match[2]))) continue;
    await killInside(match[1]);
    await ip("netns", "delete", match[1]).catch(() => {});
    removed.push(match[1]);
  }
  return removed;
}

/** SIGKILLs every process inside namespace `ns` (by pid, as `ip netns pids` lists them). */
export async function killInside(ns: string): Promise<number[]> {
  const pids = (await ip("netns", "pids", ns).catch(() => "")).split("\n").map(Number).filter((p) => p > 0);
  for (const pid of pids) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** Whether process `pid` runs (a zombie, killed but not yet reaped, does not). */
function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** A host: a network namespace with its loopback up. */
export interface Host {
  readonly name: string;
  readonly ns: string;
}

/** One end of a link: the interface in its host and its address. */
export interface End {
  readonly host: Host;
  readonly ifname: string;
  readonly address: string;
}

/** A point-to-point link (a veth pair), a /30 of its own. */
export interface Link {
  readonly a: End;
  readonly b: End;
}

/** The namespaces and links of one run; `destroy()` removes them all. */
export class Network {
  readonly hosts: Host[] = [];
  readonly links: Link[] = [];
  #subnets = 0;

  private constructor(readonly base: string) {}

  /** A new, empty network (addresses 10.BASE.N.0/30), after removing stale namespaces. */
  static async create(base = 213): Promise<Network> {
    await removeStale();
    return new Network(`10.${base}`);
  }

  /** A host called `name` (≤ 12 characters), its loopback up. */
  async host(name: string): Promise<Host> {
    const host = { name, ns: `${PREFIX}${Deno.pid}-${name}` };
    await ip("netns", "add", host.ns);
    this.hosts.push(host);
    await ip("-n", host.ns, "link", "set", "dev", "lo", "up");
    return host;
  }

  /**
   * Joins `a` and `b` by a veth pair, interfaces `aIf` in `a` and `bIf` in `b` (≤ 15 characters,
   * unique in each host), with the addresses .1 (a) and .2 (b) of the next /30; both up.
   */
  async link(a: Host, aIf: string, b: Host, bIf: string): Promise<Link> {
    const n = this.#subnets++;
    const prefix = `${this.base}.${n}`;
    await ip("link", "add", aIf, "netns", a.ns, "type", "veth", "peer", "name", bIf, "netns", b.ns);
    const link = {
      a: { host: a, ifname: aIf, address: `${prefix}.1` },
      b: { host: b, ifname: bIf, address: `${prefix}.2` },
    };
    for (const end of [link.a, link.b]) {
      await ip("-n", end.host.ns, "addr", "add", `${end.address}/30`, "dev", end.ifname);
      await ip("-n", end.host.ns, "link", "set", "dev", end.ifname, "up");
    }
    this.links.push(link);
    return link;
  }

  /** Sets `end`'s interface down (the other end loses its carrier): a silent cut. */
  async down(end: End): Promise<void> {
    await ip("-n", end.host.ns, "link", "set", "dev", end.ifname, "down");
  }

  /** Sets `end`'s interface up again (its IPv4 address and route come back with it). */
  async up(end: End): Promise<void> {
    await ip("-n", end.host.ns, "link", "set", "dev", end.ifname, "up");
  }

  /** The command prefix that runs a program inside `host`. */
  exec(host: Host, command: string[]): string[] {
    return ["ip", "netns", "exec", host.ns, ...command];
  }

  /**
   * Deletes every namespace of this network (with its veths), SIGKILLing first any process
   * still inside (callers stop theirs before; this is the backstop). Never throws.
   */
  async destroy(): Promise<void> {
    for (const host of this.hosts.splice(0)) {
      await killInside(host.ns);
      await ip("netns", "delete", host.ns).catch(() => {});
    }
    this.links.length = 0;
  }
}
