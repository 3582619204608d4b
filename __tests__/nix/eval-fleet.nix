# NixOS contract: evaluates the flake's own `nixosConfigurations` (what
# `nixos-rebuild --flake ./nixos#<host>` builds) with the REAL nixpkgs lib and the real nixpkgs
# modules copied in ../shared/nixpkgs-kit. Only what cannot exist offline is a stand-in:
#  - `nixosSystem` is lib.evalModules over the kit's modules plus typed declarations of the
#    other nixpkgs options (nixos-options.nix), instead of nixpkgs' module-list;
#  - `pkgs` is stub-pkgs.nix (derivations are never built);
#  - the `platform` flake input provides stub packages for the eight platform services.
# Where full nixpkgs is given (`nixpkgs` argument), its own nixosSystem is used instead and the
# test also evaluates config.system.build.toplevel.drvPath.
# `platform`: "stub" (packages only, named <name> as an older platform flake did), "seed004" (the
# platform flake as seed 004 defines it: <name>-server packages, its own nixosModules and overlay;
# platform-seed004.nix), or "placeholder" (the flake's default input, no packages).
{ kit ? null, nixpkgs ? null, nixosDir, hosts ? null, platformStub ? true, platform ? (if platformStub then "stub" else "placeholder") }:
let
  useNixpkgs = nixpkgs != null;
  lib = if useNixpkgs then import (nixpkgs + "/lib") else import (kit + "/lib");
  basePkgs = import ./stub-pkgs.nix { inherit lib kit; };
  seed004 = import ./platform-seed004.nix { inherit lib; drv = stubDrv; };
  # nixpkgs.overlays of the hosts, as nixpkgs would apply them (the only overlay is the platform's)
  pkgs = if platform == "seed004" then basePkgs // seed004.overlays.default basePkgs basePkgs else basePkgs;
  # The NixOS modules of module-list.nix that the kit has (proxmox-image and profiles/qemu-guest
  # are not in module-list: our proxmox-guest.nix imports them through modulesPath).
  kitModules = map (p: kit + "/nixos/modules/${p}") [
    "services/system/cloud-init.nix"
    "virtualisation/qemu-guest-agent.nix"
    "services/networking/ssh/sshd.nix"
    "services/misc/litellm.nix"
    "services/misc/open-webui.nix"
    "services/networking/git-daemon.nix"
    "hardware/video/nvidia.nix"
    "hardware/graphics.nix"
  ];
  nixosSystem =
    if useNixpkgs then args: import (nixpkgs + "/nixos/lib/eval-config.nix") (args // { modules = args.modules; })
    else { system, specialArgs ? { }, modules }:
      lib.evalModules {
        specialArgs = { modulesPath = kit + "/nixos/modules"; } // specialArgs;
        modules = [ ./nixos-options.nix { _module.args.pkgs = pkgs; nixpkgs.hostPlatform = system; } ] ++ kitModules ++ modules;
      };
  stubDrv = name: basePkgs.vllm // { inherit name; outPath = "/nix/store/00000000000000000000000000000000-${name}"; meta.mainProgram = name; };
  stubPlatform = {
    # STAND-IN for a platform services' flake with packages only: one stub package per service.
    packages.x86_64-linux = lib.genAttrs [ "chainfire" "flaredb" "iam" "plasmavmc" "novanet" "flashdns" "fiberlb" "lightningstor" ] stubDrv;
  };
  flake = import (nixosDir + "/flake.nix");
  # The flake's own default input is the placeholder with no packages.
  platformInput =
    if platform == "seed004" then seed004
    else if platform == "stub" then stubPlatform
    else (import (nixosDir + "/platform-unset/flake.nix")).outputs { self = { }; };
  out = flake.outputs { self = out; nixpkgs = { lib = lib // { inherit nixosSystem; }; }; platform = platformInput; };
  names = if hosts == null then builtins.attrNames out.nixosConfigurations else hosts;

  roleNames = builtins.attrNames (import (nixosDir + "/lib/roles.nix"));
  platformRoles = builtins.filter (r: (import (nixosDir + "/lib/roles.nix")).${r}.group or "" == "platform") roleNames;
  report = name:
    let
      sys = out.nixosConfigurations.${name};
      c = sys.config;
      enabled = p: lib.attrByPath p false c;
      # Everything our modules set is evaluated in full, with the nixpkgs modules that set the
      # same options: type checks, merges and conflicting definitions fail here. (Forcing
      # `config` at all also refuses any option no module declares: a misspelled name.)
      pick = names: set: lib.filterAttrs (n: _: builtins.elem n names) set;
      ourServices = [ "litellm" "open-webui" "gitDaemon" ] ++ roleNames;
      forcedValues = {
        fleet = c.fleet;
        activation = c.system.activationScripts;
        services = lib.mapAttrs (n: v: if v.enable or false then v else { enable = false; }) (pick ourServices c.services);
        firewallExtra = c.networking.firewall.extraCommands;
        openssh = { inherit (c.services.openssh) enable ports openFirewall settings; };
        cloudInit = { inherit (c.services.cloud-init) enable settings; network = c.services.cloud-init.network.enable; };
        qemuGuest = c.services.qemuGuest.enable;
        xserverDrivers = c.services.xserver.videoDrivers;
        networking = { inherit (c.networking) hostName domain useDHCP useNetworkd firewall; };
        systemd = { services = c.systemd.services; networks = c.systemd.network.networks; tmpfiles = c.systemd.tmpfiles.rules; };
        users = c.users;
        nix = c.nix;
        inherit (c) time i18n nixpkgs;
        sudo = c.security.sudo;
        boot = { inherit (c.boot) kernelParams growPartition; initrd = c.boot.initrd.availableKernelModules; };
        environment = { etc = c.environment.etc; inherit (c.environment) systemPackages shells; };
        hardware = if enabled [ "hardware" "nvidia" "enabled" ] then { nvidia = { inherit (c.hardware.nvidia) open package; modesetting = c.hardware.nvidia.modesetting.enable; }; graphics = c.hardware.graphics.enable; } else { };
        proxmox = { inherit (c.proxmox) qemuExtraConf partitionTableType; qemuConf = { inherit (c.proxmox.qemuConf) bios boot cores memory name agent scsihw virtio0 net0 ostype serial0; }; };
      };
      failedAssertions = map (a: a.message) (lib.filter (a: !a.assertion) c.assertions);
      # As nixpkgs' system.build.toplevel does: failed assertions are reported before anything
      # else is evaluated.
      forced = if failedAssertions != [ ] then false else builtins.deepSeq forcedValues true;
    in
    {
      evaluated = forced;
      inherit failedAssertions;
      warnings = c.warnings;
      hostName = c.networking.hostName;
      fqdn = if c.networking.domain != null then c.networking.fqdn else null;
      cloudInitNetwork = c.services.cloud-init.network.enable;
      # what /etc/cloud/cloud.cfg is generated from (nixpkgs cloud-init.nix: settingsFormat.generate
      # of these settings), and the tmpfiles rules
      cloudInitSettingsNetwork = c.services.cloud-init.settings.network or null;
      cloudCfgFromSettings = c.environment.etc."cloud/cloud.cfg" ? source;
      tmpfiles = c.systemd.tmpfiles.rules;
      useDHCP = c.networking.useDHCP;
      networks = lib.mapAttrs (n: v: { inherit (v) address gateway dns domains; match = v.matchConfig; }) c.systemd.network.networks;
      sshPorts = c.services.openssh.ports;
      firewallTCP = c.networking.firewall.allowedTCPPorts;
      litellmModels = if enabled [ "services" "litellm" "enable" ] then map (m: { name = m.model_name; api_base = m.litellm_params.api_base; }) c.services.litellm.settings.model_list else null;
      openwebuiEnv = if enabled [ "services" "open-webui" "enable" ] then c.services.open-webui.environment else null;
      vllm = if enabled [ "fleet" "vllm" "enable" ] then { model = c.fleet.vllm.model; cuda = c.nixpkgs.config.cudaCapabilities or null; execStart = c.systemd.services.vllm.serviceConfig.ExecStart; timeout = c.systemd.services.vllm.serviceConfig.TimeoutStartSec; ready = c.systemd.services.vllm.serviceConfig ? ExecStartPost; } else null;
      # What reads the secrets: the activation's decrypt command, and each service's EnvironmentFile.
      secrets = if failedAssertions != [ ] then null else {
        command = c.fleet.secrets.command;
        activation = c.system.activationScripts.fleetSecrets.text or null;
        systemPackages = map (p: p.name) c.environment.systemPackages;
        # what systemd reads (EnvironmentFile= of each role's unit, as a list)
        environmentFiles =
          let unitOf = { litellm = "litellm"; openwebui = "open-webui"; vllm = "vllm"; cicd = "fleet-git-repositories"; };
              files = r: lib.toList (c.systemd.services.${unitOf.${r} or r}.serviceConfig.EnvironmentFile or [ ]);
          in lib.filterAttrs (_: v: v != [ ]) (lib.genAttrs (lib.attrNames (lib.filterAttrs (_: v: v) {
            litellm = enabled [ "services" "litellm" "enable" ];
            openwebui = enabled [ "services" "open-webui" "enable" ];
            vllm = enabled [ "fleet" "vllm" "enable" ];
          } // lib.genAttrs (builtins.filter (r: enabled [ "services" r "enable" ]) roleNames) (_: true))) files);
      };
      drvPath = if useNixpkgs then c.system.build.toplevel.drvPath else null;
      # Raft roles: the cluster each member is told about, and its firewall rules
      raft = lib.genAttrs (builtins.filter (r: enabled [ "services" r "enable" ] && (c.services.${r}.settings ? cluster)) [ "chainfire" "flaredb" ]) (r: c.services.${r}.settings.cluster);
      firewallExtra = c.networking.firewall.extraCommands;
      resolved = { enable = c.services.resolved.enable; stubListener = c.services.resolved.settings.Resolve.DNSStubListener or null; resolvConf = c.environment.etc."resolv.conf".source or null; };
      platformSettingsKeys = lib.genAttrs (builtins.filter (r: enabled [ "services" r "enable" ]) platformRoles) (r: builtins.attrNames c.services.${r}.settings);
      platformUnits = if failedAssertions != [ ] then null else lib.genAttrs (builtins.filter (r: enabled [ "services" r "enable" ]) platformRoles) (r: { inherit (c.systemd.services.${r}.serviceConfig) ExecStart User; EnvironmentFile = c.systemd.services.${r}.serviceConfig.EnvironmentFile or null; });
    };
in
lib.genAttrs names report
