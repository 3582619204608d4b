/**
 * The tag every VM that holds data carries (inventory `stateful`): it lives in Proxmox, so a
 * plan's prior state says which VMs hold data even when the pull request removed their host
 * (scripts/plan-comment.ts reads it; constructs/nixos-vm.ts sets it).
 */
export const STATEFUL_TAG = "stateful";

/**
 * The construct id of a host stack's pool-leave resource (constructs/pool-leave.ts): the plan's
 * instances of `terraform_data.<this>` are VMs leaving a pool (scripts/lib/plan-comment.ts).
 */
export const POOL_LEAVE_ID = "pool_leave";
