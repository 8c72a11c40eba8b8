/**
 * gatewayAccessProblem on real socket files and directories (real chmod/chown, as root), each
 * verdict checked against the real thing where it can be: a process running as www-data (uid
 * and gid 33, as Debian's nginx workers) tries to connect, and must succeed exactly when the
 * check says nothing.
 */

import assert from "node:assert/strict";
import { gatewayAccessProblem, modeText, processIds } from "../src/ipc/gateway_access.ts";

const WWW = 33; // www-data on Debian/Ubuntu
const USERS = 100; // "users" on Debian/Ubuntu and RHEL-likes
const isRoot = processIds()?.uid === 0;
const haveWww = (() => {
  try {
    return /^www-data:[^:]*:33:/m.test(Deno.readTextFileSync("/etc/group"));
  } catch {
    return false;
  }
})();
const haveSetpriv = (() => {
  try {
    return Deno.statSync("/usr/bin/setpriv").isFile && Deno.statSync("/usr/bin/python3").isFile;
  } catch {
    return false;
  }
})();
const haveUsers = (() => {
  try {
    return /^users:[^:]*:100:/m.test(Deno.readTextFileSync("/etc/group"));
  } catch {
    return false;
  }
})();
const skip = !isRoot
  ? "not root"
  : !haveWww
  ? "no www-data group (gid 33)"
  : !haveUsers
  ? "no users group (gid 100)"
  : undefined;

/** A temp dir (0755) holding a listening socket file; cleaned up after `body`. */
async function withSocket(
  body: (dir: string, sock: (rel: string, mode: number, gid?: number) => string) => Promise<void> | void,
): Promise<void> {
  const dir = Deno.makeTempDirSync({ prefix: "adaptor-access-" });
  Deno.chmodSync(dir, 0o755);
  const listeners: Deno.Listener[] = [];
  try {
    await body(dir, (rel, mode, gid) => {
      const path = `${dir}/${rel}`;
      listeners.push(Deno.listen({ transport: "unix", path }));
      if (gid !== undefined) Deno.chownSync(path, null, gid);
      Deno.chmodSync(path, mode);
      return path;
    });
  } finally {
    for (const l of listeners) l.close();
    Deno.removeSync(dir, { recursive: true });
  }
}

