# The NixOS template: the same guest profile as every VM (UEFI, QEMU guest agent, cloud-init,
# serial console), the base profile and the inventory's users, and nothing baked in that is a
# secret: no password for console access (use SSH keys; see docs/troubleshooting.md).
# Its host name stays empty (nixpkgs proxmox-image.nix with cloud-init): each clone is named by
# cloud-init from its Proxmox VM name at first boot, and by NixOS from the inventory after.
{ fleet, ... }:
{
  fleet.registration.enable = fleet.template.registration or false;
}
