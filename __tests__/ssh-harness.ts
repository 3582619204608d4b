/**
 * Real OpenSSH servers for deploy tests: Debian's sshd on loopback addresses (127.0.0.x) of
 * this machine, one "host" per server, with a client key and the stand-ins on PATH.
 */
import { ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { tcpOpen } from "../scripts/lib/deploy-host";

export const STAND_INS = join(__dirname, "stand-ins");
export const SSH_PORT = 2222;

export interface TestHost {
  readonly dir: string;
  readonly addresses: string[];
  readonly hostKey: string;
  stop(): void;
}

/** A client key pair for the tests (lives in a temp directory, never in the repo). */
export function clientKey(dir: string): string {
  const key = join(dir, "client_ed25519");
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "deploy-test", "-f", key]);
  return key;
}

/** Starts sshd listening on each address, port SSH_PORT; hostKeyFrom reuses another host's key. */
export async function startHost(name: string, addresses: string[], clientKeyFile: string, hostKeyFrom?: string): Promise<TestHost> {
  const dir = mkdtempSync(join(tmpdir(), `host-${name}-`));
  mkdirSync("/run/sshd", { recursive: true });
  const hostKey = join(dir, "ssh_host_ed25519_key");
  if (hostKeyFrom) {
    writeFileSync(hostKey, readFileSync(hostKeyFrom), { mode: 0o600 });
    writeFileSync(`${hostKey}.pub`, readFileSync(`${hostKeyFrom}.pub`));
  } else execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", hostKey]);
  writeFileSync(join(dir, "authorized_keys"), readFileSync(`${clientKeyFile}.pub`));
  const config = [
    ...addresses.map((a) => `ListenAddress ${a}:${SSH_PORT}`),
    `HostKey ${hostKey}`,
    `PidFile ${join(dir, "sshd.pid")}`,
    `AuthorizedKeysFile ${join(dir, "authorized_keys")}`,
    "StrictModes no",
    "PasswordAuthentication no",
    "KbdInteractiveAuthentication no",
    "PermitRootLogin prohibit-password",
    "UsePAM no",
    "LogLevel ERROR",
    `SetEnv PATH=${join(STAND_INS, "remote-bin")}:/usr/local/bin:/usr/bin:/bin FLEET_SYSTEM_PROFILE=${join(dir, "system")} FLEET_STANDIN_HOST=${dir}`,
  ].join("\n");
  writeFileSync(join(dir, "sshd_config"), `${config}\n`);
  const proc: ChildProcess = spawn("/usr/sbin/sshd", ["-D", "-e", "-f", join(dir, "sshd_config")], { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  proc.stderr!.on("data", (d) => (err += d));
  for (let i = 0; i < 100 && !(await Promise.all(addresses.map((a) => tcpOpen(a, SSH_PORT, 200)))).every(Boolean); i++) {
    if (proc.exitCode !== null) throw new Error(`sshd for ${name} exited: ${err}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { dir, addresses, hostKey, stop: () => proc.kill() };
}

/** A service answering GET <path> with 200 on address:port (what a healthy role would serve). */
export function startHttp(address: string, port: number, path: string): Promise<Server> {
  const server = createServer((req, res) => {
    res.statusCode = req.url === path ? 200 : 404;
    res.end(req.url === path ? "ok" : "no");
  });
  return new Promise((done) => server.listen(port, address, () => done(server)));
}

/** Current generation link of a test host's system profile. */
export function generationOf(host: TestHost): string | undefined {
  try {
    return require("node:fs").readlinkSync(join(host.dir, "system"));
  } catch {
    return undefined;
  }
}
