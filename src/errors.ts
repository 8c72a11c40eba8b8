/**
 * The two ways the adaptor refuses to run, and the exit code each maps to.
 *
 * Every message is one line that names what was wrong (the flag, env var or endpoint and its
 * value); `main.ts` prints it as `adaptor: error: <message>` with no stack trace.
 */

/** Bad input: unknown flag, missing value, malformed endpoint, bad number. Exit code 2. */
export class UsageError extends Error {
  readonly exitCode = 2;
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** The input was valid but the system said no: busy port, live ipc path, no permission. Exit 1. */
export class StartupError extends Error {
  readonly exitCode = 1;
  constructor(message: string) {
    super(message);
    this.name = "StartupError";
  }
}

/** The exit code for any error reaching `main`: 2 for usage, 1 for everything else. */
export function exitCodeOf(error: unknown): number {
  return error instanceof UsageError ? 2 : 1;
}

/** One line for the user: the message only, whitespace folded. */
export function oneLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.replace(/\s*\n\s*/g, " ").trim();
}
