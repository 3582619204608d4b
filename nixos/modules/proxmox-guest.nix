# Proxmox guest profile shared by the template and every VM cloned from it: QEMU guest
# (virtio drivers), the QEMU guest agent (a clone inherits the agent setting, and an enabled
# agent that is not running makes the provider wait for minutes), serial console, cloud-init,
# growing the root partition, root by label. Because every VM is a clone of the same image,
# no per-host hardware-configuration.nix is needed (docs/adr-0004-no-hardware-config.md).
{ lib, modulesPath, host ? null, fleet, ... }:
let
  static = host != null && host.address != null;
in
{
  imports = [
    (modulesPath + "/profiles/qemu-guest.nix")
    # Root filesystem by label "nixos", EFI system partition, boot loader, and the VMA builder.
    (modulesPath + "/virtualisation/proxmox-image.nix")
  ];

  proxmox.qemuConf = {
    bios = "ovmf";
    scsihw = "virtio-scsi-single";
    agent = true;
    cores = fleet.template.cores or 4;
    memory = fleet.template.memoryMiB or 8192;
    name = fleet.template.name or "nixos-template";
    # The image's disk is virtio0 (nixpkgs proxmox-image.nix maps the VMA to drive-virtio0).
    # Boot from it explicitly: PVE marks only listed devices bootable, and clones keep this
    # order even where the provider does not apply boot_order on clone (bpg issue #850).
    boot = "order=virtio0";
  };
  proxmox.qemuExtraConf = {
    machine = "q35";
    cpu = "host";
    serial0 = "socket";
    vga = "serial0";
  };
  proxmox.partitionTableType = "efi";
  proxmox.cloudInit.enable = true;

  services.qemuGuest.enable = true;
  boot.growPartition = true;
  boot.kernelParams = [ "console=tty0" "console=ttyS0,115200n8" ];

  # Who owns what (docs/adr-0010-nixos-owns-names-and-static-addresses.md):
  # - cloud-init, from the Proxmox drive: the first boot of a clone (user keys, a hostname until
  #   the first deploy) and the whole network of DHCP hosts.
  # - NixOS, from the inventory: the host name of every fleet host and the network of static
  #   hosts. nixpkgs' proxmox-image.nix (imported above) sets services.cloud-init.network.enable
  #   = true and networking.hostName = mkForce "" when proxmox.cloudInit.enable is on; for a
  #   fleet host both are overridden here, with the priorities that outrank those definitions.
  services.cloud-init.enable = true;
  services.cloud-init.network.enable = lib.mkIf static (lib.mkForce false);
  networking.useNetworkd = true;
  networking.hostName = lib.mkIf (host != null) (lib.mkOverride 40 host.name);
  # The template keeps the empty name proxmox-image gives it (cloud-init names each clone at
  # first boot), and so no domain: networking.fqdn needs both.
  networking.domain = lib.mkIf (host != null && (fleet.cluster.domain or null) != null) fleet.cluster.domain;

  # `network.enable = false` only leaves networkd to NixOS (nixpkgs cloud-init.nix); cloud-init
  # still renders the Proxmox drive's network into /etc/systemd/network/10-cloud-init-<if>.network
  # on first boot, which would sort before ours and stay (issue #27 M4). So for a static host:
  # cloud.cfg says `network: {config: disabled}` (cloud-init's switch for rendering no network
  # config), a file cloud-init rendered before is removed at every boot and activation (tmpfiles
  # "r" takes globs), and ours is named to sort first anyway.
  services.cloud-init.settings.network = lib.mkIf static { config = "disabled"; };
  systemd.tmpfiles.rules = lib.mkIf static [ "r /etc/systemd/network/10-cloud-init-*.network" ];

  # A static address from the inventory is owned by NixOS, so activating a new address moves
  # the host (the deploy script follows it).
  systemd.network.networks."05-fleet-static" = lib.mkIf static {
    matchConfig.Name = "en* eth*";
    address = [ "${host.address}/${toString host.prefixLength}" ];
    gateway = lib.optional (host.gateway != null) host.gateway;
    dns = host.dns;
    domains = lib.optional ((fleet.cluster.domain or null) != null) fleet.cluster.domain;
  };
}
