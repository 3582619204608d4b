/**
 * Applies one host's NixOS configuration: find the address, wait for SSH, pin the host key,
 * `nixos-rebuild switch --target-host`, follow an address change, health-check, and roll back
 * on failure. Used by the deploy steps (terraform_data local-exec) and by `npm run deploy`.
 */
import { $ } from "zx";
import { connect } from "node:net";
import { spawnSync } from "node:child_process";
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { dirname, isAbsolute, join, resolve } from "node:path";
import type { DeploySpecDocument } from "../../constructs/deploy-step";
import { ROLES } from "../../constructs/roles";
import { HOST_SECRET_RUN, secretSpecArg, SecretEnvFile } from "../../constructs/secrets";
import { encryptedTo, lockedStore, operatorIdentity, reencrypt } from "./secrets-store";
import { withDirLock } from "./dir-lock";
import { fleetFilePath, loadInventory } from "../../constructs/inventory";

export type DeploySpec = DeploySpecDocument;

import { DeployError, EXIT } from "./deploy-errors";
import { rebootForPending } from "./pending-reboot";
import { clusterState } from "./quorum";
export { DeployError, EXIT };

export interface DeployOptions {
  /** Project root: flake references and the pin files are relative to it. */
  readonly root: string;
  /** Pinned host keys, OpenSSH known_hosts format with the fleet host name as alias. */
  readonly knownHostsFile: string;
  /** SSH private key file; when unset, ssh uses ssh-agent (SSH_AUTH_SOCK). Never read here. */
  readonly identityFile?: string;
  /** Print what would run, run nothing. */
  readonly dryRun?: boolean;
  /** Roll the host back to its previous generation instead of deploying. */
  readonly rollback?: boolean;
  /** Flag that makes nixos-rebuild use sudo on the target. @default detected: "--sudo" (nixos-rebuild-ng), else "--use-remote-sudo" */
  readonly sudoFlag?: string;
  /** Run by a Terraform deploy step (a failure taints it) rather than by hand. @default false */
  readonly fromTerraform?: boolean;
  /** Refuse hosts whose key is not pinned yet, instead of pinning on first contact (CI). @default false */
  readonly requirePinned?: boolean;
  /** The secrets store (secrets/<name>.age). @default <root>/secrets */
  readonly secretsDir?: string;
  /** Where output goes (a line at a time). @default stdout */
  readonly write?: (line: string) => void;
}

export interface HostResult {
  readonly host: string;
  readonly ok: boolean;
  readonly seconds: number;
  readonly address?: string;
  readonly message?: string;
  readonly exitCode: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A directory for sockets: /tmp where it is writable, else the system's temporary directory. */
export function shortTmp(): string {
  try {
    accessSync("/tmp", constants.W_OK);
    return "/tmp";
  } catch {
    return tmpdir();
  }
}

/** True when a TCP connection to host:port opens within timeoutMs. */
export function tcpOpen(host: string, port: number, timeoutMs = 3000): Promise<boolean> {
  return new Promise((done) => {
    const s = connect({ host, port });
    const finish = (ok: boolean) => {
      s.destroy();
      done(ok);
    };
    s.setTimeout(timeoutMs, () => finish(false));
    s.once("connect", () => finish(true));
    s.once("error", () => finish(false));
  });
}

/** Retries `attempt` with exponential backoff (1 s doubling, at most 10 s) until it returns a value or the deadline passes. */
export async function untilDeadline<T>(seconds: number, attempt: () => Promise<T | undefined>): Promise<T | undefined> {
  const deadline = Date.now() + seconds * 1000;
  for (let wait = 1000; ; wait = Math.min(wait * 2, 10000)) {
    const r = await attempt();
    if (r !== undefined) return r;
    const left = deadline - Date.now();
    if (left <= 0) return undefined;
    await sleep(Math.min(wait, left));
  }
}

// ------------------------------------------------------------------ host-key pinning

export interface Pin {
  readonly key: string;
  readonly vmid: number;
}

/** The pins: known_hosts lines "<host> <type> <key>" with a "# vmid <host> <n>" line before each. */
export function readPins(file: string): Map<string, Pin> {
  const pins = new Map<string, Pin>();
  if (!existsSync(file)) return pins;
  const vmids = new Map<string, number>();
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const m = /^# vmid (\S+) (\d+)$/.exec(line);
    if (m) vmids.set(m[1], Number(m[2]));
    else if (line.trim() && !line.startsWith("#")) {
      const [host, type, key] = line.trim().split(/\s+/);
      pins.set(host, { key: `${type} ${key}`, vmid: vmids.get(host) ?? -1 });
    }
  }
  return pins;
}

/** Writes the pins (the format readPins reads), written beside and renamed. */
export function writePins(file: string, pins: Map<string, Pin>) {
  const body = [...pins.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([host, p]) => `# vmid ${host} ${p.vmid}\n${host} ${p.key}\n`)
    .join("");
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, `# Host keys pinned by scripts/deploy.ts (first contact records, a change is refused).\n${body}`);
  renameSync(tmp, file);
}

/** Runs `fn` holding a lock directory beside `file`; deploy steps run as parallel processes. */
function withLock<T>(file: string, fn: () => T): Promise<T> {
  const lock = `${file}.lock`;
  mkdirSync(dirname(file), { recursive: true });
  return withDirLock(lock, 300, () => new DeployError(`cannot lock ${lock}`, EXIT.failed, `remove ${lock} if no deploy is running`), fn);
}

// ------------------------------------------------------------------ ssh and nixos-rebuild

