# Builds the NixOS module of one platform service. Each service file calls it:
#   import ./lib.nix { name = "iam"; description = "..."; }
# Ports and dependencies come from the role table (lib/roles.json via lib/roles.nix), shared with
# the TypeScript side, so they cannot drift: the
# role's "api" port becomes the option `port`, every other port `<name>Port` (raftPort,
# gossipPort, dnsPort).
# Options: services.<name>.{enable, package, port (+ extra ports), dataDir, settings, openFirewall}.
# The unit orders itself after the services it depends on when they run on the same host
# (after + requires); across hosts, the deploy steps run in dependency order instead.
{ name, description, udpPorts ? [ ] }:
{ config, lib, pkgs, platformPackages ? { }, ... }:
let
  role = (import ../../lib/roles.nix).${name};
  dependsOn = role.requires;
  optionName = p: if p == "api" then "port" else "${p}Port";
  # option name -> default port
  ports = lib.mapAttrs' (p: v: lib.nameValuePair (optionName p) v) role.ports;
  cfg = config.services.${name};
  format = pkgs.formats.toml { };
  localDeps = builtins.filter (d: (config.services.${d}.enable or false)) dependsOn;
  portValues = map (p: cfg.${p}) (builtins.attrNames ports);
  # config.toml keys are snake_case throughout: data_dir, port, raft_port, gossip_port, dns_port.
  tomlKey = o: if o == "port" then "port" else lib.toLower (builtins.substring 0 (builtins.stringLength o - 4) o) + "_port";
  configFile = format.generate "${name}.toml" (lib.recursiveUpdate
    ({ data_dir = cfg.dataDir; } // lib.mapAttrs' (p: _: lib.nameValuePair (tomlKey p) cfg.${p}) ports)
    cfg.settings);
  # Peer ports (Raft, gossip) are the cluster's own: the fleet opens them to the members only
  # (lib/host-module.nix); openFirewall opens the others (api, dns).
  clientPorts = builtins.filter (p: !(builtins.elem p [ "raftPort" "gossipPort" ])) (builtins.attrNames ports);
in
{
  options.services.${name} = {
    enable = lib.mkEnableOption description;
    package = lib.mkOption {
      type = lib.types.nullOr lib.types.package;
      # the platform flake's package names (seed 004: <name>-server); an older flake's <name> too
      default = platformPackages."${name}-server" or platformPackages.${name} or null;
      defaultText = lib.literalExpression "inputs.platform.packages.\${system}.${name}-server";
      description = "Package providing the ${name} executable (from the platform services' flake input).";
    };
    dataDir = lib.mkOption {
      type = lib.types.path;
      default = "/var/lib/${name}";
      description = "State directory of ${name} (created with mode 0750).";
    };
    settings = lib.mkOption {
      type = format.type;
      default = { };
      description = "Freeform settings rendered to /etc/${name}/config.toml (merged over data_dir and the ports).";
    };
    openFirewall = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = "Open the service's client ports (api, dns) in the firewall; Raft and gossip ports are the cluster's (the fleet opens them to the members only).";
    };
    environmentFile = lib.mkOption {
      type = lib.types.nullOr lib.types.path;
      default = null;
      description = "File with the service's credentials (FLEET_SERVICE_CREDENTIAL=...), kept out of the Nix store; the fleet sets it to /run/fleet-secrets/${name}.env.";
    };
  } // lib.mapAttrs
    (p: default: lib.mkOption {
      type = lib.types.port;
      inherit default;
      description = "${name}: ${p}.";
    })
    ports;

  config = lib.mkIf cfg.enable {
    assertions = [{
      assertion = cfg.package != null;
      message = "services.${name}.package is not set: point the flake input `platform` at the platform services' flake (packages.<system>.${name}-server), or set the package.";
    }];
    users.users.${name} = { isSystemUser = true; group = name; home = cfg.dataDir; };
    users.groups.${name} = { };
    environment.etc."${name}/config.toml".source = configFile;
    systemd.tmpfiles.rules = lib.mkIf (cfg.dataDir != "/var/lib/${name}") [ "d ${cfg.dataDir} 0750 ${name} ${name} -" ];

    systemd.services.${name} = {
      description = description;
      wantedBy = [ "multi-user.target" ];
      after = [ "network-online.target" ] ++ map (d: "${d}.service") localDeps;
      requires = map (d: "${d}.service") localDeps;
      wants = [ "network-online.target" ];
      restartTriggers = [ configFile ];
      serviceConfig = {
        ExecStart = "${lib.getExe cfg.package} --config /etc/${name}/config.toml";
        EnvironmentFile = lib.mkIf (cfg.environmentFile != null) cfg.environmentFile;
        User = name;
        Group = name;
        # the default dataDir is systemd's StateDirectory; another one is made by tmpfiles below
        # (ReadWritePaths on a path that does not exist fails the unit's namespace setup)
        StateDirectory = name;
        StateDirectoryMode = "0750";
        ReadWritePaths = [ cfg.dataDir ];
        Restart = "on-failure";
        RestartSec = "5s";
        AmbientCapabilities = lib.optional (builtins.any (p: p < 1024) portValues) "CAP_NET_BIND_SERVICE";
        NoNewPrivileges = true;
        PrivateTmp = true;
        ProtectSystem = "strict";
        ProtectHome = true;
      };
    };

    networking.firewall.allowedTCPPorts = lib.mkIf cfg.openFirewall (map (p: cfg.${p}) clientPorts);
    networking.firewall.allowedUDPPorts = lib.mkIf cfg.openFirewall (map (p: cfg.${optionName p}) udpPorts);
  };
}
