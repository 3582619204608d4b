/**
 * The reboot an apply leaves to the deploy (docs/adr-0019-provider-hands-off.md): the VMs carry
 * `reboot_after_update = false`, so a change Proxmox cannot apply to a running VM (cores, memory,
 * a PCI device, firmware; qemu-server keeps it under `pending`) waits. The host's deploy step runs
 * in the deploy order, one member of a quorum role at a time (docs/adr-0013-rolling-updates.md),
 * and reboots the VM through the API here when something is pending: after its cluster is whole,
 * never two members at once.
 */
import { DeployError, EXIT } from "./deploy-errors";
import { nodeOf, pendingKeys, pveAccess, rebootAndWait, vmStatus } from "./pve-api";

export interface PendingRebootSpec {
  readonly host: string;
  readonly vmid: number;
  readonly node: string;
  readonly quorum?: readonly unknown[];
}

/**
 * Reboots the host's VM when it holds pending configuration; `whole` first checks that the
 * host and (for a quorum member) its cluster are healthy. Returns whether it rebooted.
 */
export async function rebootForPending(spec: PendingRebootSpec, say: (m: string) => void, whole: () => Promise<void>, shutdownSeconds = 300): Promise<boolean> {
  const access = pveAccess();
  if (typeof access === "string") {
    say(`pending Proxmox changes not checked: ${access}; a change to cores, memory or devices applies at the VM's next reboot (qm reboot ${spec.vmid})`);
    return false;
  }
  const fail = (e: unknown): never => {
    throw new DeployError(`could not apply the VM's pending changes: ${(e as Error).message}`, EXIT.failed, `reboot it from Proxmox (qm reboot ${spec.vmid}) or fix the API access, then deploy again`);
  };
  let node: string;
  let keys: string[];
  try {
    node = (await nodeOf(access, spec.vmid)) ?? spec.node;
    keys = await pendingKeys(access, node, spec.vmid);
    if (!keys.length) return false;
    if ((await vmStatus(access, node, spec.vmid)) !== "running") {
      say(`VM ${spec.vmid} is not running: its pending ${keys.join(", ")} apply when it starts`);
      return false;
    }
  } catch (e) {
    return fail(e);
  }
  if (spec.quorum?.length) say(`pending ${keys.join(", ")}: checking that the cluster is whole before taking this member down`);
  try {
    await whole();
  } catch (e) {
    throw new DeployError(`not rebooting VM ${spec.vmid} for its pending ${keys.join(", ")}: ${(e as Error).message}`, EXIT.failed, "bring the host (and its cluster) back to health, then deploy again");
  }
  say(`rebooting VM ${spec.vmid} on ${node!} to apply pending ${keys.join(", ")}`);
  try {
    await rebootAndWait(access, node!, spec.vmid, shutdownSeconds);
  } catch (e) {
    fail(e);
  }
  return true;
}
