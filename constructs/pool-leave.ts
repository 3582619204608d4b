/**
 * A VM leaves the pool its host no longer names (docs/adr-0019-provider-hands-off.md, M9).
 *
 * bpg never takes a VM out of a pool: clearing `pool_id` is a suppressed diff (v0.112.0
 * proxmoxtf/resource/vm/vm.go 1342-1350), so the VM's state keeps the old pool and Proxmox keeps
 * the VM in it. One terraform_data per host stack, for_each over its cloned hosts without a pool
 * (an adopted VM's pool is the operator's): an instance is made when such a host appears, with
 * the pool the VM's state still names, and its local-exec runs `deploy --leave-pool` when that
 * pool is not empty (scripts/lib/pool-leave.ts). `input` is ignored after creation, so the plan
 * stays empty once the VM is out; putting the pool back removes the instance (nothing runs).
 */
import { DataResource, TerraformStack } from "cdktn";
import { DEFAULT_DEPLOY_COMMAND } from "./deploy-step";
import { POOL_LEAVE_ID } from "./markers";

export const LEAVE_POOL_ENV = "FLEET_LEAVE_POOL";
export const LEAVE_VMID_ENV = "FLEET_LEAVE_VMID";
/** What the instances run unless told otherwise: the deploy command's --leave-pool mode. */
export const DEFAULT_LEAVE_POOL_COMMAND = DEFAULT_DEPLOY_COMMAND.replace(/ --from-env$/, " --leave-pool");

export interface PoolLeaveProps {
  /** Host name -> Terraform address of its VM resource ("proxmox_virtual_environment_vm.<id>"). */
  readonly vms: [string, string][];
  /** @default DEFAULT_LEAVE_POOL_COMMAND */
  readonly command?: string;
  /** Relative to the stack's directory. @default "../../.." */
  readonly workingDir?: string;
}

export function poolLeave(stack: TerraformStack, props: PoolLeaveProps): DataResource | undefined {
  if (!props.vms.length) return undefined;
  const map = props.vms.map(([host, address]) => `${JSON.stringify(host)} = ${address}`).join(", ");
  const r = new DataResource(stack, POOL_LEAVE_ID, {
    lifecycle: { ignoreChanges: ["input"] },
    provisioners: [
      {
        type: "local-exec",
        // the pool is empty for a host made without one: nothing to run
        command: `test -z "$${LEAVE_POOL_ENV}" || ${props.command ?? DEFAULT_LEAVE_POOL_COMMAND}`,
        workingDir: props.workingDir ?? "../../..",
        environment: { [LEAVE_POOL_ENV]: "${self.input.pool}", [LEAVE_VMID_ENV]: "${self.input.vmid}" },
      },
    ],
  });
  // a VM being made has pool_id null in the plan and "" after the apply: both are "no pool"
  r.addOverride("input", "${each.value}");
  r.addOverride("for_each", `\${{ for host, vm in { ${map} } : host => { pool = vm.pool_id == null ? "" : vm.pool_id, vmid = vm.vm_id } }}`);
  return r;
}
