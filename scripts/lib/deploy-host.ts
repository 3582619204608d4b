/**
 * Applies one host's NixOS configuration: find the address, wait for SSH, pin the host key,
 * `nixos-rebuild switch --target-host`, follow an address change, health-check, and roll back
 * on failure. Used by the deploy steps (terraform_data local-exec) and by `npm run deploy`.
 * The pieces live beside it: ssh-transport (ssh_config, shared connections), host-keys
 * (pinning), activation (switch, drop recovery, rollback), health (the gate), secrets-delivery.
 */
import { join } from "node:path";
import { $ } from "zx";
import type { DeploySpecDocument } from "../../constructs/deploy-step";
import { ROLES } from "../../constructs/roles";
import { HOST_SECRET_RUN } from "../../constructs/secrets";
import { activation, HostState, PROFILE as P, REBUILD_FLAGS } from "./activation";
import { DeployError, EXIT } from "./deploy-errors";
import { confirmOverFreshLogin, DISARM, UnconfirmedSwitch } from "./guard";
import { healthCheck } from "./health";
import { pinBuildHostKey, pinHostKey } from "./host-keys";
import { rebootForPending } from "./pending-reboot";
import { clusterState } from "./quorum";
import { checkSecretsExist, DeliveredSecrets, deliverSecrets } from "./secrets-delivery";
import { BuildHost, openSession, parseBuildHost, tcpOpen, untilDeadline } from "./ssh-transport";

