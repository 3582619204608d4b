# Opt-in first-boot registration (template option): on its first boot a VM commits its host
# facts to the branch registration/<hostname> of the fleet repository on the CI/CD host.
{ config, lib, pkgs, fleet, ... }:
let
  cfg = config.fleet.registration;
in
{
  options.fleet.registration = {
    enable = lib.mkEnableOption "first-boot registration of this host in the CI/CD host's fleet repository";
    repository = lib.mkOption {
      type = lib.types.str;
      default = "git://tappaas-cicd/fleet.git";
      description = "Git URL the host pushes its facts to (branch registration/<hostname>).";
    };
  };

  config = lib.mkIf cfg.enable {
    systemd.services.fleet-registration = {
      description = "Register this host in the fleet repository (first boot only)";
      wantedBy = [ "multi-user.target" ];
      after = [ "network-online.target" ];
      wants = [ "network-online.target" ];
      unitConfig.ConditionPathExists = "!/var/lib/fleet-registration/done";
      path = [ pkgs.git pkgs.iproute2 pkgs.gawk pkgs.coreutils pkgs.hostname ];
      script = ''
        ${pkgs.runtimeShell} ${../scripts/register-host.sh} ${lib.escapeShellArg cfg.repository}
        touch /var/lib/fleet-registration/done
      '';
      serviceConfig = {
        Type = "oneshot";
        StateDirectory = "fleet-registration";
        Restart = "on-failure";
        RestartSec = "30s";
      };
    };
  };
}
