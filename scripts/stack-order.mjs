#!/usr/bin/env node
// Prints the synthesized stacks in the order they must be applied: every stack after the stacks
// it depends on (manifest.json's `dependencies`, which cdktf writes from cross-stack references),
// ties by name. One name per line. The deploy workflow applies the reviewed plans in this order
// (issue #28: alphabetical order applied ai, ops and platform before cluster, which they read).
//   node scripts/stack-order.mjs [cdktf.out/manifest.json]
// Exit 0; 2 with one line when the manifest cannot be read, names an unknown stack, or has a cycle.
import { readFileSync } from "node:fs";

const file = process.argv[2] ?? "cdktf.out/manifest.json";
const fail = (msg) => {
  process.stderr.write(`stack-order: ${file}: ${msg}\n`);
  process.exit(2);
};
let stacks;
try {
  stacks = JSON.parse(readFileSync(file, "utf8")).stacks;
} catch (e) {
  fail(`cannot read it (${e.code ?? e.message}); run npm run synth first`);
}
if (!stacks || typeof stacks !== "object") fail("has no stacks; run npm run synth first");
const deps = new Map(Object.entries(stacks).map(([name, s]) => [name, [...new Set(s.dependencies ?? [])]]));
for (const [name, ds] of deps) for (const d of ds) if (!deps.has(d)) fail(`stack ${name} depends on ${d}, which the manifest does not have`);
const order = [];
const done = new Set();
while (order.length < deps.size) {
  const ready = [...deps.keys()].filter((n) => !done.has(n) && deps.get(n).every((d) => done.has(d))).sort();
  if (!ready.length) fail(`the stacks ${[...deps.keys()].filter((n) => !done.has(n)).sort().join(", ")} depend on each other in a cycle`);
  order.push(ready[0]);
  done.add(ready[0]);
}
process.stdout.write(order.map((n) => `${n}\n`).join(""));
