// An esbuild plugin for the synth bundle (scripts/app.mjs): three edits to cdktn's token
// resolver (cdktn/lib/tokens/private/resolve.js, cdktn 0.24.0), which walks every value of every
// stack twice (once to find cross-stack references, once to write the JSON) and was half the
// time of a 1000-host synth (issue #30):
//  1. the path of the value being resolved ("/" + prefix.join("/")) was built on every call and
//     read only by error messages: it is built when an error is thrown;
//  2. a string that cannot hold a token is returned as it is: no "{" (string, list and map
//     tokens and Terraform's "${" escapes all have one) and no encoded number (the resolver's own
//     NUMBER_TOKEN_REGEX needs one of - | digit . + right before an "e"); every other string
//     takes the resolver's own path;
//  3. an object key that cannot hold a token is used as it is, without a resolver context;
//  4. so is a member of an object or a list that resolves to itself: such a string, a boolean,
//     null, or a number far from the encoded token numbers (about -1.9e+289); the resolver
//     built a context (a new path array, a copy of its options, two closures) for each.
// Output is unchanged (tested: the same stacks byte for byte with and without). When cdktn's
// source no longer has these exact lines the file is bundled as it is and the synth is only
// slower: `npm test` says so (__tests__/synth-speed.test.ts).
import { readFileSync } from "node:fs";

export const RESOLVE_FILE = /[\\/]cdktn[\\/]lib[\\/]tokens[\\/]private[\\/]resolve\.js$/;
const PLAIN = [
  "const __plain = (s) => s.indexOf(\"{\") === -1 && !/[-|\\d.+]e[-|\\d.eE+]/.test(s);",
  "const __leaf = (v) => v === null || typeof v === \"boolean\" || (typeof v === \"number\" && Math.abs(v) < 1e100) || (typeof v === \"string\" && __plain(v));",
].join("\n");

/** The edits as [exact original text, replacement]; each must occur exactly once. */
export const EDITS = [
  ['    const pathName = "/" + prefix.join("/");\n', ""],
  ["(pathName", '("/" + prefix.join("/")'],
  ['    if (typeof obj === "string") {\n', '    if (typeof obj === "string") {\n        if (__plain(obj)) return obj;\n'],
  ["        const resolvedKey = makeContext()[0].resolve(key);\n", "        const resolvedKey = typeof key === \"string\" && __plain(key) ? key : makeContext()[0].resolve(key);\n"],
  ["        const value = makeContext(key)[0].resolve(obj[key]);\n", "        const value = __leaf(obj[key]) ? obj[key] : makeContext(key)[0].resolve(obj[key]);\n"],
  ["            .map((x, i) => makeContext(`${i}`)[0].resolve(x))\n", "            .map((x, i) => (__leaf(x) ? x : makeContext(`${i}`)[0].resolve(x)))\n"],
];

/** The patched source, or undefined when an edit does not match cdktn's source exactly. */
export function patchResolve(source) {
  let out = source;
  for (const [from, to] of EDITS) {
    const count = out.split(from).length - 1;
    if (from === "(pathName" ? count < 1 : count !== 1) return undefined;
    out = out.split(from).join(to);
  }
  return `${PLAIN}\n${out}`;
}

export const fastResolve = {
  name: "cdktn-fast-resolve",
  setup(build) {
    build.onLoad({ filter: RESOLVE_FILE }, (args) => {
      const source = readFileSync(args.path, "utf8");
      return { contents: patchResolve(source) ?? source, loader: "js" };
    });
  },
};
