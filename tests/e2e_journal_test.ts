/**
 * journald priorities, end to end: with stderr on a file and JOURNAL_STREAM naming that file's
 * device and inode (what systemd does with the journal's stream), every line the adaptor writes
 * starts with its syslog priority (`<6>` info, `<4>` warning, `<2>` the fatal line), in text (then
 * without a time: journald stamps each line) and in JSON; with JOURNAL_STREAM naming another
 * file, or unset, no line has a prefix.
 */

import assert from "node:assert/strict";
import { freePort, ipcPath, until } from "../testing/net.ts";
import { AdaptorProcess, ROOT, RUN_FLAGS } from "../testing/process.ts";

/** The adaptor with stderr appended to `file`; `journal` sets JOURNAL_STREAM to `DEV:INODE` of it. */
function startToFile(args: string[], file: string, journal: string | undefined): AdaptorProcess {
  const env: Record<string, string> = { ADAPTOR_STDERR_FILE: file };
  if (journal !== undefined) env.JOURNAL_STREAM = journal;
  return new AdaptorProcess(args, {
    env,
    command: [
      "bash",
      "-c",
      'exec "$0" "$@" 2>>"$ADAPTOR_STDERR_FILE"',
      Deno.execPath(),
      "run",
      ...RUN_FLAGS,
      `${ROOT}src/main.ts`,
    ],
  });
}

function identity(file: string): string {
  const info = Deno.statSync(file);
  return `${info.dev}:${info.ino}`;
}

function lines(file: string): string[] {
  return Deno.readTextFileSync(file).split("\n").filter((l) => l !== "");
}

/** Runs a start that serves (a plaintext XPUB on every interface: a warning) and stops it. */
async function serveAndStop(
  extra: string[],
  journal: (file: string) => string | undefined,
): Promise<string[]> {
  const file = ipcPath("stderr");
  Deno.writeTextFileSync(file, "");
  try {
    const adaptor = startToFile(
      ["-b", `ipc://${ipcPath("xsub")}`, "-p", `tcp://0.0.0.0:${freePort()}`, ...extra],
      file,
      journal(file),
    );
    try {
      await until(() => lines(file).some((l) => / ready \(pid \d+\)/.test(l)), "the ready line", 15_000);
    } finally {
      const { status } = await adaptor.stop();
      assert.equal(status.code, 0, lines(file).join("\n"));
    }
    return lines(file);
  } finally {
    Deno.removeSync(file);
  }
}

Deno.test("JOURNAL_STREAM names stderr: every text line starts with its priority", async () => {
  const out = await serveAndStop([], identity);
  // journald stamps each line itself: no time of our own.
  for (const line of out) assert.match(line, /^<[2-7]>\[(INF|WRN|ERR)\] adaptor/, line);
  assert.ok(out.some((l) => /^<6>.* ready \(pid \d+\)$/.test(l)), out.join("\n"));
  assert.ok(out.some((l) => /^<4>.*\[WRN\].*plaintext and unauthenticated/.test(l)), out.join("\n"));
  assert.ok(out.some((l) => /^<6>.*stopped$/.test(l)), out.join("\n"));
});

Deno.test("JOURNAL_STREAM names stderr, --log-format json: the prefix, then the JSON object", async () => {
  const out = await serveAndStop(["--log-format", "json"], identity);
  const priority = { debug: 7, info: 6, warning: 4, error: 3, fatal: 2 } as Record<string, number>;
  for (const line of out) {
    const match = /^<(\d)>(\{.*\})$/.exec(line);
    assert.ok(match, line);
    const record = JSON.parse(match[2]);
    assert.equal(Number(match[1]), priority[record.level], line);
  }
  assert.ok(out.some((l) => l.startsWith("<4>") && l.includes("plaintext and unauthenticated")));
});

Deno.test("JOURNAL_STREAM of another file, garbage, or none: no prefix", async () => {
  const other = ipcPath("other");
  Deno.writeTextFileSync(other, "");
  try {
    for (const journal of [() => identity(other), () => "garbage", () => undefined]) {
      const out = await serveAndStop([], journal);
      assert.ok(out.length > 2, out.join("\n"));
      for (const line of out) assert.match(line, /^\d{4}-/, line);
    }
  } finally {
    Deno.removeSync(other);
  }
});

Deno.test("JOURNAL_STREAM names stderr: a failed start's last line is <2>, text and JSON", async () => {
  const port = freePort();
  const squatter = Deno.listen({ hostname: "127.0.0.1", port });
  try {
    for (const format of ["text", "json"]) {
      const file = ipcPath("stderr");
      Deno.writeTextFileSync(file, "");
      try {
        const args = [
          "-b",
          `ipc://${ipcPath("xsub")}`,
          "-p",
          `tcp://127.0.0.1:${port}`,
          "--log-format",
          format,
        ];
        const status = await startToFile(args, file, identity(file)).exit();
        assert.equal(status.code, 1);
        const out = lines(file);
        const last = out.at(-1)!;
        if (format === "text") assert.match(last, /^<2>adaptor: error: .*Address already in use/);
        else {
          assert.match(last, /^<2>\{/);
          const record = JSON.parse(last.slice(3));
          assert.equal(record.level, "fatal");
          assert.equal(record.exitCode, 1);
          assert.match(record.message, /Address already in use/);
        }
        for (const line of out) assert.match(line, /^<[2-7]>/, line);
      } finally {
        Deno.removeSync(file);
      }
    }
  } finally {
    squatter.close();
  }
});
