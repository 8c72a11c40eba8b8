/**
 * `--check` as a process: the effective configuration on stdout, one line per setting and no
 * secret; exit 0 for a configuration a start would accept, 2 for a bad one (flag, endpoint,
 * certificate, its mode, group), 1 for what this host refuses now (missing ipc directory,
 * another adaptor's lock, a live socket, a busy port). In every case nothing is left behind:
 * the directory of the ipc paths lists the same before and after, and the ports are free.
 */

import assert from "node:assert/strict";
import { keygen } from "../src/security/cert.ts";
import { OPTIONS } from "../src/config/options.ts";
import { lockFile } from "../src/os/lock.ts";
import { ZMQ_LINGER, ZMQ_PUB } from "../src/zmq/constants.ts";
import { Context } from "../src/zmq/socket.ts";
import { freePort, portIsFree } from "../testing/net.ts";
import { AdaptorProcess, ROOT, RUN_FLAGS, runAdaptor } from "../testing/process.ts";

/** A directory of its own for the ipc paths and certificates of one test. */
function tempDir(): string {
  return Deno.makeTempDirSync({ prefix: "adaptor-check-" });
}

function listing(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
}

/** Runs `--check` with `args`; asserts the directory lists the same after and the ports are free. */
async function check(
  dir: string,
  args: string[],
  options: { env?: Record<string, string>; ports?: number[] } = {},
): Promise<{ code: number; stdout: string[]; stderr: string[] }> {
  const before = listing(dir);
  const result = await runAdaptor(["--check", ...args], { env: options.env });
  assert.deepEqual(listing(dir), before, `--check left files behind:\n${result.stderr.join("\n")}`);
  for (const port of options.ports ?? []) assert.ok(portIsFree(port), `port ${port} left bound`);
  return result;
}

/** The line a start would end with: one of `stderr`, naming each of `mentions`. */
function assertProblem(stderr: string[], mentions: string[]): void {
  const errors = stderr.filter((l) => l.startsWith("adaptor: error: "));
  assert.ok(
    errors.some((l) => mentions.every((m) => l.includes(m))),
    `no error line mentions ${mentions.join(", ")}:\n${stderr.join("\n")}`,
  );
  assert.doesNotMatch(stderr.join("\n"), /Stack backtrace| {4}at |Uncaught/);
}

