/**
 * ZPL, the ZeroMQ Property Language (rfc.zeromq.org/spec:4), the subset CZMQ's zconfig reads and
 * writes certificates in: parsed into a tree, with one line naming the line that is wrong.
 */

import { sanitize } from "../ops/sanitize.ts";

/** One ZPL item: a name, a value ("" when none) and the items indented under it. */
export interface ZplNode {
  readonly name: string;
  readonly value: string;
  readonly children: ZplNode[];
  /** 1-based line of the item in its text (0 for the root). */
  readonly line: number;
}

/** A ZPL syntax error, with the 1-based line it was found on. */
export class ZplError extends Error {
  constructor(readonly line: number, reason: string) {
    super(`line ${line}: ${reason}`);
    this.name = "ZplError";
  }
}

const NAME = /^[A-Za-z0-9$\-_@.&+/]+/;

/** `text` from a file, quoted for an error message: escaped, at most 60 characters. */
export function quoted(text: string): string {
  return `'${sanitize(text, 60)}'`;
}

/**
 * Parses ZPL text into a tree under a root node, as CZMQ's `zconfig_str_load` does; the whole
 * text is valid or a `ZplError` says where it is not.
 */
export function parseZpl(text: string): ZplNode {
  const root: ZplNode = { name: "root", value: "", children: [], line: 0 };
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trimEnd();
    const lineNo = i + 1;
    if (line.startsWith("#") || line === "") continue;
    const indent = /^ */.exec(line)![0].length;
    if (line[indent] === "\t") throw new ZplError(lineNo, "tab in indentation (indent with 4 spaces)");
    if (indent % 4 !== 0) throw new ZplError(lineNo, "indent 4 spaces at a time");
    let rest = line.slice(indent);
    const name = NAME.exec(rest)?.[0] ?? "";
    if (name === "") {
      if (!rest.startsWith("#")) throw new ZplError(lineNo, `invalid syntax ${quoted(rest)}`);
      continue;
    }
    if (name.startsWith("/") || name.endsWith("/")) {
      throw new ZplError(lineNo, `'/' is not valid at the start or end of a name (${quoted(name)})`);
    }
    rest = rest.slice(name.length).trimStart();
    let value = "";
    if (rest.startsWith("=")) {
      rest = rest.slice(1).trimStart();
      const quote = rest[0];
      if (quote === '"' || quote === "'") {
        const end = rest.indexOf(quote, 1);
        if (end < 0) throw new ZplError(lineNo, `missing closing ${quote}`);
        value = rest.slice(1, end);
        checkEndOfLine(rest.slice(end + 1), lineNo);
      } else {
        const comment = rest.indexOf("#");
        value = (comment >= 0 ? rest.slice(0, comment) : rest).trimEnd();
      }
    } else {
      checkEndOfLine(rest, lineNo);
    }
    const parent = nodeAtDepth(root, indent / 4);
    if (!parent) throw new ZplError(lineNo, "indentation error (no item to nest under)");
    parent.children.push({ name, value, children: [], line: lineNo });
  }
  return root;
}

function checkEndOfLine(rest: string, lineNo: number): void {
  const trimmed = rest.trimStart();
  if (trimmed !== "" && !trimmed.startsWith("#")) {
    throw new ZplError(lineNo, `invalid syntax ${quoted(trimmed)}`);
  }
}

// The latest node at `depth` (root = 0), which an item indented `depth` levels belongs under.
function nodeAtDepth(root: ZplNode, depth: number): ZplNode | undefined {
  let node = root;
  for (let level = 0; level < depth; level++) {
    const last = node.children.at(-1);
    if (!last) return undefined;
    node = last;
  }
  return node;
}

/** The item at `path` ("curve/public-key"), as `zconfig_locate` finds it (first match). */
export function zplLocate(root: ZplNode, path: string): ZplNode | undefined {
  let node: ZplNode | undefined = root;
  for (const part of path.split("/").filter((p) => p !== "")) {
    node = node.children.find((c) => c.name === part);
    if (!node) return undefined;
  }
  return node;
}
