# The NixOS template: the same guest profile as every VM (UEFI, QEMU guest agent, cloud-init,
# serial console), the base profile and the inventory's users, and nothing baked in that is a
# secret: no password for console access (use SSH keys; see docs/troubleshooting.md).
{ lib, fleet, ... }:
{
  networking.hostName = lib.mkDefault "nixos-template";
  fleet.registration.enable = fleet.template.registration or false;
}