Deno.test("--check, a good configuration: exit 0, every setting on stdout, nothing bound or created", async () => {
  const dir = tempDir();
  try {
    const [port, metrics] = [freePort(), freePort()];
    const { code, stdout, stderr } = await check(dir, [
      "-b",
      `ipc://${dir}/q`,
      "-p",
      `tcp://127.0.0.1:${port}`,
      "-p",
      `>tcp://127.0.0.1:${freePort()}`,
      "--metrics",
      `127.0.0.1:${metrics}`,
      "--ipc-mode",
      "660",
    ], { env: { ADAPTOR_SNDHWM: "1234" }, ports: [port, metrics] });
    assert.equal(code, 0, stderr.join("\n"));
    assert.equal(stdout.length, OPTIONS.length, stdout.join("\n"));
    assert.ok(stdout.includes(`bind @ipc://${dir}/q`), stdout.join("\n"));
    assert.ok(stdout.some((l) => l.startsWith(`publish @tcp://127.0.0.1:${port},>tcp://127.0.0.1:`)));
    for (const line of ["sndhwm 1234", "ipc-mode 0660", `metrics 127.0.0.1:${metrics}`, "listen off"]) {
      assert.ok(stdout.includes(line), `${line} missing:\n${stdout.join("\n")}`);
    }
    assert.match(stderr.at(-1)!, /check: a start with this configuration would succeed now$/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("--check: usage errors exit 2 with the line a start gives (flag, endpoint, missing certificate, group)", async () => {
  const dir = tempDir();
  try {
    const cases: [string[], string[]][] = [
      [["--bogus"], ["--bogus"]],
      [["-p", "udp://127.0.0.1:5000"], ["-p/--publish", "udp"]],
      [["-b", `ipc://${dir}/q`, "--curve-cert", `${dir}/missing`], [
        "--curve-cert",
        `${dir}/missing`,
        "no such file",
      ]],
      [["-b", `ipc://${dir}/q`, "--ipc-group", "no-such-group-here"], ["--ipc-group", "no-such-group-here"]],
    ];
    for (const [args, mentions] of cases) {
      const { code, stdout, stderr } = await check(dir, [...args, "-p", `tcp://127.0.0.1:${freePort()}`]);
      assert.equal(code, 2, `${args.join(" ")}: ${stderr.join("\n")}`);
      assertProblem(stderr, mentions);
      // Once the flags parse, the configuration is printed all the same.
      if (args[0] !== "--bogus" && args[0] !== "-p") assert.ok(stdout.includes(`bind @ipc://${dir}/q`));
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("--check with a certificate: its path and public key printed, never the secret; a bad mode is exit 2", async () => {
  const dir = tempDir();
  try {
    const { secretPath, publicKey } = keygen(`${dir}/server`);
    const secret = /secret-key = "([^"]+)"/.exec(Deno.readTextFileSync(secretPath))![1];
    const args = ["-b", `ipc://${dir}/q`, "-p", `tcp://127.0.0.1:${freePort()}`, "--curve-cert", secretPath];
    const good = await check(dir, args);
    assert.equal(good.code, 0, good.stderr.join("\n"));
    assert.ok(good.stdout.some((l) => l.startsWith(`curve-cert ${secretPath} `) && l.includes(publicKey)));
    assert.ok(
      ![...good.stdout, ...good.stderr].some((l) => l.includes(secret)),
      "the secret key was printed",
    );
    Deno.chmodSync(secretPath, 0o644);
    const bad = await check(dir, args);
    assert.equal(bad.code, 2);
    assertProblem(bad.stderr, ["--curve-cert", "accessible by group or others", "0644"]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("--check: runtime problems exit 1 (missing directory, held lock, live socket, busy ports, no interface)", async () => {
  const dir = tempDir();
  const abstract = `ipc://@adaptor-check-${Deno.pid}-${freePort()}`;
  const ctx = new Context();
  const holder = ctx.socket(ZMQ_PUB);
  holder.setInt(ZMQ_LINGER, 0);
  holder.bind(abstract);
  const port = freePort();
  const metrics = freePort();
  const squatters = [
    Deno.listen({ hostname: "127.0.0.1", port }),
    Deno.listen({ hostname: "127.0.0.1", port: metrics }),
  ];
  const freeOne = freePort();
  const lock = lockFile(`${dir}/locked.lock`);
  const live = Deno.listen({ transport: "unix", path: `${dir}/live` });
  try {
    assert.ok(lock && "release" in lock);
    const cases: [string[], string[]][] = [
      [["-b", `ipc://${dir}/missing/q`], [`${dir}/missing`, "does not exist"]],
      [["-b", `ipc://${dir}/locked`], ["another process is serving", `holding ${dir}/locked.lock`]],
      [["-b", `ipc://${dir}/live`], ["another process (uid", "is serving", `${dir}/live`]],
      [["-b", abstract], [`-b/--bind '${abstract}': cannot bind`, "Address already in use"]],
      [["-b", `ipc://${dir}/q`, "-p", "tcp://nosuchif0:6001"], ["nosuchif0", "no such interface"]],
      // Two endpoints of ours on one port: the second bind fails in a start too.
      [["-b", `ipc://${dir}/q`, "-p", `tcp://127.0.0.1:${freeOne}`, "-p", `tcp://0.0.0.0:${freeOne}`], [
        `-p/--publish 'tcp://0.0.0.0:${freeOne}': cannot bind`,
      ]],
      [["-b", `ipc://${dir}/q`, "-p", `tcp://127.0.0.1:${port}`], [
        `tcp://127.0.0.1:${port}`,
        "Address already in use",
      ]],
      [["-b", `ipc://${dir}/q`, "--metrics", `127.0.0.1:${metrics}`], [
        `--metrics '127.0.0.1:${metrics}'`,
        "in use",
      ]],
    ];
    for (const [args, mentions] of cases) {
      const withPublish = args.includes("-p") ? args : [...args, "-p", `tcp://127.0.0.1:${freePort()}`];
      const { code, stdout, stderr } = await check(dir, withPublish);
      assert.equal(code, 1, `${args.join(" ")}: ${stderr.join("\n")}`);
      assertProblem(stderr, mentions);
      assert.ok(stdout.some((l) => l.startsWith("bind @ipc://")), "the configuration is printed too");
    }
    // The lock is still ours: the check took nothing for good.
    assert.equal((lockFile(`${dir}/locked.lock`) as { kind?: string }).kind, "held");
  } finally {
    for (const squatter of squatters) squatter.close();
    live.close();
    holder.close();
    await ctx.terminate();
    if (lock && "release" in lock) lock.release();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("--check: a bad certificate and a busy port are both reported; the exit code is the usage error's", async () => {
  const dir = tempDir();
  const port = freePort();
  const squatter = Deno.listen({ hostname: "127.0.0.1", port });
  try {
    const { code, stderr } = await check(dir, [
      "-b",
      `ipc://${dir}/q`,
      "-p",
      `tcp://127.0.0.1:${port}`,
      "--curve-cert",
      `${dir}/missing`,
    ]);
    assert.equal(code, 2);
    assertProblem(stderr, ["--curve-cert"]);
    assertProblem(stderr, ["Address already in use"]);
  } finally {
    squatter.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("--check: a stale socket file and a stale lock file are left as they are (exit 0)", async () => {
  const dir = tempDir();
  try {
    // A socket file nobody serves (Deno removes its own at close; a process that died does not).
    const bound = new Deno.Command("python3", {
      args: ["-c", "import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])", `${dir}/q`],
    }).outputSync();
    assert.equal(bound.code, 0);
    Deno.writeTextFileSync(`${dir}/q.lock`, "12345\n");
    const { code, stderr } = await check(dir, [
      "-b",
      `ipc://${dir}/q`,
      "-p",
      `tcp://127.0.0.1:${freePort()}`,
    ]);
    assert.equal(code, 0, stderr.join("\n"));
    assert.ok(stderr.some((l) => l.includes(`a start would replace the stale socket file ${dir}/q`)));
    assert.equal(Deno.readTextFileSync(`${dir}/q.lock`), "12345\n");
    assert.ok(Deno.lstatSync(`${dir}/q`).isSocket);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("--check: who could connect to the socket file is said before it exists", async () => {
  const dir = tempDir();
  try {
    Deno.chmodSync(dir, 0o755);
    const args = ["-b", `ipc://${dir}/q`, "-p", `tcp://127.0.0.1:${freePort()}`];
    const own = await check(dir, args);
    assert.equal(own.code, 0);
    assert.ok(
      own.stderr.some((l) =>
        l.includes(`socket file ${dir}/q would be srw-rw----`) && l.includes("--ipc-group")
      ),
      own.stderr.join("\n"),
    );
    const given = await check(dir, [...args, "--ipc-group", "0", "--ipc-mode", "0666"]);
    assert.equal(given.code, 0);
    assert.ok(!given.stderr.some((l) => l.includes("would be srw")), given.stderr.join("\n"));
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("--check --log-format json: the settings as one JSON object, every stderr line JSON, problems of level fatal", async () => {
  const dir = tempDir();
  try {
    const { code, stdout, stderr } = await check(dir, [
      "--log-format",
      "json",
      "-b",
      `ipc://${dir}/missing/q`,
      "-p",
      `tcp://127.0.0.1:${freePort()}`,
    ]);
    assert.equal(code, 1);
    assert.equal(stdout.length, 1);
    const settings = JSON.parse(stdout[0]);
    assert.equal(settings.bind, `@ipc://${dir}/missing/q`);
    assert.equal(settings["log-format"], "json");
    assert.equal(Object.keys(settings).length, OPTIONS.length);
    const records = stderr.map((l) => JSON.parse(l));
    const fatal = records.filter((r) => r.level === "fatal");
    assert.equal(fatal.length, 1, stderr.join("\n"));
    assert.equal(fatal[0].exitCode, 1);
    assert.match(fatal[0].message, /does not exist/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("--check beside a running adaptor with the same configuration: exit 1 naming it; the adaptor is untouched", async () => {
  const dir = tempDir();
  const port = freePort();
  const args = ["-b", `ipc://${dir}/q`, "-p", `tcp://127.0.0.1:${port}`];
  const adaptor = new AdaptorProcess(args);
  try {
    await adaptor.ready();
    const { code, stderr } = await check(dir, args);
    assert.equal(code, 1);
    assertProblem(stderr, ["another process is serving", `pid ${adaptor.pid}`]);
    assertProblem(stderr, [`tcp://127.0.0.1:${port}`, "Address already in use"]);
    assert.ok(Deno.lstatSync(`${dir}/q`).isSocket && listing(dir).includes("q.lock"));
  } finally {
    const { status } = await adaptor.stop();
    assert.equal(status.code, 0, adaptor.lines.join("\n"));
    assert.deepEqual(listing(dir), [], "the adaptor's files were not removed at its stop");
    Deno.removeSync(dir, { recursive: true });
  }
});

const nobody = /^nobody:[^:]*:65534:/m.test(Deno.readTextFileSync("/etc/passwd")) &&
  /^www-data:[^:]*:33:/m.test(Deno.readTextFileSync("/etc/group")) &&
  Deno.readTextFileSync("/proc/self/status").match(/^Uid:\s+0\s/m) !== null;

Deno.test({
  name: "--check as a user outside --ipc-group: exit 1, as the start's chown would fail",
  ignore: !nobody,
  async fn() {
    const dir = tempDir();
    Deno.chmodSync(dir, 0o777);
    try {
      const command = [
        "setpriv",
        "--reuid=nobody",
        "--regid=nogroup",
        "--clear-groups",
        Deno.execPath(),
        "run",
      ];
      const args = ["-b", `ipc://${dir}/q`, "-p", `tcp://127.0.0.1:${freePort()}`, "--ipc-group", "www-data"];
      const before = listing(dir);
      const { code, stderr } = await runAdaptor(["--check", ...args], {
        command: [...command, ...RUN_FLAGS, `${ROOT}src/main.ts`],
      });
      assert.equal(code, 1, stderr.join("\n"));
      assertProblem(stderr, ["--ipc-group 'www-data'", "neither a member of group 33"]);
      assert.deepEqual(listing(dir), before);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
