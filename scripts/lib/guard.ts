/**
 * The dead-man guard on the target (issue #26 item 4; docs/adr-0011-deploy-contract.md): a
 * configuration that cuts SSH (firewall, network, sshd, the deploy user) cannot be rolled back
 * from outside, so before the switch the deploy arms a transient systemd timer on the host that
 * switches it back to the recorded generation by itself, and disarms it only after the health
 * gate passed and a *fresh* SSH login (not the shared connection, which a firewall change may
 * leave open) worked. As deploy-rs's magic rollback (src/bin/activate.rs, activation_confirmation:
 * the previous generation re-activated and the new one deleted unless a new SSH connection
 * confirms within the timeout), with `systemd-run --on-active` instead of a waiting process.
 */
import { DeployError, EXIT } from "./deploy-errors";
import { shellQuote, SshSession } from "./ssh-transport";

/** No fresh login after the switch: the guard on the host will switch it back by itself. */
export class UnconfirmedSwitch extends DeployError {
  constructor(address: string, why: string) {
    super(`after the switch a fresh SSH login to ${address} fails (${why}): the new configuration may have cut SSH`, EXIT.unreachable, "see the host's console; its guard switches it back to the generation it ran before");
  }
}

export const GUARD_UNIT = "fleet-guard";
/** The system profile on the target; FLEET_SYSTEM_PROFILE moves it on test targets only. */
const PROFILE = '"${FLEET_SYSTEM_PROFILE:-/nix/var/nix/profiles/system}"';

/**
 * Shell that (re)arms the guard: in `seconds`, switch the profile back to `to`, activate it, and
 * delete the generations above it (a later `--rollback` must not land on the one that cut SSH).
 * Prints "fleet-guard: armed", or "fleet-guard: no systemd" where there is none (a container).
 * An earlier guard still switching back makes systemd-run refuse the name: nothing is armed then.
 */
export function armGuard(to: { readonly number: number; readonly profilePath: string }, seconds: number): string {
  const back = [
    "PATH=/run/current-system/sw/bin:$PATH",
    `nix-env -p ${PROFILE} --switch-generation ${to.number} && ${to.profilePath}/bin/switch-to-configuration switch`,
    "s=$?",
    `for n in $(nix-env -p ${PROFILE} --list-generations | awk '$1 > ${to.number} { print $1 }'); do nix-env -p ${PROFILE} --delete-generations "$n"; done`,
    'exit "$s"',
  ].join("; ");
  const run = `systemd-run --on-active=${Math.max(1, Math.ceil(seconds))}s --unit=${GUARD_UNIT} --collect --quiet -E LOCALE_ARCHIVE sh -c ${shellQuote([back])}`;
  return `if [ -d "\${FLEET_RUN_DIR:-/run}/systemd/system" ]; then sudo systemctl stop ${GUARD_UNIT}.timer >/dev/null 2>&1; sudo ${run} && echo "fleet-guard: armed"; else echo "fleet-guard: no systemd"; fi`;
}

/** Shell that disarms the guard (the timer stopped before it fires: the service never starts). */
export const DISARM = `sudo systemctl stop ${GUARD_UNIT}.timer >/dev/null 2>&1; true`;

/**
 * The confirmation: a new SSH connection (no shared one), a login, the guard disarmed. Its
 * failure means the new configuration may have cut SSH: the guard switches the host back.
 */
export async function confirmOverFreshLogin(session: SshSession, addr: string): Promise<{ ok: boolean; why: string }> {
  const r = await session.freshSsh(addr, `sudo systemctl stop ${GUARD_UNIT}.timer`);
  return { ok: r.exitCode === 0, why: r.stderr.trim().split("\n").pop() || `exit ${r.exitCode}` };
}
