/**
 * A process-wide guard against unhandled promise rejections and uncaught errors:
 * Deno's default prints `error: Uncaught (in promise) …` with a stack trace and exits 1 at
 * once, leaving the ipc socket files behind. The guard turns the first one into one log line
 * and a `failure` promise that `main` races with the signals, so the adaptor stops cleanly
 * (proxies stopped, socket files removed) and exits 1. Later ones are only counted (`caught`);
 * nothing is printed with a stack.
 */

import { literal, log } from "./log.ts";
import { sanitize } from "./sanitize.ts";

/** An installed guard. */
export interface RejectionGuard {
  /** Resolves with a one-line description of the first unhandled rejection or uncaught error. */
  readonly failure: Promise<string>;
  /** How many were caught (the first and any that followed). */
  readonly caught: number;
  /** Removes the listeners. */
  dispose(): void;
}

/** One line for a rejection reason: an Error's name and message, else its text; escaped, cut. */
export function describeReason(reason: unknown): string {
  const text = reason instanceof Error
    ? `${reason.name}: ${reason.message}`
    : typeof reason === "string"
    ? reason
    : (() => {
      try {
        return JSON.stringify(reason) ?? String(reason);
      } catch {
        return String(reason);
      }
    })();
  return sanitize(text.replace(/\s*\n\s*/g, " ").trim(), 300);
}

/** Installs the guard on `target` (the global scope unless a test passes its own). */
export function installRejectionGuard(target: EventTarget = globalThis): RejectionGuard {
  let resolve!: (why: string) => void;
  const failure = new Promise<string>((r) => resolve = r);
  let caught = 0;
  const take = (kind: string, reason: unknown) => {
    caught++;
    if (caught > 1) return; // the adaptor is already stopping
    const why = `${kind}: ${describeReason(reason)}`;
    log().error(literal(`${why} (a bug: stopping cleanly)`));
    resolve(why);
  };
  const onRejection = (event: Event) => {
    event.preventDefault(); // no "Uncaught (in promise)" and no immediate exit
    take("unhandled rejection", (event as PromiseRejectionEvent).reason);
  };
  const onError = (event: Event) => {
    event.preventDefault();
    take("uncaught error", (event as ErrorEvent).error ?? (event as ErrorEvent).message);
  };
  target.addEventListener("unhandledrejection", onRejection);
  target.addEventListener("error", onError);
  return {
    failure,
    get caught() {
      return caught;
    },
    dispose() {
      target.removeEventListener("unhandledrejection", onRejection);
      target.removeEventListener("error", onError);
    },
  };
}
