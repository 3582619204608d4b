# CI/CD git host: bare repositories for the fleet configuration, served to the admin users over
# SSH (git-shell), with a server-side hook that refuses non-fast-forward pushes to the protected
# branch. With registration on, git daemon accepts anonymous pushes to registration/* only.
{ config, lib, pkgs, fleet, ... }:
let
  cfg = config.fleet.cicd;
  hook = pkgs.writeShellScript "fleet-git-update-hook" (builtins.readFile ../../scripts/git-update-hook.sh);
in
{
  options.fleet.cicd = {
    enable = lib.mkEnableOption "the CI/CD git host";
    repositories = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [ "fleet" ];
      description = "Bare repositories to create under baseDir (name without .git).";
    };
    baseDir = lib.mkOption {
      type = lib.types.path;
      default = "/srv/git";
      description = "Directory holding the bare repositories; home of the git user.";
    };
    protectedBranch = lib.mkOption {
      type = lib.types.str;
      default = "main";
      description = "Branch that only accepts fast-forward pushes and cannot be deleted.";
    };
    authorizedKeys = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = lib.concatMap (u: u.sshKeys) fleet.users;
      defaultText = lib.literalExpression "every inventory user's public keys";
      description = "Public keys allowed to push over SSH as the git user.";
    };
    registration.enable = lib.mkOption {
      type = lib.types.bool;
      default = fleet.template.registration or false;
      description = "Run git daemon (port 9418) accepting anonymous pushes to registration/* branches only.";
    };
  };

  config = lib.mkIf cfg.enable {
    users.users.git = {
      isSystemUser = true;
      group = "git";
      home = cfg.baseDir;
      createHome = true;
      shell = "${pkgs.git}/bin/git-shell";
      openssh.authorizedKeys.keys = cfg.authorizedKeys;
    };
    users.groups.git = { };
    environment.systemPackages = [ pkgs.git ];
    # sshd and NixOS only accept login shells listed here.
    environment.shells = [ "${pkgs.git}/bin/git-shell" ];

    systemd.services.fleet-git-repositories = {
      description = "Create the fleet's bare repositories and install their hooks";
      wantedBy = [ "multi-user.target" ];
      path = [ pkgs.git ];
      serviceConfig = { Type = "oneshot"; RemainAfterExit = true; User = "git"; Group = "git"; };
      script = lib.concatMapStrings (r: ''
        repo=${lib.escapeShellArg "${cfg.baseDir}/${r}.git"}
        [ -d "$repo" ] || git init -q --bare --initial-branch=${lib.escapeShellArg cfg.protectedBranch} "$repo"
        git -C "$repo" config fleet.protectedBranch ${lib.escapeShellArg cfg.protectedBranch}
        git -C "$repo" config receive.denyDeletes false
        ln -sfn ${hook} "$repo/hooks/update"
        touch "$repo/git-daemon-export-ok"
      '') cfg.repositories;
    };

    services.gitDaemon = lib.mkIf cfg.registration.enable {
      enable = true;
      basePath = cfg.baseDir;
      options = "--enable=receive-pack";
    };
    networking.firewall.allowedTCPPorts = lib.mkIf cfg.registration.enable [ 9418 ];
  };
}
