/**
 * The adaptor, started as root with its defaults, says once at start that nginx workers running
 * as another user cannot connect to its socket file (issue #14); with `--ipc-group www-data` it
 * says nothing of the kind. (The check itself, against real connects as www-data, is in
 * gateway_access_test.ts; with a real nginx in e2e_nginx_test.ts.)
 */

import assert from "node:assert/strict";
import { processIds } from "../src/ipc/gateway_access.ts";
import { withAdaptor } from "../testing/session.ts";

const skip = processIds()?.uid !== 0
  ? "not root"
  : !/^www-data:[^:]*:33:/m.test(Deno.readTextFileSync("/etc/group"))
  ? "no www-data group"
  : undefined;

const ACCESS_WARNING =
  /\[WRN\] adaptor: socket file (\S+) is \S+ \S+: .*nginx workers running as another user/;

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name: skip ? `${name} (skipped: ${skip})` : name, ignore: skip !== undefined, fn });

test("defaults as root: one warning at start naming the socket file, its mode and owner, and the fix", async () => {
  let path = "";
  const adaptor = await withAdaptor([], async ({ bind, adaptor }) => {
    path = bind.slice("ipc://".length);
    // Logged before the ready line, so it is there by now.
    await adaptor.waitFor(ACCESS_WARNING, 1);
  });
  const warnings = adaptor.lines.filter((l) => ACCESS_WARNING.test(l));
  assert.equal(warnings.length, 1, adaptor.lines.join("\n"));
  assert.ok(
    warnings[0].endsWith(
      `socket file ${path} is srw-rw---- root:root: only root and group root may connect, so nginx workers ` +
        `running as another user get "Permission denied" and no event arrives; start the adaptor with ` +
        `--ipc-group www-data (Debian/Ubuntu) or --ipc-group nginx (RHEL-likes) (ADAPTOR_IPC_GROUP)`,
    ),
    warnings[0],
  );
  const ready = adaptor.lines.findIndex((l) => / ready \(pid \d+\)/.test(l));
  assert.ok(adaptor.lines.indexOf(warnings[0]) < ready, "the warning comes at start, before the ready line");
});

test("--ipc-group www-data: no access warning", async () => {
  const adaptor = await withAdaptor(["--ipc-group", "www-data"], ({ bind }) => {
    const info = Deno.lstatSync(bind.slice("ipc://".length));
    assert.equal(info.gid, 33);
    assert.equal(info.mode! & 0o777, 0o660);
    return Promise.resolve();
  });
  assert.ok(!adaptor.lines.some((l) => ACCESS_WARNING.test(l)), adaptor.lines.join("\n"));
  assert.ok(adaptor.lines.some((l) => / ready \(pid \d+\)/.test(l)));
});
