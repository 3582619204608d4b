# STAND-IN helper (used by __tests__/stand-ins/bin/nixos-rebuild): the activation snippets a
# host's configuration contributes to its activate script, evaluated with the real module
# (nixos/modules/secrets.nix), the real inventory reading (nixos/lib/inventory.nix) and the real
# nixpkgs lib (the kit); pkgs are Debian's (/usr: bash, age, coreutils). Returns { <name> = text; }.
{ kit, nixosDir, fleetFile, host }:
let
  lib = import (kit + "/lib");
  inv = import (nixosDir + "/lib/inventory.nix") { raw = builtins.fromJSON (builtins.readFile fleetFile); };
  ev = lib.evalModules {
    modules = [
      (nixosDir + "/modules/secrets.nix")
      {
        # declared by nixpkgs' activation-script.nix and system-path.nix (attrsOf unspecified, as there)
        options.system.activationScripts = lib.mkOption { type = lib.types.attrsOf lib.types.unspecified; default = { }; };
        options.environment.systemPackages = lib.mkOption { type = lib.types.listOf lib.types.unspecified; default = [ ]; };
      }
    ];
    specialArgs = { host = inv.hosts.${host}; pkgs = { age = "/usr"; coreutils = "/usr"; bash = "/usr"; }; };
  };
in
lib.mapAttrs (n: v: if builtins.isString v then v else v.text) ev.config.system.activationScripts
