/**
 * The API documentation: TypeDoc builds it from the doc comments without errors, and its first
 * page's example (docs/api-intro.md) type-checks against the package's public entry.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./helpers";

describe("API documentation", () => {
  it("TypeDoc reads every doc comment of the public API without errors", () => {
    const r = spawnSync(process.execPath, [join(ROOT, "node_modules", "typedoc", "bin", "typedoc"), "--emit", "none"], { cwd: ROOT, encoding: "utf8" });
    expect(r.stdout + r.stderr).toMatch(/Found 0 errors/);
    expect(r.status).toBe(0);
  });

  it("the example on its first page compiles against the package entry", () => {
    const intro = readFileSync(join(ROOT, "docs", "api-intro.md"), "utf8");
    const example = /```ts\n([\s\S]*?)```/.exec(intro)![1];
    expect(example).toContain('from "proxmox-nixos-fleet"');
    // inside the project (for cdktf's types), importing the entry the package's main is built from
    mkdirSync(join(ROOT, ".scratch"), { recursive: true });
    const dir = mkdtempSync(join(ROOT, ".scratch", "api-example-"));
    writeFileSync(join(dir, "example.ts"), example.replace('from "proxmox-nixos-fleet"', `from ${JSON.stringify(join(ROOT, "index"))}`));
    const r = spawnSync(process.execPath, [join(ROOT, "node_modules", "typescript", "bin", "tsc"), "--noEmit", "--strict", "--esModuleInterop", "--resolveJsonModule", "--skipLibCheck", "--target", "es2022", "--module", "commonjs", "--types", "node", join(dir, "example.ts")], { cwd: ROOT, encoding: "utf8" });
    expect(r.stdout + r.stderr).toBe("");
  });
});
