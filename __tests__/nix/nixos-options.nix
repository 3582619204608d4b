# Typed declarations of the NixOS options that our modules and the nixpkgs-kit modules set or read
# but that no file in ../shared/nixpkgs-kit declares (they live in nixpkgs modules the kit does not
# copy). Each has the type nixpkgs gives it (nixos/modules/<path> named beside it), so a
# misspelled option, a wrong type or conflicting definitions fail as they would with nixpkgs.
# Deliberately no catch-all (`attrsOf anything`) for a namespace our modules write to.
# As strict as nixpkgs (issue #27 M5): serviceConfig/unitConfig/socketConfig use nixpkgs' own
# unitOption merge and [Service] check, users the users-groups.nix assertions, kernelParams the
# kernelParam type. Still looser than nixpkgs, and why: networkd's [Network]/[Match] section
# checks (checkNetwork: the fleet sets only Name, address, gateway, DNS and domains, all typed
# here); environment.etc's source/text exclusivity (the kit's modules set whole entries);
# unitNameType on dependency lists (plain strings here).
{ lib, config, ... }:
let
  t = lib.types;
  opt = type: default: lib.mkOption { inherit type default; };
  optNoDefault = type: lib.mkOption { inherit type; };
  # nixos/modules/system/boot/systemd/lib.nix: unit options common to services, sockets, targets.
  unitOptions = {
    enable = opt t.bool true;
    description = opt t.singleLineStr "";
    wantedBy = opt (t.listOf t.str) [ ];
    requiredBy = opt (t.listOf t.str) [ ];
    wants = opt (t.listOf t.str) [ ];
    requires = opt (t.listOf t.str) [ ];
    after = opt (t.listOf t.str) [ ];
    before = opt (t.listOf t.str) [ ];
    bindsTo = opt (t.listOf t.str) [ ];
    partOf = opt (t.listOf t.str) [ ];
    conflicts = opt (t.listOf t.str) [ ];
    upholds = opt (t.listOf t.str) [ ];
    onFailure = opt (t.listOf t.str) [ ];
    restartTriggers = opt (t.listOf t.unspecified) [ ];
    reloadTriggers = opt (t.listOf t.unspecified) [ ];
    documentation = opt (t.listOf t.str) [ ];
    unitConfig = opt (t.attrsOf unitOption) { };
    startLimitBurst = opt (t.nullOr t.int) null;
    startLimitIntervalSec = opt (t.nullOr t.int) null;
    aliases = opt (t.listOf t.str) [ ];
    upheldBy = opt (t.listOf t.str) [ ];
  };
  # nixos/lib/systemd-unit-options.nix: unitOption (a list is repeated, anything else must be
  # equal in every definition: "conflicting definition values") and the [Service] check;
  # nixos/lib/systemd-lib.nix: checkUnitConfig, assertValueOneOf (failing, the whole
  # serviceConfig "is not of type `attribute set of systemd option'").
  unitOption = lib.mkOptionType {
    name = "systemd option";
    merge = loc: defs:
      let defs' = lib.filterOverrides defs; in
      if lib.any (def: lib.isList def.value) defs' then lib.concatMap (def: lib.toList def.value) defs'
      else lib.mergeEqualOption loc defs';
  };
  assertValueOneOf = name: values: group: attr:
    lib.optional (attr ? ${name} && !lib.elem attr.${name} values) "Systemd ${group} field `${name}' cannot have value `${toString attr.${name}}'.";
  checkUnitConfig = group: checks: attrs:
    let
      defs = lib.mapAttrs (_: v: if (v._type or "") == "override" || (v._type or "") == "if" then v.content else v) attrs;
      errors = lib.concatMap (c: c group defs) checks;
    in
    if errors == [ ] then true else builtins.trace (lib.concatStringsSep "\n" errors) false;
  checkService = checkUnitConfig "Service" [
    (assertValueOneOf "Type" [ "exec" "simple" "forking" "oneshot" "dbus" "notify" "notify-reload" "idle" ])
    (assertValueOneOf "Restart" [ "no" "on-success" "on-failure" "on-abnormal" "on-abort" "always" ])
  ];
  serviceOptions = unitOptions // {
    serviceConfig = opt (t.addCheck (t.attrsOf unitOption) checkService) { };
    environment = opt (t.attrsOf (t.nullOr (t.oneOf [ t.str t.path t.package ]))) { };
    path = opt (t.listOf (t.oneOf [ t.package t.str ])) [ ];
    script = opt t.lines "";
    preStart = opt t.lines "";
    postStart = opt t.lines "";
    preStop = opt t.lines "";
    postStop = opt t.lines "";
    reload = opt t.lines "";
    restartIfChanged = opt t.bool true;
    reloadIfChanged = opt t.bool false;
    stopIfChanged = opt t.bool true;
    startAt = opt (t.either t.str (t.listOf t.str)) [ ];
    confinement = opt (t.attrsOf t.unspecified) { };
    enableStrictShellChecks = opt t.bool false;
  };
  socketOptions = unitOptions // {
    listenStreams = opt (t.listOf t.str) [ ];
    listenDatagrams = opt (t.listOf t.str) [ ];
    socketConfig = opt (t.attrsOf unitOption) { };
  };
  # nixos/modules/config/users-groups.nix (the options our modules and the kit's use).
  userOptions = { name, config, ... }: {
    # users-groups.nix userOpts: a normal user's defaults
    config = lib.mkIf config.isNormalUser { group = lib.mkDefault "users"; createHome = lib.mkDefault true; home = lib.mkDefault "/home/${config.name}"; isSystemUser = lib.mkDefault false; };
    options = {
      name = opt t.str name;
      isNormalUser = opt t.bool false;
      isSystemUser = opt t.bool false;
      uid = opt (t.nullOr t.int) null;
      group = opt t.str "";
      extraGroups = opt (t.listOf t.str) [ ];
      description = opt t.str "";
      home = opt t.path "/var/empty";
      createHome = opt t.bool false;
      shell = opt (t.nullOr (t.either t.shellPackage t.path)) null;
      hashedPassword = opt (t.nullOr t.str) null;
      password = opt (t.nullOr t.str) null;
      initialPassword = opt (t.nullOr t.str) null;
      hashedPasswordFile = opt (t.nullOr t.str) null;
      packages = opt (t.listOf t.package) [ ];
      linger = opt (t.nullOr t.bool) null;
    };
  };
  groupOptions = { name, ... }: {
    options = {
      name = opt t.str name;
      gid = opt (t.nullOr t.int) null;
      members = opt (t.listOf t.str) [ ];
    };
  };
  # nixos/modules/system/etc/etc.nix
  etcOptions = { name, ... }: {
    options = {
      enable = opt t.bool true;
      target = opt t.str name;
      text = opt (t.nullOr t.lines) null;
      source = opt t.path "/dev/null";
      mode = opt t.str "symlink";
      uid = opt t.int 0;
      gid = opt t.int 0;
      user = opt t.str "+0";
      group = opt t.str "+0";
    };
  };
  # nixos/modules/system/boot/networkd.nix (the [Network] options our static address uses)
  networkOptions = {
    enable = opt t.bool true;
    matchConfig = opt (t.attrsOf t.unspecified) { };
    networkConfig = opt (t.attrsOf t.unspecified) { };
    linkConfig = opt (t.attrsOf t.unspecified) { };
    address = opt (t.listOf t.str) [ ];
    gateway = opt (t.listOf t.str) [ ];
    dns = opt (t.listOf t.str) [ ];
    domains = opt (t.nullOr (t.listOf t.str)) null;
    name = opt (t.nullOr t.str) null;
    DHCP = opt (t.nullOr t.str) null;
    routes = opt (t.listOf (t.attrsOf t.unspecified)) [ ];
  };
  kernelPackage = { version = "6.12.0"; kernelAtLeast = v: lib.versionAtLeast "6.12.0" v; kernelOlder = v: lib.versionOlder "6.12.0" v; features = { ia32Emulation = true; }; };
