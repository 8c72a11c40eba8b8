/**
 * Securing a deployment, end to end: the adaptor as a process with --curve-cert and
 * --curve-clients, real CURVE peers (src/zmq/socket.ts) in the test process.
 *
 * - an allowed client receives every message; an unknown key, a wrong server key and a
 *   plaintext client receive nothing, and each denial is logged with its address and reason;
 * - a key added to the clients directory is admitted after SIGHUP, a removed one refused;
 * - without --curve-clients any client that knows the server key is served (and a warning
 *   says so; SIGHUP then reloads nothing and does not stop it); the inbound SUB is a CURVE
 *   server too;
 * - the debug taps are admitted as the adaptor's own clients;
 * - ipc socket files get --ipc-mode/--ipc-group, and the mode really keeps other users out;
 * - every bad certificate, directory, mode and group: one line, exit 2, nothing left bound.
 */

import assert from "node:assert/strict";
import { keygen, type KeygenResult } from "../src/security/cert.ts";
import { curveKeypair } from "../src/zmq/z85.ts";
import { exists, freePort, ipcPath, sleep } from "../testing/net.ts";
import { type CurveClient, Peers, syncUp } from "../testing/peers.ts";
import { AdaptorProcess, ROOT, RUN_FLAGS, runAdaptor } from "../testing/process.ts";

/** A temp dir with a server certificate and a clients directory; removed by `dispose()`. */
class Keys {
  readonly dir = Deno.makeTempDirSync({ prefix: "adaptor-e2e-sec-" });
  readonly clients = `${this.dir}/clients`;
  readonly server: KeygenResult;

  constructor() {
    Deno.mkdirSync(this.clients);
    this.server = keygen(`${this.dir}/server`);
  }

  /** A client certificate pair (not yet in the clients directory). */
  client(name: string): KeygenResult {
    return keygen(`${this.dir}/${name}`);
  }

  /** CURVE options for a peer using `client`'s keys against `serverKey` (ours by default). */
  curve(client: KeygenResult, serverKey = this.server.publicKey): CurveClient {
    const secretKey = /secret-key = "(.{40})"/.exec(Deno.readTextFileSync(client.secretPath))![1];
    return { serverKey, publicKey: client.publicKey, secretKey };
  }

  admit(client: KeygenResult): void {
    Deno.copyFileSync(client.publicPath, `${this.clients}/${client.publicPath.split("/").pop()}`);
  }

  dispose(): void {
    Deno.removeSync(this.dir, { recursive: true });
  }
}

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

