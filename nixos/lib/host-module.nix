# Turns one host of the inventory (lib/inventory.nix's view) into NixOS settings of its role
# modules: enables each role, sets its ports, wires LiteLLM to the vLLM hosts, OpenWebUI to
# LiteLLM, and the platform services to their peers. Only the host's own role modules are
# imported, so only their options are set here.
{ host }:
{ lib, config, ... }:
let
  # The role's decrypted secrets (modules/secrets.nix), when it consumes any; a host's own
  # hosts/<name>.nix may point elsewhere (mkDefault).
  envFileOf = r:
    let f = builtins.filter (f: f.role == r) host.secretEnvFiles;
    in if f == [ ] then { } else { environmentFile = lib.mkDefault "${config.fleet.secrets.runDir}/${(builtins.head f).file}"; };
  optionName = p: if p == "api" then "port" else "${p}Port";
  settingsOf = r: removeAttrs (host.services.${r} or { }) [ "ports" "model" ];
  roleConfig = r:
    if r == "vllm" then {
      fleet.vllm = { enable = true; port = host.ports.vllm.api; model = host.vllmModel; } // envFileOf r
        // lib.optionalAttrs ((host.services.vllm or { }) ? modelPath) { modelPath = host.services.vllm.modelPath; }
        // lib.optionalAttrs ((host.services.vllm or { }) ? startTimeout) { startTimeout = host.services.vllm.startTimeout; }
        // lib.optionalAttrs ((host.gpu or null) != null && host.gpu ? cudaCapabilities) { cudaCapabilities = host.gpu.cudaCapabilities; };
    }
    else if r == "litellm" then { fleet.litellm = { enable = true; port = host.ports.litellm.api; upstreams = host.upstreams; } // envFileOf r; }
    else if r == "openwebui" then { fleet.openwebui = { enable = true; port = host.ports.openwebui.http; upstreams = host.upstreams; } // envFileOf r; }
    else if r == "cicd" then { fleet.cicd.enable = true; }
    else {
      # A platform service: ports, then peers (where its dependencies answer), then free settings.
      services.${r} = { enable = true; } // envFileOf r
        // lib.mapAttrs' (p: v: lib.nameValuePair (optionName p) v) host.ports.${r}
        // {
        settings = lib.recursiveUpdate
          { peers = lib.filterAttrs (n: _: builtins.elem n (import ./roles.nix).${r}.requires) host.peers; }
          (settingsOf r);
      };
    };
in
{
  config = builtins.foldl' lib.recursiveUpdate { } (map roleConfig host.roles);
}
