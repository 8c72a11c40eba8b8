/**
 * Command line and environment → one validated `Config` (or help, or version).
 *
 * The flags and their variables come from the option table (`options.ts`); flags win over
 * variables, endpoint variables take a comma-separated list, and an error names the variable a
 * bad value came from. Knows nothing of ZeroMQ: printing the version is left to the caller.
 */

import { Command, CommanderError, Option } from "commander";
import { type Config, type ConfigInput, makeConfig } from "./config.ts";
import {
  flagOf,
  type LogFormat,
  type OptionKey,
  optionOf,
  OPTIONS,
  type OptionSpec,
  shownDefault,
} from "./options.ts";
import { UsageError } from "../errors.ts";
import { PROGRAM } from "../version.ts";

/** What the command line gave `tap`, unchecked (`cli.ts` collects it). */
export interface TapRequest {
  readonly endpoint: string;
  readonly prefixes: readonly string[];
  readonly count?: string;
  readonly json?: boolean;
  readonly curveCert?: string;
  readonly curveServerKey?: string;
  readonly curveServers?: string;
  readonly connectTimeout?: string;
}

/** What the command line asks for. */
export type Invocation =
  | { readonly kind: "run"; readonly config: Config }
  /** `--check`: validate what a start would, print the configuration, start nothing. */
  | { readonly kind: "check"; readonly config: Config }
  | { readonly kind: "help"; readonly text: string }
  | { readonly kind: "version" }
  | { readonly kind: "keygen"; readonly path: string }
  | { readonly kind: "tap"; readonly request: TapRequest };

const collect = (value: string, previous: string[] = []) => [...previous, value];

/**
 * The commander program; `onKeygen` and `onTap` hear the keygen and tap subcommands' arguments
 * when they are parsed.
 */
function program(
  onKeygen: (path: string) => void = () => {},
  onTap: (request: TapRequest) => void = () => {},
): Command {
  const cmd = new Command(PROGRAM)
    .description(
      "Forwards API-gateway usage events: gateway workers PUB-connect to the XSUB (-b),\n" +
        "tracking services SUB-connect to the XPUB (-p); subscriptions flow back upstream.\n" +
        "Endpoints: tcp://HOST:PORT, ipc:///path, ipc://@abstract, inproc://name;\n" +
        "prefix @ to bind or > to connect; repeat a flag for several endpoints.",
    )
    .helpOption("-h, --help", "show this help")
    .option("-V, --version", "print the adaptor's and ZeroMQ's versions")
    .option(
      "--check",
      "check what a start would (flags, variables, certificates, groups, ipc paths, locks, ports), " +
        "print the configuration and exit: 0 good, 1 a start would fail now, 2 bad configuration",
    )
    .allowExcessArguments(false)
    // The adaptor's flags go before a subcommand; tap has --curve-* flags of its own.
    .enablePositionalOptions();
  for (const option of OPTIONS as readonly OptionSpec[]) {
    const shown = option.kind.type === "switch" ? "" : ` (default: ${shownDefault(option)})`;
    const flag = new Option(option.flags, `${option.help}${shown} [env ${option.env}]`);
    if (option.kind.type === "endpoints") flag.argParser(collect);
    cmd.addOption(flag);
  }
  cmd.command("keygen")
    .argument("<path>", "where to write the public certificate; the secret one goes to PATH_secret")
    .description(
      "write a new CURVE certificate pair (CZMQ format) to PATH and PATH_secret, never overwriting",
    )
    .helpOption("-h, --help", "show this help")
    .action((path: string) => onKeygen(path));
  cmd.command("tap")
    .argument(
      "<endpoint>",
      "a running adaptor's XPUB (-p), or any ZeroMQ PUB/XPUB: tcp://HOST:PORT, ipc:///PATH",
    )
    .argument("[prefix...]", "subscribe to these prefixes (default: everything)")
    .description(
      "print what flows out of a running adaptor, as an ordinary subscriber: one event a line (made safe " +
        "for a terminal), or JSON lines",
    )
    .option("--count <n>", "exit after N events")
    .option("--json", "JSON lines: time, frame count, bytes, frames")
    .option("--curve-cert <file>", "this tap's secret CURVE certificate, for a CURVE XPUB")
    .option("--curve-server-key <key>", "the XPUB's public key (Z85; the adaptor logs it at start)")
    .option(
      "--curve-servers <dir>",
      "or the directory with its public certificate, DIR/HOST:PORT or DIR/HOST",
    )
    .option("--connect-timeout <ms>", "give up when no connection is made in this time (default: 5000)")
    .helpOption("-h, --help", "show this help")
    .action((endpoint: string, prefixes: string[], options: Record<string, string | boolean>) =>
      onTap({ endpoint, prefixes, ...options } as TapRequest)
    );
  // With a subcommand defined, commander needs a root action to run without one.
  cmd.action(() => {});
  return cmd;
}

