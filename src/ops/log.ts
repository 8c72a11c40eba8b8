/**
 * Logging: LogTape, to stderr, as text or JSON lines.
 *
 * The sink writes synchronously so that the last lines before an exit are never lost. A failed
 * write (a full disk, a file past `ulimit -f`, a closed stderr) must not stop forwarding: the
 * line is counted, and the count said in one warning once a line can be written again.
 * Categories: `adaptor` (lifecycle), `adaptor.socket` (monitor events), `adaptor.debug`
 * (debug subscriber, test peers and rates), `adaptor.metrics` (the HTTP server).
 * When stderr is the journal (`journal.ts`) each line starts with its syslog priority.
 *
 * Call sites pass a message template and its values as properties, never text built with
 * `${}`: LogTape reads `{…}` in a message as a placeholder, so a payload such as `{"api":1}`
 * would print as `undefined`. Properties also become fields of the JSON lines.
 */

import {
  configureSync,
  getLogger,
  getTextFormatter,
  type Logger,
  type LogRecord,
  resetSync,
} from "@logtape/logtape";
import type { LogFormat, LogLevel } from "../config/options.ts";
import { withPriority } from "./journal.ts";

const encoder = new TextEncoder();

/** Where log lines go; tests may pass their own. Throws when the line could not be written. */
export type LineWriter = (line: string) => void;

/** Writes `line` to stderr as is; a failing stderr (full disk, closed) is ignored. */
export function writeStderr(line: string): void {
  try {
    writeAll(line);
  } catch {
    // Nothing sensible to do when stderr itself fails; keep forwarding.
  }
}

/** Writes all of `line` to stderr (a write cut short at a size limit is retried, and then fails). */
function writeAll(line: string): void {
  const bytes = encoder.encode(line);
  for (let at = 0; at < bytes.length;) at += Deno.stderr.writeSync(bytes.subarray(at));
}

/** How lines are written: text or JSON, and with journald's priority prefix or not. */
export interface LogOutput {
  readonly format: LogFormat;
  /** stderr is the journal: each line starts with `<N>`, its syslog priority. */
  readonly journal?: boolean;
}

/** Configures every `adaptor*` logger. Safe to call again (tests, restarts). */
export function setupLogging(options: LogOutput & { level: LogLevel; write?: LineWriter }): void {
  // journald stamps every line itself (to the microsecond): text lines go without a time there.
  const timestamp = options.journal ? "none" : "date-time-timezone";
  const format = options.format === "json"
    ? formatJsonLine
    : getTextFormatter({ timestamp, timeZone: null, value: "bare" });
  const write = options.write ?? writeAll;
  const line = options.journal
    ? (record: LogRecord) => withPriority(record.level, format(record))
    : (record: LogRecord) => format(record);
  // Lines that could not be written (disk full, past `ulimit -f`) are counted, and said in one
  // line as soon as a line can be written again (say, after the log file was rotated).
  let lost = 0;
  let why = "";
  const sink = (record: LogRecord) => {
    try {
      if (lost > 0) write(line(lossRecord(lost, why)));
      lost = 0;
      write(line(record));
    } catch (error) {
      lost++;
      why ||= (error as Error)?.message ?? String(error);
    }
  };
  resetSync();
  configureSync({
    reset: true,
    sinks: { stderr: sink },
    loggers: [
      { category: ["adaptor"], lowestLevel: options.level, sinks: ["stderr"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["stderr"] },
    ],
  });
}

/** The warning that says how many log lines were lost, and why. */
function lossRecord(lost: number, why: string): LogRecord {
  const text = `${lost} log line${lost === 1 ? " was" : "s were"} lost: stderr could not be written (${why})`;
  return {
    category: ["adaptor"],
    level: "warning",
    message: [text],
    rawMessage: text,
    properties: { lost },
    timestamp: Date.now(),
  };
}

/** Keys every JSON line has; a property of the same name cannot replace them. */
const JSON_KEYS = ["time", "level", "category", "message"];

/**
 * One record as a JSON line: `time` (ISO 8601, UTC), `level`, `category` (dotted),
 * `message` (rendered, strings unquoted), then the record's properties as top-level fields.
 */
export function formatJsonLine(record: LogRecord): string {
  const line: Record<string, unknown> = {
    time: new Date(record.timestamp).toISOString(),
    level: record.level,
    category: record.category.join("."),
    message: renderMessage(record.message),
  };
  for (const [key, value] of Object.entries(record.properties)) {
    if (!JSON_KEYS.includes(key)) line[key] = value;
  }
  return JSON.stringify(line, (_, value) => typeof value === "bigint" ? value.toString() : value) + "\n";
}

/**
 * The last line of a process that cannot go on (`adaptor: error: …` in text), in the format of
 * its log lines: a JSON line of level `fatal` with `exitCode` in JSON, `<2>` first for the journal.
 */
export function fatalLine(program: string, message: string, exitCode: number, output: LogOutput): string {
  const line = output.format === "json"
    ? JSON.stringify({
      time: new Date().toISOString(),
      level: "fatal",
      category: program,
      message,
      exitCode,
    }) + "\n"
    : `${program}: error: ${message}\n`;
  return output.journal ? withPriority("fatal", line) : line;
}

/** A LogTape message (text, value, text, …) as plain text. */
function renderMessage(parts: readonly unknown[]): string {
  let text = "";
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i];
    if (i % 2 === 0 || typeof part === "string") text += part;
    else if (typeof part === "bigint" || typeof part === "number") text += String(part);
    else text += JSON.stringify(part) ?? String(part);
  }
  return text;
}

/** The logger of one part of the adaptor, e.g. `log("socket")`. */
export function log(...category: string[]): Logger {
  return getLogger(["adaptor", ...category]);
}

/**
 * `text` made safe as a whole log message: LogTape reads `{name}` as a placeholder, and Z85
 * keys, paths and JSON usage events contain braces. Doubled braces print as one, but only in a
 * message that has a `{` at all (LogTape leaves a message without one untouched).
 */
export function literal(text: string): string {
  return text.includes("{") ? text.replace(/[{}]/g, (brace) => brace + brace) : text;
}
