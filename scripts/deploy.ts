#!/usr/bin/env node
/**
 * npm run deploy -- <host>... | --all [--concurrency N] [--dry-run] [--rollback] [--address A]
 * node --import tsx scripts/deploy.ts --from-env      (what the deploy steps run)
 * node --import tsx scripts/deploy.ts --leave-pool    (what a host stack runs when a host loses its pool)
 * proxmox-nixos-fleet-deploy ...                       (the same, as the installed package's bin)
 *
 * Applies hosts' NixOS flakes over SSH with host-key pinning, health checks and rollback.
 * Exit codes: 0 ok, 1 deploy failed (rolled back where it had switched), 2 bad usage or input,
 * 3 host unreachable, 4 host key refused, 5 health check failed and rolled back, 6 rollback failed,
 * 7 a secret the host needs is missing or not encrypted to its key (nothing switched).
 */
import { minimist } from "zx";
import { join, resolve } from "node:path";
import { DEPLOY_SPEC_ENV } from "../constructs/deploy-step";
import { loadInventory, InventoryError, fleetFilePath, PROJECT_ROOT } from "../constructs/inventory";
import { planDeploys } from "../constructs/deploy-plan";
import { deployHost, DeploySpec, EXIT, HostResult } from "./lib/deploy-host";
import { blockingStdio } from "./lib/stdio";
import { leavePool } from "./lib/pool-leave";
import { pveAccess } from "./lib/pve-api";
import { LEAVE_POOL_ENV, LEAVE_VMID_ENV } from "../constructs/pool-leave";

// output reaches a pipe whole before the process exits (scripts/lib/stdio.ts)
blockingStdio();

// the checkout, or (the package's bin) the project the deploy step runs in
const ROOT = PROJECT_ROOT;
/**
 * By hand, hosts exist already: SSH gets 120 s (a reboot), not the 600 s a deploy step gives a
 * VM that Terraform has just created.
 */
const CLI_SSH_SECONDS = 120;

const HELP = `Usage:
  npm run deploy -- <host> [<host>...]   deploy the named hosts (in dependency order)
  npm run deploy -- --all                 deploy every host of the inventory
  node --import tsx scripts/deploy.ts --from-env   read one host's spec from $${DEPLOY_SPEC_ENV} (deploy steps)
  node --import tsx scripts/deploy.ts --leave-pool take VM $${LEAVE_VMID_ENV} out of pool $${LEAVE_POOL_ENV}
                                                   (what a host stack runs when a host's pool is removed)

Options:
  --dry-run            print exactly what would run, run nothing
  --rollback           return the host(s) to the previous NixOS generation
  --concurrency N      hosts deployed at once with --all (default 4)
  --address A          connect to A (one host only; DHCP hosts otherwise use their DNS name)
  --build-host H       build on H instead of locally (nixos-rebuild --build-host)
  --ssh-timeout S      seconds to wait for SSH (default 120; the deploy steps wait 600)
  --health-timeout S   seconds for health checks to pass (default 300)
  --health-stable S    seconds every check must keep passing (default 10)
  --guard-seconds S    window after a switch in which a fresh SSH login must confirm it, or the
                       host switches itself back (default: ssh + health timeouts + stable + 60;
                       0: no guard)
  -h, --help           this text

Environment: FLEET_FILE (inventory), FLEET_SSH_KEY_FILE (private key path; default ssh-agent),
FLEET_KNOWN_HOSTS (pinned host keys; default deploy/known_hosts), FLEET_REMOTE_SUDO_FLAG
(default --sudo, nixos-rebuild-ng's flag).
FLEET_SECRETS_DIR (encrypted secrets; default secrets/).
Exit codes: 0 ok, 1 failed, 2 usage, 3 unreachable, 4 host key refused, 5 unhealthy (rolled back), 6 rollback failed,
7 secret missing or not encrypted to the host (nothing switched).`;

function fail(message: string): never {
  process.stderr.write(`deploy: ${message}\n`);
  process.exit(EXIT.usage);
}

