// An esbuild plugin for the synth bundle (scripts/app.mjs): edits to cdktn's token resolver
// (cdktn/lib/tokens/private/resolve.js, cdktn 0.24.0), which walks every value of every stack and
// was half the time of a 1000-host synth (issue #30):
//  1. the path of the value being resolved ("/" + prefix.join("/")) was built on every call and
//     read only by error messages: it is built when an error is thrown;
//  2. a string that cannot hold a token is returned as it is: no "{" (string, list and map
//     tokens and Terraform's "${" escapes all have one) and no encoded number (the resolver's own
//     NUMBER_TOKEN_REGEX needs one of - | digit . + right before an "e"); every other string
//     takes the resolver's own path;
//  3. an object key that cannot hold a token is used as it is, without a resolver context;
//  4. a member of an object or a list is walked by __fleetWalk (WALK below): for each value cdktn
//     built a context (a new path array, a copy of its options, two closures) and called itself,
//     and the generated bindings hand it ~92 undefined attributes per host besides the real ones.
//     The walker returns what cdktn returns without that: such a string, a boolean, null, a
//     number far from the encoded token numbers (about -1.9e+289) as it is; undefined as
//     undefined; an object or a list copied member by member, leaving out the undefined ones, as
//     cdktn's own branches do. Anything cdktn treats otherwise goes to cdktn's own resolve() at
//     the same path: another string or number, a list holding one (cdktn's list-token check), an
//     object with a key that is not plain (its map-token check), with resolve() (a token), a
//     construct by cdktn's own test, a Date, a function, and anything deeper than cdktn's
//     200-level limit (so the error and its path are cdktn's). makeContext takes the path as a
//     list for that (concat appends a string or a list's members alike).
// And two edits that spare the second walk (cdktn/lib/terraform-stack.js,
// cdktn/lib/synthesize/synthesizer.js): App.synth() resolves every element of a stack once to
// prepare it (finding cross-stack references) and again to write it, and the two results are the
// same unless a cross-stack reference was registered (tfExpression.js Reference.resolve is the
// only code that reads `preparing`) or an aspect changed an element in between. So:
//  5. the preparing resolve keeps its result on the element;
//  6. the writing resolve takes it (once) unless a cross-stack reference was registered or an
//     aspect ran, which set a flag that turns this off for the rest of the process;
//  7. the stack's document, made of those resolved fragments and the stack's raw overrides, was
//     resolved once more as a whole: when every fragment came resolved from step 6, only the
//     overrides' values are resolved (an undefined one still deletes, as deepMerge does).
// And one in the synthesizer (cdktn/lib/synthesize/synthesizer.js):
//  8. a stack's JSON was one string built by safe-stable-stringify (keys sorted, indent 2) from
//     many small concatenations, then written: 30 MB of JSON held a few times that while it was
//     built. It is written as it is made instead, in 64 KiB pieces, the same text (strings by
//     V8's JSON.stringify, which is what safe-stable-stringify's strEscape produces). A value it
//     does not know (a cycle, a typed array, a bigint) hands the whole stack back to
//     safe-stable-stringify. Keys are sorted in place (insertion sort) up to 16 of them: sort()
//     allocated a work copy for each object, a sixth of all a 1000-host synth allocated.
// And one in cdktn/lib/util.js:
//  9. processDynamicAttributes copied an element's attributes through Object.entries (a [name,
//     value] pair for each of a VM's ~100 attributes, most of them undefined): through
//     Object.keys and a read of each value, the same names in the same order.
// Output is unchanged (tested: the same stacks byte for byte with and without). When cdktn's
// source no longer has these exact lines the file is bundled as it is and the synth is only
// slower: `npm test` says so (__tests__/synth-speed.test.ts).
import { readFileSync } from "node:fs";

