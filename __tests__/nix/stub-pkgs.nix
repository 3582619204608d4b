# STAND-IN for nixpkgs' package set (nixpkgs itself cannot be fetched offline). Only what option
# declarations and the values the NixOS contract test forces touch: each package is a stub
# derivation (a store path that is never built); `formats` are nixpkgs' own (the kit's
# pkgs-lib/formats.nix) with `generate` stubbed, so option *types* are the real ones.
{ lib, kit }:
let
  drv = name: rec {
    type = "derivation";
    inherit name;
    pname = name;
    version = "0.0.0-stub";
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
    drvPath = "/nix/store/00000000000000000000000000000000-${name}.drv";
    outputs = [ "out" ];
    out = self;
    self = { inherit type name pname version outPath drvPath outputs; meta.mainProgram = name; };
    bin = self;
    ga = self;
    meta.mainProgram = name;
    override = _: drv name;
    overrideAttrs = _: drv name;
    withKerberos = false;
    passthru = { };
  };
  realFormats = import (kit + "/pkgs/pkgs-lib/formats.nix") { inherit lib; pkgs = { }; };
  stubGenerate = f: args: (f args) // { generate = name: _value: drv name; };
  nvidiaDriver = version: (drv "nvidia-x11-${version}") // { inherit version; open = drv "nvidia-open-${version}"; settings = drv "nvidia-settings"; persistenced = drv "nvidia-persistenced"; fabricmanager = drv "nvidia-fabricmanager"; lib32 = drv "nvidia-x11-lib32"; firmware = drv "nvidia-firmware"; useSettings = true; useFabricmanager = false; useProfiles = true; ibtSupport = true; };
in
lib.genAttrs [
  "vllm" "litellm" "open-webui" "git" "openssh" "cloud-init" "iproute2" "net-tools" "nettools" "shadow" "util-linux" "busybox" "btrfs-progs"
  "e2fsprogs" "xfsprogs" "gawk" "coreutils" "hostname" "mesa" "xauth" "qemu_kvm" "kbd" "xrandr" "gnugrep" "gnused" "nvidia-vaapi-driver"
  "xf86-video-amdgpu" "dhcpcd" "curl" "bash" "tiktoken" "python3" "zstd" "perl" "libuuid" "jq" "age"
] drv // {
  formats = lib.mapAttrs (n: f: if lib.isFunction f then stubGenerate f else f) realFormats;
  stdenv = {
    hostPlatform = { system = "x86_64-linux"; isx86_64 = true; isi686 = false; isLinux = true; };
    buildPlatform = { system = "x86_64-linux"; canExecute = _: true; };
    is32bit = false;
  };
  system = "x86_64-linux";
  runtimeShell = "/nix/store/00000000000000000000000000000000-bash/bin/sh";
  writeShellScript = name: _text: drv name;
  writeShellScriptBin = name: _text: drv name;
  writeScript = name: _text: drv name;
  writeText = name: _text: drv name;
  writeTextDir = name: _text: drv name;
  writeTextFile = a: drv a.name;
  runCommand = name: _env: _cmd: drv name;
  runCommandLocal = name: _env: _cmd: drv name;
  symlinkJoin = a: drv a.name;
  buildEnv = a: drv a.name;
  fetchurl = a: drv (a.name or "fetched");
  pkgsi686Linux = { mesa = drv "mesa-i686"; nvidia-vaapi-driver = drv "nvidia-vaapi-driver-i686"; };
  buildPackages = { openssh = drv "openssh"; };
  config = { allowAliases = false; };
}
