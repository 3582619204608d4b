/**
 * Applies one host's NixOS configuration: find the address, wait for SSH, pin the host key,
 * `nixos-rebuild switch --target-host`, follow an address change, health-check, and roll back
 * on failure. Used by the deploy steps (terraform_data local-exec) and by `npm run deploy`.
 */
import { $ } from "zx";
import { connect } from "node:net";
import { existsSync, mkdirSync, readFileSync, renameSync, rmdirSync, writeFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import type { DeploySpecDocument } from "../../constructs/deploy-step";

export type DeploySpec = DeploySpecDocument;

/** Exit codes of scripts/deploy.ts (documented in the README). */
export const EXIT = {
  ok: 0,
  failed: 1,
  usage: 2,
  unreachable: 3,
  hostKey: 4,
  healthRolledBack: 5,
  rollbackFailed: 6,
} as const;

export class DeployError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
    /** What to do next. */
    readonly hint: string,
  ) {
    super(message);
  }
}

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
  /** Flag that makes nixos-rebuild use sudo on the target. @default "--use-remote-sudo" */
  readonly sudoFlag?: string;
  /** Run by a Terraform deploy step (a failure taints it) rather than by hand. @default false */
  readonly fromTerraform?: boolean;
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

interface Pin {
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

function writePins(file: string, pins: Map<string, Pin>) {
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
async function withLock<T>(file: string, fn: () => T): Promise<T> {
  const lock = `${file}.lock`;
  mkdirSync(dirname(file), { recursive: true });
  for (let i = 0; ; i++) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      if (i > 300) throw new DeployError(`cannot lock ${lock}`, EXIT.failed, `remove ${lock} if no deploy is running`);
      await sleep(50);
    }
  }
  try {
    return fn();
  } finally {
    rmdirSync(lock);
  }
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
  const sshOpts = [
    "-p", String(port),
    "-o", "BatchMode=yes",
    "-o", "ConnectTimeout=10",
    "-o", `HostKeyAlias=${spec.host}`,
    "-o", `UserKnownHostsFile=${opts.knownHostsFile}`,
    "-o", "GlobalKnownHostsFile=/dev/null",
    "-o", "StrictHostKeyChecking=yes",
    ...(opts.identityFile ? ["-i", opts.identityFile, "-o", "IdentitiesOnly=yes"] : []),
  ];
  const sudoFlag = opts.sudoFlag ?? "--use-remote-sudo";
  const flakeRef = `${isAbsolute(spec.flake) || /^[a-z+]+:/.test(spec.flake) ? spec.flake : resolve(opts.root, spec.flake)}#${spec.host}`;
  // The flake reads FLEET_FILE with --impure and needs it absolute (relative to the project root, as everywhere else).
  const rebuildEnv = { ...process.env, NIX_SSHOPTS: sshOpts.join(" "), ...(process.env.FLEET_FILE ? { FLEET_FILE: resolve(opts.root, process.env.FLEET_FILE) } : {}) };
  const impure = process.env.FLEET_FILE ? ["--impure"] : [];
  // The inventory's binary caches (a CUDA cache for vLLM hosts) for the machine that builds. Nix
  // uses extra substituters only for trusted users (nix.conf trusted-users) or caches it already trusts.
  const caches = spec.substituters?.length
    ? ["--option", "extra-substituters", spec.substituters.join(" "), "--option", "extra-trusted-public-keys", (spec.trustedPublicKeys ?? []).join(" ")]
    : [];
  const rebuildArgs = (addr: string, extra: string[] = []) => [
    "switch", ...extra, "--flake", flakeRef, "--target-host", `${spec.user}@${addr}`, sudoFlag,
    ...(spec.buildHost ? ["--build-host", spec.buildHost] : []), ...impure, ...caches,
  ];
  const candidates = [...new Set([spec.agentAddress, spec.finalAddress, spec.fqdn].filter((a): a is string => !!a))];

