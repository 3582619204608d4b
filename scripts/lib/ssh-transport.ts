/**
 * SSH transport of a host's deploy: one ssh_config per deploy with the pinned keys, a shared
 * connection per host, and the small network helpers (TCP probe, retry until a deadline).
 */
import { $ } from "zx";
import { connect } from "node:net";
import { spawnSync } from "node:child_process";
import { accessSync, constants, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { DeployError, EXIT } from "./deploy-errors";

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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

/** POSIX shell quoting that Python's shlex.split (nixos-rebuild-ng's NIX_SSHOPTS parser) undoes. */
export function shellQuote(args: readonly string[]): string {
  return args.map((a) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'"'"'`)}'`)).join(" ");
}

export interface BuildHost {
  readonly user?: string;
  readonly host: string;
  readonly port?: number;
}

/** [user@]host[:port] of a build host. */
export function parseBuildHost(v: string): BuildHost {
  const m = /^(?:([^@\s]+)@)?([^:\s@]+)(?::(\d+))?$/.exec(v);
  if (!m) throw new DeployError(`build host "${v}" is not [user@]host[:port]`, EXIT.usage, "fix deploy.buildHost in the inventory or --build-host");
  return { user: m[1], host: m[2], port: m[3] ? Number(m[3]) : undefined };
}

export interface SshResult {
  readonly exitCode: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `cmd` on the host at `addr`; `input` goes to its stdin (file contents never go into an argument list). */
export type Ssh = (addr: string, cmd: string, timeout?: `${number}s`, input?: string | Buffer) => Promise<SshResult>;

export interface SshSession {
  /** The ssh_config file of this deploy. */
  readonly config: string;
  /** NIX_SSHOPTS for nixos-rebuild: ours first, then the operator's own. */
  readonly nixSshOpts: string;
  /** user@alias of the target at `addr`. */
  target(addr: string): string;
  /** The build host's alias in the config, if there is one. */
  readonly buildAlias?: string;
  readonly ssh: Ssh;
  /** `cmd` over a new connection of its own (not the shared one): a login as it would happen now. */
  readonly freshSsh: (addr: string, cmd: string) => Promise<SshResult>;
  /** Closes the shared connections and removes the config. */
  close(): void;
}

/**
 * One ssh_config for this deploy: a block per address of the target and one for the build host,
 * each with its own pinned key (HostKeyAlias) and keepalives, then the user's own config.
 * nixos-rebuild uses NIX_SSHOPTS for the target and the build host alike, so options that differ
 * per host can only live here. Nothing secret is in it.
 */
export function openSession(o: { host: string; user: string; port: number; addresses: readonly string[]; build?: BuildHost; knownHostsFile: string; identityFile?: string }): SshSession {
  const alias = (addr: string) => `fleet--${o.host}--${addr}`;
  const buildAlias = o.build ? `fleet-build--${o.build.host}` : undefined;
  // Under /tmp, not os.tmpdir(): the control socket's path must stay under the 104 bytes macOS
  // allows a Unix socket (108 on Linux), and macOS's $TMPDIR alone is ~50 (issue #26 item 10).
  const dir = mkdtempSync(join(shortTmp(), "fleet-ssh-"));
  const common = (knownAlias: string) => [
    `  HostKeyAlias ${knownAlias}`,
    `  UserKnownHostsFile "${o.knownHostsFile}"`,
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
    `  ControlPath "${join(dir, "cm-%C")}"`,
    "  ControlPersist 60",
    ...(o.identityFile ? [`  IdentityFile "${o.identityFile}"`, "  IdentitiesOnly yes"] : []),
  ];
  const b = o.build;
  const text = [
    "# Generated by scripts/lib/ssh-transport.ts for one deploy; pinned host keys only.",
    ...o.addresses.flatMap((a) => [`Host ${alias(a)}`, `  HostName ${a}`, `  Port ${o.port}`, ...common(o.host)]),
    ...(b ? [`Host ${buildAlias}`, `  HostName ${b.host}`, `  Port ${b.port ?? 22}`, ...common(`build-host:${b.host}`)] : []),
    ...(existsSync(join(homedir(), ".ssh", "config")) ? ["Host *", `  Include "${join(homedir(), ".ssh", "config")}"`] : []),
    "",
  ].join("\n");
  const config = join(dir, "config");
  writeFileSync(config, text, { mode: 0o600 });
  // Ours first (ssh takes the first value of an option), then the user's own NIX_SSHOPTS.
  const userSshOpts = process.env.NIX_SSHOPTS?.trim();
  const target = (addr: string) => `${o.user}@${alias(addr)}`;
  return {
    config,
    nixSshOpts: [shellQuote(["-F", config]), userSshOpts].filter(Boolean).join(" "),
    target,
    buildAlias,
    ssh: (addr, cmd, timeout = "60s", input) => $({ nothrow: true, quiet: true, timeout, input })`ssh -F ${config} ${target(addr)} -- ${cmd}`,
    freshSsh: (addr, cmd) => $({ nothrow: true, quiet: true, timeout: "30s" })`ssh -F ${config} -o ControlMaster=no -o ControlPath=none ${target(addr)} -- ${cmd}`,
    close() {
      // close the shared connections (nixos-rebuild-ng's cleanup_ssh does the same), then forget them
      for (const f of readdirSync(dir).filter((n) => n.startsWith("cm-")))
        spawnSync("ssh", ["-o", `ControlPath=${join(dir, f)}`, "-O", "exit", "fleet-control"], { stdio: "ignore", timeout: 5000 });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
