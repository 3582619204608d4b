/**
 * Taking a stateful host out of the fleet without losing it (docs/adr-0019-provider-hands-off.md).
 *
 * Removing a host from the inventory removes its VM resource, and `prevent_destroy` with it: the
 * plan destroys the VM, and the real provider shuts it down before Proxmox refuses to delete a
 * protected VM (bpg v0.112.0 proxmoxtf/resource/vm/vm.go vmDelete; qemu-server
 * src/PVE/API2/Qemu.pm destroy_vm "can't remove VM N - protection mode enabled"): an outage, and
 * every later apply tries again. So:
 *  - every host stack reads the stateful VMs Proxmox has (data proxmox_virtual_environment_vms,
 *    tags nixos + stateful) and its plan fails, before anything is changed, when one of them is
 *    neither a host nor a retired host of the inventory; the error says what to do;
 *  - a host moved to `retired` is forgotten by Terraform (`removed` blocks with destroy = false,
 *    OpenTofu >= 1.7 and Terraform >= 1.7): the VM keeps running, protected, unmanaged;
 *  - to destroy one: `"stateful": false` first (protection, prevent_destroy and the tag go in that
 *    apply), then remove the host (the next apply destroys it): two reviewed changes.
 */
import { Construct } from "constructs";
import { TerraformLocal, TerraformStack } from "cdktn";
import { DataProxmoxVirtualEnvironmentVms } from "../.gen/providers/proxmox/data-proxmox-virtual-environment-vms";
import type { Inventory } from "./inventory";
import { STATEFUL_TAG } from "./markers";

/**
 * The Terraform name the resource at `path` below the stack gets (e.g. <host>_nixos_vm_<hash>):
 * plain constructs at the same path (they synthesize nothing; a retired name is no host's name,
 * parseInventory checks) hashed by the stack as it hashed the real resource.
 */
function logicalId(stack: TerraformStack, path: readonly string[]): string {
  let c: Construct = stack;
  for (const id of path) c = (c.node.tryFindChild(id) as Construct | undefined) ?? new Construct(c, id);
  // protected in the typings; the same call getLogicalId makes for every element
  return (stack as unknown as { allocateLogicalId(n: unknown): string }).allocateLogicalId(c.node);
}

/** `removed` blocks for the retired hosts' VMs and deploy steps (a no-op where the state has none). */
export function forgetRetired(stack: TerraformStack, inv: Inventory): void {
  const blocks = (inv.retired ?? []).flatMap((r) => [
    { from: `proxmox_virtual_environment_vm.${logicalId(stack, [r.name, "nixos", "vm"])}`, lifecycle: { destroy: false } },
    { from: `terraform_data.${logicalId(stack, [r.name, "deploy", "step"])}`, lifecycle: { destroy: false } },
  ]);
  if (blocks.length) stack.addOverride("removed", blocks);
}

/** Fails the stack's plan when Proxmox has a stateful fleet VM that the inventory neither lists nor retires. */
export class StatefulGuard extends Construct {
  constructor(scope: Construct, id: string, inv: Inventory) {
    super(scope, id);
    const known = new TerraformLocal(this, "fleet_vmids", [...inv.hosts.map((h) => h.vmid), ...(inv.retired ?? []).map((r) => r.vmid)].sort((a, b) => a - b));
    const ds = new DataProxmoxVirtualEnvironmentVms(this, "stateful", { tags: ["nixos", STATEFUL_TAG] });
    const vms = `(self.vms == null ? [] : self.vms)`;
    const unknown = `[for v in ${vms} : "${"${v.name}"} (VMID ${"${v.vm_id}"} on ${"${v.node_name}"})" if !contains(local.${known.friendlyUniqueId}, v.vm_id)]`;
    ds.addOverride("lifecycle.postcondition", [
      {
        condition: `\${length(${unknown}) == 0}`,
        error_message:
          `stateful VM(s) \${join(", ", ${unknown})} are in Proxmox but not in the inventory: nothing was changed. ` +
          `To keep one running but no longer managed, add {"name": "<host>", "vmid": <vmid>} to "retired" in fleet.json; ` +
          `to destroy it, put its host back with "stateful": false, deploy, then remove it (docs/adr-0019-provider-hands-off.md).`,
      },
    ]);
  }
}
