/**
 * `deno task docs`: writes the operator guide's flag table (docs/operations.md, between the
 * `options:begin`/`options:end` markers) from the option table, so that the guide says what
 * `--help` says. The suite checks that it is up to date.
 */

import { OPTIONS, type OptionSpec, shownDefault } from "../src/config/options.ts";

export const GUIDE = new URL("../docs/operations.md", import.meta.url);
const BEGIN = "<!-- options:begin (written by `deno task docs` from src/config/options.ts) -->";
const END = "<!-- options:end -->";

/** The flag table as Markdown: flag, default, variable, what it does. */
export function optionTable(): string {
  const cell = (text: string) => text.replaceAll("|", "\\|");
  const rows = (OPTIONS as readonly OptionSpec[]).map((o) => {
    const shown = o.kind.type === "switch" ? "off" : shownDefault(o);
    return `| \`${o.flags}\` | ${cell(shown)} | \`${o.env}\` | ${cell(o.doc ?? o.help)} |`;
  });
  return ["| flag | default | variable | what it does |", "|---|---|---|---|", ...rows].join("\n");
}

/** The guide with its flag table replaced by `table`. */
export function withTable(guide: string, table = optionTable()): string {
  const start = guide.indexOf(BEGIN);
  const end = guide.indexOf(END);
  if (start < 0 || end < start) throw new Error(`docs/operations.md lacks the ${BEGIN} … ${END} markers`);
  return guide.slice(0, start + BEGIN.length) + "\n" + table + "\n" + guide.slice(end);
}

if (import.meta.main) {
  const guide = Deno.readTextFileSync(GUIDE);
  const updated = withTable(guide);
  if (updated !== guide) Deno.writeTextFileSync(GUIDE, updated);
  console.log(
    updated === guide
      ? "docs/operations.md: flag table up to date"
      : "docs/operations.md: flag table written",
  );
}
