# Base profile for every fleet host: flakes, key-only OpenSSH without root login, firewall on,
# time zone and locale from the inventory.
{ lib, fleet, ... }:
{
  nix.settings = {
    experimental-features = [ "nix-command" "flakes" ];
    # nixos-rebuild --target-host copies closures as the admin user.
    trusted-users = [ "root" "@wheel" ];
    # Binary caches from the inventory (`nix.substituters`, `nix.trustedPublicKeys`), e.g. a
    # CUDA cache so vLLM hosts do not build torch from source.
    extra-substituters = fleet.nix.substituters;
    extra-trusted-public-keys = fleet.nix.trustedPublicKeys;
  };
  nix.gc = { automatic = true; dates = "weekly"; options = "--delete-older-than 30d"; };

  services.openssh = {
    enable = true;
    # the port the deploy connects to (inventory deploy.sshPort); openFirewall opens it
    ports = [ (fleet.deploy.sshPort or 22) ];
    openFirewall = true;
    settings = {
      PasswordAuthentication = false;
      KbdInteractiveAuthentication = false;
      PermitRootLogin = "no";
    };
  };

  networking.firewall.enable = true;
  time.timeZone = fleet.cluster.timeZone or "UTC";
  i18n.defaultLocale = fleet.cluster.locale or "en_US.UTF-8";

  # Deploys run `nixos-rebuild --sudo` over key-only SSH as an admin user: no password exists to type.
  security.sudo.wheelNeedsPassword = false;

  system.stateVersion = lib.mkDefault "26.05";
}
