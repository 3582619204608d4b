/**
 * What the deploy tests on the SSH test bed share: a host spec, a deploy run as a deploy step
 * runs it (scripts/deploy.ts --from-env, with the nixos-rebuild STAND-IN first on PATH), a
 * healthy test host, a fresh known_hosts file.
 */
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { DeploySpec } from "../scripts/lib/deploy-host";
import { ROOT, runAsync } from "./helpers";
import { DEPLOY_USER, sshTestBed, SSH_PORT, STAND_INS, startHost, startHttp } from "./ssh-harness";

export function deployBed() {
  const bed = sshTestBed();
  const { work, key, hosts, servers } = bed;

  function spec(host: string, extra: Partial<DeploySpec> = {}): DeploySpec {
    return {
      host,
      vmid: 501,
      node: "pve1",
      roles: ["vllm"],
      agentAddress: "",
      flake: "./nixos",
      user: DEPLOY_USER,
      sshPort: SSH_PORT,
      health: [{ role: "vllm", kind: "http", port: 8000, path: "/health" }],
      units: ["vllm.service"],
      timeouts: { sshSeconds: 10, switchSeconds: 60, healthSeconds: 3, healthStableSeconds: 0.5 },
      ...extra,
    };
  }

  /**
   * Runs scripts/deploy.ts --from-env as a deploy step does; returns exit code, output, stand-in
   * log. Asynchronous, so the HTTP "services" in this process keep answering meanwhile.
   * `system` labels the configuration nixos-rebuild builds ("v1", "v2", ...): the same label is
   * the same store path, as the same configuration is. `onOutput` sees the output so far as it
   * grows (for tests that act at a point of the deploy).
   */
  async function deploy(s: DeploySpec, knownHosts: string, args: string[] = [], env: Record<string, string> = {}, system = "v1", onOutput?: (out: string) => void) {
    const log = join(mkdtempSync(join(work, "log-")), "nixos-rebuild.log");
    const { status, out } = await runAsync("node", ["--import", "tsx", join(ROOT, "scripts", "deploy.ts"), "--from-env", ...args], {
      env: {
        ...process.env,
        PATH: `${join(STAND_INS, "bin")}:${process.env.PATH}`,
        FLEET_DEPLOY_SPEC: JSON.stringify(s),
        FLEET_KNOWN_HOSTS: knownHosts,
        FLEET_SSH_KEY_FILE: key,
        FLEET_STANDIN_LOG: log,
        FLEET_STANDIN_SYSTEM: system,
        SSH_AUTH_SOCK: "",
        ...env,
      },
      onOutput,
    });
    return { status, out, calls: existsSync(log) ? readFileSync(log, "utf8").trim().split("\n") : [] };
  }

  const knownHosts = () => join(mkdtempSync(join(work, "kh-")), "known_hosts");
  async function healthyHost(name: string, ip: string, port = SSH_PORT, opts: { fresh?: boolean } = {}) {
    const h = await startHost(name, [ip], key, undefined, port, opts);
    hosts.push(h);
    servers.push(await startHttp(ip, 8000, "/health"));
    return h;
  }
  return { ...bed, spec, deploy, knownHosts, healthyHost };
}