/** Whether a process running as www-data (uid/gid 33, no other groups) can connect to `path`. */
async function wwwDataCanConnect(path: string): Promise<boolean> {
  const { code, stderr } = await new Deno.Command("/usr/bin/setpriv", {
    args: [
      "--reuid=33",
      "--regid=33",
      "--clear-groups",
      "/usr/bin/python3",
      "-c",
      "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])",
      path,
    ],
    cwd: "/",
    stdout: "null",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(stderr);
  assert.ok(code === 0 || /PermissionError/.test(text), `unexpected failure: ${text}`);
  return code === 0;
}

/** The verdict, and (where setpriv is there) that it matches what www-data really can do. */
async function verdict(path: string, options: Parameters<typeof gatewayAccessProblem>[1]) {
  const problem = gatewayAccessProblem(path, options);
  if (haveSetpriv) assert.equal(await wwwDataCanConnect(path), problem === undefined, String(problem));
  return problem;
}

const test = (name: string, fn: () => Promise<void>) =>
  Deno.test({
    name: skip
      ? `${name} (skipped: ${skip})`
      : haveSetpriv
      ? name
      : `${name} (not checked against a real connect as www-data: no /usr/bin/setpriv or /usr/bin/python3)`,
    ignore: skip !== undefined,
    fn,
  });

test("defaults as root (srw-rw---- root:root): warned, naming file, owner, group, mode and the fix", async () => {
  await withSocket(async (_dir, sock) => {
    const path = sock("nginx_queue_listen", 0o660);
    const problem = await verdict(path, { ipcGroupGiven: false, ownGid: 0 });
    assert.equal(
      problem,
      `socket file ${path} is srw-rw---- root:root: only root and group root may connect, so nginx workers ` +
        `running as another user get "Permission denied" and no event arrives; start the adaptor with ` +
        `--ipc-group www-data (Debian/Ubuntu) or --ipc-group nginx (RHEL-likes) (ADAPTOR_IPC_GROUP)`,
    );
  });
});

test("--ipc-group www-data with searchable directories: no warning, and www-data connects", async () => {
  await withSocket(async (_dir, sock) => {
    const path = sock("q", 0o660, WWW);
    assert.equal(await verdict(path, { ipcGroupGiven: true, ownGid: 0 }), undefined);
  });
});

test("--ipc-group www-data but the directory is root:root 0750: the directory is named, with chgrp", async () => {
  await withSocket(async (dir, sock) => {
    const path = sock("q", 0o660, WWW);
    Deno.chmodSync(dir, 0o750);
    const problem = await verdict(path, { ipcGroupGiven: true, ownGid: 0 });
    assert.equal(
      problem,
      `socket file ${path} is srw-rw---- root:www-data but directory ${dir} (drwxr-x--- root:root) gives ` +
        `neither group www-data nor others search (x) permission, so nginx workers running as another user get ` +
        `"Permission denied" and no event arrives; chgrp www-data ${dir} and chmod g+x it (or o+x), or bind ` +
        `elsewhere (-b)`,
    );
  });
});

test("a directory of the workers' group (root:www-data 0750, as /run/api-gateway): no warning", async () => {
  await withSocket(async (dir, sock) => {
    const path = sock("q", 0o660, WWW);
    Deno.chownSync(dir, 0, WWW);
    Deno.chmodSync(dir, 0o750);
    assert.equal(await verdict(path, { ipcGroupGiven: true, ownGid: 0 }), undefined);
    // ... but without its group x bit the workers are stopped again, and told so.
    Deno.chmodSync(dir, 0o740);
    const problem = await verdict(path, { ipcGroupGiven: true, ownGid: 0 });
    assert.match(
      problem!,
      new RegExp(`directory ${dir} \\(drwxr----- root:www-data\\) .*; chmod g\\+x ${dir},`),
    );
  });
});

test("the nearest blocking directory above the file is named, not a later one", async () => {
  await withSocket(async (dir, sock) => {
    Deno.mkdirSync(`${dir}/a/b`, { recursive: true });
    Deno.chmodSync(`${dir}/a`, 0o700);
    Deno.chmodSync(`${dir}/a/b`, 0o755);
    const path = sock("a/b/q", 0o660, WWW);
    const problem = await verdict(path, { ipcGroupGiven: true, ownGid: 0 });
    assert.match(problem!, new RegExp(`but directory ${dir}/a \\(drwx------ root:root\\)`));
    Deno.chmodSync(`${dir}/a`, 0o711);
    Deno.chmodSync(`${dir}/a/b`, 0o750);
    assert.match(
      (await verdict(path, { ipcGroupGiven: true, ownGid: 0 }))!,
      /but directory .*\/a\/b \(drwxr-x---/,
    );
    Deno.chmodSync(`${dir}/a/b`, 0o751);
    assert.equal(await verdict(path, { ipcGroupGiven: true, ownGid: 0 }), undefined);
  });
});

test("--ipc-mode 0666: anyone may connect, no warning; 0600 with a group: the mode is the fix", async () => {
  await withSocket(async (_dir, sock) => {
    const open = sock("open", 0o666);
    assert.equal(await verdict(open, { ipcGroupGiven: false, ownGid: 0 }), undefined);
    const closed = sock("closed", 0o600, WWW);
    const problem = await verdict(closed, { ipcGroupGiven: true, ownGid: 0 });
    assert.match(
      problem!,
      /is srw------- root:www-data: only root may connect, .*; give the group write permission: --ipc-mode 0660/,
    );
  });
});

test("the adaptor's own primary group is not the gateway's unless chosen with --ipc-group", () => {
  // The adaptor's group is "users" (gid 100): no worker's, as far as the check can tell.
  return withSocket((_dir, sock) => {
    const path = sock("q", 0o660, USERS);
    assert.match(
      gatewayAccessProblem(path, { ipcGroupGiven: false, ownGid: USERS })!,
      /srw-rw---- root:users: only root and group users may connect, .* --ipc-group www-data/,
    );
    assert.equal(gatewayAccessProblem(path, { ipcGroupGiven: true, ownGid: USERS }), undefined);
    // Another group than the adaptor's own is one chosen for the workers (a setgid directory's, say).
    assert.equal(gatewayAccessProblem(path, { ipcGroupGiven: false, ownGid: 0 }), undefined);
  });
});

test("a socket file of group www-data is the workers' even as the adaptor's primary group (Group=www-data)", () => {
  return withSocket((_dir, sock) => {
    const path = sock("q", 0o660, WWW);
    // The adaptor's primary group is www-data (the unit's drop-in without ADAPTOR_IPC_GROUP).
    assert.equal(gatewayAccessProblem(path, { ipcGroupGiven: false, ownGid: WWW }), undefined);
  });
});

test("an adaptor running as www-data itself (the workers' user): its own file is theirs", async () => {
  await withSocket(async (dir, sock) => {
    const path = sock("q", 0o600);
    Deno.chownSync(path, WWW, 0); // www-data:root 0600, as if bound by an adaptor running as www-data
    assert.equal(await verdict(path, { ipcGroupGiven: false, ownGid: 0 }), undefined);
    // ... while a directory only root may search still stops them, and is named.
    Deno.chmodSync(dir, 0o700);
    assert.match(
      (await verdict(path, { ipcGroupGiven: false, ownGid: 0 }))!,
      /only www-data may connect|directory/,
    );
  });
});

test("a setgid directory of the workers' group hands its group to the file: no warning without --ipc-group", async () => {
  await withSocket(async (dir, sock) => {
    Deno.chownSync(dir, 0, WWW);
    Deno.chmodSync(dir, 0o2750);
    const path = sock("q", 0o660); // not chowned: the group comes from the directory
    assert.equal(Deno.lstatSync(path).gid, WWW);
    assert.equal(await verdict(path, { ipcGroupGiven: false, ownGid: 0 }), undefined);
  });
});

test("defaults in a directory others cannot search: the fix names the directory too", async () => {
  await withSocket(async (dir, sock) => {
    Deno.chmodSync(dir, 0o750);
    const path = sock("q", 0o660);
    const problem = await verdict(path, { ipcGroupGiven: false, ownGid: 0 });
    assert.match(
      problem!,
      new RegExp(
        `--ipc-group nginx \\(RHEL-likes\\) \\(ADAPTOR_IPC_GROUP\\); directory ${dir} \\(drwxr-x--- root:root\\) ` +
          `must let the workers search it too \\(chgrp it to their group and chmod g\\+x, or chmod o\\+x\\)$`,
      ),
    );
  });
});

test("numbers when names are unknown; a missing file is a problem, not an exception", () => {
  return withSocket((dir, sock) => {
    const path = sock("q", 0o660);
    const problem = gatewayAccessProblem(path, {
      ipcGroupGiven: false,
      ownGid: 0,
      passwdFile: `${dir}/none`,
      groupFile: `${dir}/none`,
    });
    assert.match(problem!, /is srw-rw---- 0:0: only 0 and group 0 may connect/);
    assert.match(
      gatewayAccessProblem(`${dir}/missing`, { ipcGroupGiven: false })!,
      new RegExp(`^cannot check who may connect to socket file ${dir}/missing \\(.*No such file`),
    );
  });
});

Deno.test("modeText and processIds", () => {
  assert.equal(modeText("d", 0o41777), "drwxrwxrwt");
  assert.equal(modeText("s", 0o140660), "srw-rw----");
  assert.equal(modeText("d", 0o2750), "drwxr-s---");
  assert.equal(modeText("d", 0o2740), "drwxr-S---");
  assert.equal(modeText("-", 0o4755), "-rwsr-xr-x");
  const dir = Deno.makeTempDirSync({ prefix: "adaptor-access-" });
  try {
    Deno.writeTextFileSync(`${dir}/status`, "Name:\tx\nUid:\t1000\t0\t0\t0\nGid:\t1000\t33\t33\t33\n");
    assert.deepEqual(processIds(`${dir}/status`), { uid: 0, gid: 33 });
    assert.equal(processIds(`${dir}/missing`), undefined);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
