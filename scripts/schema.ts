/**
 * npm run schema [-- --check]
 *
 * Writes fleet.schema.json, the inventory's JSON Schema, from constructs/inventory-schema.ts
 * (the one definition the types and the validator come from). fleet.json names it in
 * "$schema", so editors (VS Code and any JSON Schema aware editor) complete and check the file.
 * --check: exit 1 when the file is not current (the tests run this).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { jsonSchema } from "../constructs/inventory-schema";

const file = join(resolve(__dirname, ".."), "fleet.schema.json");
const text = `${JSON.stringify(jsonSchema(), null, 2)}\n`;
if (process.argv.includes("--check")) {
  let current = "";
  try {
    current = readFileSync(file, "utf8");
  } catch {
    /* missing */
  }
  if (current !== text) {
    process.stderr.write("schema: fleet.schema.json is not current; run npm run schema and commit it\n");
    process.exit(1);
  }
  process.stdout.write("schema: fleet.schema.json is current\n");
} else {
  writeFileSync(file, text);
  process.stdout.write(`schema: wrote ${file}\n`);
}