// Edit 4: the walker of a member's value. `path` is the member's path below the resolve() call
// that found it (pushed and popped as it goes, copied only for cdktn), `depth` the length of
// resolve()'s own prefix there, `makeContext` that call's own.
const WALK = String.raw`
function __fleetWalk(v, path, depth, makeContext) {
    if (__leaf(v)) return v;
    if (v === undefined && depth <= 200) return undefined;
    if (depth > 200 || v === null || typeof v !== "object") return makeContext(path.slice())[0].resolve(v);
    if (Array.isArray(v)) {
        for (let i = 0; i < v.length; i++) {
            const x = v[i];
            if ((typeof x === "string" || typeof x === "number") && !__leaf(x)) return makeContext(path.slice())[0].resolve(v);
        }
        const out = [];
        for (let i = 0; i < v.length; i++) {
            if (!(i in v)) continue;
            path.push(String(i));
            const r = __fleetWalk(v[i], path, depth + 1, makeContext);
            path.pop();
            if (r !== undefined) out.push(r);
        }
        return out;
    }
    if (v instanceof Date || typeof v.resolve === "function" || (v._children !== undefined && v._metadata !== undefined)) return makeContext(path.slice())[0].resolve(v);
    const keys = Object.keys(v);
    for (let i = 0; i < keys.length; i++) if (!__plain(keys[i])) return makeContext(path.slice())[0].resolve(v);
    const out = {};
    for (let i = 0; i < keys.length; i++) {
        const k = keys[i];
        path.push(k);
        const r = __fleetWalk(v[k], path, depth + 1, makeContext);
        path.pop();
        if (r !== undefined) out[k] = r;
    }
    return out;
}`;

export const RESOLVE_FILE = /[\\/]cdktn[\\/]lib[\\/]tokens[\\/]private[\\/]resolve\.js$/;
const PLAIN = [
  "const __plain = (s) => s.indexOf(\"{\") === -1 && !/[-|\\d.+]e[-|\\d.eE+]/.test(s);",
  "const __leaf = (v) => v === null || typeof v === \"boolean\" || (typeof v === \"number\" && Math.abs(v) < 1e100) || (typeof v === \"string\" && __plain(v));",
  WALK,
].join("\n");

/** The edits as [exact original text, replacement]; each must occur exactly once. */
export const EDITS = [
  ['    const pathName = "/" + prefix.join("/");\n', ""],
  ["(pathName", '("/" + prefix.join("/")'],
  ['    if (typeof obj === "string") {\n', '    if (typeof obj === "string") {\n        if (__plain(obj)) return obj;\n'],
  ["        const resolvedKey = makeContext()[0].resolve(key);\n", "        const resolvedKey = typeof key === \"string\" && __plain(key) ? key : makeContext()[0].resolve(key);\n"],
  ["        const value = makeContext(key)[0].resolve(obj[key]);\n", "        const value = __fleetWalk(obj[key], [key], prefix.length + 1, makeContext);\n"],
  ["            .map((x, i) => makeContext(`${i}`)[0].resolve(x))\n", "            .map((x, i) => __fleetWalk(x, [`${i}`], prefix.length + 1, makeContext))\n"],
  ["        const newPrefix = appendPath !== undefined ? prefix.concat([appendPath]) : options.prefix;\n", "        const newPrefix = appendPath !== undefined ? prefix.concat(appendPath) : options.prefix;\n"],
];