/** --leave-pool: one VM out of one pool (constructs/pool-leave.ts sets the environment). */
async function leavePoolFromEnv(): Promise<never> {
  const pool = process.env[LEAVE_POOL_ENV] ?? "";
  const vmid = Number(process.env[LEAVE_VMID_ENV]);
  if (!pool || !Number.isInteger(vmid) || vmid < 100) fail(`--leave-pool needs $${LEAVE_POOL_ENV} and $${LEAVE_VMID_ENV} (the host stacks set them)`);
  const access = pveAccess();
  if (typeof access === "string") fail(`--leave-pool: ${access}`);
  try {
    const r = await leavePool(access, pool, vmid);
    process.stdout.write(r === "left" ? `VM ${vmid} left pool ${pool}\n` : `VM ${vmid} was not in pool ${pool}: nothing to do\n`);
    process.exit(EXIT.ok);
  } catch (e) {
    process.stderr.write(`deploy: VM ${vmid} could not leave pool ${pool}: ${(e as Error).message}\n`);
    process.exit(EXIT.failed);
  }
}

async function main() {
  const args = minimist(process.argv.slice(2), {
    boolean: ["all", "dry-run", "rollback", "from-env", "leave-pool", "help"],
    string: ["address", "build-host", "concurrency", "ssh-timeout", "health-timeout", "health-stable", "guard-seconds"],
    alias: { h: "help" },
  });
  if (args.help) {
    process.stdout.write(`${HELP}\n`);
    return;
  }
  const unknown = Object.keys(args).filter((k) => !["_", "all", "dry-run", "rollback", "from-env", "leave-pool", "help", "h", "address", "build-host", "concurrency", "ssh-timeout", "health-timeout", "health-stable", "guard-seconds"].includes(k));
  if (unknown.length) fail(`unknown option --${unknown[0]}; see --help`);

  if (args["leave-pool"]) return leavePoolFromEnv();

  const opts = {
    root: ROOT,
    knownHostsFile: resolve(ROOT, process.env.FLEET_KNOWN_HOSTS || join("deploy", "known_hosts")),
    identityFile: process.env.FLEET_SSH_KEY_FILE || undefined,
    secretsDir: resolve(ROOT, process.env.FLEET_SECRETS_DIR || "secrets"),
    dryRun: args["dry-run"],
    rollback: args.rollback,
    sudoFlag: process.env.FLEET_REMOTE_SUDO_FLAG || undefined,
    requirePinned: process.env.FLEET_REQUIRE_PINNED === "1",
  };
  const seconds = (name: string, v: unknown) => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) fail(`--${name} must be a positive number of seconds, got ${JSON.stringify(v)}`);
    return n;
  };
  const sshTimeout = seconds("ssh-timeout", args["ssh-timeout"]);
  const healthTimeout = seconds("health-timeout", args["health-timeout"]);
  const healthStable = seconds("health-stable", args["health-stable"]);
  const guard = args["guard-seconds"] === "0" ? 0 : seconds("guard-seconds", args["guard-seconds"]);
  const adjust = (s: DeploySpec): DeploySpec => ({
    ...s,
    buildHost: args["build-host"] ?? s.buildHost,
    timeouts: { ...s.timeouts, sshSeconds: sshTimeout ?? (args["from-env"] ? s.timeouts.sshSeconds : CLI_SSH_SECONDS), healthSeconds: healthTimeout ?? s.timeouts.healthSeconds, healthStableSeconds: healthStable ?? s.timeouts.healthStableSeconds, guardSeconds: guard ?? s.timeouts.guardSeconds },
  });

  if (args["from-env"]) {
    const raw = process.env[DEPLOY_SPEC_ENV];
    if (!raw) fail(`--from-env: $${DEPLOY_SPEC_ENV} is not set (the deploy steps set it)`);
    let spec: DeploySpec;
    try {
      spec = JSON.parse(raw);
    } catch (e) {
      fail(`$${DEPLOY_SPEC_ENV} is not JSON: ${(e as Error).message}`);
    }
    if (!spec.host || !spec.user || !spec.flake || !spec.timeouts) fail(`$${DEPLOY_SPEC_ENV} lacks host, user, flake or timeouts`);
    const r = await deployHost(adjust(spec), { ...opts, fromTerraform: true });
    process.exit(r.exitCode);
  }

  let inventory;
  try {
    inventory = loadInventory(fleetFilePath());
  } catch (e) {
    if (e instanceof InventoryError) fail(`the inventory is not usable:\n${e.message}`);
    throw e;
  }
  const plans = planDeploys(inventory);
  const names: string[] = args._.map(String);
  if (!args.all && names.length === 0) fail("name the hosts to deploy, or --all; see --help");
  if (args.all && names.length) fail("give host names or --all, not both");
  const known = new Set(plans.map((p) => p.host.name));
  const missing = names.filter((n) => !known.has(n));
  if (missing.length) fail(`not in the inventory: ${missing.join(", ")} (hosts: ${[...known].join(", ")})`);
  if (args.address && names.length !== 1) fail("--address applies to exactly one host");
  const chosen = args.all ? plans : plans.filter((p) => names.includes(p.host.name));
  const concurrency = args.concurrency === undefined ? 4 : Number(args.concurrency);
  if (!Number.isInteger(concurrency) || concurrency < 1) fail(`--concurrency must be a whole number >= 1, got ${JSON.stringify(args.concurrency)}`);

  // Run in dependency order: a host starts once every chosen host it waits for succeeded.
  const results = new Map<string, HostResult>();
  const pending = [...chosen];
  const running = new Map<string, Promise<void>>();
  const chosenNames = new Set(chosen.map((p) => p.host.name));
  /** Takes `p` off the pending list with a result that says why it was not deployed. */
  const skip = (p: (typeof chosen)[number], message: string, exitCode: number = EXIT.failed) => {
    pending.splice(pending.indexOf(p), 1);
    results.set(p.host.name, { host: p.host.name, ok: false, seconds: 0, exitCode, message });
  };

  // An unreachable fleet stops early (docs/adr-0013-rolling-updates.md): once a host did not
  // answer, the hosts that share a role with it are not tried; and while no host has answered
  // at all, no new host starts until the running ones end: when every host tried was
  // unreachable, nothing more is tried. The summary lists what was not tried and why.
  let holding = false;
  const unreachable = (failed: (typeof chosen)[number]) => {
    for (const p of [...pending]) {
      const shared = p.host.roles.find((role) => failed.host.roles.includes(role));
      if (shared) skip(p, `not tried: ${shared} member ${failed.host.name} was unreachable`, EXIT.unreachable);
    }
    if ([...results.values()].every((r) => r.exitCode === EXIT.unreachable)) holding = true;
  };

  while (pending.length || running.size) {
    for (const plan of [...pending]) {
      if (running.size >= concurrency || holding) break;
      const deps = plan.waitFor.filter((d) => chosenNames.has(d));
      const failedDep = deps.find((d) => results.get(d) && !results.get(d)!.ok);
      if (failedDep) {
        skip(plan, `skipped: waits for ${failedDep}, which failed`);
        continue;
      }
      if (!deps.every((d) => results.get(d)?.ok)) continue;
      pending.splice(pending.indexOf(plan), 1);
      const spec: DeploySpec = adjust({ ...plan.spec, agentAddress: args.address ?? "" });
      running.set(
        plan.host.name,
        deployHost(spec, opts).then((r) => {
          results.set(r.host, r);
          running.delete(r.host);
          if (r.exitCode === EXIT.unreachable) unreachable(plan);
        }),
      );
    }
    if (running.size) await Promise.race(running.values());
    else if (holding) {
      holding = false;
      const tried = [...results.values()].filter((r) => !r.message?.startsWith("not tried"));
      if (tried.every((r) => r.exitCode === EXIT.unreachable))
        for (const p of [...pending]) skip(p, `not tried: all ${tried.length} hosts tried were unreachable (network, VPN, or the VMs are off?)`, EXIT.unreachable);
    }
    // Nothing running and nothing started above: what is left can never start.
    else if (pending.length) {
      for (const p of [...pending]) skip(p, "skipped: its dependencies did not deploy");
    }
  }

  const rows = chosen.map((p) => results.get(p.host.name)!);
  process.stdout.write("\nsummary\n");
  for (const r of rows) process.stdout.write(`  ${r.ok ? "ok     " : "FAILED "} ${r.host.padEnd(28)} ${r.seconds.toFixed(1).padStart(7)}s  ${r.message ?? r.address ?? ""}\n`);
  const bad = rows.filter((r) => !r.ok);
  process.stdout.write(opts.dryRun ? `dry run: ${rows.length} hosts${bad.length ? `, ${bad.length} would fail` : ""}, nothing was changed\n` : `${rows.length - bad.length} ${opts.rollback ? "rolled back" : "deployed"}, ${bad.length} failed\n`);
  process.exit(bad.length ? Math.max(...bad.map((r) => r.exitCode)) || EXIT.failed : EXIT.ok);
}

main().catch((e) => {
  process.stderr.write(`deploy: unexpected error: ${(e as Error)?.message ?? e}\n`);
  process.exit(EXIT.failed);
});