  const ssh = (addr: string, cmd: string) => $({ nothrow: true, quiet: true, timeout: "60s" })`ssh ${sshOpts} ${`${spec.user}@${addr}`} -- ${cmd}`;
  const generation = async (addr: string) => {
    const r = await ssh(addr, 'readlink "${FLEET_SYSTEM_PROFILE:-/nix/var/nix/profiles/system}"');
    return r.exitCode === 0 ? r.stdout.trim() : undefined;
  };

  async function rebuild(addr: string, extra: string[] = []) {
    const p = $({ nothrow: true, quiet: true, env: rebuildEnv, cwd: opts.root, timeout: `${spec.timeouts.switchSeconds}s` })`nixos-rebuild ${rebuildArgs(addr, extra)}`;
    const relay = (chunk: Buffer) => chunk.toString().split("\n").filter(Boolean).forEach((l) => say(`  | ${l}`));
    p.stdout.on("data", relay);
    p.stderr.on("data", relay);
    return p;
  }

  if (opts.dryRun) {
    say(`would wait for SSH on ${candidates.join(" or ")} port ${port} (up to ${spec.timeouts.sshSeconds}s)`);
    say(`would pin the host key in ${opts.knownHostsFile}: ssh-keyscan -p ${port} -t ed25519 <address>`);
    say(`would run: NIX_SSHOPTS=${JSON.stringify(sshOpts.join(" "))} nixos-rebuild ${rebuildArgs("<address>", opts.rollback ? ["--rollback"] : []).join(" ")}`);
    if (!opts.rollback) {
      if (spec.finalAddress) say(`would follow the host to ${spec.finalAddress} if it moves`);
      say(`would check: no failed systemd units; ${spec.health.map((h) => (h.kind === "http" ? `GET :${h.port}${h.path}` : `TCP :${h.port}`)).join("; ") || "no service ports"}`);
      say("would roll back to the previous generation if the switch or a check fails");
    }
    return { host: spec.host, ok: true, seconds: 0, exitCode: EXIT.ok, message: "dry run" };
  }

  // Before touching the host: the tools this needs must be on PATH.
  for (const tool of ["ssh", "ssh-keyscan", "nixos-rebuild"]) {
    const found = await $({ nothrow: true, quiet: true })`command -v ${tool}`;
    if (found.exitCode !== 0) {
      const hint = tool === "nixos-rebuild" ? "install Nix, then `nix profile install nixpkgs#nixos-rebuild` (or run from a NixOS machine)" : "install the OpenSSH client";
      say(`FAILED: ${tool} is not on PATH; ${hint}`);
      return { host: spec.host, ok: false, seconds: 0, exitCode: EXIT.usage, message: `${tool} is not on PATH` };
    }
  }