in
{
  options = {
    # nixos/modules/misc/assertions.nix
    assertions = opt (t.listOf t.unspecified) [ ];
    warnings = opt (t.listOf t.str) [ ];
    # nixos/modules/misc/meta.nix (maintainers are lazily merged and never forced: lib.maintainers is not in nixpkgs.lib)
    meta = opt (t.lazyAttrsOf t.raw) { };
    # nixos/modules/misc/version.nix, nixos/modules/system/activation/top-level.nix
    system.stateVersion = opt t.str "26.05";
    system.nixos.label = opt t.str "26.05test";
    system.build = opt (t.lazyAttrsOf t.unspecified) { };
    # nixos/modules/system/activation/activation-script.nix (scriptType: a string or { deps, text, supportsDryActivation })
    system.activationScripts = opt (t.attrsOf (t.either t.str (t.submodule {
      options = {
        deps = opt (t.listOf t.str) [ ];
        text = lib.mkOption { type = t.lines; };
        supportsDryActivation = opt t.bool false;
      };
    }))) { };
    system.checks = opt (t.listOf t.package) [ ];
    system.nssModules.path = opt t.str "";
    # nixos/modules/misc/nixpkgs.nix
    nixpkgs.config = opt (t.attrsOf t.unspecified) { };
    nixpkgs.hostPlatform = opt (t.either t.str (t.attrsOf t.unspecified)) "x86_64-linux";
    nixpkgs.overlays = opt (t.listOf t.unspecified) [ ];
    # nixos/modules/config/nix.nix, nix-gc.nix
    nix.settings = opt (t.submodule { freeformType = t.attrsOf (t.oneOf [ t.bool t.int t.str (t.listOf t.str) ]); }) { };
    nix.gc = {
      automatic = opt t.bool false;
      dates = opt (t.either t.singleLineStr (t.listOf t.str)) [ "03:15" ];
      options = opt t.str "";
    };
    # nixos/modules/config/users-groups.nix
    users.mutableUsers = opt t.bool true;
    users.users = opt (t.attrsOf (t.submodule userOptions)) { };
    users.groups = opt (t.attrsOf (t.submodule groupOptions)) { };
    # nixos/modules/misc/ids.nix
    ids.uids = opt (t.attrsOf t.int) { git = 41; };
    ids.gids = opt (t.attrsOf t.int) { git = 41; };
    # nixos/modules/config/system-environment.nix, system-path.nix, shells-environment.nix, etc.nix
    environment.etc = opt (t.attrsOf (t.submodule etcOptions)) { };
    environment.systemPackages = opt (t.listOf t.package) [ ];
    environment.shells = opt (t.listOf (t.either t.shellPackage t.path)) [ ];
    environment.variables = opt (t.attrsOf (t.either t.str (t.listOf t.str))) { };
    # nixos/modules/config/i18n.nix, nixos/modules/config/locale.nix
    i18n.defaultLocale = opt t.str "en_US.UTF-8";
    time.timeZone = opt (t.nullOr t.str) null;
    # nixos/modules/security/sudo.nix, pam.nix
    security.sudo.enable = opt t.bool true;
    security.sudo.wheelNeedsPassword = opt t.bool true;
    security.pam.services = opt (t.attrsOf (t.submodule { freeformType = t.attrsOf t.unspecified; })) { };
    # nixos/modules/programs/ssh.nix (read by sshd.nix)
    programs.ssh.package = opt t.package (config._module.args.pkgs.openssh);
    programs.ssh.setXAuthLocation = opt t.bool false;
    programs.ssh.knownHosts = opt (t.attrsOf t.unspecified) { };
    # nixos/modules/tasks/network-interfaces.nix, networking/firewall.nix
    networking.hostName = opt (t.strMatching "^$|^[[:alnum:]]([[:alnum:]_-]{0,61}[[:alnum:]])?$") "nixos";
    networking.domain = opt (t.nullOr t.str) null;
    networking.fqdn = lib.mkOption {
      type = t.str;
      readOnly = true;
      # nixos/modules/tasks/network-interfaces.nix: fqdn needs both names.
      default =
        if (config.networking.hostName != "" && config.networking.domain != null) then "${config.networking.hostName}.${config.networking.domain}"
        else throw "The FQDN is required but cannot be determined. Please make sure that both networking.hostName and networking.domain are set properly.";
    };
    networking.useDHCP = opt t.bool true;
    networking.useNetworkd = opt t.bool false;
    networking.enableIPv6 = opt t.bool true;
    networking.nameservers = opt (t.listOf t.str) [ ];
    networking.firewall = {
      enable = opt t.bool true;
      allowedTCPPorts = opt (t.listOf t.port) [ ];
      allowedUDPPorts = opt (t.listOf t.port) [ ];
      # networking/firewall-iptables.nix: types.lines, default ""
      extraCommands = opt t.lines "";
    };
    # nixos/modules/system/boot/systemd.nix, networkd.nix, tmpfiles.nix
    systemd.services = opt (t.attrsOf (t.submodule { options = serviceOptions; })) { };
    systemd.sockets = opt (t.attrsOf (t.submodule { options = socketOptions; })) { };
    systemd.targets = opt (t.attrsOf (t.submodule { options = unitOptions; })) { };
    systemd.packages = opt (t.listOf t.package) [ ];
    systemd.generatorPath = opt (t.listOf t.unspecified) [ ];
    systemd.tmpfiles.rules = opt (t.listOf t.str) [ ];
    systemd.tmpfiles.settings = opt (t.attrsOf (t.attrsOf (t.attrsOf (t.attrsOf t.unspecified)))) { };
    systemd.network.enable = opt t.bool false;
    systemd.network.networks = opt (t.attrsOf (t.submodule { options = networkOptions; })) { };
    # nixos/modules/system/boot/kernel.nix, loader/grub, loader/systemd-boot, grow-partition, initrd
    # nixos/modules/system/boot/kernel.nix: "string, with spaces inside double quotes"
    boot.kernelParams = opt (t.listOf (t.strMatching ''([^"[:space:]]|"[^"]*")+'' // { name = "kernelParam"; description = "string, with spaces inside double quotes"; })) [ ];
    boot.kernelModules = opt (t.listOf t.str) [ ];
    boot.blacklistedKernelModules = opt (t.listOf t.str) [ ];
    boot.extraModprobeConfig = opt t.lines "";
    boot.extraModulePackages = opt (t.listOf t.package) [ ];
    boot.kernelPackages = opt t.raw {
      kernel = kernelPackage;
      nvidiaPackages = let d = config._module.args.pkgs; in {
        stable = (d.vllm // { }) // { name = "nvidia-x11-580"; version = "580.95.05"; open = d.vllm; settings = d.vllm; persistenced = d.vllm; bin = d.vllm; firmware = d.vllm; useSettings = true; useFabricmanager = false; useProfiles = true; ibtSupport = true; lib32 = d.vllm; };
        beta = (d.vllm // { }) // { name = "nvidia-x11-590"; version = "590.0"; open = d.vllm; settings = d.vllm; persistenced = d.vllm; bin = d.vllm; firmware = d.vllm; useSettings = true; useFabricmanager = false; useProfiles = true; ibtSupport = true; lib32 = d.vllm; };
        dc = (d.vllm // { }) // { name = "nvidia-x11-dc"; version = "580.95.05"; open = d.vllm; settings = d.vllm; persistenced = d.vllm; bin = d.vllm; firmware = d.vllm; useSettings = false; useFabricmanager = true; useProfiles = false; ibtSupport = true; lib32 = d.vllm; };
      };
    };
    boot.growPartition = opt t.bool false;
    boot.initrd.availableKernelModules = opt (t.listOf t.str) [ ];
    boot.initrd.kernelModules = opt (t.listOf t.str) [ ];
    boot.loader.timeout = opt (t.nullOr t.int) 5;
    boot.loader.grub.device = opt t.str "";
    boot.loader.grub.efiSupport = opt t.bool false;
    boot.loader.grub.efiInstallAsRemovable = opt t.bool false;
    boot.loader.systemd-boot.enable = opt t.bool false;
    # nixos/modules/tasks/filesystems.nix
    fileSystems = opt (t.attrsOf (t.submodule { options = { device = opt (t.nullOr t.str) null; fsType = opt t.str "auto"; autoResize = opt t.bool false; options = opt (t.listOf t.str) [ "defaults" ]; }; })) { };
    # nixos/modules/services/hardware/udev.nix, acpid.nix, system/dbus.nix
    services.udev.extraRules = opt t.lines "";
    services.acpid.enable = opt t.bool false;
    services.dbus.packages = opt (t.listOf t.package) [ ];
    # nixos/modules/services/x11/xserver.nix (read by nvidia.nix; only videoDrivers is set by us)
    services.xserver = {
      enable = opt t.bool false;
      videoDrivers = opt (t.listOf t.str) [ "modesetting" "fbdev" ];
      drivers = opt (t.listOf t.attrs) [ ];
      serverLayoutSection = opt t.lines "";
      displayManager.setupCommands = opt t.lines "";
    };
    # nixos/modules/hardware/all-firmware.nix, virtualisation/docker.nix (read by nvidia.nix)
    hardware.firmware = opt (t.listOf t.package) [ ];
    virtualisation.docker.enableNvidia = opt t.bool false;
    # valid NixOS options a host override may set (refusing them would be stricter than nixpkgs):
    # nixos/modules/system/boot/resolved.nix (settings: a freeform INI submodule)
    services.resolved.enable = opt t.bool false;
    services.resolved.settings = opt (t.submodule { freeformType = t.attrsOf (t.attrsOf t.unspecified); }) { };
    # nixos/modules/services/hardware/nvidia-container-toolkit
    hardware.nvidia-container-toolkit.enable = opt t.bool false;
  };

  # nixos/modules/tasks/network-interfaces-systemd.nix: networkd brings systemd-resolved along
  # (services.resolved.enable = mkDefault true), whose stub listener holds 127.0.0.53:53
  config.services.resolved.enable = lib.mkIf config.networking.useNetworkd (lib.mkDefault true);
  # nixos/modules/config/users-groups.nix: the assertions on every user
  config.assertions = lib.concatLists (lib.mapAttrsToList
    (_: user: [
      {
        assertion =
          let
            xor = a: b: a && !b || b && !a;
            isEffectivelySystemUser = user.isSystemUser || (user.uid != null && user.uid < 1000 && !user.isNormalUser);
          in
          xor isEffectivelySystemUser user.isNormalUser;
        message = "Exactly one of users.users.${user.name}.isSystemUser and users.users.${user.name}.isNormalUser must be set.\n";
      }
      {
        assertion = user.group != "";
        message = "users.users.${user.name}.group is unset. This used to default to\nnogroup, but this is unsafe. For example you can create a group\nfor this user with:\nusers.users.${user.name}.group = \"${user.name}\";\nusers.groups.${user.name} = {};\n";
      }
    ])
    config.users.users);
}
