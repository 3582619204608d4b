# vLLM: the OpenAI-compatible inference server on a passed-through NVIDIA GPU.
{ config, lib, pkgs, ... }:
let
  cfg = config.fleet.vllm;
  defaults = import ../../lib/defaults.nix;
  # What `vllm serve` loads: pre-seeded weights when given, else the Hugging Face id.
  source = if cfg.modelPath != null then toString cfg.modelPath else cfg.model;
  # The unit is active only once the model answers: vLLM has no sd_notify, so ExecStartPost
  # polls its /health endpoint (200 once the engine is up) within TimeoutStartSec.
  # Every inventory value is escaped where it enters the script.
  waitReady = pkgs.writeShellScript "vllm-wait-ready" ''
    echo ${lib.escapeShellArg "vllm: waiting for ${cfg.model} to load (GET http://127.0.0.1:${toString cfg.port}/health, up to ${cfg.startTimeout})"}
    until ${lib.getExe pkgs.curl} -fsS -o /dev/null ${lib.escapeShellArg "http://127.0.0.1:${toString cfg.port}/health"}; do sleep 5; done
    echo ${lib.escapeShellArg "vllm: ${cfg.model} is ready"}
  '';
in
{
  options.fleet.vllm = {
    enable = lib.mkEnableOption "the vLLM OpenAI-compatible server on a passed-through NVIDIA GPU";
    package = lib.mkOption {
      type = lib.types.package;
      default = pkgs.vllm;
      defaultText = lib.literalExpression "pkgs.vllm (built with CUDA: nixpkgs.config.cudaSupport is set)";
      description = "The vLLM package; its `vllm` executable runs the server.";
    };
    model = lib.mkOption {
      # A Hugging Face id (it reaches a unit's Description and a shell script): the inventory's pattern.
      type = lib.types.strMatching "[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)?";
      default = defaults.vllmModel;
      description = "Model to serve: its Hugging Face id, and the name vLLM serves it under (--served-model-name), which LiteLLM routes to.";
    };
    modelPath = lib.mkOption {
      type = lib.types.nullOr lib.types.path;
      default = null;
      example = "/var/lib/vllm/models/Qwen2.5-7B-Instruct";
      description = "Directory with pre-seeded weights of `model` (a Hugging Face snapshot). Set, the host serves without internet access (HF_HUB_OFFLINE=1).";
    };
    cudaCapabilities = lib.mkOption {
      type = lib.types.nullOr (lib.types.listOf (lib.types.strMatching "[0-9]+\\.[0-9]+"));
      default = defaults.cudaCapabilities;
      description = "CUDA compute capabilities to build for; null: nixpkgs' default list, the one public CUDA caches build. Only the GPU's (8.6 for an RTX 3090) means shorter builds from source and no public cache hit.";
    };
    startTimeout = lib.mkOption {
      type = lib.types.str;
      default = "30min";
      description = "How long starting may take, model download and load included (systemd TimeoutStartSec); the unit is active only when /health answers.";
    };
    host = lib.mkOption {
      type = lib.types.str;
      default = "0.0.0.0";
      description = "Address the server listens on.";
    };
    port = lib.mkOption {
      type = lib.types.port;
      default = 8000;
      description = "Port of the OpenAI-compatible API (health check: GET /health).";
    };
    extraArgs = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [ ];
      example = [ "--max-model-len" "8192" "--gpu-memory-utilization" "0.9" ];
      description = "Extra arguments for `vllm serve`.";
    };
    environmentFile = lib.mkOption {
      type = lib.types.nullOr lib.types.path;
      default = null;
      description = "File with secrets such as HF_TOKEN=... (kept out of the Nix store).";
    };
    openFirewall = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = "Open the API port in the firewall.";
    };
    clients = lib.mkOption {
      type = lib.types.nullOr (lib.types.listOf (lib.types.strMatching "[0-9]+\\.[0-9]+\\.[0-9]+\\.[0-9]+"));
      default = null;
      description = "Addresses allowed to reach the API port (the fleet sets its LiteLLM hosts when all have static addresses); null: open to all.";
    };
    nvidiaOpenKernelModule = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = "Use NVIDIA's open kernel module (Turing and newer); set false for older GPUs.";
    };
  };

  config = lib.mkIf cfg.enable {
    nixpkgs.config = { allowUnfree = true; cudaSupport = true; } // lib.optionalAttrs (cfg.cudaCapabilities != null) { cudaCapabilities = cfg.cudaCapabilities; };

    # Driver for the passed-through GPU (headless: videoDrivers only selects the kernel driver).
    services.xserver.videoDrivers = [ "nvidia" ];
    hardware.graphics.enable = true;
    hardware.nvidia = {
      open = cfg.nvidiaOpenKernelModule;
      modesetting.enable = true;
      nvidiaSettings = false;
      package = config.boot.kernelPackages.nvidiaPackages.stable;
    };
    environment.systemPackages = [ config.hardware.nvidia.package.bin or config.hardware.nvidia.package ];

    users.users.vllm = { isSystemUser = true; group = "vllm"; home = "/var/lib/vllm"; extraGroups = [ "video" "render" ]; };
    users.groups.vllm = { };

    systemd.services.vllm = {
      description = "vLLM OpenAI-compatible server (${cfg.model})";
      wantedBy = [ "multi-user.target" ];
      after = [ "network-online.target" ];
      wants = [ "network-online.target" ];
      environment = {
        HF_HOME = "/var/lib/vllm/huggingface";
        VLLM_NO_USAGE_STATS = "1";
        DO_NOT_TRACK = "1";
      } // lib.optionalAttrs (cfg.modelPath != null) { HF_HUB_OFFLINE = "1"; };
      serviceConfig = {
        ExecStart = lib.escapeShellArgs ([ (lib.getExe' cfg.package "vllm") "serve" source "--served-model-name" cfg.model "--host" cfg.host "--port" (toString cfg.port) ] ++ cfg.extraArgs);
        ExecStartPost = "${waitReady}";
        EnvironmentFile = lib.mkIf (cfg.environmentFile != null) cfg.environmentFile;
        User = "vllm";
        Group = "vllm";
        StateDirectory = "vllm";
        StateDirectoryMode = "0750";
        WorkingDirectory = "/var/lib/vllm";
        Restart = "on-failure";
        RestartSec = "15s";
        # The first start downloads the model (unless modelPath is set); ExecStartPost waits for it.
        TimeoutStartSec = cfg.startTimeout;
        NoNewPrivileges = true;
        PrivateTmp = true;
        ProtectSystem = "strict";
        ProtectHome = true;
      };
    };
    # vLLM has no key of its own here: with clients given (the fleet gives the LiteLLM hosts), its
    # port is open to them only, so nobody on the network goes around LiteLLM's key (issue #27
    # M11); nixpkgs' firewall idiom for a rule by source.
    networking.firewall.allowedTCPPorts = lib.mkIf (cfg.openFirewall && cfg.clients == null) [ cfg.port ];
    networking.firewall.extraCommands = lib.mkIf (cfg.openFirewall && cfg.clients != null)
      (lib.concatMapStrings (a: "iptables -A nixos-fw -p tcp -s ${a} --dport ${toString cfg.port} -j nixos-fw-accept\n") cfg.clients);
  };
}
