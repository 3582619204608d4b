/**
 * SSH targets: Debian's sshd on addresses of this machine, one "host" per server, logged into as
 * the unprivileged DEPLOY_USER with real sudo (passwordless for that user, as
 * nixos/modules/base.nix configures wheel), root login refused as on the real hosts. Each host is
 * a directory: its /nix/var and /run live below it, and the target-side STAND-INS in
 * __tests__/stand-ins/remote-bin (systemd-run, switch-to-configuration, ...) map them there;
 * systems are real paths of this machine's Nix store and profiles are Debian's real nix-env's. Used by the deploy tests and by `npm run sandbox`. Needs root (useradd, sudoers).
 */
import { ChildProcess, execFileSync, spawn } from "node:child_process";
import { appendFileSync, chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { tcpOpen } from "../scripts/lib/ssh-transport";

export const STAND_INS = join(__dirname, "..", "__tests__", "stand-ins");
export const SSH_PORT = 2222;
/** The unprivileged deploy user on the test targets (created once; never root). */
export const DEPLOY_USER = "fleetdeploy";
/** A user that may log in but has no sudo rule (an inventory user outside wheel). */
export const NO_SUDO_USER = "fleetnosudo";

export interface TestHost {
  readonly dir: string;
  readonly addresses: string[];
  readonly hostKey: string;
  readonly port: number;
  stop(): void;
}

/** A client key pair for the tests (lives in a temp directory, never in the repo). */
export function clientKey(dir: string): string {
  const key = join(dir, "client_ed25519");
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "deploy-test", "-f", key]);
  return key;
}

let prepared = false;
/** The deploy user, and sudo rules for it: passwordless, stand-ins first on its PATH, the host directory kept. */
function prepareDeployUser(): { uid: number; gid: number } {
  const id = () => ({ uid: Number(execFileSync("id", ["-u", DEPLOY_USER], { encoding: "utf8" })), gid: Number(execFileSync("id", ["-g", DEPLOY_USER], { encoding: "utf8" })) });
  if (prepared) return id();
  for (const user of [DEPLOY_USER, NO_SUDO_USER]) {
    try {
      execFileSync("id", [user], { stdio: "ignore" });
    } catch {
      try {
        execFileSync("useradd", ["--system", "--no-create-home", "--home-dir", "/", "--shell", "/bin/sh", user], { stdio: "pipe" });
      } catch (e) {
        // another test file (a parallel jest worker) may have just made it
        execFileSync("id", [user], { stdio: "ignore" });
      }
    }
    // No password, but not locked: sshd without PAM refuses every login to a locked ("!") account.
    execFileSync("usermod", ["-p", "*", "-d", "/", user]);
  }
  const rules = [
    "# Written by the project's deploy tests and sandbox (sandbox/targets.ts).",
    `${DEPLOY_USER} ALL=(root) NOPASSWD: ALL`,
    `Defaults:${DEPLOY_USER} secure_path="${join(STAND_INS, "remote-bin")}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"`,
    `Defaults:${DEPLOY_USER} env_keep += "FLEET_STANDIN_HOST FLEET_SYSTEM_PROFILE FLEET_CURRENT_SYSTEM FLEET_RUN_DIR"`,
    "",
  ].join("\n");
  mkdirSync("/etc/sudoers.d", { recursive: true });
  // written beside and renamed: a parallel worker never sees half a file
  const tmp = `/etc/sudoers.d/.fleet-deploy-tests-${process.pid}`;
  writeFileSync(tmp, rules, { mode: 0o440 });
  execFileSync("visudo", ["-c", "-q", "-f", tmp]);
  renameSync(tmp, "/etc/sudoers.d/fleet-deploy-tests");
  prepared = true;
  return id();
}

/**
 * Starts sshd listening on each address (port SSH_PORT unless given); hostKeyFrom reuses another
 * host's key and directory (the same machine at another address).
 */
