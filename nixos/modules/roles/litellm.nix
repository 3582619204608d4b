# LiteLLM: the API gateway in front of the vLLM hosts, through nixpkgs' services.litellm
# (packaged: nothing is pip-installed at service start).
{ config, lib, ... }:
let
  cfg = config.fleet.litellm;
in
{
  options.fleet.litellm = {
    enable = lib.mkEnableOption "the LiteLLM gateway in front of the fleet's vLLM hosts";
    port = lib.mkOption {
      type = lib.types.port;
      default = 4000;
      description = "Port of the gateway (health check: GET /health/liveliness).";
    };
    upstreams = lib.mkOption {
      type = lib.types.listOf (lib.types.submodule {
        options = {
          name = lib.mkOption { type = lib.types.str; description = "Upstream host name."; };
          url = lib.mkOption { type = lib.types.str; description = "OpenAI-compatible base URL, e.g. http://10.0.0.5:8000/v1."; };
          model = lib.mkOption { type = lib.types.str; description = "Model the upstream serves."; };
        };
      });
      default = [ ];
      description = "vLLM upstreams; the fleet fills this from the inventory's vLLM hosts.";
    };
    environmentFile = lib.mkOption {
      type = lib.types.nullOr lib.types.path;
      default = null;
      description = "File with LITELLM_MASTER_KEY=... and other secrets (kept out of the Nix store).";
    };
  };

  config = lib.mkIf cfg.enable {
    services.litellm = {
      enable = true;
      host = "0.0.0.0";
      port = cfg.port;
      environmentFile = cfg.environmentFile;
      settings.model_list = map
        (u: {
          model_name = u.model;
          litellm_params = { model = "hosted_vllm/${u.model}"; api_base = u.url; };
        })
        cfg.upstreams;
    };
    networking.firewall.allowedTCPPorts = [ cfg.port ];
  };
}