/** POSIX shell quoting that Python's shlex.split (nixos-rebuild-ng's NIX_SSHOPTS parser) undoes. */
export function shellQuote(args: readonly string[]): string {
  return args.map((a) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'"'"'`)}'`)).join(" ");
}

/** [user@]host[:port] of a build host. */
export function parseBuildHost(v: string): { user?: string; host: string; port?: number } {
  const m = /^(?:([^@\s]+)@)?([^:\s@]+)(?::(\d+))?$/.exec(v);
  if (!m) throw new DeployError(`build host "${v}" is not [user@]host[:port]`, EXIT.usage, "fix deploy.buildHost in the inventory or --build-host");
  return { user: m[1], host: m[2], port: m[3] ? Number(m[3]) : undefined };
}

/**
 * nixos-rebuild's flags, fixed (issue #26 item 11): nixos-rebuild-ng (the only one in NixOS
 * 26.05) has `--sudo` and `--no-reexec`; its `--help` runs `man`, and a re-exec'd nixos-rebuild
 * (the flake's own) would parse the arguments anyway, so asking the local one proves nothing.
 * `--no-reexec`: the rollback must work when the flake does not, and a switch should not build a
 * second nixos-rebuild first. FLEET_REMOTE_SUDO_FLAG still overrides the sudo flag.
 */
const REBUILD_FLAGS = { sudo: "--sudo", noReexec: ["--no-reexec"] } as const;

/** What the target runs: the profile's generation and store path, and /run/current-system. */
interface HostState {
  readonly generation: string;
  readonly number: number;
  readonly profilePath: string;
  readonly current: string;
}

// ------------------------------------------------------------------ one host

export async function deployHost(spec: DeploySpec, opts: DeployOptions): Promise<HostResult> {
  const started = Date.now();
  const write = opts.write ?? ((l: string) => process.stdout.write(`${l}\n`));
  const say = (msg: string) => write(`[${spec.host}] ${msg}`);
  const secs = (t: number) => `${((Date.now() - t) / 1000).toFixed(1)}s`;
  async function phase<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const t = Date.now();
    say(`${name} ...`);
    try {
      const r = await fn();
      say(`${name} done (${secs(t)})`);
      return r;
    } catch (e) {
      say(`${name} failed (${secs(t)})`);
      throw e;
    }
  }

  const port = spec.sshPort ?? 22;
  const candidates = [...new Set([spec.agentAddress, spec.finalAddress, spec.fqdn].filter((a): a is string => !!a))];
  let build: { user?: string; host: string; port?: number } | undefined;
  try {
    build = spec.buildHost ? parseBuildHost(spec.buildHost) : undefined;
  } catch (e) {
    say(`FAILED: ${(e as Error).message}`);
    return { host: spec.host, ok: false, seconds: 0, exitCode: EXIT.usage, message: (e as Error).message };
  }

  // One ssh_config for this deploy: a block per address of the target and one for the build
  // host, each with its own pinned key (HostKeyAlias) and keepalives, then the user's own
  // config. nixos-rebuild uses NIX_SSHOPTS for the target and the build host alike, so options
  // that differ per host can only live here. Nothing secret is in it.
  const alias = (addr: string) => `fleet--${spec.host}--${addr}`;
  const buildAlias = build ? `fleet-build--${build.host}` : undefined;
  // Under /tmp, not os.tmpdir(): the control socket's path must stay under the 104 bytes macOS
  // allows a Unix socket (108 on Linux), and macOS's $TMPDIR alone is ~50 (issue #26 item 10).
  const sshDir = mkdtempSync(join(shortTmp(), "fleet-ssh-"));
  const common = (knownAlias: string) => [
    `  HostKeyAlias ${knownAlias}`,
    `  UserKnownHostsFile "${opts.knownHostsFile}"`,
    "  GlobalKnownHostsFile /dev/null",
    "  StrictHostKeyChecking yes",
    "  BatchMode yes",
    "  ConnectTimeout 10",
    // a peer that vanished (a host that moved) is noticed in ~30 s, not at the switch timeout
    "  ServerAliveInterval 10",
    "  ServerAliveCountMax 3",
    // one connection per host for all of this deploy's SSH calls, as nixos-rebuild-ng does
    // (process.py SSH_DEFAULT_OPTS: ControlMaster=auto, ControlPersist=60)
    "  ControlMaster auto",
    `  ControlPath "${join(sshDir, "cm-%C")}"`,
    "  ControlPersist 60",
    ...(opts.identityFile ? [`  IdentityFile "${opts.identityFile}"`, "  IdentitiesOnly yes"] : []),
  ];
  const sshConfigText = [
    "# Generated by scripts/lib/deploy-host.ts for one deploy; pinned host keys only.",
    ...candidates.flatMap((a) => [`Host ${alias(a)}`, `  HostName ${a}`, `  Port ${port}`, ...common(spec.host)]),
    ...(build ? [`Host ${buildAlias}`, `  HostName ${build.host}`, `  Port ${build.port ?? 22}`, ...common(`build-host:${build.host}`)] : []),
    ...(existsSync(join(homedir(), ".ssh", "config")) ? ["Host *", `  Include "${join(homedir(), ".ssh", "config")}"`] : []),
    "",
  ].join("\n");
  const sshConfig = join(sshDir, "config");
  writeFileSync(sshConfig, sshConfigText, { mode: 0o600 });
  const cleanup = () => {
    // close the shared connections (nixos-rebuild-ng's cleanup_ssh does the same), then forget them
    for (const f of readdirSync(sshDir).filter((n) => n.startsWith("cm-")))
      spawnSync("ssh", ["-o", `ControlPath=${join(sshDir, f)}`, "-O", "exit", "fleet-control"], { stdio: "ignore", timeout: 5000 });
    rmSync(sshDir, { recursive: true, force: true });
  };
  // Ours first (ssh takes the first value of an option), then the user's own NIX_SSHOPTS.
  const userSshOpts = process.env.NIX_SSHOPTS?.trim();
  const nixSshOpts = [shellQuote(["-F", sshConfig]), userSshOpts].filter(Boolean).join(" ");

  const detected = REBUILD_FLAGS;
  const sudoFlag = opts.sudoFlag ?? detected.sudo;
  const flakeRef = `${isAbsolute(spec.flake) || /^[a-z+]+:/.test(spec.flake) ? spec.flake : resolve(opts.root, spec.flake)}#${spec.host}`;
  // The flake reads FLEET_FILE with --impure and needs it absolute (relative to the project root, as everywhere else).
  // nixos-rebuild-ng's own switches from the operator's shell (NIXOS_REBUILD_NO_SYSTEMD_RUN would
  // activate inside the SSH session, NIXOS_REBUILD_SSH_DEFAULT_OPTS replace the SSH options this
  // deploy relies on) do not reach it (issue #26 item 13).
  const operatorEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("NIXOS_REBUILD_")));
  const rebuildEnv = { ...operatorEnv, NIX_SSHOPTS: nixSshOpts, ...(process.env.FLEET_FILE ? { FLEET_FILE: resolve(opts.root, process.env.FLEET_FILE) } : {}) };
  const impure = process.env.FLEET_FILE ? ["--impure"] : [];
  // The inventory's binary caches (a CUDA cache for vLLM hosts) for the machine that builds. Nix
  // uses extra substituters only for trusted users (nix.conf trusted-users) or caches it already trusts.
  const caches = spec.substituters?.length
    ? ["--option", "extra-substituters", spec.substituters.join(" "), "--option", "extra-trusted-public-keys", (spec.trustedPublicKeys ?? []).join(" ")]
    : [];
  const target = (addr: string) => `${spec.user}@${alias(addr)}`;
  const rebuildArgs = (addr: string, extra: string[] = []) => [
    "switch", ...extra, "--flake", flakeRef, "--target-host", target(addr), sudoFlag,
    ...(build ? ["--build-host", `${build.user ? `${build.user}@` : ""}${buildAlias}`] : []), ...impure, ...caches,
    ...(extra.includes("--rollback") ? [] : detected.noReexec),
  ];

  /** `cmd` on the target; `input` goes to its stdin (file contents never go into an argument list). */
  const ssh = (addr: string, cmd: string, timeout: `${number}s` = "60s", input?: string | Buffer) => $({ nothrow: true, quiet: true, timeout, input })`ssh -F ${sshConfig} ${target(addr)} -- ${cmd}`;
  const P = '"${FLEET_SYSTEM_PROFILE:-/nix/var/nix/profiles/system}"';
  const stateOf = async (addr: string): Promise<HostState | undefined> => {
    const r = await ssh(addr, `readlink ${P}; readlink -f ${P}; readlink -f "\${FLEET_CURRENT_SYSTEM:-/run/current-system}"`);
    const [generation, profilePath, current] = r.stdout.trim().split("\n");
    const n = /-(\d+)-link$/.exec(generation ?? "");
    return r.exitCode === 0 && n ? { generation, number: Number(n[1]), profilePath, current: current ?? "" } : undefined;
  };

  async function rebuild(addr: string, extra: string[] = []) {
    const p = $({ nothrow: true, quiet: true, env: rebuildEnv, cwd: opts.root, timeout: `${spec.timeouts.switchSeconds}s` })`nixos-rebuild ${rebuildArgs(addr, extra)}`;
    const relay = (chunk: Buffer) => chunk.toString().split("\n").filter(Boolean).forEach((l) => say(`  | ${l}`));
    p.stdout.on("data", relay);
    p.stderr.on("data", relay);
    return p;
  }

  /**
   * Back to the generation recorded before the switch: set the profile to it and activate it,
   * as nixos-rebuild-ng activates (detached with systemd-run where the host has systemd). Never
   * `nix-env --rollback`, which picks the highest generation below the current one: after a
   * failed N+1, a rollback to N and a failed N+2 that is N+1, a known-bad generation
   * (NixOS/nix src/libstore/profiles.cc; nix-env --rollback).
   */
  async function rollbackTo(addr: string, to: HostState) {
    const stc = `${P}/bin/switch-to-configuration`;
    const detach = "systemd-run -E LOCALE_ARCHIVE -E NIXOS_INSTALL_BOOTLOADER -E NIXOS_NO_CHECK --collect --no-ask-password --pipe --quiet --service-type=exec --unit=fleet-rollback-switch-to-configuration";
    const cmd = `sudo nix-env -p ${P} --switch-generation ${to.number} && if [ -d "\${FLEET_RUN_DIR:-/run}/systemd/system" ]; then sudo ${detach} ${stc} switch; else sudo ${stc} switch; fi`;
    const r = await ssh(addr, cmd, `${spec.timeouts.switchSeconds}s`);
    r.stderr.split("\n").filter(Boolean).forEach((l: string) => say(`  | ${l}`));
    const now = await stateOf(addr);
    return { ok: r.exitCode === 0 && now?.current === to.current, now, exitCode: r.exitCode };
  }

  /** The first address in `addrs` where SSH answers and the host state can be read, within `seconds`. */
  // Find the host again at the address it had, or at its static address if it moved there.
  const reach = (from: string, seconds: number) =>
    untilDeadline(seconds, async () => {
      for (const a of spec.finalAddress && spec.finalAddress !== from ? [from, spec.finalAddress] : [from]) if (await tcpOpen(a, port)) {
        const st = await stateOf(a);
        if (st) return { addr: a, state: st };
      }
      return undefined;
    });

  if (opts.dryRun) {
    say(`would wait for SSH on ${candidates.join(" or ")} port ${port} (up to ${spec.timeouts.sshSeconds}s)`);
    say(`would pin the host key in ${opts.knownHostsFile}: ssh-keyscan -p ${port} -t ed25519 <address>`);
    if (build) say(`would pin the build host's key as build-host:${build.host}`);
    if (spec.managedVm && !opts.rollback) say("would reboot the VM through the Proxmox API if the apply left changes pending there (after the host and its cluster are seen healthy)");
    if (spec.secrets?.length && !opts.rollback) say(`would put the secrets of ${spec.secrets.map((f) => f.file).join(", ")} in place (encrypted to the pinned host key, decrypted on the host into ${HOST_SECRET_RUN})`);
    say(`would run: NIX_SSHOPTS=${JSON.stringify(nixSshOpts)} nixos-rebuild ${(opts.rollback ? rebuildArgs("<address>", ["--rollback", ...detected.noReexec]) : rebuildArgs("<address>")).join(" ")}`);
    if (!opts.rollback) {
      if (spec.finalAddress) say(`would follow the host to ${spec.finalAddress} if it moves`);
      say(`would check: ${spec.units?.length ? `units ${spec.units.join(", ")} active; ` : ""}${spec.health.map((h) => (h.kind === "http" ? `GET :${h.port}${h.path}` : `TCP :${h.port}`)).join("; ") || "no service ports"}${(spec.quorum ?? []).map((q) => `; ${q.role} cluster: all ${q.expected} members healthy (GET :${q.port}${q.path})`).join("")}; stable for ${spec.timeouts.healthStableSeconds ?? 10}s`);
      say("would roll back to the generation it ran before if the switch or a check fails");
    }
    cleanup();
    return { host: spec.host, ok: true, seconds: 0, exitCode: EXIT.ok, message: "dry run" };
  }

  // Before touching the host: the tools this needs must be on PATH.
  for (const tool of ["ssh", "ssh-keyscan", "nixos-rebuild"]) {
    const found = await $({ nothrow: true, quiet: true })`command -v ${tool}`;
    if (found.exitCode !== 0) {
      const hint = tool === "nixos-rebuild" ? "install Nix, then `nix profile install nixpkgs#nixos-rebuild` (or run from a NixOS machine)" : "install the OpenSSH client";
      say(`FAILED: ${tool} is not on PATH; ${hint}`);
      cleanup();
      return { host: spec.host, ok: false, seconds: 0, exitCode: EXIT.usage, message: `${tool} is not on PATH` };
    }
  }

  let address: string | undefined;
  let switched = false;
  let before: HostState | undefined;
  try {
    if (candidates.length === 0)
      throw new DeployError("no address known (no static address, no agent address, no DNS name)", EXIT.usage, "give the host a static address or pass --address");

    address = await phase("wait for ssh", async () => {
      // A line every 30 s while waiting: what it waits for and for how long, so a fleet that is
      // not reachable is visible long before the deadline.
      const t0 = Date.now();
      let told = t0;
      const a = await untilDeadline(spec.timeouts.sshSeconds, async () => {
        for (const c of candidates) if (await tcpOpen(c, port)) return c;
        if (Date.now() - told >= 30_000) {
          told = Date.now();
          say(`still waiting for SSH on ${candidates.join(" or ")} port ${port} (${Math.round((told - t0) / 1000)}s of ${spec.timeouts.sshSeconds}s)`);
        }
        return undefined;
      });
      if (!a)
        throw new DeployError(
          `SSH did not answer on ${candidates.join(", ")} port ${port} within ${spec.timeouts.sshSeconds}s`,
          EXIT.unreachable,
          `check that VM ${spec.vmid} on ${spec.node} runs and its guest agent reports an address (qm agent ${spec.vmid} network-get-interfaces), then run: npm run deploy -- ${spec.host}`,
        );
      say(`reachable at ${a}`);
      return a;
    });

    await phase("pin host key", () => pinHostKey(spec, address!, port, opts.knownHostsFile, say, opts.requirePinned));
    if (build) await phase(`pin build host key (${build.host})`, () => pinBuildHostKey(build!, opts.knownHostsFile, say, opts.requirePinned));

    if (opts.rollback) {
      await phase("roll back", async () => {
        // nixos-rebuild --rollback without re-exec: re-exec would build nixos-rebuild from the
        // flake first, and a rollback must work when the flake or the network does not.
        const r = await rebuild(address!, ["--rollback", ...detected.noReexec]);
        if (r.exitCode !== 0) throw new DeployError(`nixos-rebuild --rollback exited ${r.exitCode}`, EXIT.rollbackFailed, "log in with ssh and run: sudo nixos-rebuild switch --rollback --no-reexec");
        say(`now at ${(await stateOf(address!))?.generation ?? "unknown generation"}`);
      });
      return { host: spec.host, ok: true, seconds: (Date.now() - started) / 1000, address, exitCode: EXIT.ok, message: "rolled back" };
    }

    // Before this member is touched: its cluster must be whole, as all members see it (issue #26
    // item 8). Taking a member down while another is down loses the quorum. Nothing answering
    // at all is a cluster not made yet.
    for (const q of spec.quorum ?? []) {
      const st = await clusterState(q, address);
      if (st.none) say(`${q.role}: no member answers yet: a new cluster, members join one at a time`);
      else if (!st.ok) throw new DeployError(`not touching ${spec.host}: ${st.text}`, EXIT.failed, `bring the ${q.role} cluster back to health first (every member answering GET :${q.port}${q.path}), then deploy again`);
      else say(`before: ${st.text}`);
    }
    // A change the apply left pending in Proxmox (the VMs never reboot on an apply): reboot here,
    // in the deploy order, after the cluster is seen whole (docs/adr-0019-provider-hands-off.md).
    if (spec.managedVm) {
      const rebooted = await phase("pending Proxmox changes", () => rebootForPending(spec, say, () => healthCheck(spec, address!, ssh, say)));
      if (rebooted) {
        const back = await reach(address, spec.timeouts.sshSeconds);
        if (!back) throw new DeployError(`VM ${spec.vmid} was rebooted and SSH did not answer again within ${spec.timeouts.sshSeconds}s`, EXIT.unreachable, `check the VM's console in Proxmox (qm status ${spec.vmid}), then deploy again`);
        address = back.addr;
        say(`back after the reboot at ${address}`);
      }
    }
    const login = await ssh(address, "true");
    if (login.exitCode !== 0)
      throw new DeployError(`SSH login as ${spec.user} at ${address} failed: ${login.stderr.trim().split("\n").pop()}`, EXIT.unreachable, `deploy.user must be an admin user of the inventory whose key is in ssh-agent or FLEET_SSH_KEY_FILE`);
    // Secrets before the switch, so the services find them when they start; a missing one stops here.
    const changedSecrets = spec.secrets?.length ? await phase("secrets", () => deliverSecrets(spec, opts, address!, (addr, cmd, input) => ssh(addr, cmd, "120s", input), say)) : [];
    before = await stateOf(address);
    if (!before) say("could not read the current generation: if this deploy fails, it will not be rolled back");
    await phase(`nixos-rebuild switch ${spec.host}`, async () => {
      const r = await rebuild(address!);
      switched = true;
      if (r.exitCode === 0) return;
      if (r.exitCode === 255) {
        // ssh lost the connection (a host that moves to its static address, a network blip).
        // nixos-rebuild-ng set the profile before activating and runs switch-to-configuration
        // detached with systemd-run, so activation may still run or have finished: find out.
        say("the SSH connection dropped during the switch; reconnecting to see where the host is");
        const found = await reach(address!, Math.max(30, Math.min(spec.timeouts.sshSeconds, 300)));
        if (!found) throw new DeployError("the connection dropped during the switch and the host did not answer again", EXIT.unreachable, `check VM ${spec.vmid} on ${spec.node} (qm status ${spec.vmid}); the console shows whether it activated`);
        address = found.addr;
        const waited = await untilDeadline(spec.timeouts.switchSeconds, async () => ((await ssh(address!, "systemctl is-active nixos-rebuild-switch-to-configuration")).stdout.trim() === "active" ? undefined : true));
        if (!waited) throw new DeployError(`activation still runs after ${spec.timeouts.switchSeconds}s`, EXIT.failed, "see `journalctl -u nixos-rebuild-switch-to-configuration` on the host");
        const now = await stateOf(address!);
        if (!now || now.current !== now.profilePath || (before && now.profilePath === before.profilePath))
          throw new DeployError(`the connection dropped and the host does not run the new generation (it runs ${now?.current ?? "unknown"})`, EXIT.failed, "see `journalctl -u nixos-rebuild-switch-to-configuration` on the host");
        // switch-to-configuration-ng logs how the switch ended ("finished switching to system
        // configuration <path>" or "... <path> failed (status N)"; main.rs, do_system_switch).
        const journal = await ssh(address!, "sudo journalctl -u nixos-rebuild-switch-to-configuration -o cat -n 200");
        const lines = journal.stdout.split("\n").filter((l) => l.includes(now.profilePath.split("/").pop()!));
        const last = lines.reverse().find((l) => /finished switching|failed \(status \d+\)/.test(l));
        const status = last ? (/failed \(status (\d+)\)/.exec(last)?.[1] ?? "0") : undefined;
        if (status === "0") return say(`activation finished while disconnected: ${now.generation} runs at ${address}`);
        if (status !== undefined) throw new DeployError(`the connection dropped and the activation failed (switch-to-configuration exited ${status})`, EXIT.failed, `see \`journalctl -u nixos-rebuild-switch-to-configuration\` on ${spec.host}`);
        return say(`activation ended while disconnected, its result was not logged: ${now.generation} runs at ${address}; the health check decides`);
      }
      // switch-to-configuration-ng (nixpkgs pkgs/by-name/sw/switch-to-configuration-ng):
      // 2 = the activation script failed, 4 = units failed to start or restart. One policy for
      // failed units (docs/adr-0011, issue #26 item 6): the host's role units decide. Exit 4 with
      // every role unit active is a success with a warning naming the others (a flaky nix-gc must
      // not roll back every deploy); the health gate then checks the roles as always.
      if (r.exitCode === 4) {
        const roleUnits = spec.units ?? [];
        const states = roleUnits.length ? (await ssh(address!, `systemctl is-active ${roleUnits.map((u) => `'${u}'`).join(" ")}`)).stdout.trim().split("\n") : [];
        const down = roleUnits.filter((_, i) => states[i]?.trim() !== "active");
        if (!down.length) {
          const failed = (await ssh(address!, "systemctl list-units --state=failed --plain --no-legend")).stdout.split("\n").map((l) => l.trim().split(/\s+/)[0]).filter(Boolean);
          say(`warning: switch-to-configuration exited 4 (units failed to start: ${failed.join(", ") || "see journalctl -b"}); none of them is a unit of this host's roles, so the switch stands`);
          return;
        }
      }
      const meaning = r.exitCode === 2 ? "the activation script failed" : r.exitCode === 4 ? "units failed to start" : "";
      throw new DeployError(`nixos-rebuild switch exited ${r.exitCode}${meaning ? ` (${meaning})` : ""}`, EXIT.failed, meaning ? `see \`journalctl -b\` on ${spec.host}; fix and deploy again` : "read the build output above; fix the configuration and deploy again");
    });

    if (spec.finalAddress && spec.finalAddress !== address) {
      const from = address;
      address = await phase(`follow address ${from} -> ${spec.finalAddress}`, async () => {
        const a = await untilDeadline(spec.timeouts.sshSeconds, async () => ((await tcpOpen(spec.finalAddress!, port)) ? spec.finalAddress : undefined));
        if (!a) throw new DeployError(`the host did not come up at ${spec.finalAddress}`, EXIT.unreachable, `check the static address in the inventory; the previous address was ${from}`);
        const r = await ssh(a, "true");
        if (r.exitCode !== 0) throw new DeployError(`SSH at ${a} refused the pinned key or login: ${r.stderr.trim()}`, EXIT.hostKey, "a different machine may hold that address");
        say(`address moved ${from} -> ${a}`);
        return a;
      });
    }

    if (changedSecrets.length) {
      // a changed value reaches a running service only when it restarts (the switch restarts
      // only units whose definition changed)
      const units = changedSecrets.flatMap((f) => ROLES[f.role].units);
      await phase(`restart ${units.join(", ")} (secrets changed)`, async () => {
        const r = await ssh(address!, `sudo systemctl try-restart ${units.map((u) => `'${u}'`).join(" ")}`, `${spec.timeouts.switchSeconds}s`);
        if (r.exitCode !== 0) throw new DeployError(`systemctl try-restart exited ${r.exitCode}: ${r.stderr.trim()}`, EXIT.failed, `see \`journalctl -u ${units[0]}\` on ${spec.host}`);
      });
    }
    await phase("health check", () => healthCheck(spec, address!, ssh, say));
    const now = await stateOf(address);
    say(`deployed ${now?.generation ?? ""} in ${secs(started)}`.replace("  ", " "));
    return { host: spec.host, ok: true, seconds: (Date.now() - started) / 1000, address, exitCode: EXIT.ok };
  } catch (e) {
    const err = e instanceof DeployError ? e : new DeployError(String((e as Error)?.message ?? e), EXIT.failed, "see the output above");
    let exitCode = err.exitCode;
    let message = `${err.message}`;
    if (switched && address) {
      // Where is the host now? Retry for a while: it may be moving to its static address.
      const found = await reach(address, 30);
      const now = found?.state;
      if (found) address = found.addr;
      if (!before) message += "; the generation it ran before is unknown, so it was not rolled back (check it by hand)";
      else if (!now) message += `; the host cannot be reached to roll it back (it ran ${before.generation} before)`;
      else if (now.current === before.current && now.generation === before.generation) message += `; the host still runs its previous generation ${before.generation}`;
      else {
        say(`rolling back to ${before.generation} (the generation it ran before)`);
        const r = await rollbackTo(address, before);
        if (r.ok) {
          message += `; rolled back to ${before.generation}`;
          if (exitCode === EXIT.unreachable) exitCode = EXIT.failed;
          // The failed generation goes, as deploy-rs deletes it: a later `--rollback` (the
          // highest generation below the current one, Nix profiles.cc) must never land on it
          // (issue #26 item 5). Nix numbers the next one after the highest that remains.
          if (now.number !== before.number) {
            const del = await ssh(address, `sudo nix-env -p ${P} --delete-generations ${now.number}`);
            message += del.exitCode === 0 ? `; the failed generation ${now.number} was deleted` : `; the failed generation ${now.number} could not be deleted (${del.stderr.trim().split("\n").pop()})`;
          }
        } else {
          message += `; the rollback to ${before.generation} failed too (exit ${r.exitCode}; the host runs ${r.now?.current ?? "unknown"})`;
          exitCode = EXIT.rollbackFailed;
        }
      }
    }
    say(`FAILED: ${message}`);
    say(`next: ${err.hint}; ${opts.fromTerraform ? "Terraform marks the step tainted, so the next `cdktf deploy` retries it" : `retry with \`npm run deploy -- ${spec.host}\``}`);
    return { host: spec.host, ok: false, seconds: (Date.now() - started) / 1000, address, exitCode, message };
  } finally {
    cleanup();
  }
}

/** The build host's key, pinned on first contact like a target's (alias build-host:<name>); a change is refused. */
async function pinBuildHostKey(build: { host: string; port?: number }, file: string, say: (m: string) => void, requirePinned = false) {
  const port = build.port ?? 22;
  const scan = await $({ nothrow: true, quiet: true, timeout: "30s" })`ssh-keyscan -T 10 -p ${port} -t ed25519 ${build.host}`;
  const line = scan.stdout.split("\n").find((l) => l.trim() && !l.startsWith("#"));
  if (!line) throw new DeployError(`ssh-keyscan got no ed25519 host key from build host ${build.host}:${port}`, EXIT.unreachable, "check that the build host runs sshd and is reachable");
  const [, type, key] = line.trim().split(/\s+/);
  const name = `build-host:${build.host}`;
  await withLock(file, () => {
    const pins = readPins(file);
    const pin = pins.get(name);
    if (!pin && requirePinned) throw notPinned(name, file);
    if (!pin) {
      pins.set(name, { key: `${type} ${key}`, vmid: 0 });
      writePins(file, pins);
      say(`first contact: pinned the build host's ${type} key in ${file}`);
    } else if (pin.key !== `${type} ${key}`)
      throw new DeployError(`host key of build host ${build.host} changed; refusing to build there`, EXIT.hostKey, `if it was reinstalled on purpose, delete the lines for ${name} from ${file}`);
  });
}

