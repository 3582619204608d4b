# Secrets on the host (docs/adr-0014-secrets.md). The deploy copies the host's encrypted files
# (age, encrypted to this host's SSH host key) to /var/lib/fleet-secrets and decrypts them before
# switching; this module decrypts them again at every activation (boot included: /run is a
# tmpfs), as agenix does, with the same script. Each role that consumes secrets gets
# /run/fleet-secrets/<role>.env (root:root 0400; systemd reads EnvironmentFile= as root before
# it drops privileges), which lib/host-module.nix points the role's environmentFile at. Nothing
# secret is in the Nix store: only names, paths and the script are.
{ config, lib, pkgs, host ? null, ... }:
let
  cfg = config.fleet.secrets;
  # The argument format of scripts/fleet-secrets.sh (constructs/secrets.ts secretSpecArg builds the same).
  specArg = f: "${f.file}:" + lib.concatMapStringsSep "," (e: "${e.var}=${e.secret}*${toString e.times}${lib.optionalString e.optional "?"}") f.entries;
in
{
  options.fleet.secrets = {
    envFiles = lib.mkOption {
      type = lib.types.listOf (lib.types.submodule {
        options = {
          role = lib.mkOption { type = lib.types.str; description = "Role whose service reads the file."; };
          file = lib.mkOption { type = lib.types.strMatching "[a-z0-9-]+\\.env"; description = "File name below runDir."; };
          entries = lib.mkOption {
            type = lib.types.listOf (lib.types.submodule {
              options = {
                var = lib.mkOption { type = lib.types.strMatching "[A-Z_][A-Z0-9_]*"; description = "Environment variable."; };
                secret = lib.mkOption { type = lib.types.strMatching "[a-z0-9][a-z0-9-]*"; description = "Secret name (secrets/<name>.age)."; };
                times = lib.mkOption { type = lib.types.ints.positive; default = 1; description = "Copies of the value, joined with ';'."; };
                optional = lib.mkOption { type = lib.types.bool; default = false; description = "Leave the variable out when the secret does not exist."; };
              };
            });
            description = "Variables of the file.";
          };
        };
      });
      default = if host == null then [ ] else host.secretEnvFiles;
      defaultText = lib.literalExpression "the inventory host's secretEnvFiles (lib/secrets.json)";
      description = "Environment files decrypted into runDir at activation.";
    };
    storeDir = lib.mkOption { type = lib.types.str; default = "/var/lib/fleet-secrets"; description = "Where the deploy puts the encrypted files."; };
    runDir = lib.mkOption { type = lib.types.str; default = "/run/fleet-secrets"; description = "Where the decrypted environment files live (tmpfs)."; };
    identity = lib.mkOption { type = lib.types.str; default = "/etc/ssh/ssh_host_ed25519_key"; description = "The host's SSH host key: the age identity the files are encrypted to."; };
    command = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      readOnly = true;
      default = [ cfg.storeDir cfg.runDir cfg.identity ] ++ map specArg cfg.envFiles;
      description = "Arguments of scripts/fleet-secrets.sh (what the deploy passes too).";
    };
  };

  config = {
    # The deploy runs `age` on the host before it switches, so every host (the template too) has it.
    environment.systemPackages = [ pkgs.age ];
    system.activationScripts.fleetSecrets = lib.mkIf (cfg.envFiles != [ ]) {
      # after /run is mounted (nixpkgs activation-script.nix, "specialfs"), before units start.
      # No `|| _localstatus=$?`: a failure must reach the activation's status. activation-script.nix
      # sets `_status=1` only from its ERR trap, which a command in an `||` list never fires; the
      # script then exits 0 and a rollback that cannot decrypt the old role's secrets looks fine.
      # Unguarded, the trap records it: the activate script exits 1, switch-to-configuration 2.
      deps = [ "specialfs" ];
      text = ''
        PATH=${lib.makeBinPath [ pkgs.age pkgs.coreutils ]}:$PATH ${pkgs.bash}/bin/bash ${../scripts/fleet-secrets.sh} ${lib.escapeShellArgs cfg.command}
      '';
    };
  };
}