Deno.test("CURVE with --curve-clients: only listed keys receive; denials logged; SIGHUP admits and drops keys", async () => {
  const keys = new Keys();
  const allowed = keys.client("tracker-a");
  const newcomer = keys.client("tracker-b");
  const stranger = keys.client("stranger");
  keys.admit(allowed);
  const bind = ipcPath("xsub");
  const port = freePort();
  const xpub = `tcp://127.0.0.1:${port}`;
  const adaptor = new AdaptorProcess([
    "-b",
    `ipc://${bind}`,
    "-p",
    xpub,
    "--curve-cert",
    keys.server.secretPath,
    "--curve-clients",
    keys.clients,
    ...["--block-after-denials", "0"], // the refused clients retry from this host: not blocked here
  ]);
  const peers = new Peers();
  const denied = (key: string, reason: string) =>
    adaptor.waitFor(
      new RegExp(
        `Denied XPUB connection from (tcp://)?127\\.0\\.0\\.1(:\\d+)?${
          key ? ` key ${escape(key)}` : ""
        }.*${reason}`,
      ),
    );
  try {
    await adaptor.ready();
    assert.ok(adaptor.lines.some((l) => l.includes(`Admitting 1 client key from ${keys.clients}`)));
    assert.ok(
      adaptor.lines.some((l) => l.includes(`server public key ${keys.server.publicKey}`)),
      adaptor.lines.join("\n"),
    );
    assert.ok(!adaptor.lines.some((l) => l.includes("without --curve-clients")));

    const good = peers.subscriber(xpub, [""], { curve: keys.curve(allowed) });
    const unknown = peers.subscriber(xpub, [""], { curve: keys.curve(stranger) });
    const wrongServer = peers.subscriber(xpub, [""], {
      curve: keys.curve(allowed, curveKeypair().publicKey),
    });
    const plaintext = peers.subscriber(xpub);
    const early = peers.subscriber(xpub, [""], { curve: keys.curve(newcomer) });
    await denied(stranger.publicKey, "unknown client key");
    await denied(newcomer.publicKey, "unknown client key");
    await denied("", "cryptographic error \\(the client may use a wrong server key\\)");
    // A plaintext client: libzmq reports whichever side notices the mismatch first.
    await denied("", "(the client hung up during the handshake|security mechanism mismatch)");

    const pub = peers.publisher(`ipc://${bind}`);
    await syncUp([pub], [good]);
    await pub.sendAll(1000, (i) => `usage.${i}`);
    await good.expect(1000);
    assert.equal(good.messages.length, 1000);
    assert.deepEqual(good.texts().slice(0, 2), ["usage.0", "usage.1"]);
    for (const [name, peer] of Object.entries({ unknown, wrongServer, plaintext, early })) {
      assert.equal(peer.messages.length + peer.syncFrom.size, 0, `${name} must receive nothing`);
    }

    // A new key: refused until SIGHUP rereads the directory, admitted after.
    keys.admit(newcomer);
    adaptor.kill("SIGHUP");
    await adaptor.waitFor(/Reloaded 2 client keys from /);
    const late = peers.subscriber(xpub, [""], { curve: keys.curve(newcomer) });
    await syncUp([pub], [good, late]);
    await pub.sendAll(500, (i) => `later.${i}`);
    await late.expect(500);
    await good.expect(1500);
    assert.equal(late.messages.length, 500);
    await adaptor.waitFor(
      new RegExp(`Allowed XPUB client from 127\\.0\\.0\\.1 key ${escape(newcomer.publicKey)}`),
    );

    // A removed key: new connections with it are refused after SIGHUP.
    Deno.removeSync(`${keys.clients}/tracker-a`);
    adaptor.kill("SIGHUP");
    await adaptor.waitFor(/Reloaded 1 client key from /);
    peers.subscriber(xpub, [""], { curve: keys.curve(allowed) });
    await denied(allowed.publicKey, "unknown client key");
    assert.equal(unknown.messages.length + wrongServer.messages.length + plaintext.messages.length, 0);
  } finally {
    await peers.close();
    const { status } = await adaptor.stop();
    keys.dispose();
    assert.equal(status.code, 0, adaptor.lines.join("\n"));
  }
});

Deno.test("CURVE without --curve-clients: warned; any client with the server key is served, plaintext is not; inbound SUB too", async () => {
  const keys = new Keys();
  const bind = ipcPath("xsub");
  const push = ipcPath("push");
  const xpub = `tcp://127.0.0.1:${freePort()}`;
  const inbound = `tcp://127.0.0.1:${freePort()}`;
  const abstract = `adaptor-test-${Deno.pid}-abstract-sec`;
  const adaptor = new AdaptorProcess([
    ...["-b", `ipc://${bind}`, "-b", `ipc://@${abstract}`, "-p", xpub],
    ...["-l", `@${inbound}`, "-u", `ipc://${push}`, "--curve-cert", keys.server.secretPath],
  ]);
  const peers = new Peers();
  try {
    await adaptor.ready();
    await adaptor.waitFor(
      /WRN.*CURVE without --curve-clients: any client that knows the server's public key/,
    );
    await adaptor.waitFor(
      /WRN.*ipc:\/\/@adaptor-test-.* is an abstract socket: no file permissions protect it/,
    );
    assert.ok(adaptor.lines.some((l) => l.includes("CURVE on XPUB and SUB")));

    const anyKey = { serverKey: keys.server.publicKey, ...curveKeypair() };
    const served = peers.subscriber(xpub, [""], { curve: anyKey });
    const plaintext = peers.subscriber(xpub);
    await adaptor.waitFor(
      /Denied XPUB connection from tcp:\/\/127\.0\.0\.1:\d+: (the client hung up|security mechanism mismatch)/,
    );
    const pub = peers.publisher(`ipc://${bind}`);
    await syncUp([pub], [served]);
    await pub.sendAll(300, (i) => `x.${i}`);
    await served.expect(300);
    assert.equal(plaintext.messages.length + plaintext.syncFrom.size, 0);

    // Inbound: a CURVE publisher's messages reach the worker, a plaintext one's never do.
    const worker = peers.puller(`ipc://${push}`);
    const remote = peers.publisher(inbound, false, {
      curve: { serverKey: keys.server.publicKey, ...curveKeypair() },
    });
    const intruder = peers.publisher(inbound);
    await adaptor.waitFor(
      /Denied SUB connection from tcp:\/\/127\.0\.0\.1:\d+: (the client hung up|security mechanism mismatch)/,
    );
    const deadline = performance.now() + 10_000;
    while (worker.syncFrom.size === 0 && performance.now() < deadline) {
      remote.socket.trySend("sync|0");
      await sleep(50);
    }
    assert.ok(worker.syncFrom.size > 0, "inbound never flowed");
    await intruder.sendAll(200, (i) => `injected.${i}`).catch(() => {});
    await remote.sendAll(200, (i) => `inbound.${i}`);
    await worker.expect(200);
    assert.ok(worker.texts().every((t) => t.startsWith("inbound.")), "no injected message got through");

    // SIGHUP with no clients directory: said so, and the adaptor keeps running (exit 0 below).
    adaptor.kill("SIGHUP");
    await adaptor.waitFor(/SIGHUP: nothing to reload \(no --curve-clients\)/);
  } finally {
    await peers.close();
    const { status } = await adaptor.stop();
    keys.dispose();
    assert.equal(status.code, 0, adaptor.lines.join("\n"));
  }
});

