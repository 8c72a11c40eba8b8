/**
 * scripts/adaptor.service: every ADAPTOR_* setting it makes is one the adaptor reads, and
 * together they form a valid configuration (a typo would otherwise surface only on a node);
 * systemd itself accepts the unit where systemd-analyze is installed. The same for the unit with
 * each distribution's drop-in (scripts/adaptor.service.d/): the unit is one file for Debian/Ubuntu
 * and RHEL-likes, the drop-in names the nginx workers' group; and scripts/adaptor.sysusers makes
 * the user the unit runs as. scripts/adaptor.socket (socket activation) listens on the path the
 * service binds, with the workers' group on each distribution, and systemd accepts it.
 */

import assert from "node:assert/strict";
import { parseArgs } from "../src/config/cli.ts";
import { OPTIONS } from "../src/config/options.ts";
import type { Config } from "../src/config/config.ts";
import { ROOT } from "../testing/process.ts";

const UNIT = `${ROOT}scripts/adaptor.service`;
const DROP_INS = { debian: "www-data", rhel: "nginx" } as const;
const dropIn = (name: string) => `${ROOT}scripts/adaptor.service.d/${name}.conf`;
const SYSUSERS = `${ROOT}scripts/adaptor.sysusers`;

/** `Environment=ADAPTOR_…=…` lines of unit files, later files overriding earlier ones. */
function settings(...files: string[]): Record<string, string> {
  return Object.fromEntries(
    files.flatMap((file) => Deno.readTextFileSync(file).split("\n"))
      .map((line) => /^Environment=(ADAPTOR_\w+)=(.*)$/.exec(line))
      .filter((m) => m !== null)
      .map((m) => [m![1], m![2]]),
  );
}

/** The last value of `key=` in `files` (drop-ins override). */
function serviceKey(key: string, ...files: string[]): string | undefined {
  let value: string | undefined;
  for (const file of files) {
    for (const m of Deno.readTextFileSync(file).matchAll(new RegExp(`^${key}=(.*)$`, "gm"))) value = m[1];
  }
  return value;
}

function configOf(values: Record<string, string>): Config {
  const known = new Set<string>(OPTIONS.map((o) => o.env));
  for (const name of Object.keys(values)) assert.ok(known.has(name), `the adaptor does not read ${name}`);
  const invocation = parseArgs([], values);
  assert.equal(invocation.kind, "run");
  return (invocation as Extract<typeof invocation, { kind: "run" }>).config;
}

Deno.test("the systemd unit's ADAPTOR_* settings are known and make a valid configuration", () => {
  const config = configOf(settings(UNIT));
  assert.equal(config.bind[0].ipcPath, "/run/api-gateway/nginx_queue_listen");
  assert.deepEqual(config.metrics, { hostname: "0.0.0.0", port: 6002 });
  assert.equal(config.logFormat, "json");
});

Deno.test("one unit for every distribution: its own user; each drop-in sets the workers' group twice over", () => {
  // The unit names no distribution's nginx user: it runs unedited everywhere.
  assert.equal(serviceKey("User", UNIT), "adaptor");
  assert.equal(serviceKey("Group", UNIT), "adaptor");
  assert.doesNotMatch(Deno.readTextFileSync(UNIT), /^(User|Group|SupplementaryGroups)=(nginx|www-data)$/m);
  assert.match(Deno.readTextFileSync(SYSUSERS), /^u adaptor - /m);
  for (const [name, group] of Object.entries(DROP_INS)) {
    // The primary group makes RuntimeDirectory adaptor:<group> 0750 (the workers may search it) and
    // lets the adaptor chown its socket files to it; ADAPTOR_IPC_GROUP does that chown.
    assert.equal(serviceKey("Group", UNIT, dropIn(name)), group, name);
    assert.equal(serviceKey("User", UNIT, dropIn(name)), "adaptor", name);
    assert.equal(serviceKey("RuntimeDirectoryMode", UNIT, dropIn(name)), "0750", name);
    const config = configOf(settings(UNIT, dropIn(name)));
    assert.equal(config.ipcGroup, group, name);
    assert.equal(config.ipcMode, 0o660, name);
    assert.equal(config.bind[0].ipcPath, "/run/api-gateway/nginx_queue_listen", name);
  }
});