export async function startHost(name: string, addresses: string[], clientKeyFile: string, hostKeyFrom?: TestHost, port = SSH_PORT, opts: { fresh?: boolean } = {}): Promise<TestHost> {
  const { uid, gid } = prepareDeployUser();
  const dir = hostKeyFrom?.dir ?? mkdtempSync(join(tmpdir(), `host-${name}-`));
  const sshdDir = mkdtempSync(join(tmpdir(), `sshd-${name}-`));
  chmodSync(dir, 0o755);
  mkdirSync("/run/sshd", { recursive: true });
  if (!hostKeyFrom) {
    // root-owned like a real NixOS host: the profile needs sudo; the store and /run are written by the stand-ins
    mkdirSync(join(dir, "nix", "var", "nix", "profiles"), { recursive: true });
    mkdirSync(join(dir, "nix", "store"), { recursive: true });
    chownSync(join(dir, "nix", "store"), uid, gid);
    mkdirSync(join(dir, "run", "systemd", "system"), { recursive: true });
    chmodSync(join(dir, "run"), 0o777);
    mkdirSync(join(dir, "standin"), { recursive: true });
    writeFileSync(join(dir, "run", "boot_id"), "00000000000000000000000000000001");
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(dir, "ssh_host_ed25519_key")]);
    writeFileSync(join(dir, "authorized_keys"), readFileSync(`${clientKeyFile}.pub`));
    if (!opts.fresh) {
      // A clone of the template runs one generation already (label "v0"), as every real host does:
      // a real store path (fleet-standin-target adds it), generation 1 of the profile.
      const store = execFileSync(join(STAND_INS, "remote-bin", "fleet-standin-target"), ["copy", "nixos-system-template-v0"], { env: { ...process.env, FLEET_STANDIN_HOST: dir }, input: "", encoding: "utf8" }).trim();
      execFileSync("ln", ["-s", store, join(dir, "nix/var/nix/profiles/system-1-link")]);
      execFileSync("ln", ["-s", "system-1-link", join(dir, "nix/var/nix/profiles/system")]);
      execFileSync("ln", ["-s", store, join(dir, "run/current-system")]);
    }
  }
  const hostKey = join(dir, "ssh_host_ed25519_key");
  const config = [
    ...addresses.map((a) => `ListenAddress ${a}:${port}`),
    `HostKey ${hostKey}`,
    `PidFile ${join(sshdDir, "sshd.pid")}`,
    `AuthorizedKeysFile ${join(dir, "authorized_keys")}`,
    "StrictModes no",
    "PasswordAuthentication no",
    "KbdInteractiveAuthentication no",
    // as nixos/modules/base.nix: no root login
    "PermitRootLogin no",
    `AllowUsers ${DEPLOY_USER} ${NO_SUDO_USER}`,
    "UsePAM no",
    "LogLevel ERROR",
    `SetEnv PATH=${join(STAND_INS, "remote-bin")}:/usr/local/bin:/usr/bin:/bin FLEET_STANDIN_HOST=${dir} FLEET_SYSTEM_PROFILE=${join(dir, "nix/var/nix/profiles/system")} FLEET_CURRENT_SYSTEM=${join(dir, "run/current-system")} FLEET_RUN_DIR=${join(dir, "run")} FLEET_VAR_LIB=${join(dir, "var", "lib")} FLEET_HOST_KEY=${hostKey} FLEET_BOOT_ID=${join(dir, "run", "boot_id")}`,
  ].join("\n");
  writeFileSync(join(sshdDir, "sshd_config"), `${config}\n`);
  // the reboot stand-in (systemctl reboot) drops every SSH connection of this host: it reads these
  appendFileSync(join(dir, "standin", "sshd-pidfiles"), `${join(sshdDir, "sshd.pid")}\n`);
  const proc: ChildProcess = spawn("/usr/sbin/sshd", ["-D", "-e", "-f", join(sshdDir, "sshd_config")], { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  proc.stderr!.on("data", (d) => (err += d));
  for (let i = 0; i < 100 && !(await Promise.all(addresses.map((a) => tcpOpen(a, port, 200)))).every(Boolean); i++) {
    if (proc.exitCode !== null) throw new Error(`sshd for ${name} exited: ${err}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  // an activation of the stand-ins may have restarted sshd as a daemon (pid file): that one goes too
  const stop = () => {
    proc.kill();
    try {
      process.kill(Number(readFileSync(join(sshdDir, "sshd.pid"), "utf8")));
    } catch {
      // not running
    }
  };
  return { dir, addresses, hostKey, port, stop };
}

/**
 * A secrets store beside `fleetFile` (secrets/ with the test client key as the operator) and
 * every secret the inventory needs, made by the real CLI; returns the environment the deploy and
 * `npm run secrets` need to use it (the client key doubles as the operator's identity).
 */
export function secretsFor(fleetFile: string, clientKeyFile: string, knownHosts: string): NodeJS.ProcessEnv {
  const dir = join(dirname(fleetFile), "secrets");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "operators.txt"), readFileSync(`${clientKeyFile}.pub`));
  const env = { ...process.env, FLEET_FILE: fleetFile, FLEET_SECRETS_DIR: dir, FLEET_KNOWN_HOSTS: knownHosts, FLEET_AGE_IDENTITY: clientKeyFile };
  execFileSync("node", ["--import", "tsx", join(__dirname, "..", "scripts", "secrets.ts"), "generate"], { env, stdio: "pipe" });
  return { FLEET_SECRETS_DIR: dir, FLEET_AGE_IDENTITY: clientKeyFile };
}
