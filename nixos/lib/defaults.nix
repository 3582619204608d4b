# Defaults that more than one module needs, written once.
{
  # The model a vLLM host serves when the inventory names none (services.vllm.model). vLLM
  # serves it under this name (--served-model-name) and LiteLLM routes to the same name.
  vllmModel = "Qwen/Qwen2.5-7B-Instruct";
  # CUDA compute capabilities to build for when the inventory's GPU names none: the RTX 3090
  # (GA102) of the example fleet is 8.6. Building for one capability instead of nixpkgs' default
  # list cuts CUDA build time and closure size.
  cudaCapabilities = [ "8.6" ];
}
