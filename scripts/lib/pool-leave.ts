/**
 * Takes a VM out of the pool its host no longer names (docs/adr-0019-provider-hands-off.md, M9).
 *
 * bpg never does: clearing `pool_id` is suppressed (v0.112.0 proxmoxtf/resource/vm/vm.go
 * 1342-1350, DiffSuppressFunc `newVal == "" && oldVal != ""`; vmUpdatePool 5852-5901 returns
 * early for it), so the VM would stay in the pool, and the pool could never be deleted. Each host
 * stack runs this once when a host loses its pool (constructs/pool-leave.ts):
 * `PUT /pools?poolid=<pool>` with `vms=<vmid>` and `delete=1` (pve-manager PVE/API2/Pool.pm
 * 321-378 at 14a22df; needs Pool.Allocate on /pool/<pool> and VM.Allocate on /vms/<vmid>).
 * Proxmox's refusals that mean "already out" are success: "VM N is not a pool member", "pool 'P'
 * does not exist" (both prefixed "update pools failed: ").
 */
import { PveAccess, pveCall, PveApiError } from "./pve-api";

export type LeaveResult = "left" | "not a member";

export async function leavePool(a: PveAccess, pool: string, vmid: number): Promise<LeaveResult> {
  try {
    await pveCall(a, "PUT", `/pools?${new URLSearchParams({ poolid: pool })}`, { vms: String(vmid), delete: "1" });
    return "left";
  } catch (e) {
    if (e instanceof PveApiError && (e.message.includes(`VM ${vmid} is not a pool member`) || e.message.includes(`pool '${pool}' does not exist`))) return "not a member";
    throw e;
  }
}