/** The flag of edits 5-6: once set, every stack is resolved again to be written. */
const STALE = "globalThis.__fleetPreparedStale = true;";
export const STACK_FILE = /[\\/]cdktn[\\/]lib[\\/]terraform-stack\.js$/;
export const STACK_EDITS = [
  ["        terraformElements(this).forEach((e) => (0, _tokens_1.resolve)(this, e.toTerraform(), true));\n", "        terraformElements(this).forEach((e) => { e.__fleetPrepared = (0, _tokens_1.resolve)(this, e.toTerraform(), true); });\n"],
  [
    "        const fragments = elements.map((e) => (0, _tokens_1.resolve)(this, e.toTerraform()));\n",
    "        let __allPrepared = true;\n        const fragments = elements.map((e) => { const p = e.__fleetPrepared; e.__fleetPrepared = undefined; if (p !== undefined && !globalThis.__fleetPreparedStale) return p; __allPrepared = false; return (0, _tokens_1.resolve)(this, e.toTerraform()); });\n",
  ],
  // (each fragment is let go once merged: the stack's fragments and its merged copy are not all
  // held at once, which was the peak of a 5000-host synth)
  ["        for (const fragment of fragments) {\n            (0, util_1.deepMerge)(tf, fragment);\n        }\n", "        for (let i = 0; i < fragments.length; i++) {\n            (0, util_1.deepMerge)(tf, fragments[i]);\n            fragments[i] = undefined;\n        }\n"],
  [
    "        (0, util_1.deepMerge)(tf, this.rawOverrides);\n        return (0, _tokens_1.resolve)(this, tf);\n",
    "        if (__allPrepared && !globalThis.__fleetPreparedStale) {\n" +
      "            const leaves = (o) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, v === undefined ? undefined : v !== null && typeof v === \"object\" && !Array.isArray(v) && typeof v.resolve !== \"function\" ? leaves(v) : (0, _tokens_1.resolve)(this, v)]));\n" +
      "            (0, util_1.deepMerge)(tf, leaves(this.rawOverrides));\n            return tf;\n        }\n" +
      "        (0, util_1.deepMerge)(tf, this.rawOverrides);\n        return (0, _tokens_1.resolve)(this, tf);\n",
  ],
  ["    registerOutgoingCrossStackReference(identifier) {\n", `    registerOutgoingCrossStackReference(identifier) {\n        ${STALE}\n`],
  ["    registerIncomingCrossStackReference(fromStack) {\n", `    registerIncomingCrossStackReference(fromStack) {\n        ${STALE}\n`],
];
export const SYNTHESIZER_FILE = /[\\/]cdktn[\\/]lib[\\/]synthesize[\\/]synthesizer\.js$/;
const WRITE_JSON = String.raw`
const __fleetUnknown = {};
// keys in the order of Array.prototype.sort() without a comparator (UTF-16 code units, which is
// what < compares for strings); in place for the small objects that are most of a stack: sort()
// allocated a work copy for each, a sixth of all a 1000-host synth allocated
function __fleetSortKeys(keys) {
    if (keys.length > 16) return keys.sort();
    for (let i = 1; i < keys.length; i++) {
        const k = keys[i];
        let j = i - 1;
        while (j >= 0 && keys[j] > k) {
            keys[j + 1] = keys[j];
            j--;
        }
        keys[j + 1] = k;
    }
    return keys;
}
function __fleetWriteJson(file, value) {
    const fd = fs.openSync(file, "w");
    let buf = "";
    const out = (s) => {
        buf += s;
        if (buf.length > 65536) {
            fs.writeSync(fd, buf);
            buf = "";
        }
    };
    const stack = [];
    const prepare = (v, key) => (v !== null && typeof v === "object" && typeof v.toJSON === "function" ? v.toJSON(key) : v);
    const skip = (v) => v === undefined || typeof v === "function" || typeof v === "symbol";
    const write = (v, indent) => {
        if (v === null) return out("null");
        switch (typeof v) {
            case "string": return out(JSON.stringify(v));
            case "number": return out(isFinite(v) ? String(v) : "null");
            case "boolean": return out(v ? "true" : "false");
            case "object": break;
            default: throw __fleetUnknown;
        }
        if (stack.includes(v) || ArrayBuffer.isView(v)) throw __fleetUnknown;
        const inner = indent + "  ";
        stack.push(v);
        if (Array.isArray(v)) {
            if (v.length === 0) out("[]");
            else {
                out("[\n" + inner);
                for (let i = 0; i < v.length; i++) {
                    if (i) out(",\n" + inner);
                    const x = prepare(v[i], String(i));
                    if (skip(x)) out("null");
                    else write(x, inner);
                }
                out("\n" + indent + "]");
            }
        } else {
            const keys = __fleetSortKeys(Object.keys(v));
            let first = true;
            for (let i = 0; i < keys.length; i++) {
                const key = keys[i];
                const x = prepare(v[key], key);
                if (skip(x)) continue;
                out((first ? "{\n" : ",\n") + inner + JSON.stringify(key) + ": ");
                first = false;
                write(x, inner);
            }
            out(first ? "{}" : "\n" + indent + "}");
        }
        stack.pop();
    };
    try {
        const top = prepare(value, "");
        if (skip(top)) throw __fleetUnknown;
        write(top, "");
        fs.writeSync(fd, buf);
    } catch (e) {
        if (e !== __fleetUnknown) throw e;
        fs.ftruncateSync(fd, 0);
        fs.writeSync(fd, (0, safe_stable_stringify_1.default)(value, null, 2), 0);
    } finally {
        fs.closeSync(fd);
    }
}
`;
export const SYNTHESIZER_EDITS = [
  ["            aspect.visit(construct);\n", `            ${STALE}\n            aspect.visit(construct);\n`],
  ["        fs.writeFileSync(path.join(session.outdir, stackManifest.synthesizedStackPath), (0, safe_stable_stringify_1.default)(jsonTfConfig, null, 2));\n", "        __fleetWriteJson(path.join(session.outdir, stackManifest.synthesizedStackPath), jsonTfConfig);\n"],
  ["const safe_stable_stringify_1 = require(\"safe-stable-stringify\");\n", `const safe_stable_stringify_1 = require("safe-stable-stringify");\n${WRITE_JSON}\n`],
];

