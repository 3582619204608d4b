/**
 * Activation on the target (docs/adr-0011-deploy-contract.md): nixos-rebuild switch with fixed
 * flags, the host's generation state, the rollback to a recorded generation, and what the deploy
 * does when the SSH connection drops during a switch.
 */
import { $ } from "zx";
import { isAbsolute, resolve } from "node:path";
import type { DeploySpecDocument } from "../../constructs/deploy-step";
import { DeployError, EXIT } from "./deploy-errors";
import { BuildHost, SshSession, tcpOpen, untilDeadline } from "./ssh-transport";

/**
 * nixos-rebuild's flags, fixed (issue #26 item 11): nixos-rebuild-ng (the only one in NixOS
 * 26.05) has `--sudo` and `--no-reexec`; its `--help` runs `man`, and a re-exec'd nixos-rebuild
 * (the flake's own) would parse the arguments anyway, so asking the local one proves nothing.
 * `--no-reexec`: the rollback must work when the flake does not, and a switch should not build a
 * second nixos-rebuild first. FLEET_REMOTE_SUDO_FLAG still overrides the sudo flag.
 */
export const REBUILD_FLAGS = { sudo: "--sudo", noReexec: ["--no-reexec"] } as const;

/** The system profile and /run/current-system on the target; FLEET_* move them on test targets only. */
export const PROFILE = '"${FLEET_SYSTEM_PROFILE:-/nix/var/nix/profiles/system}"';

/** What the target runs: the profile's generation and store path, and /run/current-system. */
export interface HostState {
  readonly generation: string;
  readonly number: number;
  readonly profilePath: string;
  readonly current: string;
}

export interface ActivationContext {
  readonly spec: DeploySpecDocument;
  readonly root: string;
  readonly session: SshSession;
  readonly build?: BuildHost;
  readonly sudoFlag?: string;
  readonly say: (m: string) => void;
}

