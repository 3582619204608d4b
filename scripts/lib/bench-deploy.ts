/**
 * Deploy wall time for 50 hosts over real SSH, with and without the target's dead-man guard
 * (scripts/lib/guard.ts; issue #26 item 4), and the SSH invocations per host (a PATH shim counts
 * every `ssh` the deploy and nixos-rebuild run: each is a round trip). Targets are Debian's sshd
 * with real sudo (sandbox/targets.ts); nixos-rebuild and the target's Nix/systemd tools are the
 * STAND-INS of __tests__/stand-ins. Needs root (the targets' users and sudo rules).
 */
import { chmodSync, mkdirSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { clientKey, DEPLOY_USER, SSH_PORT, STAND_INS, startHost, TestHost } from "../../sandbox/targets";
import { deployHost, DeploySpec } from "./deploy-host";

export interface GuardBench {
  readonly hosts: number;
  readonly concurrency: number;
  /** Wall seconds of each round, in the order run. */
  readonly withoutGuard: number[];
  readonly withGuard: number[];
  readonly sshPerHostWithout: number;
  readonly sshPerHostWith: number;
}

export async function benchDeployGuard(work: string, root: string, n = 50, concurrency = 10): Promise<GuardBench | { skipped: string }> {
  if (process.getuid?.() !== 0) return { skipped: "needs root (SSH targets with their own users and sudo rules)" };
  const key = clientKey(work);
  const shim = join(work, "ssh-count");
  const count = join(work, "ssh-count.log");
  mkdirSync(shim, { recursive: true });
  const realSsh = execFileSync("sh", ["-c", "command -v ssh"], { encoding: "utf8" }).trim();
  writeFileSync(join(shim, "ssh"), `#!/bin/sh\necho x >> '${count}'\nexec '${realSsh}' "$@"\n`);
  chmodSync(join(shim, "ssh"), 0o755);
  const path = process.env.PATH;
  process.env.PATH = `${shim}:${join(STAND_INS, "bin")}:${path}`;
  const hosts: TestHost[] = [];
  try {
    for (let i = 1; i <= n; i++) hosts.push(await startHost(`bench${i}`, [`127.0.6.${i}`], key));
    const spec = (i: number, guard: boolean): DeploySpec => ({
      host: `bench-${i}`, vmid: 9000 + i, node: "pve1", roles: ["vllm"], agentAddress: "", flake: "./nixos", user: DEPLOY_USER, sshPort: SSH_PORT,
      finalAddress: `127.0.6.${i}`, health: [], units: ["vllm.service"],
      timeouts: { sshSeconds: 10, switchSeconds: 120, healthSeconds: 10, healthStableSeconds: 0.5, ...(guard ? {} : { guardSeconds: 0 }) },
    });
    const knownHostsFile = join(work, "known_hosts");
    let label = 0;
    const round = async (guard: boolean) => {
      process.env.FLEET_STANDIN_SYSTEM = `bench${++label}`;
      writeFileSync(count, "");
      const queue = Array.from({ length: n }, (_, k) => k + 1);
      const t0 = process.hrtime.bigint();
      const failed: string[] = [];
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          for (let i = queue.shift(); i !== undefined; i = queue.shift()) {
            const r = await deployHost(spec(i, guard), { root, knownHostsFile, identityFile: key, write: () => undefined });
            if (!r.ok) failed.push(`bench-${i}: ${r.message}`);
          }
        }),
      );
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      if (failed.length) throw new Error(`deploy bench: ${failed.length} host(s) failed, e.g. ${failed[0]}`);
      return { seconds, ssh: existsSync(count) ? readFileSync(count, "utf8").split("\n").filter(Boolean).length / n : 0 };
    };
    // alternated, so that neither mode always runs on the warmer machine
    const without: { seconds: number; ssh: number }[] = [];
    const withG: { seconds: number; ssh: number }[] = [];
    for (let k = 0; k < 2; k++) {
      without.push(await round(false));
      withG.push(await round(true));
    }
    return {
      hosts: n,
      concurrency,
      withoutGuard: without.map((r) => r.seconds),
      withGuard: withG.map((r) => r.seconds),
      sshPerHostWithout: without[without.length - 1].ssh,
      sshPerHostWith: withG[withG.length - 1].ssh,
    };
  } finally {
    hosts.forEach((h) => h.stop());
    process.env.PATH = path;
    delete process.env.FLEET_STANDIN_SYSTEM;
  }
}