/** The help text, as `-h` prints it. */
export function helpText(): string {
  return program().helpInformation();
}

/**
 * Reads `argv` (without the program name) and `env`. Throws `UsageError` with one line
 * naming the flag or variable and its value.
 */
export function parseArgs(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>> = {},
): Invocation {
  let keygenPath: string | undefined;
  let tap: TapRequest | undefined;
  const cmd = program((path) => keygenPath = path, (request) => tap = request);
  let help = "";
  for (const command of [cmd, ...cmd.commands]) {
    command.exitOverride().configureOutput({
      writeOut: (text) => (help += text),
      writeErr: () => {},
      outputError: () => {},
    });
  }
  try {
    cmd.parse([...argv], { from: "user" });
  } catch (error) {
    if (error instanceof CommanderError && error.code === "commander.helpDisplayed") {
      return { kind: "help", text: help };
    }
    if (error instanceof CommanderError) {
      const sub = ["keygen", "tap"].find((name) => argv.includes(name));
      throw new UsageError((sub ? `${sub}: ` : "") + error.message.replace(/^error: /, ""));
    }
    throw error;
  }
  const options = cmd.opts();
  if (keygenPath !== undefined) return { kind: "keygen", path: keygenPath };
  if (tap !== undefined) return { kind: "tap", request: tap };
  if (options.version) return { kind: "version" };

  const input: Record<string, unknown> = {};
  const names: Partial<Record<OptionKey, string>> = {};
  for (const option of OPTIONS as readonly OptionSpec[]) {
    const key = option.key as OptionKey;
    const fromFlag = options[key];
    const fromEnv = env[option.env];
    if (fromFlag !== undefined) {
      input[key] = option.kind.type === "integer" ? number(flagOf(option), fromFlag) : fromFlag;
    } else if (fromEnv !== undefined && fromEnv !== "") {
      input[key] = fromEnvironment(option, fromEnv);
      names[key] = option.env;
    }
  }
  return { kind: options.check ? "check" : "run", config: makeConfig(input as ConfigInput, names) };
}

/**
 * The log format `argv` and `env` ask for, read without the full parse: for the line that
 * reports a usage error the parse itself ran into. "json" only when it says so plainly.
 */
export function requestedLogFormat(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>> = {},
): LogFormat {
  let value = env[optionOf("logFormat").env]?.trim();
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--") break;
    if (argv[i] === "--log-format") value = argv[++i];
    else if (argv[i].startsWith("--log-format=")) value = argv[i].slice("--log-format=".length);
  }
  return value === "json" ? "json" : "text";
}

function number(name: string, text: string): number {
  if (!/^\s*\d+\s*$/.test(text)) throw new UsageError(`${name} '${text}': expected a whole number`);
  return Number(text);
}

function fromEnvironment(option: OptionSpec, text: string): unknown {
  const name = option.env;
  switch (option.kind.type) {
    case "endpoints":
      return text.split(",").map((s) => s.trim()).filter((s) => s !== "");
    case "integer":
      return number(name, text);
    case "switch": {
      const value = text.trim().toLowerCase();
      if (["1", "true", "yes", "on"].includes(value)) return true;
      if (["0", "false", "no", "off"].includes(value)) return false;
      throw new UsageError(`${name} '${text}': expected true or false`);
    }
    default:
      return text.trim();
  }
}
