/**
 * What every child process of the harness shares (the adaptor, fleet peers, the bench's
 * processes): its output read line by line as it comes, and signals that do not throw once the
 * process is gone.
 */

/** Reads `stream` as text and hands `take` each line as it arrives (the last even without "\n"). */
export async function readLines(
  stream: ReadableStream<Uint8Array>,
  take: (line: string) => void,
): Promise<void> {
  let rest = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    rest += chunk;
    let at: number;
    while ((at = rest.indexOf("\n")) >= 0) {
      const line = rest.slice(0, at);
      rest = rest.slice(at + 1);
      take(line);
    }
  }
  if (rest) take(rest);
}

/** Sends `signal` to `child`; nothing when it has already exited. */
export function signalQuietly(child: Deno.ChildProcess, signal: Deno.Signal): void {
  try {
    child.kill(signal);
  } catch {
    // already gone
  }
}

/** Waits for `child` to exit, killing it with SIGKILL after `ms`; resolves with its status. */
export async function exitWithin(child: Deno.ChildProcess, ms: number): Promise<Deno.CommandStatus> {
  const timer = setTimeout(() => signalQuietly(child, "SIGKILL"), ms);
  try {
    return await child.status;
  } finally {
    clearTimeout(timer);
  }
}
