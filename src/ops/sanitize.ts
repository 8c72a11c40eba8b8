/**
 * Text from outside (file contents, peer addresses, error messages that quote them, message
 * payloads under `-d`) made safe for one log line: nothing in it may move the cursor, recolour
 * or clear a terminal, break the line, or reorder what a reader sees.
 *
 * Unsafe: C0 controls and DEL (escape sequences start with ESC), C1 controls (U+0080–U+009F;
 * U+009B is a one-character CSI on some terminals), the line and paragraph separators
 * U+2028/U+2029 (line breaks to JavaScript and JSON viewers), the bidirectional marks,
 * embeddings, overrides and isolates (U+061C, U+200E/U+200F, U+202A–U+202E, U+2066–U+2069:
 * "Trojan Source"), the byte-order mark, and lone surrogates.
 */

/** Matches one unsafe character (global: use with `replace`). */
export const UNSAFE_CHARACTER =
  // deno-lint-ignore no-control-regex -- matching control characters is the point
  /[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** Longest text `sanitize` keeps by default, in UTF-16 code units. */
export const SANITIZE_MAX_LENGTH = 200;

/** `char` as an escape: `\n`, `\t`, `\r`, `\x1b`, `\u202e`. */
export function escapeCharacter(char: string): string {
  if (char === "\n") return "\\n";
  if (char === "\r") return "\\r";
  if (char === "\t") return "\\t";
  const code = char.charCodeAt(0);
  return code < 0x100
    ? `\\x${code.toString(16).padStart(2, "0")}`
    : `\\u${code.toString(16).padStart(4, "0")}`;
}

/**
 * `text` with every unsafe character escaped (`\x1b[31m` stays visible as such) and, past
 * `maxLength` code units, cut with `… (N more characters)`. The cut is made before escaping,
 * so a 3 MB line costs no more than its first `maxLength` characters.
 */
export function sanitize(text: string, maxLength = SANITIZE_MAX_LENGTH): string {
  let cut = text;
  let more = "";
  if (text.length > maxLength) {
    let end = maxLength;
    // Do not split a surrogate pair.
    if (/[\ud800-\udbff]/.test(text[end - 1] ?? "")) end--;
    cut = text.slice(0, end);
    more = `… (${text.length - end} more characters)`;
  }
  return cut.replace(UNSAFE_CHARACTER, escapeCharacter) + more;
}