/** A deploy that may only reach pinned hosts (FLEET_REQUIRE_PINNED=1, as CI sets it) met an unpinned one. */
const notPinned = (name: string, file: string) =>
  new DeployError(`no pinned host key for ${name} in ${file}, and only pinned hosts are deployed to here`, EXIT.hostKey, `deploy ${name} once from a trusted machine (it pins the key) and commit ${file}`);

async function pinHostKey(spec: DeploySpec, address: string, port: number, file: string, say: (m: string) => void, requirePinned = false) {
  const scan = await $({ nothrow: true, quiet: true, timeout: "30s" })`ssh-keyscan -T 10 -p ${port} -t ed25519 ${address}`;
  const line = scan.stdout.split("\n").find((l) => l.trim() && !l.startsWith("#"));
  if (!line) throw new DeployError(`ssh-keyscan got no ed25519 host key from ${address}:${port}`, EXIT.unreachable, "check that sshd runs on the host");
  const [, type, key] = line.trim().split(/\s+/);
  const scanned = `${type} ${key}`;
  await withLock(file, () => {
    const pins = readPins(file);
    const pin = pins.get(spec.host);
    if (!pin && requirePinned) throw notPinned(spec.host, file);
    if (!pin) {
      pins.set(spec.host, { key: scanned, vmid: spec.vmid });
      writePins(file, pins);
      say(`first contact: pinned ${type} key in ${file}`);
    } else if (pin.key === scanned) {
      if (pin.vmid !== spec.vmid) {
        pins.set(spec.host, { key: scanned, vmid: spec.vmid });
        writePins(file, pins);
      }
      say("host key matches the pinned key");
    } else if (pin.vmid !== spec.vmid) {
      pins.set(spec.host, { key: scanned, vmid: spec.vmid });
      writePins(file, pins);
      say(`VM was recreated (vmid ${pin.vmid} -> ${spec.vmid}): replaced the pinned host key`);
    } else {
      throw new DeployError(
        `host key of ${spec.host} at ${address} changed (pinned ${pin.key.slice(0, 40)}..., got ${scanned.slice(0, 40)}...) while its vmid stayed ${spec.vmid}; refusing to connect`,
        EXIT.hostKey,
        `if the VM was rebuilt on purpose, delete the two lines for ${spec.host} from ${file} and deploy again; otherwise something else answers at ${address}`,
      );
    }
  });
}

