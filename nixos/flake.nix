{
  description = "NixOS configurations of the Proxmox fleet: one per host of ../fleet.json, plus the template image";

  inputs = {
    # Current stable NixOS release.
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";
    # The eight platform services (seed 004: packages <name>-server, nixosModules.default,
    # overlays.default). The default is a placeholder in this repository whose packages evaluate
    # but fail to build with what to do, so the flake locks, evaluates and passes `nix flake
    # check` on any machine before the fleet exists; hosts without platform roles never need
    # more. Point it at
    # your platform flake (reachable from where you build) with
    #   nix flake lock ./nixos --override-input platform <flake-url>
    # or by changing this url. Relative path inputs need Nix >= 2.26.
    platform.url = "path:./platform-unset";
  };

  outputs = { self, nixpkgs, platform, ... }:
    let
      system = "x86_64-linux";
      lib = nixpkgs.lib;
      # The inventory: ../fleet.json, or FLEET_FILE when evaluated with --impure.
      fleetEnv = builtins.getEnv "FLEET_FILE";
      fleetFile = if fleetEnv != "" then /. + fleetEnv else ../fleet.json;
      fleet = import ./lib/inventory.nix { raw = builtins.fromJSON (builtins.readFile fleetFile); };
      platformPackages = platform.packages.${system} or { };
      # The platform flake's own NixOS modules (seed 004: nixosModules.default declares
      # services.<name>.{enable,port,raftPort,gossipPort,dnsPort,dataDir,settings,package}) win
      # over ours: with them, ours (modules/platform/, the same interface) are not imported, so
      # nothing is declared twice, and its overlay provides the packages its modules default to.
      # Without them (the placeholder, or a flake with packages only), ours are the service modules.
      platformModules = platform.nixosModules.default or null;
      isPlatformFile = f: lib.hasPrefix "modules/platform/" f;

      shared = [
        ./modules/base.nix
        ./modules/users.nix
        ./modules/proxmox-guest.nix
        ./modules/registration.nix
        ./modules/secrets.nix
      ];
      # Role files that are modules (platform/lib.nix is a function the service files call;
      # scripts are read by the modules).
      roleModules = host:
        map (f: ./. + "/${f}")
          (builtins.filter (f: lib.hasPrefix "modules/" f && baseNameOf f != "lib.nix" && !(platformModules != null && isPlatformFile f)) host.files)
        ++ lib.optionals (platformModules != null && builtins.any isPlatformFile host.files)
          [ platformModules { nixpkgs.overlays = lib.optional (platform ? overlays.default) platform.overlays.default; } ];
      override = name: lib.optional (builtins.pathExists (./hosts + "/${name}.nix")) (./hosts + "/${name}.nix");

      mkHost = name: host: lib.nixosSystem {
        inherit system;
        specialArgs = { inherit fleet host platformPackages; };
        modules = shared ++ roleModules host ++ [ (import ./lib/host-module.nix { inherit host; }) ] ++ override name;
      };
    in
    {
      nixosConfigurations = lib.mapAttrs mkHost fleet.hosts // {
        nixos-template = lib.nixosSystem {
          inherit system;
          specialArgs = { inherit fleet platformPackages; host = null; };
          modules = shared ++ [ ./template.nix ];
        };
      };

      # The template as a Proxmox VMA (restore with qmrestore, then qm template).
      packages.${system} = {
        proxmox-template = self.nixosConfigurations.nixos-template.config.system.build.VMA;
        default = self.packages.${system}.proxmox-template;
      };

      # Our modules for other flakes: the shared ones, each role, and the platform services'
      # modules (the seed 004 interface, for a platform flake without modules of its own).
      nixosModules = {
        base = ./modules/base.nix;
        users = ./modules/users.nix;
        proxmox-guest = ./modules/proxmox-guest.nix;
        registration = ./modules/registration.nix;
        secrets = ./modules/secrets.nix;
        vllm = ./modules/roles/vllm.nix;
        litellm = ./modules/roles/litellm.nix;
        openwebui = ./modules/roles/openwebui.nix;
        cicd = ./modules/roles/cicd.nix;
        default = { imports = shared; };
      } // lib.genAttrs [ "chainfire" "flaredb" "iam" "plasmavmc" "novanet" "flashdns" "fiberlb" "lightningstor" ] (n: ./modules/platform + "/${n}.nix");

      # What the TypeScript side checks against (see __tests__/nix-agreement.test.ts).
      lib.fleet = fleet;
    };
}
