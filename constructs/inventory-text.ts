/**
 * What JSON.parse hides and Nix's reader sees differently, found in the inventory's text:
 * a key given twice in one object (JSON.parse keeps the last silently; a reader is left with the
 * first in mind), a number too large for a double (1e400 becomes Infinity, printed as null),
 * and a whole number beyond 2^53 (2^64 silently becomes another number). One pass with
 * jsonc-parser's visitor (VS Code's JSON scanner), which gives each value's JSON path.
 */
import { JSONPath, visit } from "jsonc-parser";

export interface TextProblem {
  readonly path: string[];
  readonly message: string;
}

/** Problems in an inventory text that JSON.parse accepted. At most `limit` of them. */
export function textProblems(text: string, limit = 50): TextProblem[] {
  const out: TextProblem[] = [];
  const keys: Set<string>[] = [];
  const path = (p: JSONPath) => p.map(String);
  visit(
    text,
    {
      onObjectBegin: () => void keys.push(new Set()),
      onObjectEnd: () => void keys.pop(),
      onObjectProperty: (property, _offset, _length, line, _char, pathSupplier) => {
        const seen = keys[keys.length - 1];
        if (!seen) return;
        if (seen.has(property) && out.length < limit) out.push({ path: [...path(pathSupplier()), property], message: `is given twice in the same object (line ${line + 1}); JSON keeps only the last one silently: keep one` });
        seen.add(property);
      },
      onLiteralValue: (value, offset, length, line, _char, pathSupplier) => {
        if (typeof value !== "number" || out.length >= limit) return;
        const literal = text.slice(offset, offset + length);
        if (!Number.isFinite(value)) out.push({ path: path(pathSupplier()), message: `${literal.slice(0, 40)} is too large for a number (line ${line + 1}); give a value in range` });
        else if (/^-?\d+$/.test(literal) && !Number.isSafeInteger(value))
          out.push({ path: path(pathSupplier()), message: `${literal.slice(0, 40)} is beyond the whole numbers JSON readers keep exactly (2^53); it would silently become ${value} (line ${line + 1}): give a value in range` });
      },
    },
    { disallowComments: true, allowTrailingComma: false },
  );
  return out;
}
