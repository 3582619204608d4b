# Per-host override for tappaas-vllm, picked up because a file hosts/<name>.nix exists.
# Anything here is merged into that host's configuration (and into its deploy step's hash).
{ ... }:
{
  fleet.vllm.extraArgs = [ "--max-model-len" "8192" "--gpu-memory-utilization" "0.90" ];
}
