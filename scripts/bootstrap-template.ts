/**
 * First bootstrap of the NixOS template (opt-in: template.bootstrapImage in the inventory):
 *   nix build ./nixos#proxmox-template  ->  scp the VMA to the node  ->  qmrestore  ->  qm template
 * Skips everything when the VMID already exists on the node. Reads its input from
 * $FLEET_TEMPLATE_SPEC (set by the template's terraform_data step) or from the inventory.
 *
 *   node --import tsx scripts/bootstrap-template.ts [--from-env] [--dry-run]
 *
 * SSH to the node uses ssh-agent (or FLEET_SSH_KEY_FILE) as PROXMOX_VE_SSH_USERNAME (default
 * root) at FLEET_NODE_ADDRESS_<node> (default: the node name). No password is read or printed.
 */
import { $, minimist } from "zx";
import { existsSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { loadInventory, InventoryError } from "../constructs/inventory";
import { blockingStdio } from "./lib/stdio";

// output reaches a pipe whole before the process exits (scripts/lib/stdio.ts)
blockingStdio();

const ROOT = resolve(__dirname, "..");

interface TemplateSpec {
  vmid: number;
  node: string;
  storage: string;
  name: string;
}

function fail(message: string, code = 1): never {
  process.stderr.write(`bootstrap-template: ${message}\n`);
  process.exit(code);
}

async function main() {
  const args = minimist(process.argv.slice(2), { boolean: ["from-env", "dry-run", "help"], alias: { h: "help" } });
  if (args.help) {
    process.stdout.write("Usage: node --import tsx scripts/bootstrap-template.ts [--from-env] [--dry-run]\n");
    return;
  }
  let spec: TemplateSpec;
  if (args["from-env"]) {
    try {
      spec = JSON.parse(process.env.FLEET_TEMPLATE_SPEC ?? "");
    } catch {
      fail("$FLEET_TEMPLATE_SPEC is not set or not JSON (the template's bootstrap step sets it)", 2);
    }
  } else {
    try {
      const inv = loadInventory();
      spec = { vmid: inv.template.vmid, node: inv.template.node, storage: inv.cluster.storage, name: inv.template.name ?? "nixos-template" };
    } catch (e) {
      if (e instanceof InventoryError) fail(`the inventory is not usable:\n${e.message}`, 2);
      throw e;
    }
  }
  const user = process.env.PROXMOX_VE_SSH_USERNAME?.replace(/@.*/, "") || "root";
  const address = process.env[`FLEET_NODE_ADDRESS_${spec.node.replace(/-/g, "_")}`] || spec.node;
  const sshOpts = ["-o", "BatchMode=yes", ...(process.env.FLEET_SSH_KEY_FILE ? ["-i", process.env.FLEET_SSH_KEY_FILE, "-o", "IdentitiesOnly=yes"] : [])];
  const target = `${user}@${address}`;
  const remoteFile = `/var/lib/vz/dump/vzdump-qemu-${spec.vmid}-nixos-template.vma.zst`;
  const say = (m: string) => process.stdout.write(`[template ${spec.vmid}] ${m}\n`);

  if (args["dry-run"]) {
    say(`would run: nix build ${ROOT}/nixos#proxmox-template --out-link ${ROOT}/.bootstrap/template`);
    say(`would run: ssh ${target} qm status ${spec.vmid}   (skip the rest if it exists)`);
    say(`would run: scp <vma> ${target}:${remoteFile}`);
    say(`would run: ssh ${target} qmrestore ${remoteFile} ${spec.vmid} --storage ${spec.storage} --unique 1 && qm set ${spec.vmid} --name ${spec.name} && qm template ${spec.vmid}`);
    return;
  }

  const exists = await $({ nothrow: true, quiet: true })`ssh ${sshOpts} ${target} qm status ${spec.vmid}`;
  if (exists.exitCode === 0) return say(`VMID ${spec.vmid} already exists on ${spec.node}: nothing to do`);

  say("building the VMA image (nix build .#proxmox-template)");
  const out = join(ROOT, ".bootstrap", "template");
  const build = await $({ nothrow: true, cwd: ROOT })`nix build ${`${ROOT}/nixos#proxmox-template`} --out-link ${out}`;
  if (build.exitCode !== 0) fail("nix build failed; see docs/troubleshooting.md (build) and retry with `cdktf deploy cluster`");
  const vma = existsSync(out) ? readdirSync(out).find((f) => f.endsWith(".vma.zst")) : undefined;
  if (!vma) fail(`no .vma.zst in ${out}`);

  say(`uploading ${vma} to ${spec.node}`);
  if ((await $({ nothrow: true })`scp ${sshOpts} ${join(out, vma)} ${`${target}:${remoteFile}`}`).exitCode !== 0) fail(`scp to ${target} failed; check SSH access to the node`);
  say(`restoring as VMID ${spec.vmid} on ${spec.storage} and converting to a template`);
  const restore = await $({ nothrow: true })`ssh ${sshOpts} ${target} ${`qmrestore ${remoteFile} ${spec.vmid} --storage ${spec.storage} --unique 1 && qm set ${spec.vmid} --name ${spec.name} && qm template ${spec.vmid} && rm -f ${remoteFile}`}`;
  if (restore.exitCode !== 0) fail(`qmrestore/qm template failed on ${spec.node}; the VMA is left at ${remoteFile}`);
  say("template ready");
}

main().catch((e) => fail(`unexpected error: ${(e as Error)?.message ?? e}`));
