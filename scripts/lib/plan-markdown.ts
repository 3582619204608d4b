/**
 * Markdown for a pull-request comment that no string from a plan can break out of: inline code
 * and fenced blocks with fences longer than any backtick run inside, cells with `|` escaped, and
 * text inside the comment's own HTML escaped.
 */

/** A run of backticks longer than any run inside `t`, and at least `min` long. */
const fenceFor = (t: string, min: number) => "`".repeat(Math.max(min - 1, ...(t.match(/`+/g) ?? []).map((r) => r.length)) + 1);

/** Inline code with no way out: newlines flattened, a fence longer than any backtick run inside. */
export function code(s: string, max = 200): string {
  let t = String(s).replace(/[\r\n\u2028\u2029]+/g, " ");
  if (t.length > max) t = `${t.slice(0, max - 1)}…`;
  const fence = fenceFor(t, 1);
  const pad = t.startsWith("`") || t.endsWith("`") || t === "" ? " " : "";
  return `${fence}${pad}${t}${pad}${fence}`;
}
/** Inline code inside a table cell: as code(), with `|` escaped (GFM tables split on it even in code). */
export const cellCode = (s: string, max = 120) => code(s, max).replace(/\|/g, "\\|");
/** Text inside our own HTML (summary): HTML-escaped, single line. */
export const html = (s: string) => String(s).replace(/[\r\n]+/g, " ").replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;").replace(/'/g, "&#39;");

/** A fenced block no text can close early: a fence longer than any backtick run inside. */
export function fenced(text: string, max = 4000): string {
  let t = text.replace(/\x1b\[[0-9;]*m/g, "");
  if (t.length > max) t = `${t.slice(0, max)}\n… (${t.length - max} more characters in the artifact)`;
  const fence = fenceFor(t, 3);
  return `${fence}text\n${t}\n${fence}`;
}
