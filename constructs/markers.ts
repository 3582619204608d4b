/**
 * The tag every VM that holds data carries (inventory `stateful`): it lives in Proxmox, so a
 * plan's prior state says which VMs hold data even when the pull request removed their host
 * (scripts/plan-comment.ts reads it; constructs/nixos-vm.ts sets it).
 */
export const STATEFUL_TAG = "stateful";
