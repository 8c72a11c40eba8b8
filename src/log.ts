/**
 * Logging: LogTape, to stderr, as text or JSON lines.
 *
 * The sink writes synchronously so that the last lines before an exit are never lost, and it
 * swallows write errors (a full disk or a closed stderr must not stop forwarding).
 * Categories: `adaptor` (lifecycle), `adaptor.socket` (monitor events), `adaptor.debug`
 * (debug subscriber, test peers and rates).
 */

import {
  configureSync,
  getJsonLinesFormatter,
  getLogger,
  getTextFormatter,
  type Logger,
  type LogRecord,
  resetSync,
} from "@logtape/logtape";
import type { LogFormat, LogLevel } from "./config.ts";

const encoder = new TextEncoder();

/** Where log lines go; tests may pass their own. */
export type LineWriter = (line: string) => void;

function writeStderr(line: string): void {
  try {
    Deno.stderr.writeSync(encoder.encode(line));
  } catch {
    // Nothing sensible to do when stderr itself fails; keep forwarding.
  }
}

/** Configures every `adaptor*` logger. Safe to call again (tests, restarts). */
export function setupLogging(
  options: { level: LogLevel; format: LogFormat; write?: LineWriter },
): void {
  const format = options.format === "json"
    ? getJsonLinesFormatter({ properties: "flatten" })
    : getTextFormatter({ timestamp: "date-time-timezone", timeZone: null });
  const write = options.write ?? writeStderr;
  resetSync();
  configureSync({
    reset: true,
    sinks: { stderr: (record: LogRecord) => write(format(record)) },
    loggers: [
      { category: ["adaptor"], lowestLevel: options.level, sinks: ["stderr"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["stderr"] },
    ],
  });
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