Deno.test("-t -r with CURVE and a clients list: the adaptor's own debug taps are admitted", async () => {
  const keys = new Keys();
  const adaptor = new AdaptorProcess([
    ...["-t", "-r", "-b", `ipc://${ipcPath("xsub")}`, "-p", `tcp://127.0.0.1:${freePort()}`],
    ...["-l", `tcp://127.0.0.1:${freePort()}`, "-u", `ipc://${ipcPath("push")}`],
    ...["--curve-cert", keys.server.secretPath, "--curve-clients", keys.clients],
  ]);
  try {
    await adaptor.ready();
    await adaptor.waitFor(/Admitting 0 client keys/);
    const sent = await adaptor.waitFor(/ \.\.\. sending:PUB-/, 5000);
    await adaptor.waitFor(new RegExp(`> got: ${sent.slice(sent.indexOf("PUB-"))}`), 5000);
    await adaptor.waitFor(/> receiver got: SEND-\d{5}/, 5000);
    assert.ok(adaptor.lines.some((l) => /Allowed SUB client .*the adaptor's own debug tap/.test(l)));
    assert.ok(!adaptor.lines.some((l) => l.includes("Denied")), adaptor.lines.join("\n"));
  } finally {
    const { status } = await adaptor.stop();
    keys.dispose();
    assert.equal(status.code, 0);
  }
});

/** Whether a user other than ours (nobody, in group `gid`) can connect to unix socket `path`. */
async function nobodyCanConnect(path: string, gid: number): Promise<boolean> {
  const script = "import socket,sys\ns=socket.socket(socket.AF_UNIX)\n" +
    "try:\n s.connect(sys.argv[1]); print('connected')\nexcept PermissionError: print('denied')";
  const out = await new Deno.Command("setpriv", {
    args: ["--reuid=65534", `--regid=${gid}`, "--clear-groups", "/usr/bin/python3", "-c", script, path],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  if (text !== "connected" && text !== "denied") {
    throw new Error(`probe failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return text === "connected";
}

const canSwitchUser = Deno.uid() === 0 && exists("/usr/bin/python3") &&
  (await new Deno.Command("setpriv", { args: ["--version"], stdout: "null", stderr: "null" }).output()
    .then((o) => o.success, () => false));
if (!canSwitchUser) console.log("skipped: other-user ipc probe needs root, setpriv and /usr/bin/python3");

Deno.test("ipc socket files get --ipc-mode and --ipc-group (flags or ADAPTOR_* variables)", async () => {
  const bind = ipcPath("xsub");
  const push = ipcPath("push");
  const args = ["-b", `ipc://${bind}`, "-p", `tcp://127.0.0.1:${freePort()}`];
  const inboundArgs = ["-l", `tcp://127.0.0.1:${freePort()}`, "-u", `ipc://${push}`];
  const byDefault = new AdaptorProcess([...args, ...inboundArgs]);
  try {
    await byDefault.ready();
    for (const path of [bind, push]) {
      const info = Deno.statSync(path);
      assert.equal(info.mode! & 0o777, 0o660, `${path} default mode`);
      assert.equal(info.gid, Deno.gid());
    }
  } finally {
    await byDefault.stop();
  }
  const group = Deno.readTextFileSync("/etc/group").split("\n").find((l) => /^\w+:[^:]*:[1-9]\d*:/.test(l))!;
  const [groupName, , groupId] = group.split(":");
  const viaEnv = new AdaptorProcess([...args, ...inboundArgs], {
    env: { ADAPTOR_IPC_MODE: "0640", ADAPTOR_IPC_GROUP: groupName },
  });
  try {
    await viaEnv.ready();
    for (const path of [bind, push]) {
      const info = Deno.statSync(path);
      assert.equal(info.mode! & 0o777, 0o640, `${path} mode from ADAPTOR_IPC_MODE`);
      assert.equal(info.gid, Number(groupId), `${path} group ${groupName} from ADAPTOR_IPC_GROUP`);
    }
  } finally {
    await viaEnv.stop();
  }
  const viaFlags = new AdaptorProcess([...args, "--ipc-mode", "600", "--ipc-group", "4242"]);
  try {
    await viaFlags.ready();
    const info = Deno.statSync(bind);
    assert.equal(info.mode! & 0o777, 0o600);
    assert.equal(info.gid, 4242);
  } finally {
    await viaFlags.stop();
  }
});

Deno.test({
  name: `the mode keeps other users out: nobody cannot publish unless its group may${
    canSwitchUser ? "" : " (skipped: needs root, setpriv, /usr/bin/python3)"
  }`,
  ignore: !canSwitchUser,
  async fn() {
    const bind = ipcPath("xsub");
    const args = ["-b", `ipc://${bind}`, "-p", `tcp://127.0.0.1:${freePort()}`, "--ipc-group", "4242"];
    const adaptor = new AdaptorProcess(args);
    try {
      await adaptor.ready();
      assert.equal(await nobodyCanConnect(bind, 65534), false, "another user outside the group is refused");
      assert.equal(await nobodyCanConnect(bind, 4242), true, "a member of --ipc-group may connect");
    } finally {
      await adaptor.stop();
    }
  },
});

function assertOneCleanLine(stderr: string[], mentions: string[]): void {
  assert.equal(stderr.length, 1, `expected one line, got:\n${stderr.join("\n")}`);
  assert.match(stderr[0], /^adaptor: error: /);
  assert.doesNotMatch(stderr[0], /Stack backtrace| {4}at |Uncaught/);
  for (const text of mentions) assert.ok(stderr[0].includes(text), `'${stderr[0]}' should mention '${text}'`);
}

Deno.test("bad security input: one line, exit 2, nothing bound", async () => {
  const keys = new Keys();
  try {
    const readable = keys.client("readable");
    Deno.chmodSync(readable.secretPath, 0o640);
    const malformed = `${keys.dir}/malformed_secret`;
    Deno.writeTextFileSync(malformed, 'curve\n    public-key = "not-a-key"\n', { mode: 0o600 });
    const badClients = `${keys.dir}/bad-clients`;
    Deno.mkdirSync(badClients);
    Deno.writeTextFileSync(`${badClients}/tracker`, "curve\n  public-key = 'x'\n");
    const cert = keys.server.secretPath;
    const huge = `${keys.dir}/huge_secret`;
    const file = Deno.openSync(huge, { write: true, create: true, mode: 0o600 });
    file.truncateSync(200_000_000); // sparse: no disk used; read whole before
    file.close();
    Deno.chmodSync(huge, 0o600);
    const escapes = `${keys.dir}/escapes_secret`;
    Deno.writeTextFileSync(escapes, `curve\n    public-key = "\x1b[2J\x1b[31m${"x".repeat(3_000)}"\n`, {
      mode: 0o600,
    });
    const cases: [string, string[], string[]][] = [
      ["200 MB certificate", ["--curve-cert", huge], [huge, "too large for a certificate (200000000 bytes"]],
      ["escape sequences in a certificate", ["--curve-cert", escapes], [
        "'\\x1b[2J\\x1b[31mxxx",
        "more characters",
      ]],
      ["missing certificate", ["--curve-cert", `${keys.dir}/nope`], [
        "--curve-cert",
        "/nope'",
        "no such file",
      ]],
      ["malformed certificate", ["--curve-cert", malformed], [malformed, "not a 40-character Z85 key"]],
      ["public certificate", ["--curve-cert", keys.server.publicPath], ["a public certificate", "_secret'"]],
      ["group-readable secret", ["--curve-cert", readable.secretPath], [
        "accessible by group or others (mode 0640)",
      ]],
      ["missing clients dir", ["--curve-cert", cert, "--curve-clients", `${keys.dir}/none`], [
        "--curve-clients",
        "no such directory",
      ]],
      ["invalid client certificate", ["--curve-cert", cert, "--curve-clients", badClients], [
        `${badClients}/tracker`,
        "indent 4 spaces at a time",
      ]],
      ["clients without a certificate", ["--curve-clients", keys.clients], ["needs --curve-cert"]],
      ["bad ipc mode", ["--ipc-mode", "0999"], ["--ipc-mode '0999'"]],
      ["unknown ipc group", ["--ipc-group", "no-such-group-here"], [
        "--ipc-group 'no-such-group-here'",
        "no such group",
      ]],
    ];
    for (const [name, extra, mentions] of cases) {
      const bind = ipcPath("xsub");
      const { code, stderr } = await runAdaptor([
        "-b",
        `ipc://${bind}`,
        "-p",
        `tcp://127.0.0.1:${freePort()}`,
        ...extra,
      ]);
      assert.equal(code, 2, `${name}: exit code\n${stderr.join("\n")}`);
      assertOneCleanLine(stderr, mentions);
      assert.ok(!exists(bind), `${name}: nothing may be bound`);
    }
  } finally {
    keys.dispose();
  }
});

Deno.test("adaptor keygen on a full file system: one line naming the file, exit 1, no half pair left", async () => {
  // A tmpfs of PAGES pages in a mount namespace of its own, one page taken: the secret (which
  // comes first) or the public certificate cannot be written. What is left is listed after.
  const script =
    'dir=$1; pages=$2; shift 2; mount -t tmpfs -o size=$((pages * 4))k tmpfs "$dir" || exit 99; ' +
    'head -c 4096 /dev/zero > "$dir/fill"; "$@"; rc=$?; echo "left: $(cd "$dir" && ls -A | tr "\\n" " ")"; exit $rc';
  for (const [pages, file] of [[1, "node1_secret"], [2, "node1"]] as const) {
    const dir = Deno.makeTempDirSync({ prefix: "adaptor-keygen-full-" });
    try {
      const run = await runAdaptor(["keygen", `${dir}/node1`], {
        command: [
          "unshare",
          "-m",
          "bash",
          "-c",
          script,
          "bash",
          dir,
          String(pages),
          Deno.execPath(),
          "run",
          ...RUN_FLAGS,
          `${ROOT}src/main.ts`,
        ],
      });
      assert.notEqual(run.code, 99, "cannot mount a tmpfs here");
      assert.equal(run.code, 1, run.stderr.join("\n"));
      assertOneCleanLine(run.stderr, [`keygen: cannot write '${dir}/${file}': No space left on device`]);
      assert.deepEqual(run.stdout, ["left: fill "], `${pages} page(s): a half pair is left`);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  }
});

Deno.test("adaptor keygen PATH: writes the pair and prints the key; never overwrites (exit 1)", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "adaptor-keygen-" });
  try {
    const first = await runAdaptor(["keygen", `${dir}/node1`]);
    assert.equal(first.code, 0, first.stderr.join("\n"));
    const publicText = Deno.readTextFileSync(`${dir}/node1`);
    const key = /public-key = "(.{40})"/.exec(publicText)![1];
    assert.ok(first.stdout.some((l) => l === `public key: ${key}`), first.stdout.join("\n"));
    assert.equal(Deno.statSync(`${dir}/node1_secret`).mode! & 0o777, 0o600);
    const secretText = Deno.readTextFileSync(`${dir}/node1_secret`);

    const again = await runAdaptor(["keygen", `${dir}/node1`]);
    assert.equal(again.code, 1);
    assertOneCleanLine(again.stderr, [`'${dir}/node1' already exists; not overwriting it`]);
    assert.equal(Deno.readTextFileSync(`${dir}/node1`), publicText);
    assert.equal(Deno.readTextFileSync(`${dir}/node1_secret`), secretText);

    const usage = await runAdaptor(["keygen"]);
    assert.equal(usage.code, 2);
    assertOneCleanLine(usage.stderr, ["keygen: missing required argument 'path'"]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
