/**
 * Activation on the target (docs/adr-0011-deploy-contract.md): nixos-rebuild switch with fixed
 * flags, the host's generation state, the rollback to a recorded generation, and what the deploy
 * does when the SSH connection drops during a switch.
 */
import { $ } from "zx";
import { isAbsolute, resolve } from "node:path";
import type { DeploySpecDocument } from "../../constructs/deploy-step";
import { DeployError, EXIT } from "./deploy-errors";
import { armGuard } from "./guard";
import { unitStates } from "./health";
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
  /** The guard's window after a switch (scripts/lib/guard.ts); 0: no guard. */
  readonly guardSeconds: number;
  readonly say: (m: string) => void;
}

export function activation(ctx: ActivationContext) {
  const { spec, session, say } = ctx;
  const ssh = session.ssh;
  const port = spec.sshPort ?? 22;
  // how long to look for a host again after a dropped connection (it may be moving address)
  const reconnectSeconds = Math.max(30, Math.min(spec.timeouts.sshSeconds, 300));
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

  /** The host's state; `then` runs after it in the same SSH call (its output is dropped). */
  const stateOf = async (addr: string, then?: string): Promise<HostState | undefined> => {
    const r = await ssh(addr, `readlink ${PROFILE}; readlink -f ${PROFILE}; readlink -f "\${FLEET_CURRENT_SYSTEM:-/run/current-system}"${then ? `; { ${then}; } >/dev/null 2>&1` : ""}`);
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
    // --wait, not --pipe: the activation's output goes to the journal, so a connection that
    // drops during the rollback does not kill it half-way as it kills a piped one (issue #26
    // item 1); systemd-run --wait exits with its status (systemd src/run/run.c).
    const unit = "fleet-rollback-switch-to-configuration";
    const detach = `systemd-run -E LOCALE_ARCHIVE -E NIXOS_INSTALL_BOOTLOADER -E NIXOS_NO_CHECK --collect --no-ask-password --wait --quiet --service-type=exec --unit=${unit}`;
    const cmd = `sudo nix-env -p ${PROFILE} --switch-generation ${to.number} && if [ -d "\${FLEET_RUN_DIR:-/run}/systemd/system" ]; then sudo ${detach} ${stc} switch; else sudo ${stc} switch; fi`;
    const r = await ssh(addr, cmd, `${spec.timeouts.switchSeconds}s`);
    r.stderr.split("\n").filter(Boolean).forEach((l: string) => say(`  | ${l}`));
    let exitCode = r.exitCode;
    if (exitCode === 255) {
      say("the connection dropped during the rollback; waiting for its activation to end");
      const found = await reach(addr, reconnectSeconds);
      if (found && (await unitEnded(found.addr, unit, spec.timeouts.switchSeconds))) exitCode = 0;
      if (found) addr = found.addr;
    }
    const now = await stateOf(addr);
    return { ok: exitCode === 0 && now?.current === to.current, now, exitCode };
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
   * How the switch to `path` ended, from what switch-to-configuration-ng logged since `cursor`
   * ("finished switching to system configuration <path>" or "switching to system configuration
   * <path> failed (status N)", to syslog; main.rs do_system_switch): its status, or undefined
   * when it logged neither (it died: exit 101 when its output channel closed, or was killed).
   */
  async function switchOutcome(addr: string, unit: string, cursor: string | undefined, path: string): Promise<number | undefined> {
    const after = cursor ? ` --after-cursor='${cursor.replace(/'/g, "")}'` : "";
    const r = await ssh(addr, `sudo journalctl -q -u ${unit} -o cat${after}`);
    for (const line of r.stdout.split("\n").reverse()) {
      if (line === `finished switching to system configuration ${path}`) return 0;
      const m = new RegExp(`^switching to system configuration ${path.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} failed \\(status (\\d+)\\)$`).exec(line);
      if (m) return Number(m[1]);
    }
    return undefined;
  }

  /**
   * Waits until `unit` on the host is no longer running. Only a state systemctl prints ends the
   * wait (inactive, failed); an SSH error or any other answer is asked again (issue #26 item 9).
   * False when it still runs after `seconds`.
   */
  async function unitEnded(addr: string, unit: string, seconds: number): Promise<boolean> {
    let told = false;
    const ended = await untilDeadline(seconds, async () => {
      const r = await ssh(addr, `systemctl is-active ${unit}`);
      const state = r.stdout.trim();
      if (state === "inactive" || state === "failed") return true;
      if (!told && (r.exitCode === 255 || !/^(active|activating|deactivating|reloading|refreshing)$/.test(state))) {
        told = true;
        say(`cannot tell whether ${unit} still runs (${r.exitCode === 255 ? `ssh: ${r.stderr.trim().split("\n").pop()}` : `systemctl answered "${state}"`}); asking again`);
      }
      return undefined;
    });
    return ended === true;
  }

  /** The host's boot id (/proc/sys/kernel/random/boot_id; FLEET_BOOT_ID on test targets). */
  const bootId = async (addr: string) => {
    const r = await ssh(addr, 'cat "${FLEET_BOOT_ID:-/proc/sys/kernel/random/boot_id}"', "20s");
    return r.exitCode === 0 ? r.stdout.trim() : undefined;
  };

  /**
   * switch-to-configuration exited 100: the new configuration's init is incompatible with the
   * running one and "won't take effect until you reboot the system" (main.rs; the boot entry is
   * already installed, no unit was touched). Reboot, wait for a new boot id, and check the host
   * came up in the new generation (issue #26 item 12).
   */
  async function rebootInto(address: string): Promise<string> {
    const old = await bootId(address);
    say("switch-to-configuration exited 100: the new configuration takes effect only after a reboot (its init changed); rebooting the host");
    await ssh(address, "sudo systemctl reboot", "30s");
    let seen: string | undefined = address;
    const back = await untilDeadline(spec.timeouts.sshSeconds + spec.timeouts.switchSeconds, async () => {
      const found = await reach(seen ?? address, 10);
      if (!found) return undefined;
      seen = found.addr;
      const id = await bootId(found.addr);
      return id && id !== old ? { addr: found.addr, state: await stateOf(found.addr) } : undefined;
    });
    if (!back) throw new DeployError("the host was rebooted into its new configuration and did not come back (no new boot)", EXIT.unreachable, `check VM ${spec.vmid} on ${spec.node} (qm status ${spec.vmid}, its console)`);
    if (!back.state || back.state.current !== back.state.profilePath)
      throw new DeployError(`after the reboot the host runs ${back.state?.current ?? "an unknown system"}, not the new generation ${back.state?.profilePath ?? ""}`, EXIT.failed, `see \`journalctl -b\` on ${spec.host}`);
    say(`rebooted: ${back.state.generation} runs at ${back.addr}`);
    return back.addr;
  }

  let guarded: HostState | undefined;
  /**
   * The journal's position before the switch and, with a known generation to go back to, the
   * guard armed for the whole switch plus its window, in one SSH call (no round trip added). The
   * journal keeps every run of the activation unit across boots: only what is logged after this
   * cursor is this run's (issue #26 item 2); `-n 0 --show-cursor` prints the last entry's cursor
   * and no entry (systemd src/journal/journalctl-show.c).
   */
  async function beforeSwitch(address: string, before: HostState | undefined): Promise<string | undefined> {
    const arm = before && ctx.guardSeconds > 0;
    const r = await ssh(address, `sudo journalctl -q -n 0 --show-cursor${arm ? `; ${armGuard(before, spec.timeouts.switchSeconds + ctx.guardSeconds)}` : ""}`);
    if (arm) {
      if (r.stdout.includes("fleet-guard: armed")) {
        guarded = before;
        say(`guard armed: unless a fresh SSH login confirms the switch, the host switches itself back to ${before.generation}`);
      } else if (r.stdout.includes("fleet-guard: no systemd")) say("no systemd on the host: no guard (a configuration that cuts SSH cannot be undone from here)");
      else
        throw new DeployError(
          `cannot arm the guard on ${spec.host} (${r.stderr.trim().split("\n").pop() || `exit ${r.exitCode}`}); nothing was switched`,
          EXIT.failed,
          "an earlier deploy's guard may be switching the host back right now (systemctl status fleet-guard); wait for it, then deploy again",
        );
    }
    return /^-- cursor: (\S+)$/m.exec(r.stdout)?.[1];
  }
  /** The guard, once the switch is done: only its window is left (shell for an SSH call the deploy makes anyway). */
  const rearm = () => (guarded ? armGuard(guarded, ctx.guardSeconds) : undefined);
  /** The same, in an SSH call of its own (after a reboot or a dropped connection). */
  const rearmAt = async (addr: string) => {
    const cmd = rearm();
    if (cmd) await ssh(addr, cmd);
  };

  /**
   * `nixos-rebuild switch` to the flake's configuration; returns the address the host answers at
   * afterwards. Throws a DeployError when the switch failed or its outcome is unknown.
   */
  async function switchTo(address: string, before: HostState | undefined): Promise<string> {
    const unit = "nixos-rebuild-switch-to-configuration";
    const cursor = await beforeSwitch(address, before);
    const r = await rebuild(address);
    if (r.exitCode === 0) {
      // nixos-rebuild's exit 0 is switch-to-configuration's; the host must now run the profile's
      // generation, the one this switch set (issue #26 item 12).
      const now = await stateOf(address, rearm());
      if (now && now.current === now.profilePath) return address;
      throw new DeployError(`nixos-rebuild switch exited 0 but the host runs ${now?.current ?? "an unknown system"}, not the new generation ${now?.profilePath ?? ""}`, EXIT.failed, `see \`journalctl -u ${unit}\` on ${spec.host}: another switch may have run meanwhile`);
    }
    if (r.exitCode === 100) {
      // a reboot ends every transient unit, the guard too: armed again once the host is back
      const back = await rebootInto(address);
      await rearmAt(back);
      return back;
    }
    if (r.exitCode === 255) {
      // ssh lost the connection (a host that moves to its static address, a network blip).
      // nixos-rebuild-ng set the profile before activating and runs switch-to-configuration under
      // systemd-run --pipe: its output is this channel, and once the channel has closed its next
      // write kills it half-way (exit 101). Whatever it did, find out; what it did not log as
      // finished since this deploy began is not a success (issue #26 item 1).
      say("the SSH connection dropped during the switch; reconnecting to see where the host is");
      const found = await reach(address, reconnectSeconds);
      if (!found) throw new DeployError("the connection dropped during the switch and the host did not answer again", EXIT.unreachable, `check VM ${spec.vmid} on ${spec.node} (qm status ${spec.vmid}); the console shows whether it activated`);
      address = found.addr;
      if (!(await unitEnded(address, unit, spec.timeouts.switchSeconds))) throw new DeployError(`activation still runs after ${spec.timeouts.switchSeconds}s`, EXIT.failed, `see \`journalctl -u ${unit}\` on the host`);
      const now = await stateOf(address);
      if (!now || (before && now.profilePath === before.profilePath))
        throw new DeployError(`the connection dropped before the new generation was set (the host runs ${now?.current ?? "unknown"})`, EXIT.failed, "deploy again");
      const status = await switchOutcome(address, unit, cursor, now.profilePath);
      if (status === undefined)
        throw new DeployError(
          `the connection dropped during the switch and its outcome is unknown: switch-to-configuration logged neither success nor failure for ${now.profilePath} since this deploy began (it dies half-way, exit 101, when its output channel closes)`,
          EXIT.failed,
          `see \`journalctl -u ${unit}\` on ${spec.host}; deploy again from a stable connection`,
        );
      if (status !== 0) throw new DeployError(`the connection dropped and the activation failed (switch-to-configuration exited ${status})`, EXIT.failed, `see \`journalctl -u ${unit}\` on ${spec.host}`);
      if (now.current !== now.profilePath) throw new DeployError(`the activation finished while disconnected but the host runs ${now.current}, not ${now.profilePath}`, EXIT.failed, `see \`journalctl -u ${unit}\` on ${spec.host}`);
      say(`activation finished while disconnected: ${now.generation} runs at ${address}`);
      await rearmAt(address);
      return address;
    }
    // switch-to-configuration-ng (nixpkgs pkgs/by-name/sw/switch-to-configuration-ng):
    // 2 = the activation script failed, 4 = units failed to start or restart. One policy for
    // failed units (docs/adr-0011, issue #26 item 6): the host's role units decide. Exit 4 with
    // every role unit active is a success with a warning naming the others (a flaky nix-gc must
    // not roll back every deploy); the health gate then checks the roles as always.
    if (r.exitCode === 4) {
      const roleUnits = spec.units ?? [];
      const { states } = roleUnits.length ? await unitStates(ssh, address, roleUnits) : { states: [] };
      const down = roleUnits.filter((_, i) => states[i] !== "active");
      if (!down.length) {
        const failed = (await ssh(address, "systemctl list-units --state=failed --plain --no-legend")).stdout.split("\n").map((l) => l.trim().split(/\s+/)[0]).filter(Boolean);
        say(`warning: switch-to-configuration exited 4 (units failed to start: ${failed.join(", ") || "see journalctl -b"}); none of them is a unit of this host's roles, so the switch stands`);
        return address;
      }
    }
    const meaning = r.exitCode === 2 ? "the activation script failed" : r.exitCode === 4 ? "units failed to start" : "";
    throw new DeployError(`nixos-rebuild switch exited ${r.exitCode}${meaning ? ` (${meaning})` : ""}`, EXIT.failed, meaning ? `see \`journalctl -b\` on ${spec.host}; fix and deploy again` : "read the build output above; fix the configuration and deploy again");
  }

  return { rebuildArgs, stateOf, rebuild, rollbackTo, reach, switchTo, guarded: () => guarded };
}
