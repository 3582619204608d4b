/**
 * The resource pools the hosts name, made by the cluster stack before any host stack runs (a
 * clone into a missing pool fails: qemu-server PVE/API2/Qemu.pm clone_vm checks the pool first),
 * and deleted only once empty (docs/adr-0019-provider-hands-off.md, M9).
 *
 * Proxmox refuses to delete a pool that still has a member ("delete pool failed: pool 'ai' is not
 * empty (contains VM 8201)", pve-manager PVE/API2/Pool.pm 501-532 at 14a22df, the prefix from
 * pve-access-control AccessControl.pm lock_user_config). The cluster stack is applied before the
 * host stacks, so when the last host of a pool leaves it (removed, or its `pool` cleared) the pool
 * still holds that VM at the cluster stack's apply. So the pools are one resource with for_each:
 * every pool of the inventory, and every pool this project made (its comment) that still has a
 * member. Such a pool is deleted by the first apply after it is empty.
 */
import { Construct } from "constructs";
import { TerraformStack } from "cdktn";
import { VirtualEnvironmentPool } from "../.gen/providers/proxmox/virtual-environment-pool";
import { DataProxmoxVirtualEnvironmentPools } from "../.gen/providers/proxmox/data-proxmox-virtual-environment-pools";
import { DataProxmoxVirtualEnvironmentPool } from "../.gen/providers/proxmox/data-proxmox-virtual-environment-pool";
import type { Inventory } from "./inventory";

/** The comment every pool this project makes carries: how a kept pool is told from an operator's. */
export const POOL_COMMENT = "managed by cdktf (proxmox-nixos-fleet)";

export class FleetPools extends Construct {
  /** The pools of the inventory, sorted. */
  readonly ids: string[];
  /** The pool resource (for_each over the pool ids). */
  readonly resource: VirtualEnvironmentPool;

  constructor(scope: TerraformStack, id: string, inv: Inventory) {
    super(scope, id);
    this.ids = [...new Set(inv.hosts.flatMap((h) => (h.pool ? [h.pool] : [])))].sort();
    const list = new DataProxmoxVirtualEnvironmentPools(this, "existing");
    const each = new DataProxmoxVirtualEnvironmentPool(this, "existing_pool", { poolId: "${each.value}" });
    each.addOverride("for_each", `\${toset(data.${list.terraformResourceType}.${list.friendlyUniqueId}.pool_ids)}`);
    const kept = `[for id, p in data.${each.terraformResourceType}.${each.friendlyUniqueId} : id if p.comment == ${JSON.stringify(POOL_COMMENT)} && length(p.members) > 0]`;
    this.resource = new VirtualEnvironmentPool(this, "pool", { poolId: "${each.key}", comment: POOL_COMMENT });
    this.resource.addOverride("for_each", `\${setunion(${JSON.stringify(this.ids)}, ${kept})}`);
    // The pools were one resource each (cluster/pool-<id>) before: their state moves, nothing is made again.
    if (this.ids.length)
      scope.addOverride(
        "moved",
        this.ids.map((p) => ({ from: `${this.resource.terraformResourceType}.pool-${p}`, to: `${this.resource.terraformResourceType}.${this.resource.friendlyUniqueId}[${JSON.stringify(p)}]` })),
      );
  }
}
