# STAND-IN for the platform services' flake with exactly the outputs the platform packaging spec
# defines (seed 004, ../shared/seeds/004_e0363c8059f44c13.txt): packages <name>-server for the
# eight services plus `default`, nixosModules.default (and .plasmacloud, the same), overlays.default.
# Its modules declare what seed 004 lists, services.<name>.{enable, port, dataDir, settings
# (freeform), package}, with raftPort/gossipPort for chainfire and flaredb and dnsPort for
# flashdns; a user and group, a unit ordered after (and requiring) the services it depends on when
# they run on the same host, StateDirectory 0750, NoNewPrivileges/PrivateTmp/ProtectSystem/
# ProtectHome. The seed gives no types or defaults: ports are `types.port` without a default (the
# host must set them), settings TOML's freeform type, the package the overlay's <name>-server.
{ lib, drv }:
let
  names = [ "chainfire" "flaredb" "iam" "plasmavmc" "novanet" "flashdns" "fiberlb" "lightningstor" ];
  extraPorts = { chainfire = [ "raftPort" "gossipPort" ]; flaredb = [ "raftPort" "gossipPort" ]; flashdns = [ "dnsPort" ]; };
  # seed 004: "chainfire: no deps", "flaredb: requires chainfire.service", "iam: requires
  # flaredb.service", the other five "require iam.service + flaredb.service"
  deps = { chainfire = [ ]; flaredb = [ "chainfire" ]; iam = [ "flaredb" ]; } // lib.genAttrs [ "plasmavmc" "novanet" "flashdns" "fiberlb" "lightningstor" ] (_: [ "iam" "flaredb" ]);
  packages = lib.genAttrs (map (n: "${n}-server") names) drv;
  module = name: { config, lib, pkgs, ... }:
    let
      cfg = config.services.${name};
      local = builtins.filter (d: config.services.${d}.enable or false) deps.${name};
    in
    {
      options.services.${name} = {
        enable = lib.mkEnableOption name;
        port = lib.mkOption { type = lib.types.port; };
        dataDir = lib.mkOption { type = lib.types.path; default = "/var/lib/${name}"; };
        settings = lib.mkOption { type = (pkgs.formats.toml { }).type; default = { }; };
        package = lib.mkOption { type = lib.types.package; default = pkgs."${name}-server"; };
      } // lib.genAttrs (extraPorts.${name} or [ ]) (_: lib.mkOption { type = lib.types.port; });
      config = lib.mkIf cfg.enable {
        users.users.${name} = { isSystemUser = true; group = name; };
        users.groups.${name} = { };
        systemd.services.${name} = {
          wantedBy = [ "multi-user.target" ];
          after = map (d: "${d}.service") local;
          requires = map (d: "${d}.service") local;
          serviceConfig = {
            ExecStart = "${lib.getExe cfg.package} --config /etc/${name}/config.toml";
            User = name;
            Group = name;
            StateDirectory = name;
            StateDirectoryMode = "0750";
            NoNewPrivileges = true;
            PrivateTmp = true;
            ProtectSystem = "strict";
            ProtectHome = true;
          };
        };
      };
    };
  self = {
    packages.x86_64-linux = packages // { default = drv "plasmacloud-all"; };
    nixosModules.default = { imports = map module names; };
    nixosModules.plasmacloud = self.nixosModules.default;
    overlays.default = final: prev: packages;
  };
in
self
