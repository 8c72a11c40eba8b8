/**
 * How libzmq is found: straight from the zeromq package's prebuilt addons, ranked the way its
 * own loader ranks them, without running zeromq's JavaScript; and the fallback route (zeromq's
 * loader, which a compiled binary needs) opening the very same library.
 */

import assert from "node:assert/strict";
import { addonBuild, addonPath, openThroughZeromq, prebuiltAddons, zmqVersion } from "../src/zmq/binding.ts";
import { ROOT } from "../testing/process.ts";

Deno.test("prebuiltAddons lists this platform's builds only, highest Node-API level first", () => {
  const builds = prebuiltAddons();
  assert.ok(builds.length > 0, "no prebuilt addon found for this platform");
  const os = { linux: "linux", darwin: "darwin", windows: "win32" }[Deno.build.os as string];
  const arch = { x86_64: "x64", aarch64: "arm64" }[Deno.build.arch as string];
  const levels = builds.map((path) => {
    Deno.statSync(path);
    const match = path.match(new RegExp(`/build/${os}/${arch}/node/([a-z]+)-(\\d+)-Release/addon\\.node$`));
    assert.ok(match, `not a build for ${os}/${arch}: ${path}`);
    return { libc: match[1], level: Number(match[2]) };
  });
  assert.equal(new Set(levels.map((l) => l.libc)).size, 1, "builds for two C libraries mixed");
  const sorted = [...levels].sort((a, b) => b.level - a.level);
  assert.deepEqual(levels, sorted);
});

Deno.test("the addon opened is the one zeromq's own loader picks, and both routes reach one library", () => {
  const direct = addonPath();
  assert.ok(prebuiltAddons().includes(direct));
  const version = zmqVersion();
  const fallback = openThroughZeromq();
  assert.ok("path" in fallback, `zeromq's loader failed: ${"problem" in fallback && fallback.problem}`);
  assert.equal(fallback.path, direct, `zeromq loaded ${fallback.path}, we opened ${direct}`);
  const [major, minor, patch] = [new Int32Array(1), new Int32Array(1), new Int32Array(1)];
  fallback.lib.zmq_version(major, minor, patch);
  assert.equal(`${major[0]}.${minor[0]}.${patch[0]}`, version);
  assert.match(addonBuild(), /^[a-z]+-\d+-Release$/);
});

Deno.test("loading libzmq does not run zeromq's JavaScript", async () => {
  // A fresh process: this one has run zeromq's loader in the test above.
  const probe = `
    import Module from "node:module";
    import { zmqVersion } from "${ROOT}src/zmq/binding.ts";
    zmqVersion();
    console.log(JSON.stringify(Object.keys(Module._cache)));
  `;
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=ts", probe],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(output.success, new TextDecoder().decode(output.stderr));
  const loaded: string[] = JSON.parse(new TextDecoder().decode(output.stdout));
  assert.deepEqual(loaded.filter((file) => file.includes("zeromq")), []);
});
