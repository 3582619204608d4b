# OpenWebUI: the web front end, through nixpkgs' services.open-webui, pointed at LiteLLM.
{ config, lib, ... }:
let
  cfg = config.fleet.openwebui;
in
{
  options.fleet.openwebui = {
    enable = lib.mkEnableOption "OpenWebUI in front of the fleet's LiteLLM gateway";
    port = lib.mkOption {
      type = lib.types.port;
      default = 8080;
      description = "HTTP port (health check: GET /health).";
    };
    upstreams = lib.mkOption {
      type = lib.types.listOf (lib.types.submodule {
        options = {
          name = lib.mkOption { type = lib.types.str; description = "Upstream host name."; };
          url = lib.mkOption { type = lib.types.str; description = "OpenAI-compatible base URL of LiteLLM."; };
        };
      });
      default = [ ];
      description = "LiteLLM endpoints; the fleet fills this from the inventory.";
    };
    persistentConfig = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = "Keep settings changed in the admin panel across restarts (Open WebUI's ENABLE_PERSISTENT_CONFIG). Off: the declared upstreams and settings apply at every start.";
    };
    environmentFile = lib.mkOption {
      type = lib.types.nullOr lib.types.path;
      default = null;
      description = "File with OPENAI_API_KEYS (the LiteLLM key, one per upstream, separated by ';') and WEBUI_SECRET_KEY (kept out of the Nix store).";
    };
  };

  config = lib.mkIf cfg.enable {
    services.open-webui = {
      enable = true;
      host = "0.0.0.0";
      port = cfg.port;
      environmentFile = cfg.environmentFile;
      environment = {
        # OPENAI_API_BASE_URLS is a PersistentConfig setting: with persistence on (Open WebUI's
        # default) only the first start's value counts and LiteLLM hosts added later would be
        # ignored. Off, every start applies the values declared here (open-webui
        # backend/open_webui/config.py, ENABLE_PERSISTENT_CONFIG; docs: env-configuration).
        ENABLE_PERSISTENT_CONFIG = if cfg.persistentConfig then "True" else "False";
        OPENAI_API_BASE_URLS = lib.concatMapStringsSep ";" (u: u.url) cfg.upstreams;
        ENABLE_OLLAMA_API = "False";
        WEBUI_AUTH = "True";
        ANONYMIZED_TELEMETRY = "False";
        DO_NOT_TRACK = "True";
        SCARF_NO_ANALYTICS = "True";
      };
    };
    networking.firewall.allowedTCPPorts = [ cfg.port ];
  };
}