/**
 * The host is healthy when none of its role units has failed (units of other roles or of the
 * system do not count) and every role port answers, continuously for the stable window (a
 * service that comes up and crashes a second later is not healthy). Gives up after
 * healthSeconds plus that window.
 */
async function healthCheck(spec: DeploySpec, address: string, ssh: (addr: string, cmd: string) => Promise<{ exitCode: number | null; stdout: string; stderr: string }>, say: (m: string) => void) {
  const stable = spec.timeouts.healthStableSeconds ?? 10;
  const units = spec.units ?? [];
  const probe = async (): Promise<string[]> => {
    const failures: string[] = [];
    if (units.length) {
      // every role unit must be `active` (systemctl is-active prints one state per unit: active,
      // activating, inactive (also for a unit that does not exist), failed, ...; issue #26 item 7)
      const r = await ssh(address, `systemctl is-active ${units.map((u) => `'${u}'`).join(" ")}`);
      const states = r.stdout.trim().split("\n");
      const failed = units.filter((_, i) => states[i]?.trim() === "failed");
      const notActive = units.filter((u, i) => !failed.includes(u) && states[i]?.trim() !== "active");
      if (r.exitCode === 255) failures.push(`ssh to ${address} failed: ${r.stderr.trim()}`);
      else {
        if (failed.length) failures.push(`failed units: ${failed.join(", ")}`);
        if (notActive.length) failures.push(`units not active: ${notActive.map((u) => `${u} (${states[units.indexOf(u)]?.trim() || "no answer"})`).join(", ")}`);
      }
    }
    for (const h of spec.health) {
      if (h.kind === "http") {
        const url = `http://${address}:${h.port}${h.path}`;
        try {
          const r = await fetch(url, { signal: AbortSignal.timeout(5000) });
          if (!r.ok) failures.push(`${h.role}: GET ${url} answered ${r.status}`);
        } catch (e) {
          failures.push(`${h.role}: GET ${url} failed (${(e as any)?.cause?.code ?? (e as Error).message})`);
        }
      } else if (!(await tcpOpen(address, h.port))) failures.push(`${h.role}: nothing listens on ${address}:${h.port}`);
    }
    // Quorum roles (docs/adr-0013-rolling-updates.md): the cluster as all its members see it
    // (scripts/lib/quorum.ts). All expected members healthy, so that updating the next member
    // still leaves a quorum; while fewer members exist (a new cluster forming) the present ones.
    clusterLines = [];
    for (const q of spec.quorum ?? []) {
      const st = await clusterState(q, address);
      if (st.ok) clusterLines.push(st.text);
      else failures.push(st.text);
    }
    return failures;
  };
  let clusterLines: string[] = [];
  let failures: string[] = [];
  let healthySince: number | undefined;
  const deadline = Date.now() + (spec.timeouts.healthSeconds + stable) * 1000;
  while (true) {
    failures = await probe();
    const now = Date.now();
    if (failures.length) healthySince = undefined;
    else if (healthySince === undefined) healthySince = now;
    if (healthySince !== undefined && now - healthySince >= stable * 1000) break;
    if (now >= deadline) break;
    if (healthySince === undefined && now - (deadline - (spec.timeouts.healthSeconds + stable) * 1000) >= spec.timeouts.healthSeconds * 1000) break;
    await sleep(Math.min(1000, Math.max(100, (stable * 1000) / 2), Math.max(0, deadline - now)));
  }
  if (healthySince === undefined || Date.now() - healthySince < stable * 1000)
    throw new DeployError(
      failures.length ? `health check failed after ${spec.timeouts.healthSeconds}s: ${failures.join("; ")}` : `health check was not stable for ${stable}s within ${spec.timeouts.healthSeconds + stable}s`,
      EXIT.healthRolledBack,
      `see \`journalctl -u <unit>\` on ${spec.host}; fix and deploy again`,
    );
  say(`healthy for ${stable}s: ${units.length ? `${units.join(", ")} active` : "no role units"}${spec.health.length ? `; ${spec.health.map((h) => `${h.role}:${h.port}`).join(", ")} answer` : ""}${clusterLines.length ? `; ${clusterLines.join("; ")}` : ""}`);
}