export function activation(ctx: ActivationContext) {
  const { spec, session, say } = ctx;
  const ssh = session.ssh;
  const port = spec.sshPort ?? 22;
  const sudoFlag = ctx.sudoFlag ?? REBUILD_FLAGS.sudo;
  const flakeRef = `${isAbsolute(spec.flake) || /^[a-z+]+:/.test(spec.flake) ? spec.flake : resolve(ctx.root, spec.flake)}#${spec.host}`;
  // The flake reads FLEET_FILE with --impure and needs it absolute (relative to the project root, as everywhere else).
  // nixos-rebuild-ng's own switches from the operator's shell (NIXOS_REBUILD_NO_SYSTEMD_RUN would
  // activate inside the SSH session, NIXOS_REBUILD_SSH_DEFAULT_OPTS replace the SSH options this
  // deploy relies on) do not reach it (issue #26 item 13).
  const operatorEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("NIXOS_REBUILD_")));
  const rebuildEnv = { ...operatorEnv, NIX_SSHOPTS: session.nixSshOpts, ...(process.env.FLEET_FILE ? { FLEET_FILE: resolve(ctx.root, process.env.FLEET_FILE) } : {}) };
  const impure = process.env.FLEET_FILE ? ["--impure"] : [];
  // The inventory's binary caches (a CUDA cache for vLLM hosts) for the machine that builds. Nix
  // uses extra substituters only for trusted users (nix.conf trusted-users) or caches it already trusts.
  const caches = spec.substituters?.length
    ? ["--option", "extra-substituters", spec.substituters.join(" "), "--option", "extra-trusted-public-keys", (spec.trustedPublicKeys ?? []).join(" ")]
    : [];
  const rebuildArgs = (addr: string, extra: string[] = []) => [
    "switch", ...extra, "--flake", flakeRef, "--target-host", session.target(addr), sudoFlag,
    ...(ctx.build ? ["--build-host", `${ctx.build.user ? `${ctx.build.user}@` : ""}${session.buildAlias}`] : []), ...impure, ...caches,
    ...(extra.includes("--rollback") ? [] : REBUILD_FLAGS.noReexec),
  ];

  const stateOf = async (addr: string): Promise<HostState | undefined> => {
    const r = await ssh(addr, `readlink ${PROFILE}; readlink -f ${PROFILE}; readlink -f "\${FLEET_CURRENT_SYSTEM:-/run/current-system}"`);
    const [generation, profilePath, current] = r.stdout.trim().split("\n");
    const n = /-(\d+)-link$/.exec(generation ?? "");
    return r.exitCode === 0 && n ? { generation, number: Number(n[1]), profilePath, current: current ?? "" } : undefined;
  };

  async function rebuild(addr: string, extra: string[] = []) {
    const p = $({ nothrow: true, quiet: true, env: rebuildEnv, cwd: ctx.root, timeout: `${spec.timeouts.switchSeconds}s` })`nixos-rebuild ${rebuildArgs(addr, extra)}`;
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
    const stc = `${PROFILE}/bin/switch-to-configuration`;
    const detach = "systemd-run -E LOCALE_ARCHIVE -E NIXOS_INSTALL_BOOTLOADER -E NIXOS_NO_CHECK --collect --no-ask-password --pipe --quiet --service-type=exec --unit=fleet-rollback-switch-to-configuration";
    const cmd = `sudo nix-env -p ${PROFILE} --switch-generation ${to.number} && if [ -d "\${FLEET_RUN_DIR:-/run}/systemd/system" ]; then sudo ${detach} ${stc} switch; else sudo ${stc} switch; fi`;
    const r = await ssh(addr, cmd, `${spec.timeouts.switchSeconds}s`);
    r.stderr.split("\n").filter(Boolean).forEach((l: string) => say(`  | ${l}`));
    const now = await stateOf(addr);
    return { ok: r.exitCode === 0 && now?.current === to.current, now, exitCode: r.exitCode };
  }

  /** The first address where SSH answers and the host state can be read, within `seconds`: the one it had, or its static address if it moved there. */
  const reach = (from: string, seconds: number) =>
    untilDeadline(seconds, async () => {
      for (const a of spec.finalAddress && spec.finalAddress !== from ? [from, spec.finalAddress] : [from]) if (await tcpOpen(a, port)) {
        const st = await stateOf(a);
        if (st) return { addr: a, state: st };
      }
      return undefined;
    });

  /**
   * `nixos-rebuild switch` to the flake's configuration; returns the address the host answers at
   * afterwards. Throws a DeployError when the switch failed.
   */
  async function switchTo(address: string, before: HostState | undefined): Promise<string> {
    const r = await rebuild(address);
    if (r.exitCode === 0) return address;
    if (r.exitCode === 255) {
      // ssh lost the connection (a host that moves to its static address, a network blip).
      // nixos-rebuild-ng set the profile before activating and runs switch-to-configuration
      // detached with systemd-run, so activation may still run or have finished: find out.
      say("the SSH connection dropped during the switch; reconnecting to see where the host is");
      const found = await reach(address, Math.max(30, Math.min(spec.timeouts.sshSeconds, 300)));
      if (!found) throw new DeployError("the connection dropped during the switch and the host did not answer again", EXIT.unreachable, `check VM ${spec.vmid} on ${spec.node} (qm status ${spec.vmid}); the console shows whether it activated`);
      address = found.addr;
      const at = address;
      const waited = await untilDeadline(spec.timeouts.switchSeconds, async () => ((await ssh(at, "systemctl is-active nixos-rebuild-switch-to-configuration")).stdout.trim() === "active" ? undefined : true));
      if (!waited) throw new DeployError(`activation still runs after ${spec.timeouts.switchSeconds}s`, EXIT.failed, "see `journalctl -u nixos-rebuild-switch-to-configuration` on the host");
      const now = await stateOf(address);
      if (!now || now.current !== now.profilePath || (before && now.profilePath === before.profilePath))
        throw new DeployError(`the connection dropped and the host does not run the new generation (it runs ${now?.current ?? "unknown"})`, EXIT.failed, "see `journalctl -u nixos-rebuild-switch-to-configuration` on the host");
      // switch-to-configuration-ng logs how the switch ended ("finished switching to system
      // configuration <path>" or "... <path> failed (status N)"; main.rs, do_system_switch).
      const journal = await ssh(address, "sudo journalctl -u nixos-rebuild-switch-to-configuration -o cat -n 200");
      const lines = journal.stdout.split("\n").filter((l) => l.includes(now.profilePath.split("/").pop()!));
      const last = lines.reverse().find((l) => /finished switching|failed \(status \d+\)/.test(l));
      const status = last ? (/failed \(status (\d+)\)/.exec(last)?.[1] ?? "0") : undefined;
      if (status === "0") {
        say(`activation finished while disconnected: ${now.generation} runs at ${address}`);
        return address;
      }
      if (status !== undefined) throw new DeployError(`the connection dropped and the activation failed (switch-to-configuration exited ${status})`, EXIT.failed, `see \`journalctl -u nixos-rebuild-switch-to-configuration\` on ${spec.host}`);
      say(`activation ended while disconnected, its result was not logged: ${now.generation} runs at ${address}; the health check decides`);
      return address;
    }
    // switch-to-configuration-ng (nixpkgs pkgs/by-name/sw/switch-to-configuration-ng):
    // 2 = the activation script failed, 4 = units failed to start or restart. One policy for
    // failed units (docs/adr-0011, issue #26 item 6): the host's role units decide. Exit 4 with
    // every role unit active is a success with a warning naming the others (a flaky nix-gc must
    // not roll back every deploy); the health gate then checks the roles as always.
    if (r.exitCode === 4) {
      const roleUnits = spec.units ?? [];
      const states = roleUnits.length ? (await ssh(address, `systemctl is-active ${roleUnits.map((u) => `'${u}'`).join(" ")}`)).stdout.trim().split("\n") : [];
      const down = roleUnits.filter((_, i) => states[i]?.trim() !== "active");
      if (!down.length) {
        const failed = (await ssh(address, "systemctl list-units --state=failed --plain --no-legend")).stdout.split("\n").map((l) => l.trim().split(/\s+/)[0]).filter(Boolean);
        say(`warning: switch-to-configuration exited 4 (units failed to start: ${failed.join(", ") || "see journalctl -b"}); none of them is a unit of this host's roles, so the switch stands`);
        return address;
      }
    }
    const meaning = r.exitCode === 2 ? "the activation script failed" : r.exitCode === 4 ? "units failed to start" : "";
    throw new DeployError(`nixos-rebuild switch exited ${r.exitCode}${meaning ? ` (${meaning})` : ""}`, EXIT.failed, meaning ? `see \`journalctl -b\` on ${spec.host}; fix and deploy again` : "read the build output above; fix the configuration and deploy again");
  }

  return { rebuildArgs, stateOf, rebuild, rollbackTo, reach, switchTo };
}