export const UTIL_FILE = /[\\/]cdktn[\\/]lib[\\/]util\.js$/;
export const UTIL_EDITS = [
  [
    "function processDynamicAttributes(attributes) {\n    const result = {};\n    Object.entries(attributes).forEach(([attributeName, value]) => {\n",
    "function processDynamicAttributes(attributes) {\n    const result = {};\n    Object.keys(attributes).forEach((attributeName) => {\n        const value = attributes[attributeName];\n",
  ],
];

/** `source` with each [from, to] made, or undefined unless each `from` occurs exactly once (the resolver's "(pathName": at least once). */
export function applyEdits(source, edits) {
  let out = source;
  for (const [from, to] of edits) {
    const count = out.split(from).length - 1;
    if (from === "(pathName" ? count < 1 : count !== 1) return undefined;
    out = out.split(from).join(to);
  }
  return out;
}

/** The patched source, or undefined when an edit does not match cdktn's source exactly. */
export function patchResolve(source) {
  const out = applyEdits(source, EDITS);
  return out === undefined ? undefined : `${PLAIN}\n${out}`;
}
/** Edit 9, or undefined when it does not match cdktn's source exactly. */
export function patchUtil(source) {
  return applyEdits(source, UTIL_EDITS);
}
/** Edits 5-6, or undefined unless every one of them (in both files) matches: they work only together. */
export function patchStack(stackSource, synthesizerSource) {
  const stack = applyEdits(stackSource, STACK_EDITS);
  const synthesizer = applyEdits(synthesizerSource, SYNTHESIZER_EDITS);
  return stack === undefined || synthesizer === undefined ? undefined : { stack, synthesizer };
}

/** Has esbuild load the files `filter` matches through `patch`, or as they are where it gives undefined. */
export function loadPatched(build, filter, patch) {
  build.onLoad({ filter }, (args) => {
    const source = readFileSync(args.path, "utf8");
    return { contents: patch(source) ?? source, loader: "js" };
  });
}

export const fastResolve = {
  name: "cdktn-fast-resolve",
  setup(build) {
    loadPatched(build, RESOLVE_FILE, patchResolve);
    loadPatched(build, UTIL_FILE, patchUtil);
    // both files patched together, once per build (the two onLoad calls share the result)
    const patched = new Map();
    const both = (path) => {
      const stackFile = path.replace(SYNTHESIZER_FILE, "/cdktn/lib/terraform-stack.js");
      if (!patched.has(stackFile)) {
        const synthFile = stackFile.replace(STACK_FILE, "/cdktn/lib/synthesize/synthesizer.js");
        patched.set(stackFile, patchStack(readFileSync(stackFile, "utf8"), readFileSync(synthFile, "utf8")));
      }
      return patched.get(stackFile);
    };
    build.onLoad({ filter: STACK_FILE }, (args) => ({ contents: both(args.path)?.stack ?? readFileSync(args.path, "utf8"), loader: "js" }));
    build.onLoad({ filter: SYNTHESIZER_FILE }, (args) => ({ contents: both(args.path)?.synthesizer ?? readFileSync(args.path, "utf8"), loader: "js" }));
  },
};