const missing = (command: string): string | undefined => {
  try {
    new Deno.Command(command, { args: ["--version"], stdout: "null", stderr: "null" }).outputSync();
    return undefined;
  } catch {
    return `no ${command} (apt-get install systemd)`;
  }
};
const noAnalyze = missing("systemd-analyze");
const noSysusers = missing("systemd-sysusers");

/**
 * `systemd-analyze verify` of the service (ExecStart pointed at a binary that exists: verify checks
 * it) or of the socket unit beside it, in a temp dir, with `dropInFile` as the unit's drop-in if given.
 */
async function verify(
  dropInFile?: string,
  unitName: "adaptor.service" | "adaptor.socket" = "adaptor.service",
) {
  const dir = Deno.makeTempDirSync({ prefix: "adaptor-unit-" });
  try {
    Deno.writeTextFileSync(
      `${dir}/adaptor.service`,
      Deno.readTextFileSync(UNIT).replace("ExecStart=/usr/local/bin/adaptor", "ExecStart=/bin/true"),
    );
    if (unitName === "adaptor.socket") Deno.copyFileSync(SOCKET_UNIT, `${dir}/adaptor.socket`);
    const unit = `${dir}/${unitName}`;
    if (dropInFile) {
      // systemd-analyze reads the drop-ins beside the unit, as it would in /etc/systemd/system.
      const section = unitName === "adaptor.socket" ? "Socket" : "Service";
      Deno.mkdirSync(`${unit}.d`);
      Deno.copyFileSync(dropInFile, `${unit}.d/gateway.conf`);
      // A drop-in systemd would ignore a key of would pass in silence: check that it does not.
      Deno.writeTextFileSync(`${unit}.d/zz-probe.conf`, `[${section}]\nNoSuchKey=1\n`);
      const probe = await new Deno.Command("systemd-analyze", { args: ["verify", unit] }).output();
      assert.match(new TextDecoder().decode(probe.stderr), /zz-probe\.conf:2: Unknown key 'NoSuchKey'/);
      Deno.removeSync(`${unit}.d/zz-probe.conf`);
    }
    const output = await new Deno.Command("systemd-analyze", { args: ["verify", unit] }).output();
    const text = new TextDecoder().decode(output.stderr) + new TextDecoder().decode(output.stdout);
    assert.equal(output.code, 0, text);
    assert.equal(text.trim(), "", text);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

Deno.test({
  name: `systemd-analyze verify accepts the unit${noAnalyze ? ` (skipped: ${noAnalyze})` : ""}`,
  ignore: noAnalyze !== undefined,
  fn: () => verify(),
});

for (const name of Object.keys(DROP_INS)) {
  Deno.test({
    name: `systemd-analyze verify accepts the unit with the ${name} drop-in${
      noAnalyze ? ` (skipped: ${noAnalyze})` : ""
    }`,
    ignore: noAnalyze !== undefined,
    fn: () => verify(dropIn(name)),
  });
}

Deno.test({
  name: `systemd-sysusers makes the unit's user and group from scripts/adaptor.sysusers${
    noSysusers ? ` (skipped: ${noSysusers})` : ""
  }`,
  ignore: noSysusers !== undefined,
  fn: async () => {
    const root = Deno.makeTempDirSync({ prefix: "adaptor-sysusers-" });
    try {
      const output = await new Deno.Command("systemd-sysusers", {
        args: [`--root=${root}`, "--dry-run", SYSUSERS],
      }).output();
      const text = new TextDecoder().decode(output.stderr) + new TextDecoder().decode(output.stdout);
      assert.equal(output.code, 0, text);
      assert.match(text, /Creating group '?adaptor'? with GID \d+/);
      assert.match(text, /Creating user '?adaptor'? \(API gateway ZeroMQ adaptor\) with UID \d+/);
    } finally {
      Deno.removeSync(root, { recursive: true });
    }
  },
});

Deno.test("the unit bounds the adaptor's memory and raises its descriptors (issue 13: what libzmq cannot bound)", () => {
  const lines = Deno.readTextFileSync(UNIT).split("\n");
  const setting = (name: string) => lines.find((l) => l.startsWith(`${name}=`))?.slice(name.length + 1);
  // A never-ending multipart message grows the adaptor by ~1 GiB a second: the kernel stops it.
  assert.equal(setting("MemoryMax"), "1536M");
  assert.equal(setting("LimitNOFILE"), "65536");
  // ...and systemd restarts it: an OOM kill is an abnormal end, which on-failure covers.
  assert.equal(setting("Restart"), "on-failure");
});

const NEWER = dropIn("systemd-254");

Deno.test("Type=notify with a watchdog; a crash loop is restarted for ever, exit 2 never; ordered before OpenResty too", () => {
  const unit = Deno.readTextFileSync(UNIT);
  assert.equal(serviceKey("Type", UNIT), "notify");
  assert.equal(serviceKey("WatchdogSec", UNIT), "10s");
  assert.equal(serviceKey("ExecReload", UNIT), "/bin/sh -c 'kill -HUP $MAINPID'");
  // No start limit: the default (5 starts in 10 s) left the node without an adaptor for good.
  assert.match(unit, /^\[Unit\][^[]*^StartLimitIntervalSec=0$/m);
  assert.equal(serviceKey("RestartSec", UNIT), "1s");
  assert.equal(serviceKey("RestartPreventExitStatus", UNIT), "2");
  assert.deepEqual(serviceKey("Before", UNIT)?.split(" "), ["nginx.service", "openresty.service"]);
  const files = [...unit.matchAll(/^EnvironmentFile=(.*)$/gm)].map((m) => m[1]);
  assert.deepEqual(files, ["-/etc/default/adaptor", "-/etc/sysconfig/adaptor"]);
  // The newer systemd's drop-in: systemd signals and waits for READY=1; restarts back off.
  assert.equal(serviceKey("Type", UNIT, NEWER), "notify-reload");
  assert.equal(serviceKey("ExecReload", UNIT, NEWER), "");
  assert.equal(serviceKey("RestartSteps", UNIT, NEWER), "5");
  assert.equal(serviceKey("RestartMaxDelaySec", UNIT, NEWER), "30s");
});

Deno.test("the unit binds only the ports it publishes and serves metrics on; the socket is outside /tmp", () => {
  const config = configOf(settings(UNIT));
  const unit = Deno.readTextFileSync(UNIT);
  const allowed = [...unit.matchAll(/^SocketBindAllow=tcp:(\d+)$/gm)].map((m) => Number(m[1]));
  const ports = [...config.publish.map((e) => Number(/:(\d+)$/.exec(e.address)![1])), config.metrics!.port];
  assert.deepEqual(allowed.sort(), ports.sort());
  assert.equal(serviceKey("SocketBindDeny", UNIT), "any");
  // PrivateTmp=yes here, and in Fedora/RHEL's nginx.service: a socket under /tmp is seen by neither.
  assert.equal(serviceKey("PrivateTmp", UNIT), "yes");
  assert.ok(config.bind[0].ipcPath!.startsWith(`/run/${serviceKey("RuntimeDirectory", UNIT)}/`));
});

/** `systemd-analyze security --offline=true`'s overall exposure of a unit file (0 best, 10 worst). */
async function exposure(unit: string): Promise<{ score: number; text: string }> {
  const output = await new Deno.Command("systemd-analyze", {
    args: ["security", "--offline=true", "--no-pager", unit],
  }).output();
  const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
  const m = /Overall exposure level for adaptor\.service: (\d+\.\d+)/.exec(text);
  assert.ok(m, text);
  return { score: Number(m![1]), text };
}

Deno.test({
  name: `systemd-analyze security rates the unit's exposure 2.5 or less${
    noAnalyze ? ` (skipped: ${noAnalyze})` : ""
  }`,
  ignore: noAnalyze !== undefined,
  fn: async () => {
    const { score, text } = await exposure(UNIT);
    assert.ok(score <= 2.5, `exposure ${score}:\n${text}`);
    // What it is not, and why (the unit says): the JIT, the workers' group, the network.
    for (const line of text.split("\n").filter((l) => l.startsWith("✗"))) {
      assert.match(
        line,
        /^✗ (SystemCallFilter=~@(privileged|resources)|RootDirectory|MemoryDenyWriteExecute|RestrictAddressFamilies|PrivateNetwork|PrivateUsers|DeviceAllow|IPAddressDeny)/,
        line,
      );
    }
  },
});

Deno.test({
  name: `systemd-analyze verify: the systemd-254 drop-in's keys are the ones this systemd may not know${
    noAnalyze ? ` (skipped: ${noAnalyze})` : ""
  }`,
  ignore: noAnalyze !== undefined,
  fn: async () => {
    const dir = Deno.makeTempDirSync({ prefix: "adaptor-unit-" });
    try {
      const unit = `${dir}/adaptor.service`;
      Deno.writeTextFileSync(
        unit,
        Deno.readTextFileSync(UNIT).replace("ExecStart=/usr/local/bin/adaptor", "ExecStart=/bin/true"),
      );
      Deno.mkdirSync(`${dir}/adaptor.service.d`);
      Deno.copyFileSync(NEWER, `${dir}/adaptor.service.d/systemd-254.conf`);
      const output = await new Deno.Command("systemd-analyze", { args: ["verify", unit] }).output();
      const text = new TextDecoder().decode(output.stderr) + new TextDecoder().decode(output.stdout);
      assert.equal(output.code, 0, text);
      const version = Number(
        /^systemd (\d+)/.exec(
          new TextDecoder().decode(
            new Deno.Command("systemd-analyze", { args: ["--version"] }).outputSync().stdout,
          ),
        )![1],
      );
      const complaints = text.split("\n").filter((l) => l.trim() !== "");
      const expected = [
        ...(version < 253 ? [/Failed to parse service type, ignoring: notify-reload/] : []),
        ...(version < 254 ? [/Unknown key 'RestartSteps'/, /Unknown key 'RestartMaxDelaySec'/] : []),
      ];
      assert.equal(complaints.length, expected.length, text);
      expected.forEach((re, i) => assert.match(complaints[i], re));
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

const SOCKET_UNIT = `${ROOT}scripts/adaptor.socket`;
const socketDropIn = (name: string) => `${ROOT}scripts/adaptor.socket.d/${name}.conf`;

Deno.test("the socket unit listens where the service binds, with the workers' group; the service keeps its directory", () => {
  const config = configOf(settings(UNIT));
  const path = config.bind[0].ipcPath!;
  // The adaptor refuses (exit 2) a passed socket that none of its endpoints binds.
  assert.equal(serviceKey("ListenStream", SOCKET_UNIT), path);
  assert.equal(path.slice(0, path.lastIndexOf("/")), `/run/${serviceKey("RuntimeDirectory", UNIT)}`);
  assert.equal(serviceKey("Service", SOCKET_UNIT), "adaptor.service");
  assert.equal(serviceKey("WantedBy", SOCKET_UNIT), "sockets.target");
  assert.equal(serviceKey("Accept", SOCKET_UNIT), undefined); // one adaptor for every connection
  // The file as the adaptor makes it when it binds by itself: its user, the workers' group, 0660.
  assert.equal(serviceKey("SocketUser", SOCKET_UNIT), serviceKey("User", UNIT));
  assert.equal(Number.parseInt(serviceKey("SocketMode", SOCKET_UNIT)!, 8), config.ipcMode);
  // Debian's group is the unit's own; RHEL-likes' comes from a drop-in, as the service's does.
  assert.equal(serviceKey("SocketGroup", SOCKET_UNIT), serviceKey("Group", UNIT, dropIn("debian")));
  assert.equal(serviceKey("SocketGroup", SOCKET_UNIT), DROP_INS.debian);
  assert.equal(
    serviceKey("SocketGroup", SOCKET_UNIT, socketDropIn("rhel")),
    serviceKey("Group", UNIT, dropIn("rhel")),
  );
  assert.equal(serviceKey("SocketGroup", SOCKET_UNIT, socketDropIn("rhel")), DROP_INS.rhel);
  // A stop must not delete the socket unit's file with the directory.
  assert.equal(serviceKey("RuntimeDirectoryPreserve", UNIT), "yes");
  // Before the service's first start the directory is the socket unit's: the workers search it.
  assert.equal(Number.parseInt(serviceKey("DirectoryMode", SOCKET_UNIT)!, 8) & 0o001, 0o001);
});

Deno.test({
  name: `systemd-analyze verify accepts the socket unit${noAnalyze ? ` (skipped: ${noAnalyze})` : ""}`,
  ignore: noAnalyze !== undefined,
  fn: () => verify(undefined, "adaptor.socket"),
});

Deno.test({
  name: `systemd-analyze verify accepts the socket unit with the rhel drop-in${
    noAnalyze ? ` (skipped: ${noAnalyze})` : ""
  }`,
  ignore: noAnalyze !== undefined,
  fn: () => verify(socketDropIn("rhel"), "adaptor.socket"),
});