export type DeploySpec = DeploySpecDocument;
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
  /** Flag that makes nixos-rebuild use sudo on the target. @default "--sudo" (nixos-rebuild-ng) */
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
  let build: BuildHost | undefined;
  try {
    build = spec.buildHost ? parseBuildHost(spec.buildHost) : undefined;
  } catch (e) {
    say(`FAILED: ${(e as Error).message}`);
    return { host: spec.host, ok: false, seconds: 0, exitCode: EXIT.usage, message: (e as Error).message };
  }
  const session = openSession({ host: spec.host, user: spec.user, port, addresses: candidates, build, knownHostsFile: opts.knownHostsFile, identityFile: opts.identityFile });
  const cleanup = () => session.close();
  const ssh = session.ssh;
  const nixSshOpts = session.nixSshOpts;
  const t = spec.timeouts;
  const guardSeconds = t.guardSeconds ?? t.sshSeconds + t.healthSeconds + (t.healthStableSeconds ?? 10) + 60;
  const act = activation({ spec, root: opts.root, session, build, sudoFlag: opts.sudoFlag, guardSeconds, say });
  const { rebuildArgs, stateOf, rebuild, rollbackTo, reach } = act;

  // Before touching the host (and in a dry run, which must not say ok when the real run would
  // stop at once): the tools this needs on PATH, and the secrets the host needs in secrets/.
  for (const tool of ["ssh", "ssh-keyscan", "nixos-rebuild"]) {
    const found = await $({ nothrow: true, quiet: true })`command -v ${tool}`;
    if (found.exitCode !== 0) {
      const hint = tool === "nixos-rebuild" ? "install Nix, then `nix profile install nixpkgs#nixos-rebuild` (or run from a NixOS machine)" : "install the OpenSSH client";
      say(`FAILED: ${tool} is not on PATH; ${hint}`);
      cleanup();
      return { host: spec.host, ok: false, seconds: 0, exitCode: EXIT.usage, message: `${tool} is not on PATH` };
    }
  }
  if (spec.secrets?.length && !opts.rollback)
    try {
      checkSecretsExist(spec, opts.secretsDir ?? join(opts.root, "secrets"));
    } catch (e) {
      const err = e as DeployError;
      say(`FAILED: ${err.message}${err.hint ? `; ${err.hint}` : ""}`);
      cleanup();
      return { host: spec.host, ok: false, seconds: 0, exitCode: err.exitCode ?? EXIT.secrets, message: err.message };
    }

  if (opts.dryRun) {
    say(`would wait for SSH on ${candidates.join(" or ")} port ${port} (up to ${spec.timeouts.sshSeconds}s)`);
    say(`would pin the host key in ${opts.knownHostsFile}: ssh-keyscan -p ${port} -t ed25519 <address>`);
    if (build) say(`would pin the build host's key as build-host:${build.host}`);
    if (spec.managedVm && !opts.rollback) say("would reboot the VM through the Proxmox API if the apply left changes pending there (after the host and its cluster are seen healthy)");
    if (spec.secrets?.length && !opts.rollback) say(`would put the secrets of ${spec.secrets.map((f) => f.file).join(", ")} in place (encrypted to the pinned host key, decrypted on the host into ${HOST_SECRET_RUN})`);
    say(`would run: NIX_SSHOPTS=${JSON.stringify(nixSshOpts)} nixos-rebuild ${(opts.rollback ? rebuildArgs("<address>", ["--rollback", ...REBUILD_FLAGS.noReexec]) : rebuildArgs("<address>")).join(" ")}`);
    if (!opts.rollback) {
      if (spec.finalAddress) say(`would follow the host to ${spec.finalAddress} if it moves`);
      say(`would check: ${spec.units?.length ? `units ${spec.units.join(", ")} active; ` : ""}${spec.health.map((h) => (h.kind === "http" ? `GET :${h.port}${h.path}` : `TCP :${h.port}`)).join("; ") || "no service ports"}${(spec.quorum ?? []).map((q) => `; ${q.role} cluster: all ${q.expected} members healthy (GET :${q.port}${q.path})`).join("")}; stable for ${spec.timeouts.healthStableSeconds ?? 10}s`);
      say("would roll back to the generation it ran before if the switch or a check fails");
      if (guardSeconds > 0) say(`would arm a guard on the host that switches it back by itself unless a fresh SSH login confirms within ${guardSeconds}s after the switch`);
    }
    cleanup();
    return { host: spec.host, ok: true, seconds: 0, exitCode: EXIT.ok, message: "dry run" };
  }

  let address: string | undefined;
  let switched = false;
  let before: HostState | undefined;
  let secrets: DeliveredSecrets | undefined;
  // The secrets as they were before this deploy, back before any rollback activates the old
  // generation (its snippet decrypts the old roles' files from the store; issue #26 item 3).
  const restoreSecrets = (d: DeliveredSecrets) =>
    d.restore().then(
      () => "; the previous secrets were restored",
      (e) => `; the previous secrets could not be restored (${(e as Error).message})`,
    );
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

    // The login, and sudo without a password (nixos-rebuild --sudo cannot answer a prompt), both
    // before anything on the host is asked or changed (issue #26): ssh's own failures exit 255.
    const login = await ssh(address, "sudo -n true");
    if (login.exitCode === 255)
      throw new DeployError(`SSH login as ${spec.user} at ${address} failed: ${login.stderr.trim().split("\n").pop()}`, EXIT.unreachable, `deploy.user must be an admin user of the inventory whose key is in ssh-agent or FLEET_SSH_KEY_FILE`);
    if (login.exitCode !== 0)
      throw new DeployError(`${spec.user} cannot use sudo without a password on ${spec.host} (${login.stderr.trim().split("\n").pop()}); nothing was changed`, EXIT.failed, `deploy.user must be in the inventory's admin users (wheel, passwordless sudo: nixos/modules/base.nix)`);

    if (opts.rollback) {
      await phase("roll back", async () => {
        // nixos-rebuild --rollback without re-exec: re-exec would build nixos-rebuild from the
        // flake first, and a rollback must work when the flake or the network does not.
        const r = await rebuild(address!, ["--rollback", ...REBUILD_FLAGS.noReexec]);
        if (r.exitCode !== 0) throw new DeployError(`nixos-rebuild --rollback exited ${r.exitCode}`, EXIT.rollbackFailed, "log in with ssh and run: sudo nixos-rebuild switch --rollback --no-reexec");
        say(`now at ${(await stateOf(address!))?.generation ?? "unknown generation"}`);
      });
      return { host: spec.host, ok: true, seconds: (Date.now() - started) / 1000, address, exitCode: EXIT.ok, message: "rolled back" };
    }

    // Before this member is touched: its cluster must be whole, as all members see it (issue #26
    // item 8). Taking a member down while another is down loses the quorum. Nobody answering is
    // a new cluster only while this member holds no Raft state of the role (its data directory
    // is empty or absent); a member with state means the cluster is down.
    for (const q of spec.quorum ?? []) {
      const st = await clusterState(q, address);
      if (st.none) {
        const dir = `\${FLEET_VAR_LIB:-/var/lib}/${q.role}`;
        const state = await ssh(address, `d="${dir}"; echo "$d"; sudo -n sh -c 'ls -A "$1" 2>/dev/null | head -n 1' sh "$d"`);
        const [where, first] = state.stdout.split("\n");
        if (state.exitCode === 0 && first)
          throw new DeployError(
            `not touching ${spec.host}: no member of the ${q.role} cluster answers (GET :${q.port}${q.path}), and ${spec.host} holds ${q.role} state (${where}): the cluster is down, not new`,
            EXIT.failed,
            `bring the ${q.role} members back up first (check their VMs and \`journalctl -u ${q.role}\`), then deploy again`,
          );
        say(`${q.role}: no member answers yet and ${spec.host} holds no ${q.role} state: a new cluster, members join one at a time`);
      } else if (!st.ok) throw new DeployError(`not touching ${spec.host}: ${st.text}`, EXIT.failed, `bring the ${q.role} cluster back to health first (every member answering GET :${q.port}${q.path}), then deploy again`);
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
    // Secrets before the switch, so the services find them when they start; a missing one stops here.
    if (spec.secrets?.length) secrets = await phase("secrets", () => deliverSecrets(spec, opts, address!, (addr, cmd, input) => ssh(addr, cmd, "120s", input), say));
    const changedSecrets = secrets?.changed ?? [];
    before = await stateOf(address);
    if (!before) say("could not read the current generation: if this deploy fails, it will not be rolled back");
    switched = true;
    address = await phase(`nixos-rebuild switch ${spec.host}`, () => act.switchTo(address!, before));

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
    if (act.guarded()) {
      await phase("confirm over a fresh SSH login", async () => {
        const c = await confirmOverFreshLogin(session, address!);
        if (!c.ok) throw new UnconfirmedSwitch(address!, c.why);
        say("confirmed: the guard is disarmed");
      });
    }
    // Only now may the old secret set go (a rollback needs it until here).
    if (secrets) await secrets.keep().catch((e) => say(`warning: ${(e as Error).message} (old secret files stay in the store; the next deploy removes them)`));
    const now = await stateOf(address);
    say(`deployed ${now?.generation ?? ""} in ${secs(started)}`.replace("  ", " "));
    return { host: spec.host, ok: true, seconds: (Date.now() - started) / 1000, address, exitCode: EXIT.ok };
  } catch (e) {
    const err = e instanceof DeployError ? e : new DeployError(String((e as Error)?.message ?? e), EXIT.failed, "see the output above");
    let exitCode = err.exitCode;
    let message = `${err.message}`;
    const guard = act.guarded();
    if (guard && err instanceof UnconfirmedSwitch && address) {
      // No fresh login: the guard on the host switches it back by itself. Wait for that.
      say(`waiting up to ${guardSeconds + 60}s for the guard to switch the host back to ${guard.generation}`);
      const back = await untilDeadline(guardSeconds + 60, async () => {
        const found = await reach(address!, 10);
        return found?.state.current === guard.current ? found : undefined;
      });
      if (back) {
        address = back.addr;
        message += `; the host switched itself back to ${guard.generation} (its guard, armed before the switch, was not confirmed)`;
        exitCode = EXIT.failed;
        if (secrets) message += await restoreSecrets(secrets);
      } else message += `; the host did not switch itself back to ${guard.generation} within ${guardSeconds + 60}s (check it on the console)`;
    } else if (switched && address) {
      // Where is the host now? Retry for a while: it may be moving to its static address.
      const found = await reach(address, 30);
      const now = found?.state;
      if (found) address = found.addr;
      if (found && secrets) message += await restoreSecrets(secrets);
      if (!before) message += "; the generation it ran before is unknown, so it was not rolled back (check it by hand)";
      else if (!now) message += `; the host cannot be reached to roll it back (it ran ${before.generation} before)${guard ? `; its guard switches it back within ${guardSeconds}s` : ""}`;
      else if (now.current === before.current && now.generation === before.generation) {
        message += `; the host still runs its previous generation ${before.generation}`;
        if (guard) await ssh(address, DISARM);
      } else {
        say(`rolling back to ${before.generation} (the generation it ran before)`);
        const r = await rollbackTo(address, before);
        if (r.ok) {
          message += `; rolled back to ${before.generation}`;
          if (guard) await ssh(address, DISARM);
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
    } else if (secrets && address) message += await restoreSecrets(secrets);
    say(`FAILED: ${message}`);
    say(`next: ${err.hint}; ${opts.fromTerraform ? "Terraform marks the step tainted, so the next `cdktf deploy` retries it" : `retry with \`npm run deploy -- ${spec.host}\``}`);
    return { host: spec.host, ok: false, seconds: (Date.now() - started) / 1000, address, exitCode, message };
  } finally {
    cleanup();
  }
}