// ------------------------------------------------------------------ secrets

/** Where the host keeps them; FLEET_VAR_LIB / FLEET_RUN_DIR / FLEET_HOST_KEY move them on test targets only. */
const HOST_STORE = '"${FLEET_VAR_LIB:-/var/lib}/fleet-secrets"';
const HOST_RUN = '"${FLEET_RUN_DIR:-/run}/fleet-secrets"';
const HOST_KEY = '"${FLEET_HOST_KEY:-/etc/ssh/ssh_host_ed25519_key}"';

/**
 * Puts the host's secrets in place before the switch (docs/adr-0014-secrets.md): checks here
 * that each exists and is encrypted to the host's pinned key, copies the encrypted files to
 * /var/lib/fleet-secrets (root, 0600) and runs nixos/scripts/fleet-secrets.sh there as root,
 * which decrypts them with the host's own SSH host key into /run/fleet-secrets/<role>.env
 * (root, 0400). Values are never sent in clear, put in an argument list or written to a log.
 * Returns the environment files whose content changed.
 */
async function deliverSecrets(
  spec: DeploySpec,
  opts: DeployOptions,
  address: string,
  sshIn: (addr: string, cmd: string, input: string | Buffer) => Promise<{ exitCode: number | null; stdout: string; stderr: string }>,
  say: (m: string) => void,
): Promise<SecretEnvFile[]> {
  const dir = opts.secretsDir ?? join(opts.root, "secrets");
  const pinned = readPins(opts.knownHostsFile).get(spec.host)?.key;
  if (!pinned) throw new DeployError(`no pinned host key for ${spec.host}`, EXIT.hostKey, "deploy again: the key is pinned on first contact");
  const needed = [...new Set(spec.secrets!.flatMap((f) => f.entries.map((e) => e.secret)))].sort();
  const optional = (name: string) => spec.secrets!.every((f) => f.entries.every((e) => e.secret !== name || e.optional));
  const pathOf = (name: string) => join(dir, `${name}.age`);
  const missing = needed.find((n) => !existsSync(pathOf(n)) && !optional(n));
  if (missing) throw new DeployError(`secret ${missing} for ${spec.host} does not exist (${pathOf(missing)}); nothing was switched`, EXIT.secrets, "run `npm run secrets -- generate`, then deploy again");
  const present = needed.filter((n) => existsSync(pathOf(n)));
  let notTo = present.filter((n) => !encryptedTo(pathOf(n), pinned));
  if (notTo.length) {
    // A host deployed for the first time (or a replaced VM): its key was pinned just now. With
    // an operator identity here, add the host to those secrets' recipients, as `rekey` would.
    const store = { root: opts.root, dir, knownHostsFile: opts.knownHostsFile };
    try {
      const identity = operatorIdentity();
      await lockedStore(store, () => reencrypt(store, loadInventory(fleetFilePath(process.env, opts.root)), notTo, identity));
      say(`encrypted ${notTo.join(", ")} to ${spec.host}'s pinned host key (secrets/ changed: commit it)`);
    } catch (e) {
      say(`cannot re-encrypt here: ${(e as Error).message}`);
    }
    notTo = present.filter((n) => !encryptedTo(pathOf(n), pinned));
    if (notTo.length)
      throw new DeployError(
        `secret ${notTo[0]} is not encrypted to ${spec.host}'s pinned host key (a new host, or a replaced VM); nothing was switched`,
        EXIT.secrets,
        "run `npm run secrets -- rekey` with your operator key (FLEET_AGE_IDENTITY), then deploy again",
      );
  }
  const files = present.map((name) => ({ name, path: pathOf(name) }));
  const names = files.map((f) => `${f.name}.age`);
  // Encrypted files in, then every other file of the store out (a role the host no longer has).
  for (const f of files) {
    const r = await sshIn(address, `sudo sh -c 'umask 077; mkdir -p "$1" && cat > "$1/.$2.tmp" && mv -f "$1/.$2.tmp" "$1/$2"' sh ${HOST_STORE} ${f.name}.age`, readFileSync(f.path));
    if (r.exitCode !== 0) throw new DeployError(`copying ${f.name}.age to ${spec.host} failed: ${r.stderr.trim()}`, EXIT.secrets, "check that the deploy user may use sudo on the host");
  }
  const prune = await sshIn(address, `sudo sh -c 'cd "$1" 2>/dev/null || exit 0; for f in *.age; do case " $2 " in *" $f "*) ;; *) rm -f -- "$f";; esac; done' sh ${HOST_STORE} '${names.join(" ")}'`, "");
  if (prune.exitCode !== 0) throw new DeployError(`cleaning ${spec.host}'s secret store failed: ${prune.stderr.trim()}`, EXIT.secrets, "check that the deploy user may use sudo on the host");
  const script = readFileSync(join(opts.root, "nixos", "scripts", "fleet-secrets.sh"));
  const r = await sshIn(address, `sudo bash -s -- ${HOST_STORE} ${HOST_RUN} ${HOST_KEY} ${shellQuote(spec.secrets!.map(secretSpecArg))}`, script);
  r.stderr.split("\n").filter(Boolean).forEach((l) => say(`  | ${l}`));
  if (r.exitCode !== 0) throw new DeployError(`decrypting the secrets on ${spec.host} failed (exit ${r.exitCode}); nothing was switched`, EXIT.secrets, "run `npm run secrets -- check`; if the host key changed, `npm run secrets -- rekey`");
  const changed = r.stdout.split("\n").flatMap((l) => /^changed (\S+)$/.exec(l)?.[1] ?? []);
  say(`${files.length} secret(s) in place: ${spec.secrets!.map((f) => f.file).join(", ")}${changed.length ? ` (changed: ${changed.join(", ")})` : ""}`);
  return spec.secrets!.filter((f) => changed.includes(f.file));
}
