# vLLM: the OpenAI-compatible inference server on a passed-through NVIDIA GPU.
{ config, lib, pkgs, ... }:
let
  cfg = config.fleet.vllm;
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
      type = lib.types.str;
      default = "Qwen/Qwen2.5-7B-Instruct";
      description = "Model to serve (Hugging Face id or a local path under the state directory).";
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
    nvidiaOpenKernelModule = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = "Use NVIDIA's open kernel module (Turing and newer); set false for older GPUs.";
    };
  };

  config = lib.mkIf cfg.enable {
    nixpkgs.config = { allowUnfree = true; cudaSupport = true; };

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
      };
      serviceConfig = {
        ExecStart = lib.escapeShellArgs ([ (lib.getExe' cfg.package "vllm") "serve" cfg.model "--host" cfg.host "--port" (toString cfg.port) ] ++ cfg.extraArgs);
        EnvironmentFile = lib.mkIf (cfg.environmentFile != null) cfg.environmentFile;
        User = "vllm";
        Group = "vllm";
        StateDirectory = "vllm";
        StateDirectoryMode = "0750";
        WorkingDirectory = "/var/lib/vllm";
        Restart = "on-failure";
        RestartSec = "15s";
        # First start downloads the model.
        TimeoutStartSec = "30min";
        NoNewPrivileges = true;
        PrivateTmp = true;
        ProtectSystem = "strict";
        ProtectHome = true;
      };
    };
    networking.firewall.allowedTCPPorts = lib.mkIf cfg.openFirewall [ cfg.port ];
  };
}
