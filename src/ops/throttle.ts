/**
 * Log lines throttled per key, with a summary that carries the exact count.
 *
 * For each key (e.g. socket + reason + peer address), the first `perWindow` lines of a window
 * of `windowMs` are written; later ones are only counted, and when the window ends a timer
 * writes one summary line: `… N more like it in the last 60 s`. The summary comes on time even
 * when the flood has stopped (LogTape's `getThrottlingFilter` writes its summary only when the
 * next record with that key arrives, or on dispose, so the count of an attack's last window
 * would wait for the next attack).
 *
 * At most `maxKeys` keys are tracked; beyond them lines go to one overflow key, so that a
 * flood from ever new addresses neither grows memory nor escapes the throttle, and the counts
 * stay exact.
 */

/** Options of a `LogThrottle`. */
export interface LogThrottleOptions {
  /** Writes one line (a logger's `warn`, for instance). */
  readonly write: (line: string) => void;
  /** Window length; default 60 s. */
  readonly windowMs?: number;
  /** Lines per key written in full per window; default 1. */
  readonly perWindow?: number;
  /** Keys tracked at once; default 100. */
  readonly maxKeys?: number;
  /** The summary of `count` suppressed lines; `first` is the window's summary text. */
  readonly summary?: (first: string, count: number, seconds: number) => string;
}

interface Window {
  readonly first: string | ((count: number, seconds: number) => string);
  logged: number;
  suppressed: number;
  readonly timer: ReturnType<typeof setTimeout>;
}

/** The key lines go to once `maxKeys` keys are tracked. */
export const OVERFLOW_KEY = "\u0000overflow";

/** See the module comment. */
export class LogThrottle {
  readonly #write: (line: string) => void;
  readonly #windowMs: number;
  readonly #perWindow: number;
  readonly #maxKeys: number;
  readonly #summary: (first: string, count: number, seconds: number) => string;
  readonly #windows = new Map<string, Window>();
  #closed = false;

  constructor(options: LogThrottleOptions) {
    this.#write = options.write;
    this.#windowMs = options.windowMs ?? 60_000;
    this.#perWindow = options.perWindow ?? 1;
    this.#maxKeys = options.maxKeys ?? 100;
    this.#summary = options.summary ??
      ((first, count, seconds) => `${first} (${count} more like it in the last ${seconds} s)`);
  }

  /** Keys with an open window. */
  get size(): number {
    return this.#windows.size;
  }

  /**
   * Writes `line` unless `key` already had `perWindow` lines in this window. `summary`: the
   * text the window's summary starts with (default: the window's first line), or the whole
   * summary line made from the count and the window's seconds; `overflow`: what stands for
   * `line` when `maxKeys` keys are tracked and `key` is not one of them.
   */
  report(
    key: string,
    line: string,
    options: { summary?: string | ((count: number, seconds: number) => string); overflow?: string } = {},
  ): void {
    if (this.#closed) return;
    let window = this.#windows.get(key);
    let summary = options.summary ?? line;
    if (!window && this.#windows.size >= this.#maxKeys) {
      key = OVERFLOW_KEY;
      line = summary = options.overflow ?? line;
      window = this.#windows.get(key);
    }
    if (!window) {
      const timer = setTimeout(() => this.#end(key), this.#windowMs);
      Deno.unrefTimer(timer); // a summary never keeps the process alive
      window = { first: summary, logged: 0, suppressed: 0, timer };
      this.#windows.set(key, window);
    }
    if (window.logged < this.#perWindow) {
      window.logged++;
      this.#write(line);
    } else {
      window.suppressed++;
    }
  }

  /** Writes the pending summaries and stops (no timer is left). Idempotent. */
  close(): void {
    for (const key of [...this.#windows.keys()]) this.#end(key);
    this.#closed = true;
  }

  #end(key: string): void {
    const window = this.#windows.get(key);
    if (!window) return;
    clearTimeout(window.timer);
    this.#windows.delete(key);
    if (window.suppressed > 0) {
      const seconds = Math.round(this.#windowMs / 100) / 10;
      const { first } = window;
      this.#write(
        typeof first === "function"
          ? first(window.suppressed, seconds)
          : this.#summary(first, window.suppressed, seconds),
      );
    }
  }
}
