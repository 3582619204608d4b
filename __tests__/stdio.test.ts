/**
 * Output of the command-line tools on a pipe (#29 item 8): Node writes stdout to a pipe
 * asynchronously on Linux, so what is still queued when a tool calls process.exit() is lost (the
 * kernel holds 64 KiB); scripts/lib/stdio.ts makes stdout and stderr blocking, and every tool
 * that exits with process.exit() calls it first.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { printable } from "../scripts/lib/stdio";
import { ROOT } from "./helpers";

// 1 MB written in one call, then exit at once; the reader starts a second later
const writer = (blocking: boolean) => `${blocking ? `require(${JSON.stringify(join(ROOT, "scripts", "lib", "stdio.ts"))}).blockingStdio();` : ""} process.stdout.write("x".repeat(1e6)); process.exit(0);`;
const throughPipe = (blocking: boolean) => spawnSync("bash", ["-c", `node --import tsx -e '${writer(blocking)}' | { sleep 1; wc -c; }`], { cwd: ROOT, encoding: "utf8" }).stdout.trim();

describe("output on a pipe", () => {
  it("reaches a slow reader whole when the tool exits right after writing (and is cut to the pipe's 64 KiB without blockingStdio)", () => {
    expect(throughPipe(true)).toBe("1000000");
    expect(Number(throughPipe(false))).toBeLessThan(1e6);
  });

  it("every tool that ends with process.exit() makes its output blocking first", () => {
    for (const f of ["main.ts", "scripts/deploy.ts", "scripts/discover.ts", "scripts/import-vm.ts", "scripts/secrets.ts", "scripts/bootstrap-template.ts"]) {
      const src = readFileSync(join(ROOT, f), "utf8");
      expect({ f, exits: /process\.exit\(/.test(src), blocking: /^blockingStdio\(\);$/m.test(src) }).toEqual({ f, exits: true, blocking: true });
    }
  });

  it("shows control characters and bidi overrides as escapes, keeps newlines", () => {
    expect(printable("a\u001b]0;t\u0007b\u0000c\u202ed\ne\tf")).toBe("a\\x1b]0;t\\x07b\\x00c\\u202ed\ne\tf");
  });
});