  let address: string | undefined;
  let switched = false;
  let before: string | undefined;
  try {
    if (candidates.length === 0)
      throw new DeployError("no address known (no static address, no agent address, no DNS name)", EXIT.usage, "give the host a static address or pass --address");

    address = await phase("wait for ssh", async () => {
      const a = await untilDeadline(spec.timeouts.sshSeconds, async () => {
        for (const c of candidates) if (await tcpOpen(c, port)) return c;
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

    await phase("pin host key", () => pinHostKey(spec, address!, port, opts.knownHostsFile, say));

    if (opts.rollback) {
      await phase("roll back", async () => {
        const r = await rebuild(address!, ["--rollback"]);
        if (r.exitCode !== 0) throw new DeployError(`nixos-rebuild --rollback exited ${r.exitCode}`, EXIT.rollbackFailed, "log in with ssh and run: sudo nixos-rebuild switch --rollback");
        say(`now at ${(await generation(address!)) ?? "unknown generation"}`);
      });
      return { host: spec.host, ok: true, seconds: (Date.now() - started) / 1000, address, exitCode: EXIT.ok, message: "rolled back" };
    }

    before = await generation(address);
    await phase(`nixos-rebuild switch ${spec.host}`, async () => {
      const r = await rebuild(address!);
      switched = true;
      if (r.exitCode !== 0) {
        // Moving to a new address can cut the SSH session mid-activation: check where it landed.
        if (spec.finalAddress && spec.finalAddress !== address && (await tcpOpen(spec.finalAddress, port))) {
          const now = await generation(spec.finalAddress);
          if (now && now !== before) return say(`the connection dropped while the host moved; it is at ${spec.finalAddress} on ${now}`);
        }
        throw new DeployError(`nixos-rebuild switch exited ${r.exitCode}`, EXIT.failed, "read the build output above; fix the configuration and deploy again");
      }
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

    await phase("health check", () => healthCheck(spec, address!, ssh, say));
    const now = await generation(address);
    say(`deployed ${now ?? ""} in ${secs(started)}`.replace("  ", " "));
    return { host: spec.host, ok: true, seconds: (Date.now() - started) / 1000, address, exitCode: EXIT.ok };
  } catch (e) {
    const err = e instanceof DeployError ? e : new DeployError(String((e as Error)?.message ?? e), EXIT.failed, "see the output above");
    let exitCode = err.exitCode;
    let message = `${err.message}`;
    if (switched && address) {
      // Roll back only if the host left the generation it ran before: a build that failed
      // before activation changed nothing, and --rollback would undo a good generation.
      const current = await generation(address);
      if (before !== undefined && current === before) message += `; the host still runs its previous generation ${before}`;
      else {
        say("rolling back to the previous generation");
        const r = await rebuild(address, ["--rollback"]);
        const now = await generation(address);
        if (r.exitCode === 0) {
          message += `; rolled back${now ? ` to ${now}` : ""}`;
          if (exitCode === EXIT.unreachable) exitCode = EXIT.failed;
        } else {
          message += `; the rollback failed too (nixos-rebuild exited ${r.exitCode})`;
          exitCode = EXIT.rollbackFailed;
        }
      }
    }
    say(`FAILED: ${message}`);
    say(`next: ${err.hint}; ${opts.fromTerraform ? "Terraform marks the step tainted, so the next `cdktf deploy` retries it" : `retry with \`npm run deploy -- ${spec.host}\``}`);
    return { host: spec.host, ok: false, seconds: (Date.now() - started) / 1000, address, exitCode, message };
  }
}

async function pinHostKey(spec: DeploySpec, address: string, port: number, file: string, say: (m: string) => void) {
  const scan = await $({ nothrow: true, quiet: true, timeout: "30s" })`ssh-keyscan -T 10 -p ${port} -t ed25519 ${address}`;
  const line = scan.stdout.split("\n").find((l) => l.trim() && !l.startsWith("#"));
  if (!line) throw new DeployError(`ssh-keyscan got no ed25519 host key from ${address}:${port}`, EXIT.unreachable, "check that sshd runs on the host");
  const [, type, key] = line.trim().split(/\s+/);
  const scanned = `${type} ${key}`;
  await withLock(file, () => {
    const pins = readPins(file);
    const pin = pins.get(spec.host);
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

async function healthCheck(spec: DeploySpec, address: string, ssh: (addr: string, cmd: string) => Promise<{ exitCode: number | null; stdout: string; stderr: string }>, say: (m: string) => void) {
  let failures: string[] = [];
  const ok = await untilDeadline(spec.timeouts.healthSeconds, async () => {
    failures = [];
    const units = await ssh(address, "systemctl list-units --state=failed --no-legend --plain");
    if (units.exitCode !== 0) failures.push(`systemctl failed: ${units.stderr.trim() || units.exitCode}`);
    else {
      const failed = units.stdout.split("\n").map((l) => l.trim().split(/\s+/)[0]).filter(Boolean);
      if (failed.length) failures.push(`failed systemd units: ${failed.join(", ")}`);
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
    return failures.length === 0 ? true : undefined;
  });
  if (!ok) throw new DeployError(`health check failed after ${spec.timeouts.healthSeconds}s: ${failures.join("; ")}`, EXIT.healthRolledBack, `see \`journalctl -u <unit>\` on ${spec.host}; fix and deploy again`);
  say(`healthy: no failed units${spec.health.length ? `, ${spec.health.map((h) => `${h.role}:${h.port}`).join(", ")} answer` : ""}`);
}
